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

    // A small prefill chunk, so prompts are read over several turns while others decode.
    let engine = Engine::new(pipeline.clone(), EngineOptions { max_queue: 16, max_batch: 4, prefill_chunk: 16 });
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
