//! The library's answers to bad values and faults: typed errors before any work, answers kept
//! at the context limit, cancellation, failed turns that leave a session as it was, and image
//! limits checked before reading or decoding.

use phi3v::vision::VisionError;
use phi3v::{Cancel, Error, GenerationParams, ImageInput, ImageLimits, KvDtype, ParamError, Pipeline, PipelineOptions, StopReason};

fn exact() -> PipelineOptions {
    PipelineOptions { kv_cache: Some(KvDtype::F32), ..Default::default() }
}

fn greedy(n: usize) -> GenerationParams {
    GenerationParams { max_new_tokens: n, ..Default::default() }
}

/// `tiny-phi35v` with its context cut to `positions`.
fn short_context(positions: usize) -> (tempfile::TempDir, Pipeline) {
    let (tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    cfg["max_position_embeddings"] = positions.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
    let p = Pipeline::load(&dir, &exact()).unwrap();
    (tmp, p)
}

#[test]
fn bad_generation_values_are_typed_errors() {
    let p = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &exact()).unwrap();
    let bad = [
        (GenerationParams { temperature: f32::NAN, ..greedy(4) }, "temperature"),
        (GenerationParams { top_p: 0.0, ..greedy(4) }, "top_p"),
        (GenerationParams { repetition_penalty: -1.0, ..greedy(4) }, "repetition_penalty"),
        (greedy(0), "max_new_tokens"),
    ];
    for (params, field) in bad {
        let mut streamed = false;
        match p.ask("Hi", &[], &params, |_| streamed = true) {
            Err(Error::Params(e)) => assert!(e.to_string().starts_with(field), "{e}"),
            other => panic!("{field}: {other:?}"),
        }
        assert!(!streamed);
    }
    assert!(matches!(p.session().ask("Hi", &[], &GenerationParams { temperature: -1.0, ..greedy(2) }, |_| {}), Err(Error::Params(ParamError::Temperature(_)))));
    // Threads: none, or far more than cores, refused before the weights are read.
    for threads in [0, 1_000_000] {
        let opts = PipelineOptions { threads: Some(threads), ..Default::default() };
        let err = Pipeline::load("/nonexistent".as_ref(), &opts).err().unwrap();
        assert!(matches!(err, Error::Threads(_)), "{err}");
    }
}

#[test]
fn the_context_limit_ends_an_answer_without_losing_it() {
    let prompt = "<|user|>\nHi<|end|>\n<|assistant|>\n";
    let (_tmp, p) = short_context(40);
    let prompt_len = p.prompt_inputs(prompt, &[]).unwrap().ids.len();
    let g = p.generate(prompt, &[], &greedy(100), |_| {}).unwrap();
    match g.stop {
        StopReason::ContextFull => assert_eq!(prompt_len + g.tokens.len(), 40),
        StopReason::EndToken(_) => assert!(prompt_len + g.tokens.len() < 40),
        other => panic!("{other:?}"),
    }
    assert_eq!(g.stop.finish_reason(), if g.stop == StopReason::ContextFull { "length" } else { "stop" });
    // When the token limit comes first, it is the reason.
    let room = 40 - prompt_len;
    if g.stop == StopReason::ContextFull {
        let h = p.generate(prompt, &[], &greedy(room - 1), |_| {}).unwrap();
        assert_eq!((h.stop, h.tokens.as_slice()), (StopReason::MaxTokens, &g.tokens[..room - 1]));
        let h = p.generate(prompt, &[], &greedy(room), |_| {}).unwrap();
        assert_eq!(h.stop, StopReason::MaxTokens, "both limits at once: the caller's is reported");
    }
    // A prompt that leaves no room for the answer is refused with the numbers.
    let (_tmp, p) = short_context(prompt_len);
    let err = p.generate(prompt, &[], &greedy(5), |_| {}).unwrap_err();
    assert!(matches!(err, Error::PromptTooLong { tokens, max } if tokens == prompt_len && max == prompt_len), "{err}");
    // With one position to spare: exactly one token.
    let (_tmp, p) = short_context(prompt_len + 1);
    let g = p.generate(prompt, &[], &greedy(5), |_| {}).unwrap();
    assert_eq!(g.tokens.len() + usize::from(matches!(g.stop, StopReason::EndToken(_))), 1);
}

#[test]
fn a_session_at_the_limit_refuses_the_next_turn_and_keeps_its_conversation() {
    let (_tmp, p) = short_context(60);
    let mut s = p.session();
    let first = s.ask("Hi", &[], &greedy(200), |_| {}).unwrap();
    let cached = s.cached_tokens();
    assert_eq!(cached, first.prompt_tokens + first.tokens.len());
    let err = s.ask("And then what happened after all of that?", &[], &greedy(5), |_| {}).unwrap_err();
    assert!(matches!(err, Error::PromptTooLong { max: 60, .. }), "{err}");
    assert_eq!(s.cached_tokens(), cached);
    assert_eq!(s.messages().len(), 2);
}

#[test]
fn a_failed_turn_leaves_the_session_as_it_was() {
    let p = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &exact()).unwrap();
    let penalised = GenerationParams { repetition_penalty: 1.3, ..greedy(8) };
    // Reference: two good turns.
    let mut clean = p.session();
    clean.ask("Hello there", &[], &penalised, |_| {}).unwrap();
    let expected = clean.ask("Go on", &[], &penalised, |_| {}).unwrap();
    // The same, with a turn in between that fails once its tokens are in (bad values are only
    // found when generation starts).
    let mut s = p.session();
    s.ask("Hello there", &[], &penalised, |_| {}).unwrap();
    let cached = s.cached_tokens();
    let bad = GenerationParams { top_p: 2.0, ..penalised.clone() };
    assert!(s.ask("Some other words entirely", &[], &bad, |_| {}).is_err());
    assert_eq!(s.cached_tokens(), cached);
    assert_eq!(s.messages().len(), 2);
    let got = s.ask("Go on", &[], &penalised, |_| {}).unwrap();
    assert_eq!(got.tokens, expected.tokens, "the failed turn left nothing in the cache or the penalty's history");
}

#[test]
fn a_cancelled_generation_keeps_what_it_said() {
    let p = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &exact()).unwrap();
    let cancel = Cancel::new();
    let params = GenerationParams { cancel: Some(cancel.clone()), ..greedy(50) };
    let mut pieces = 0;
    let g = p.ask("Tell me a story", &[], &params, |_| {
        pieces += 1;
        if pieces == 3 {
            cancel.cancel();
        }
    })
    .unwrap();
    assert_eq!(g.stop, StopReason::Cancelled);
    assert_eq!(g.stop.finish_reason(), "cancelled");
    let full = p.ask("Tell me a story", &[], &greedy(50), |_| {}).unwrap();
    assert!(g.tokens.len() < full.tokens.len() && full.tokens.starts_with(&g.tokens), "{:?} {:?}", g.tokens, full.tokens);
    // A flag set before the start: nothing is generated; reset, it runs again.
    let g = p.ask("Tell me a story", &[], &params, |_| {}).unwrap();
    assert!(g.tokens.is_empty() && g.stop == StopReason::Cancelled);
    cancel.reset();
    assert_eq!(p.ask("Tell me a story", &[], &params, |_| {}).unwrap().tokens, full.tokens);
}

#[test]
fn image_limits_are_checked_before_reading_and_decoding() {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png");
    let bytes = std::fs::read(&chart).unwrap();
    let limits = |max_pixels, max_bytes| ImageLimits { max_pixels, max_bytes };
    let err = ImageInput::from_bytes_within(bytes.as_slice(), &limits(640 * 480 - 1, 1 << 30)).err().unwrap();
    assert!(matches!(err, Error::Vision(VisionError::TooLarge { width: 640, height: 480, max: 307_199 })), "{err}");
    let err = ImageInput::from_bytes_within(bytes.as_slice(), &limits(1 << 30, 100)).err().unwrap();
    assert!(matches!(err, Error::Vision(VisionError::TooManyBytes { max: 100, .. })), "{err}");
    let ok = ImageInput::from_bytes_within(bytes.as_slice(), &limits(640 * 480, bytes.len() as u64)).unwrap();
    assert_eq!(ok.dimensions(), (640, 480));
    // A sparse file far over the byte limit is refused from its size, never read.
    let tmp = tempfile::tempdir().unwrap();
    let huge = tmp.path().join("huge.jpg");
    std::fs::File::create(&huge).unwrap().set_len(1 << 40).unwrap();
    let err = ImageInput::open(&huge).err().unwrap();
    assert!(err.to_string().contains("huge.jpg") && err.to_string().contains("1099511627776 bytes"), "{err}");
    // Held encoded, decoded on demand: the same pixels as decoding the file directly.
    let input = ImageInput::open(&chart).unwrap();
    assert_eq!(*input.rgb().unwrap(), phi3v::vision::load_rgb(&chart).unwrap());
    // A body that is corrupt behind a good header is found by check(), with the file named.
    let mut corrupt = bytes.clone();
    let at = corrupt.len() / 2;
    corrupt[at..at + 200].fill(0x55);
    let bad = tmp.path().join("corrupt.png");
    std::fs::write(&bad, &corrupt).unwrap();
    let input = ImageInput::open(&bad).unwrap();
    let err = input.check().unwrap_err();
    assert!(err.to_string().contains("corrupt.png"), "{err}");
}

#[test]
fn from_pretrained_takes_a_directory_or_names_what_is_missing() {
    let dir = phi3v_fixtures::path("tiny-phi35v");
    let p = Pipeline::from_pretrained(dir.to_str().unwrap(), &exact()).unwrap();
    assert_eq!(p.default_crops(), 4);
    let err = Pipeline::from_pretrained("./no/such/checkpoint", &exact()).err().unwrap();
    assert!(matches!(&err, Error::Hub(m) if m.contains("./no/such/checkpoint")), "{err}");
}

#[test]
fn long_steps_report_their_progress() {
    use phi3v::{Observer, Progress};
    use std::sync::{Arc, Mutex};
    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink = events.clone();
    let opts = PipelineOptions { progress: Some(Observer::new(move |p| sink.lock().unwrap().push(p))), ..exact() };
    let p = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &opts).unwrap();
    let loading: Vec<(u64, u64)> =
        events.lock().unwrap().iter().filter_map(|e| if let Progress::Loading { bytes, total } = e { Some((*bytes, *total)) } else { None }).collect();
    let total = loading[0].1;
    assert!(loading.windows(2).all(|w| w[0].0 <= w[1].0), "bytes only grow");
    assert_eq!(loading.last().unwrap().0, total, "the last report is the whole");
    assert!(loading.len() > 20, "one report per tensor read");
    events.lock().unwrap().clear();
    let chart = ImageInput::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png")).unwrap();
    let g = p.ask("Which quarter?", &[chart], &greedy(2), |_| {}).unwrap();
    let events = events.lock().unwrap().clone();
    let crops: Vec<usize> = events.iter().filter_map(|e| if let Progress::Encoding { crops, of: 5 } = e { Some(*crops) } else { None }).collect();
    assert_eq!(crops, [0, 1, 2, 3, 4, 5], "a 640×480 image at 4 crops is 5 crops with the global view");
    let prefill: Vec<usize> = events.iter().filter_map(|e| if let Progress::Prefill { tokens, .. } = e { Some(*tokens) } else { None }).collect();
    assert_eq!((prefill.first(), prefill.last()), (Some(&0), Some(&g.prompt_tokens)));
    assert!(prefill.len() >= 3, "the 768-token prompt is read in chunks: {prefill:?}");
}

#[test]
fn memory_estimates_match_what_loading_holds() {
    use phi3v::memory::estimate;
    use phi3v::WeightFormat;
    let dir = phi3v_fixtures::path("tiny-phi35v");
    let ckpt = phi3v::checkpoint::Checkpoint::open(&dir).unwrap();
    for format in [WeightFormat::Auto, WeightFormat::F32, WeightFormat::Q8, WeightFormat::Q4] {
        let opts = PipelineOptions { weights: format, vision_weights: format, ..Default::default() };
        let p = Pipeline::load(&dir, &opts).unwrap();
        let e = estimate(&ckpt, format, format, None, 100);
        // The decoder's matrices and the cache at 100 positions, as the loaded decoder counts them.
        assert_eq!(e.decoder_matrices as usize, p.decode_bytes_per_token(0), "{format}");
        assert_eq!(e.kv_cache as usize, p.decode_bytes_per_token(100) - p.decode_bytes_per_token(0), "{format}");
        assert!(e.other_weights > 0);
    }
}
