//! The engine's continuous batching gives every request the answer it gets alone
//! ([`Pipeline::chat`], greedy, f32 KV cache on the f32 tiny checkpoint), with requests that
//! join while others run, images, stop strings and different lengths.

use std::sync::mpsc;

use phi3v::{ChatRequest, Engine, EngineOptions, Event, GenerationParams, ImageInput, Message, Pipeline, PipelineOptions};

#[test]
fn batched_answers_equal_answers_alone() {
    let pipeline = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &PipelineOptions::default()).unwrap();
    let chart = ImageInput::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png")).unwrap();
    let requests: Vec<(Vec<Message>, Vec<ImageInput>, GenerationParams)> = (0..6)
        .map(|i| {
            let images = if i % 3 == 0 { vec![chart.clone()] } else { vec![] };
            let tags = if images.is_empty() { String::new() } else { "<|image_1|>\n".to_string() };
            let text = format!("{tags}Question number {i}: {}", "tell me more ".repeat(i * 5));
            let params = GenerationParams { max_new_tokens: 6 + 5 * i, stop: if i == 4 { vec!["e".into()] } else { vec![] }, ..Default::default() };
            (vec![Message::new("user", text)], images, params)
        })
        .collect();
    let alone: Vec<String> = requests.iter().map(|(m, im, p)| pipeline.chat(m, im, p, |_| {}).unwrap().text).collect();

    // A small prefill chunk, so prompts are read over several turns while others decode; a
    // pipeline of its own without an image cache, so the engine encodes the images itself (a
    // CLIP slice per turn).
    let pipeline = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &PipelineOptions { image_cache_bytes: 0, ..Default::default() }).unwrap();
    let engine = Engine::new(pipeline, EngineOptions { max_queue: 16, max_batch: 4, prefill_chunk: 16, ..Default::default() });
    let (sender, events) = mpsc::channel();
    let mut most_running = 0;
    for (k, (messages, images, params)) in requests.into_iter().enumerate() {
        let sender = sender.clone();
        engine.submit(ChatRequest { messages, images, params }, move |e| sender.send((k, e)).unwrap()).unwrap();
        most_running = most_running.max(engine.running());
    }
    drop(sender);
    let mut streamed = vec![String::new(); alone.len()];
    let mut done = vec![None; alone.len()];
    for (k, event) in events.iter() {
        most_running = most_running.max(engine.running());
        match event {
            Event::Text(t) => streamed[k].push_str(&t),
            Event::Done(g) => done[k] = Some(g.unwrap().text),
        }
        if done.iter().all(Option::is_some) {
            break;
        }
    }
    for k in 0..alone.len() {
        assert_eq!(done[k].as_deref(), Some(alone[k].as_str()), "request {k}");
        assert_eq!(streamed[k], alone[k], "request {k}: the streamed text");
    }
    assert!(most_running > 1, "requests ran together (at most {most_running} at once)");
}

/// Runs one request through `engine` and waits for its generation.
fn ask(engine: &Engine, messages: Vec<Message>, images: Vec<ImageInput>, max_new_tokens: usize) -> phi3v::Generation {
    let (sender, events) = mpsc::channel();
    let params = GenerationParams { max_new_tokens, ..Default::default() };
    engine.submit(ChatRequest { messages, images, params }, move |e| sender.send(e).unwrap()).unwrap();
    events.iter().find_map(|e| if let Event::Done(g) = e { Some(g.unwrap()) } else { None }).unwrap()
}

#[test]
fn a_resent_conversation_reuses_its_prefix_on_both_sides_of_the_rope_switch() {
    // tiny-phi35v switches to the long rotary factors past 1 024 positions; the chart is 757
    // image tokens. Each follow-up must equal the same conversation read whole, with the
    // earlier turns (image included) taken from the prefix cache.
    let pipeline = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &PipelineOptions::default()).unwrap();
    let chart = ImageInput::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png")).unwrap();
    let engine = Engine::new(pipeline.clone(), EngineOptions::default());
    let greedy = |n| GenerationParams { max_new_tokens: n, ..Default::default() };
    let cases = [
        ("short entry, follow-up crosses the switch in its prefill", 10, 300),
        ("long entry, follow-up past the switch", 300, 5),
    ];
    for (name, first_words, second_words) in cases {
        let q1 = format!("<|image_1|>\nDescribe {}", "the chart ".repeat(first_words / 2));
        let turn1 = vec![Message::new("user", q1.clone())];
        let a1 = ask(&engine, turn1, vec![chart.clone()], 8);
        let conversation = vec![
            Message::new("user", q1),
            Message::new("assistant", a1.text.clone()),
            Message::new("user", format!("And {}?", "then ".repeat(second_words))),
        ];
        let alone = pipeline.chat(&conversation, std::slice::from_ref(&chart), &greedy(8), |_| {}).unwrap();
        let lookups = pipeline.image_cache_hits();
        let again = ask(&engine, conversation, vec![chart.clone()], 8);
        // The image lies inside the reused prefix: it was not even looked up.
        assert_eq!(pipeline.image_cache_hits(), lookups, "{name}");
        assert_eq!(again.text, alone.text, "{name}");
        assert_eq!(again.prompt_tokens, alone.prompt_tokens, "{name}");
        // At least the whole first prompt (the answer too where its text tokenises back to the
        // generated tokens, which random weights rarely give).
        assert!(again.cached_tokens >= a1.prompt_tokens, "{name}: reused {} of {}", again.cached_tokens, a1.prompt_tokens);
        assert!((a1.prompt_tokens + a1.tokens.len() > 1024) == (first_words > 100), "{name}: the entry's side of the switch");
        assert!(again.prompt_tokens > 1024, "{name}");
    }
    // A long entry cannot be cut below the switch: a prompt sharing only its image is read whole.
    let other = vec![Message::new("user", "<|image_1|>\nSomething else entirely".to_string())];
    let alone = pipeline.chat(&other, std::slice::from_ref(&chart), &greedy(8), |_| {}).unwrap();
    let g = ask(&engine, other, vec![chart.clone()], 8);
    assert_eq!((g.text, g.cached_tokens), (alone.text, 0));
    assert!(engine.prefix_cache_hits().0 >= 2);
    // Off: nothing reused.
    let off = Engine::new(pipeline.clone(), EngineOptions { prefix_cache_bytes: 0, ..Default::default() });
    let first = vec![Message::new("user", "<|image_1|>\nHi".to_string())];
    ask(&off, first.clone(), vec![chart.clone()], 4);
    assert_eq!(ask(&off, first, vec![chart], 4).cached_tokens, 0);
}

#[test]
fn running_answers_go_on_while_a_new_image_is_encoded() {
    // One chunk per prompt, so only the image's slices of CLIP can be interleaved; no image
    // cache, so the image is encoded. Encoded whole on admission, the running answer would get
    // one token while it happens; a slice per turn gives it one per slice.
    let options = PipelineOptions { image_cache_bytes: 0, ..Default::default() };
    let pipeline = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &options).unwrap();
    let chart = ImageInput::open(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png")).unwrap().with_num_crops(16);
    let engine = Engine::new(pipeline, EngineOptions { prefill_chunk: 4096, ..Default::default() });
    let (sender, events) = mpsc::channel();
    let submit = |k: usize, text: &str, images: Vec<ImageInput>, max_new_tokens| {
        let sender = sender.clone();
        let request = ChatRequest { messages: vec![Message::new("user", text)], images, params: GenerationParams { max_new_tokens, ..Default::default() } };
        engine.submit(request, move |e| sender.send((k, e)).unwrap()).unwrap();
    };
    submit(0, "Tell me a long story.", vec![], 200);
    assert!(matches!(events.recv().unwrap(), (0, Event::Text(_))));
    submit(1, "<|image_1|>\nWhat is this?", vec![chart], 4);
    let mut meanwhile = 0;
    for (k, event) in events.iter() {
        match (k, event) {
            (0, Event::Text(_)) => meanwhile += 1,
            (0, Event::Done(g)) => panic!("the story ended first: {g:?}"),
            (_, event) => {
                assert!(matches!(event, Event::Text(_)), "{event:?}");
                break;
            }
        }
    }
    // 17 crops × 2 layers at the tiny model's 4 layers a slice: 9 slices and the preprocessing.
    assert!(meanwhile >= 6, "the story got {meanwhile} pieces of text while the image was read");
}

#[test]
fn a_kv_budget_parks_and_preempts_requests_and_answers_stay_the_same() {
    // A cache is allocated by blocks of 512 positions: 1 536 tokens hold three sequences of
    // one block. Five prompts of ~500 tokens that each grow past 512: the
    // fourth and fifth wait, and growing answers preempt the youngest.
    let pipeline = Pipeline::load(&phi3v_fixtures::path("tiny-phi35v"), &PipelineOptions::default()).unwrap();
    let requests: Vec<(Vec<Message>, GenerationParams)> = (0..5)
        .map(|i| {
            let text = format!("Request {i}: {}", "tell me more ".repeat(155 + i));
            (vec![Message::new("user", text)], GenerationParams { max_new_tokens: 40, ..Default::default() })
        })
        .collect();
    let alone: Vec<phi3v::Generation> = requests.iter().map(|(m, p)| pipeline.chat(m, &[], p, |_| {}).unwrap()).collect();
    for g in &alone {
        assert!(g.prompt_tokens < 512 && g.prompt_tokens + g.tokens.len() > 512, "{} + {}", g.prompt_tokens, g.tokens.len());
    }
    let budget: phi3v::KvBudget = "1536tokens".parse().unwrap();
    let engine = Engine::new(pipeline.clone(), EngineOptions { kv_budget: budget, prefill_chunk: 64, ..Default::default() });
    let (sender, events) = mpsc::channel();
    for (k, (messages, params)) in requests.into_iter().enumerate() {
        let sender = sender.clone();
        engine.submit(ChatRequest { messages, images: vec![], params }, move |e| sender.send((k, e)).unwrap()).unwrap();
    }
    drop(sender);
    let mut streamed = vec![String::new(); alone.len()];
    let mut done = vec![None; alone.len()];
    for (k, event) in events.iter() {
        match event {
            Event::Text(t) => streamed[k].push_str(&t),
            Event::Done(g) => done[k] = Some(g.unwrap()),
        }
        if done.iter().all(Option::is_some) {
            break;
        }
    }
    for (k, g) in done.into_iter().enumerate() {
        let g = g.unwrap();
        assert_eq!((&g.text, &g.tokens, &g.stop), (&alone[k].text, &alone[k].tokens, &alone[k].stop), "request {k}");
        assert_eq!(streamed[k], alone[k].text, "request {k}: streamed once, not again after a preemption");
    }
    assert!(engine.preemptions() > 0, "no request was preempted");

    // An answer alone in a budget of one block ends there, as at the end of the context.
    let small = Engine::new(pipeline.clone(), EngineOptions { kv_budget: "512tokens".parse().unwrap(), ..Default::default() });
    let (sender, events) = mpsc::channel();
    let (messages, params) = (vec![Message::new("user", format!("Request 0: {}", "tell me more ".repeat(155)))], GenerationParams { max_new_tokens: 40, ..Default::default() });
    small.submit(ChatRequest { messages, images: vec![], params }, move |e| sender.send(e).unwrap()).unwrap();
    let g = events.iter().find_map(|e| if let Event::Done(g) = e { Some(g.unwrap()) } else { None }).unwrap();
    assert_eq!(g.stop, phi3v::StopReason::ContextFull);
    assert!(g.prompt_tokens + g.tokens.len() <= 513 && alone[0].tokens.starts_with(&g.tokens), "{} + {}", g.prompt_tokens, g.tokens.len());

    // A prompt larger than the whole budget is refused, naming the sizes.
    let long = vec![Message::new("user", "tell me more ".repeat(600))];
    let (sender, events) = mpsc::channel();
    let request = ChatRequest { messages: long, images: vec![], params: GenerationParams::default() };
    engine.submit(request, move |e| sender.send(e).unwrap()).unwrap();
    let err = events.iter().find_map(|e| if let Event::Done(g) = e { Some(g.unwrap_err()) } else { None }).unwrap();
    assert!(matches!(err, phi3v::Error::KvBudget { .. }), "{err}");
    assert!(err.to_string().contains(&format!("budget of {} bytes", budget.bytes(&pipeline))), "{err}");
}

#[test]
fn kv_budgets_parse_from_bytes_and_tokens() {
    use phi3v::KvBudget;
    for (text, budget) in [
        ("4GiB", KvBudget::Bytes(4 << 30)),
        ("512MiB", KvBudget::Bytes(512 << 20)),
        ("2G", KvBudget::Bytes(2_000_000_000)),
        ("1000", KvBudget::Bytes(1000)),
        ("16384tokens", KvBudget::Tokens(16384)),
    ] {
        assert_eq!(text.parse::<KvBudget>(), Ok(budget), "{text}");
        assert_eq!(budget.to_string().parse::<KvBudget>(), Ok(budget), "{budget}");
    }
    for bad in ["", "GiB", "4 parsecs", "-1GiB", "99999999999999999999GiB"] {
        assert!(bad.parse::<KvBudget>().is_err(), "{bad:?}");
    }
}
