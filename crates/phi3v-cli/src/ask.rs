//! `phi3v ask`: one question, answer streamed to stdout (or one JSON object with `--json`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use phi3v::{Cancel, Generation, Message, StopReason};

use crate::ModelArgs;

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image file; repeat for several (placed before the question, in order).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// Pass the prompt verbatim: already in the chat template, `<|image_N|>` tags included.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object (answer, token ids, token counts, timings) instead of the text.
    #[arg(long)]
    json: bool,
    /// The question (with --raw: the whole prompt).
    prompt: String,
}

pub fn run(args: AskArgs) -> Result<()> {
    let m = &args.model;
    let mut params = m.params()?;
    let images = args.images.iter().map(|p| m.load.image(p)).collect::<Result<Vec<_>>>()?;
    let pipeline = m.load.pipeline()?;
    m.encode(&pipeline, &images)?;
    // A closed stdout ends the generation: nobody reads the rest.
    let closed = Cancel::new();
    params.cancel = Some(closed.clone());
    let print = |piece: &str| {
        if !args.json && !closed.is_cancelled() && crate::emit(piece).is_err() {
            closed.cancel();
        }
    };
    let g = if args.raw {
        pipeline.generate(&args.prompt, &images, &params, print)?
    } else {
        let mut messages: Vec<Message> = m.system.iter().map(|s| Message::new("system", s)).collect();
        let tags: String = (1..=images.len()).map(|n| format!("<|image_{n}|>\n")).collect();
        messages.push(Message::new("user", format!("{tags}{}", args.prompt)));
        pipeline.chat(&messages, &images, &params, print)?
    };
    if closed.is_cancelled() {
        return Err(crate::Closed.into());
    }
    if args.json {
        crate::outln!("{}", json(&g, params.seed));
    } else {
        crate::outln!();
    }
    Ok(())
}

/// The `--json` object.
pub fn json(g: &Generation, seed: u64) -> serde_json::Value {
    let t = &g.timings;
    serde_json::json!({
        "answer": g.text,
        "tokens": g.tokens,
        "prompt_tokens": g.prompt_tokens,
        "seed": seed,
        "image_tokens": g.image_tokens,
        "stop": match &g.stop {
            StopReason::EndToken(id) => format!("token {id}"),
            StopReason::StopString(s) => format!("string {s:?}"),
            StopReason::MaxTokens => "max_tokens".to_string(),
            StopReason::ContextFull => "context_full".to_string(),
            StopReason::Cancelled => "cancelled".to_string(),
        },
        "finish_reason": g.stop.finish_reason(),
        "timings": {
            "encode_s": t.encode.as_secs_f64(),
            "prefill_s": t.prefill.as_secs_f64(),
            "decode_s": t.decode.as_secs_f64(),
            "prefill_tokens_per_s": t.prefill_tokens_per_s(),
            "decode_tokens_per_s": t.decode_tokens_per_s(),
        },
    })
}
