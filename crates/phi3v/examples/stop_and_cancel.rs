//! Ending a generation early: a stop string (the text before it is kept), and a `Cancel` flag
//! set from the streaming callback (or from any other thread: a Ctrl-C handler, a closed
//! connection) once enough text has arrived.
//!
//! cargo run --release -p phi3v --example stop_and_cancel -- MODEL_DIR

use phi3v::{Cancel, GenerationParams, Pipeline, PipelineOptions, StopReason};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model] = args.as_slice() else {
        return Err("usage: stop_and_cancel MODEL_DIR".into());
    };
    let pipeline = Pipeline::load(model.as_ref(), &PipelineOptions::default())?;

    // Stop at the first blank line.
    let params = GenerationParams { max_new_tokens: 256, stop: vec!["\n\n".into()], ..Default::default() };
    let g = pipeline.ask("List three fruits, then explain why.", &[], &params, |piece| print!("{piece}"))?;
    println!("\n[{:?}]\n", g.stop);

    // Stop once 200 characters have been streamed.
    let cancel = Cancel::new();
    let params = GenerationParams { max_new_tokens: 1024, cancel: Some(cancel.clone()), ..Default::default() };
    let mut streamed = 0;
    let g = pipeline.ask("Write a long story about a lighthouse.", &[], &params, |piece| {
        print!("{piece}");
        streamed += piece.chars().count();
        if streamed >= 200 {
            cancel.cancel();
        }
    })?;
    assert!(matches!(g.stop, StopReason::Cancelled | StopReason::EndToken(_) | StopReason::MaxTokens));
    println!("\n[{:?} after {} tokens; the text so far is kept]", g.stop, g.tokens.len());
    Ok(())
}
