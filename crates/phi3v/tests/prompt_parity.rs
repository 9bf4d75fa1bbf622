//! Prompt ids against the reference processor (the `tokenizers` library on the official
//! Phi-3-vision tokenizer files, chunked as `processing_phi3_v.py` does).

use phi3v::prompt::{chat_prompt, Message, PromptError, PromptTokenizer};

fn tokenizer() -> PromptTokenizer {
    PromptTokenizer::from_file(&phi3v_fixtures::path("tiny-phi3v/tokenizer.json")).unwrap()
}

#[test]
fn prompt_ids_match_reference_processor() {
    let tok = tokenizer();
    let golden = phi3v_fixtures::prompts();
    assert!(golden.entries.len() >= 7);
    for e in &golden.entries {
        let ids = tok.encode(&e.prompt, &e.num_img_tokens).unwrap();
        assert_eq!(ids, e.input_ids, "prompt {:?}", e.prompt);
    }
}

#[test]
fn model_case_prompts_match_reference() {
    let tok = tokenizer();
    let mut n = 0;
    for ckpt in phi3v_fixtures::CHECKPOINTS {
        for (name, case) in phi3v_fixtures::model_cases(ckpt) {
            let messages: Vec<Message> = case.messages.iter().map(|m| Message::new(&m.role, &m.content)).collect();
            let prompt = chat_prompt(&messages, true);
            assert_eq!(prompt, case.prompt, "{ckpt}/{name}: chat template");
            let counts: Vec<usize> = case.images.iter().map(|i| i.num_img_tokens).collect();
            let ids = tok.encode(&prompt, &counts).unwrap();
            assert_eq!(ids.len(), case.prompt_len, "{ckpt}/{name}");
            assert_eq!(ids, case.input_ids, "{ckpt}/{name}");
            n += 1;
        }
    }
    assert_eq!(n, 6);
}

#[test]
fn canonical_prompt_ids() {
    // The token dump of the reference notes (vLLM log of Phi-3.5-vision), lower-case "what's".
    let tok = tokenizer();
    let prompt = chat_prompt(&[Message::new("user", "<|image_1|>\nwhat's in the image?")], true);
    let ids = tok.encode(&prompt, &[3]).unwrap();
    assert_eq!(
        ids,
        [1, 32010, 29871, 13, -1, -1, -1, 1, 29871, 13, 5816, 29915, 29879, 297, 278, 1967, 29973, 32007, 29871, 13, 32001]
    );
}

#[test]
fn bad_tags_are_refused() {
    let tok = tokenizer();
    let mismatch = |prompt: &str, images: &[usize]| match tok.encode(prompt, images) {
        Err(PromptError::TagMismatch { found, images, .. }) => (found, images),
        other => panic!("{prompt:?}: expected a tag error, got {other:?}"),
    };
    let tags = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(mismatch("<|image_2|> hi", &[5]), (tags(&["<|image_2|>"]), 1));
    assert_eq!(mismatch("<|image_1|> <|image_1|>", &[5]), (tags(&["<|image_1|>", "<|image_1|>"]), 1));
    assert_eq!(mismatch("<|image_1|>", &[5, 5]), (tags(&["<|image_1|>"]), 2));
    assert_eq!(mismatch("no tags", &[5]), (vec![], 1));
    assert_eq!(mismatch("<|image_0|>", &[5]), (tags(&["<|image_0|>"]), 1));
    let huge = "<|image_99999999999999999999999|>";
    assert_eq!(mismatch(huge, &[5]), (tags(&[huge]), 1));
    // Messages quote the tags as written and never an empty or odd range.
    let msg = tok.encode("<|image_2|>", &[5]).unwrap_err().to_string();
    assert_eq!(msg, "the prompt needs the tag <|image_1|> once for its one image; it has <|image_2|>");
    let msg = tok.encode("<|image_1|> and <|image_2|>", &[]).unwrap_err().to_string();
    assert_eq!(msg, "the prompt has image tags (<|image_1|>, <|image_2|>) but no images were given");
    let msg = tok.encode(huge, &[5, 5]).unwrap_err().to_string();
    assert_eq!(msg, format!("image tags must be numbered <|image_1|> … <|image_2|> for 2 images, each used once; the prompt has {huge}"));
}

#[test]
fn out_of_order_tags_place_each_image_at_its_tag() {
    let tok = tokenizer();
    let ids = tok.encode("<|image_2|>x<|image_1|>", &[2, 3]).unwrap();
    let placeholders: Vec<i64> = ids.into_iter().filter(|i| *i < 0).collect();
    assert_eq!(placeholders, [-2, -2, -2, -1, -1]);
}
