//! `phi3v ask`: one question, answer streamed to stdout (or one JSON object with `--json`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use phi3v::{Cancel, Generation};

use crate::ModelArgs;

#[derive(Args)]
pub struct AskArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Image file; repeat for several (placed before the question, in order).
    #[arg(short, long = "image")]
    images: Vec<PathBuf>,
    /// Pass the prompt verbatim: already in the chat template, `<|image_N|>` tags included.
    #[arg(long)]
    raw: bool,
    /// Print one JSON object (answer, token ids, token counts, timings) instead of the text.
    #[arg(long)]
    json: bool,
    /// Read the question from this file (`-`: standard input).
    #[arg(short = 'f', long = "file", value_name = "FILE", conflicts_with = "prompt")]
    file: Option<PathBuf>,
    /// The question (with --raw: the whole prompt); `-` reads it from standard input.
    #[arg(required_unless_present = "file")]
    prompt: Option<String>,
}

impl AskArgs {
    /// The question: the argument, or the file or standard input it names.
    fn question(&self) -> Result<String> {
        let from = |path: &std::path::Path| -> Result<String> {
            if path == std::path::Path::new("-") {
                return Ok(std::io::read_to_string(std::io::stdin())?);
            }
            let bytes = phi3v::checkpoint::read_regular(path, 16 << 20)?;
            String::from_utf8(bytes).map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", path.display()))
        };
        match (&self.file, self.prompt.as_deref()) {
            (Some(file), _) => from(file),
            (None, Some("-")) => from("-".as_ref()),
            (None, prompt) => Ok(prompt.unwrap_or_default().to_string()),
        }
    }
}

pub fn run(args: AskArgs) -> Result<()> {
    let m = &args.model;
    let mut params = m.params()?;
    let stdin_question = args.prompt.as_deref() == Some("-") || args.file.as_deref() == Some(std::path::Path::new("-"));
    if stdin_question && args.images.iter().any(|p| p == std::path::Path::new("-")) {
        return Err(crate::Usage("the question and an image cannot both come from stdin".into()).into());
    }
    let question = args.question()?;
    let images = args.images.iter().map(|p| m.load.image(p)).collect::<Result<Vec<_>>>()?;
    let pipeline = m.load.pipeline()?;
    // A closed stdout ends the generation: nobody reads the rest.
    let closed = Cancel::new();
    params.cancel = Some(closed.clone());
    let print = |piece: &str| {
        if !args.json && !closed.is_cancelled() && crate::emit(piece).is_err() {
            closed.cancel();
        }
    };
    let g = if args.raw {
        pipeline.generate(&question, &images, &params, print)?
    } else {
        let messages = phi3v::prompt::question_messages(m.system.as_deref(), &question, images.len());
        pipeline.chat(&messages, &images, &params, print)?
    };
    if closed.is_cancelled() {
        return Err(crate::Closed.into());
    }
    if args.json {
        crate::outln!("{}", json(&g, params.seed));
    } else {
        crate::outln!();
        if m.show_stats() {
            eprintln!("{}", crate::stats_line(&g, params.max_new_tokens));
        }
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
        "stop": g.stop.to_string(),
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
