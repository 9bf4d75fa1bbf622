//! The engine under mixed load, on a checkpoint: what a server's users feel.
//!
//! `cargo bench -p phi3v --bench engine_load -- [MODEL_DIR] [--weights q4|q8|bf16|f32]
//! [--streams 4] [--crops 4] [--prefill-chunk N] [--rss-streams 8 --rss-tokens 2048]`
//! (default: the tiny test checkpoint, q4, the engine's default chunk). Three measurements, each
//! with its reference taken in the same run:
//! - inter-token latency of `streams` running answers (gaps between their text events) before,
//!   and while, a new `crops`-crop image question about `assets/chart.png` is admitted (from
//!   its submission to its first token);
//! - time to first token of a cold image question, then of a follow-up (the conversation
//!   resent in full with the answer and a new question; the prefix cache holds the rest);
//! - with `--rss-streams`, peak resident memory after load and after that many answers of
//!   `rss-tokens` positions each (prompt and answer) ran together.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use phi3v::{Cancel, ChatRequest, Engine, EngineOptions, Event, GenerationParams, ImageInput, KvBudget, Message, Pipeline, PipelineOptions};

/// Kibibytes of the process's peak resident set (`VmHWM`).
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")?.trim().strip_suffix("kB")?.trim().parse().ok()).unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut gaps: Vec<f64>) -> String {
    gaps.sort_by(f64::total_cmp);
    format!("p50 {:.3} s, p99 {:.3} s, max {:.3} s over {} gaps", percentile(&gaps, 0.5), percentile(&gaps, 0.99), percentile(&gaps, 1.0), gaps.len())
}

/// Sends a request (stopped by `cancel`); its events arrive on `events` tagged with `k` and the
/// time they came.
fn submit(engine: &Engine, k: usize, messages: Vec<Message>, images: Vec<ImageInput>, max_new_tokens: usize, cancel: &Cancel, events: &mpsc::Sender<(usize, Instant, Event)>) {
    let events = events.clone();
    let params = GenerationParams { max_new_tokens, cancel: Some(cancel.clone()), ..Default::default() };
    engine
        .submit(ChatRequest { messages, images, params }, move |e| {
            let _ = events.send((k, Instant::now(), e));
        })
        .expect("the queue has room");
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = phi3v_fixtures::BenchArgs::from_env();
    let dir = args.model();
    let weights = args.flag("--weights").unwrap_or("q4").parse()?;
    let streams: usize = args.parsed("--streams", 4)?;
    let crops: usize = args.parsed("--crops", 4)?;
    let rss_streams: usize = args.parsed("--rss-streams", 0)?;
    let rss_tokens: usize = args.parsed("--rss-tokens", 2048)?;
    let defaults = EngineOptions { kv_budget: KvBudget::Bytes(16 << 30), ..Default::default() };
    let engine_options = EngineOptions { prefill_chunk: args.parsed("--prefill-chunk", defaults.prefill_chunk)?, ..defaults };
    let start = Instant::now();
    let options = PipelineOptions { weights, vision_weights: weights, ..Default::default() };
    let pipeline = Pipeline::load(&dir, &options)?;
    let loaded_rss = peak_rss_kib();
    println!("{} ({weights}) loaded in {:.1} s, peak RSS {:.2} GB; prefill chunk {}", dir.display(), start.elapsed().as_secs_f64(), loaded_rss as f64 / 1e6 * 1.024, engine_options.prefill_chunk);
    let chart = ImageInput::open(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png"))?.with_num_crops(crops);
    let engine = Engine::new(pipeline.clone(), engine_options);
    let (sender, events) = mpsc::channel::<(usize, Instant, Event)>();

    // 1. Inter-token latency of running answers, before and while an image question is read.
    let stop = Cancel::new();
    for k in 0..streams {
        let text = format!("Story {k}: tell me a long story about the sea.");
        submit(&engine, k, vec![Message::new("user", text)], vec![], 1_000_000, &stop, &sender);
    }
    let image_k = streams;
    let mut last = vec![None::<Instant>; streams + 1];
    let (mut before, mut during) = (Vec::new(), Vec::new());
    let mut texts = vec![0usize; streams + 1];
    let mut submitted = None;
    let mut first_image_token = None;
    for (k, at, event) in events.iter() {
        match event {
            Event::Text(_) if k < streams => {
                texts[k] += 1;
                if let Some(prev) = last[k] {
                    let gap = at.duration_since(prev).as_secs_f64();
                    match submitted {
                        None if texts[k] > 3 => before.push(gap),
                        Some(_) => during.push(gap),
                        None => {}
                    }
                }
                last[k] = Some(at);
            }
            Event::Text(_) => {
                first_image_token = Some(at);
                break;
            }
            Event::Done(g) => return Err(format!("request {k} ended early: {g:?}").into()),
        }
        if submitted.is_none() && texts[..streams].iter().all(|&t| t >= 12) {
            let question = vec![Message::new("user", "<|image_1|>\nWhat does this chart show?")];
            submit(&engine, image_k, question, vec![chart.clone()], 8, &stop, &sender);
            submitted = Some(Instant::now());
        }
    }
    let admitted = first_image_token.unwrap().duration_since(submitted.unwrap());
    println!("{streams} running answers, inter-token latency alone:   {}", summary(before));
    println!("  while a {crops}-crop image question is read ({:.1} s to its first token): {}", admitted.as_secs_f64(), summary(during));
    // Stop the stories and the image question, and wait until they have.
    stop.cancel();
    let mut ended = 0;
    for (_, _, event) in events.iter() {
        if matches!(event, Event::Done(_)) {
            ended += 1;
            if ended == streams + 1 {
                break;
            }
        }
    }
    drop(engine);

    // 2. Time to first token: cold, then the follow-up.
    let engine = Engine::new(pipeline.clone(), engine_options);
    let ask = |messages: Vec<Message>| -> Result<(Duration, phi3v::Generation), Box<dyn std::error::Error>> {
        let (sender, events) = mpsc::channel();
        let started = Instant::now();
        submit(&engine, 0, messages, vec![chart.clone()], 16, &Cancel::new(), &sender);
        let mut first = None;
        for (_, at, event) in events.iter() {
            match event {
                Event::Text(_) => {
                    first.get_or_insert(at);
                }
                Event::Done(g) => return Ok((first.unwrap_or(at).duration_since(started), g?)),
            }
        }
        Err("no answer".into())
    };
    let q1 = Message::new("user", "<|image_1|>\nWhat does this chart show?");
    let other = vec![Message::new("user", "<|image_1|>\nWhat colours are used?")];
    // Cold: the image encoded and the prompt read; then another question about the image (in
    // the image cache, the prompt read); then the follow-up (prefix cache).
    let (cold_other, _) = ask(other)?;
    let (cold, a1) = ask(vec![q1.clone()])?;
    let follow = vec![q1, Message::new("assistant", a1.text.clone()), Message::new("user", "And what is its largest value?")];
    let (warm, a2) = ask(follow)?;
    println!(
        "time to first token: cold {:.2} s ({} prompt tokens, image encoded), same image new question {:.2} s, \
         follow-up {:.2} s ({} prompt tokens, {} from the prefix cache)",
        cold_other.as_secs_f64(),
        a1.prompt_tokens,
        cold.as_secs_f64(),
        warm.as_secs_f64(),
        a2.prompt_tokens,
        a2.cached_tokens
    );
    drop(engine);

    // 3. Peak memory with many long answers at once.
    if rss_streams > 0 {
        // Each prompt read in one turn, so that all of them are in before the first answer
        // ends: the answers then run together at their full length.
        let engine = Engine::new(pipeline.clone(), EngineOptions { max_batch: rss_streams, prefill_chunk: rss_tokens, ..engine_options });
        let answer = (2 * rss_streams + 16).min(rss_tokens / 2);
        let per = |n: usize| pipeline.chat_prompt_tokens(&[Message::new("user", "lorem ipsum ".repeat(n))], &[]);
        let (one, hundred) = (per(1)?, per(101)?);
        let reps = (rss_tokens - answer).saturating_sub(one) * 100 / (hundred - one).max(1) + 1;
        let (sender, events) = mpsc::channel();
        let started = Instant::now();
        for k in 0..rss_streams {
            let text = format!("{k} {}", "lorem ipsum ".repeat(reps));
            submit(&engine, k, vec![Message::new("user", text)], vec![], answer, &Cancel::new(), &sender);
        }
        let mut done = 0;
        let mut positions = 0;
        for (_, _, event) in events.iter() {
            if let Event::Done(g) = event {
                let g = g?;
                positions += g.prompt_tokens + g.tokens.len();
                done += 1;
                if done == rss_streams {
                    break;
                }
            }
        }
        let peak = peak_rss_kib();
        println!(
            "{rss_streams} answers of ~{rss_tokens} positions ({positions} in all) in {:.0} s: peak RSS {:.2} GB ({:.2} GB over the loaded model; KV cache {:.2} GB by the engine's count)",
            started.elapsed().as_secs_f64(),
            peak as f64 * 1.024e-6,
            (peak - loaded_rss) as f64 * 1.024e-6,
            (positions / rss_streams).next_multiple_of(512) as f64 * rss_streams as f64 * (KvBudget::Tokens(1).bytes(&pipeline) as f64) / 1e9,
        );
    }
    Ok(())
}
