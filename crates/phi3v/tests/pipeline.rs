//! End to end through the public API: every fixture case's prompt ids, first-step logits and
//! 24 greedy tokens against the reference, plus streaming, stop strings, sessions, the image
//! cache and the error paths.
//!
//! Tolerance: first-step logits max |Δ| ≤ 1e-3 in f32 (magnitude ~10); tokens identical. The
//! pipelines keep an f32 KV cache, the reference's arithmetic; the default f16 cache is measured
//! against the same references in `weight_formats.rs`.

use phi3v::{Error, GenerationParams, ImageInput, KvDtype, Message, Pipeline, PipelineOptions, StopReason, STOP_IDS};

const TOL: f32 = 1e-3;

fn exact() -> PipelineOptions {
    PipelineOptions { kv_cache: Some(KvDtype::F32), ..Default::default() }
}

fn pipeline(name: &str) -> Pipeline {
    Pipeline::load(&phi3v_fixtures::path(name), &exact()).unwrap()
}

fn greedy(n: usize) -> GenerationParams {
    GenerationParams { max_new_tokens: n, ..Default::default() }
}

fn case_images(case: &phi3v_fixtures::ModelCase) -> Vec<ImageInput> {
    case.images
        .iter()
        .map(|i| ImageInput::open(&phi3v_fixtures::path(&i.image)).unwrap().with_num_crops(i.num_crops))
        .collect()
}

#[test]
fn every_fixture_case_matches_reference_end_to_end() {
    let mut n = 0;
    for name in phi3v_fixtures::CHECKPOINTS {
        let p = pipeline(name);
        for (case, golden) in phi3v_fixtures::model_cases(name) {
            let images = case_images(&golden);
            let inputs = p.prompt_inputs(&golden.prompt, &images).unwrap();
            assert_eq!(inputs.ids, golden.input_ids, "{name}/{case}: input ids");

            let logits = p.next_token_logits(&golden.prompt, &images).unwrap();
            let want = phi3v_fixtures::tensors(&format!("golden/{name}/{case}.safetensors"))["logits"].get(0).unwrap();
            let d = (logits - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(d <= TOL, "{name}/{case}: first-step logits differ by {d}");

            assert!(golden.greedy_tokens.iter().all(|t| !STOP_IDS.contains(t)));
            let g = p.generate(&golden.prompt, &images, &greedy(golden.greedy_tokens.len()), |_| {}).unwrap();
            assert_eq!(g.tokens, golden.greedy_tokens, "{name}/{case}: greedy tokens");
            assert_eq!(g.stop, StopReason::MaxTokens);
            assert_eq!(g.prompt_tokens, golden.prompt_len);
            let counts: Vec<usize> = golden.images.iter().map(|i| i.num_img_tokens).collect();
            assert_eq!(g.image_tokens, counts);
            n += 1;
        }
    }
    assert_eq!(n, 6);
}

#[test]
fn chat_and_ask_build_the_reference_prompt() {
    let p = pipeline("tiny-phi35v");
    let (_, golden) = phi3v_fixtures::model_cases("tiny-phi35v").into_iter().find(|(c, _)| c == "image-portrait").unwrap();
    let images = case_images(&golden);
    let messages: Vec<Message> = golden.messages.iter().map(|m| Message::new(&m.role, &m.content)).collect();
    let chat = p.chat(&messages, &images, &greedy(5), |_| {}).unwrap();
    assert_eq!(chat.tokens, golden.greedy_tokens[..5]);
    // `ask` places the image first: "<|image_1|>\n" + question, the same prompt here.
    let question = golden.messages[0].content.trim_start_matches("<|image_1|>\n");
    let ask = p.ask(question, &images, &greedy(5), |_| {}).unwrap();
    assert_eq!(ask.tokens, chat.tokens);
}

#[test]
fn streamed_text_is_the_reply_and_stop_strings_cut_it() {
    let p = pipeline("tiny-phi3v");
    let prompt = "<|user|>\nName three colours of the rainbow.<|end|>\n<|assistant|>\n";
    let mut streamed = String::new();
    let g = p.generate(prompt, &[], &greedy(20), |t| streamed.push_str(t)).unwrap();
    assert_eq!(streamed, g.text);
    assert_eq!(g.text, p.tokenizer().tokenizer().decode(&g.tokens, true).unwrap());
    assert!(g.timings.prefill_tokens > 0 && g.timings.decode_steps == 20);

    // Stop at a piece of that reply: text ends right before it, nothing after it is streamed.
    let chars: Vec<char> = g.text.chars().collect();
    let stop: String = chars[chars.len() / 2..chars.len() / 2 + 3].iter().collect();
    let at = g.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let params = GenerationParams { stop: vec![stop.clone()], ..greedy(20) };
    let cut = p.generate(prompt, &[], &params, |t| streamed.push_str(t)).unwrap();
    assert_eq!(cut.stop, StopReason::StopString(stop));
    assert_eq!(cut.text, g.text[..at]);
    assert_eq!(streamed, cut.text);
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let p = pipeline("tiny-phi3v");
    let prompt = "<|user|>\nTell me a story.<|end|>\n<|assistant|>\n";
    let params = |seed| GenerationParams { temperature: 1.0, top_p: 0.9, top_k: 50, seed, ..greedy(12) };
    let a = p.generate(prompt, &[], &params(7), |_| {}).unwrap();
    let b = p.generate(prompt, &[], &params(7), |_| {}).unwrap();
    let c = p.generate(prompt, &[], &params(8), |_| {}).unwrap();
    assert_eq!(a.tokens, b.tokens);
    assert_ne!(a.tokens, c.tokens);
}

#[test]
fn session_follow_up_costs_only_new_tokens() {
    let p = pipeline("tiny-phi35v");
    let img = ImageInput::open(&phi3v_fixtures::path("images/landscape.png")).unwrap();
    let mut s = p.session().with_system("Be brief.");
    let first = s.ask("What is shown?", std::slice::from_ref(&img), &greedy(6), |_| {}).unwrap();
    assert_eq!(first.prompt_tokens, 757 + 24);
    let after_first = s.cached_tokens();
    assert_eq!(after_first, first.prompt_tokens + first.tokens.len());
    let second = s.ask("And the colours?", &[], &greedy(6), |_| {}).unwrap();
    assert!(second.image_tokens.is_empty());
    assert_eq!(p.image_cache_usage().0, 1, "the image was encoded once");
    assert_eq!(s.cached_tokens(), after_first + second.prompt_tokens + second.tokens.len());
    assert!(second.prompt_tokens < 30, "the follow-up only feeds its own tokens");
    assert_eq!(s.messages().len(), 5);

    // The cache holds exactly the conversation as one prompt: turn 1, reply 1's tokens, then
    // turn 2 as the continuation of the template (no BOS, `<|end|>` closing reply 1).
    let turn1 = p.prompt_inputs("<|system|>\nBe brief.<|end|>\n<|user|>\n<|image_1|>\nWhat is shown?<|end|>\n<|assistant|>\n", std::slice::from_ref(&img)).unwrap();
    let mut ids = turn1.ids.clone();
    ids.extend(first.tokens.iter().map(|&t| t as i64));
    let turn2 = p.tokenizer().encode_from("<|end|>\n<|user|>\nAnd the colours?<|end|>\n<|assistant|>\n", &[], 2, true).unwrap();
    assert_eq!(turn2.len(), second.prompt_tokens);
    ids.extend(turn2);
    assert_eq!(ids.len(), s.cached_tokens() - second.tokens.len());

    // A new image in a later turn is numbered on (<|image_2|>).
    let third = s.ask("Compare.", std::slice::from_ref(&img), &greedy(2), |_| {}).unwrap();
    assert_eq!(third.image_tokens, vec![757]);
    assert_eq!(p.image_cache_usage().0, 1, "the same image again comes from the cache");
    assert!(s.messages()[5].content.starts_with("<|image_2|>\n"));
    s.reset();
    assert_eq!(s.cached_tokens(), 0);
}

#[test]
fn image_embeddings_are_cached_by_content_and_crops() {
    let p = pipeline("tiny-phi35v");
    let img = ImageInput::open(&phi3v_fixtures::path("images/portrait.png")).unwrap();
    let a = p.encode_image(&img).unwrap();
    let one = a.elem_count() * 4;
    assert_eq!(p.image_cache_usage(), (1, one));
    let b = p.encode_image(&img).unwrap();
    assert_eq!(p.image_cache_usage(), (1, one), "a hit adds nothing");
    assert_eq!(a.to_vec2::<f32>().unwrap(), b.to_vec2::<f32>().unwrap());
    let c = p.encode_image(&img.clone().with_num_crops(1)).unwrap();
    assert_ne!(a.dims(), c.dims());
    assert_eq!(p.image_cache_usage().0, 2, "num_crops is part of the key");
    // A cache that holds one such image at most: the least recently used goes.
    let opts = PipelineOptions { image_cache_bytes: one, ..Default::default() };
    let q = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &opts).unwrap();
    let d = q.encode_image(&img).unwrap();
    q.encode_image(&ImageInput::open(&phi3v_fixtures::path("images/landscape.png")).unwrap()).unwrap();
    assert_eq!(q.image_cache_usage(), (1, one));
    assert_eq!(a.to_vec2::<f32>().unwrap(), d.to_vec2::<f32>().unwrap());
    // Disabled cache: still correct, holds nothing.
    let opts = PipelineOptions { image_cache_bytes: 0, ..Default::default() };
    let r = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &opts).unwrap();
    assert_eq!(a.to_vec2::<f32>().unwrap(), r.encode_image(&img).unwrap().to_vec2::<f32>().unwrap());
    assert_eq!(r.image_cache_usage(), (0, 0));
}

#[test]
fn bad_requests_are_typed_errors() {
    let p = pipeline("tiny-phi35v");
    assert!(matches!(p.generate(" \n", &[], &greedy(1), |_| {}), Err(Error::EmptyPrompt)));
    assert!(matches!(p.ask("", &[], &greedy(1), |_| {}), Err(Error::EmptyPrompt)));
    let blank = [Message::new("system", " "), Message::new("user", "")];
    assert!(matches!(p.chat(&blank, &[], &greedy(1), |_| {}), Err(Error::EmptyPrompt)));
    assert!(matches!(p.session().ask(" ", &[], &greedy(1), |_| {}), Err(Error::EmptyPrompt)));
    let strip = ImageInput::open(&phi3v_fixtures::path("images/strip.png")).unwrap().with_num_crops(16);
    let many: Vec<ImageInput> = (0..13).map(|_| strip.clone()).collect();
    let err = p.ask("Too much.", &many, &greedy(1), |_| {}).unwrap_err();
    assert!(matches!(err, Error::PromptTooLong { max: 32768, .. }), "{err}");
    let err = p.generate("<|image_2|>", std::slice::from_ref(&strip), &greedy(1), |_| {}).unwrap_err();
    assert!(matches!(err, Error::Prompt(_)), "{err}");
    let thin = ImageInput::open(&phi3v_fixtures::path("images/thin.png")).unwrap();
    assert!(matches!(p.ask("?", &[thin], &greedy(1), |_| {}), Err(Error::Vision(_))));
    assert!(matches!(ImageInput::open("/nonexistent.png".as_ref()), Err(Error::Vision(_))));

    // A config whose vocabulary differs from the stored embeddings'.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(dir.join("config.json"), cfg.replace("\"vocab_size\": 32064", "\"vocab_size\": 32000")).unwrap();
    let err = Pipeline::load(&dir, &PipelineOptions::default()).err().unwrap();
    assert!(matches!(err, Error::Checkpoint(_)), "{err}");
    assert!(err.to_string().contains("vocab_size × hidden_size is [32000, 32] but model.embed_tokens.weight is stored as [32064, 32]"), "{err}");
    // A tokenizer with more tokens than the model's vocabulary.
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let mut tok: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    for k in 0..30 {
        let extra = serde_json::json!({"id": 32045 + k, "content": format!("<|extra_{k}|>"), "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true});
        tok["added_tokens"].as_array_mut().unwrap().push(extra);
    }
    std::fs::write(dir.join("tokenizer.json"), serde_json::to_vec(&tok).unwrap()).unwrap();
    let err = Pipeline::load(&dir, &PipelineOptions::default()).err().unwrap();
    assert!(matches!(err, Error::TokenizerVocab { tokenizer: 32075, model: 32064 }), "{err}");
}

#[test]
fn pipelines_are_shareable_and_thread_count_does_not_change_results() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Pipeline>();
    let prompt = "<|user|>\n<|image_1|>\nWhat is this?<|end|>\n<|assistant|>\n";
    let img = ImageInput::open(&phi3v_fixtures::path("images/tall.png")).unwrap();
    let default = pipeline("tiny-phi35v").generate(prompt, std::slice::from_ref(&img), &greedy(6), |_| {}).unwrap();
    let opts = PipelineOptions { threads: Some(1), ..exact() };
    let single = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &opts).unwrap();
    // Two threads asking at once through clones of one pipeline.
    let answers: Vec<Vec<u32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (p, img) = (single.clone(), img.clone());
                s.spawn(move || p.generate(prompt, &[img], &greedy(6), |_| {}).unwrap().tokens)
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(answers[0], default.tokens);
    assert_eq!(answers[1], default.tokens);
}
