//! `phi3v inspect`: a checkpoint's sizes and the token cost of a question, without loading the
//! weights.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use phi3v::checkpoint::Checkpoint;
use phi3v::prompt::{chat_prompt, question_messages, PromptTokenizer};
use phi3v::vision::HdLayout;

#[derive(Args)]
pub struct InspectArgs {
    /// Checkpoint directory, or a Hugging Face model id (resolved through the HF cache).
    #[arg(short, long, env = "PHI3V_MODEL", default_value = "microsoft/Phi-3.5-vision-instruct")]
    model: String,
    /// Image file; repeat for several images (they are placed before the question, in order).
    #[arg(short, long = "image")]
    images: Vec<PathBuf>,
    /// Maximum crops per image (default: the checkpoint's preprocessor_config.json).
    #[arg(long, value_parser = crate::num_crops)]
    num_crops: Option<usize>,
    /// Optional system message.
    #[arg(long)]
    system: Option<String>,
    #[command(flatten)]
    limits: crate::LimitArgs,
    /// The question (none: only the images and the template count).
    #[arg(default_value = "")]
    question: String,
}

pub fn run(args: InspectArgs) -> Result<()> {
    let dir = phi3v::hub::resolve(&args.model, false)?;
    let ckpt = Checkpoint::open(&dir)?;
    let c = &ckpt.config;
    let v = &ckpt.vision;
    let num_crops = args.num_crops.unwrap_or(ckpt.preprocessor.num_crops);
    let rope = c.rope_scaling.as_ref().map_or("plain".to_string(), |r| r.kind.clone());
    crate::outln!("model     {} ({})", ckpt.dir.display(), c.model_type);
    crate::outln!(
        "decoder   {} layers, hidden {}, {} heads, vocab {}, context {} (RoPE {rope}, long factors past {})",
        c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.vocab_size, c.max_position_embeddings,
        c.original_max_position_embeddings
    );
    crate::outln!(
        "vision    CLIP {} layers (features after layer {}), hidden {}, {} px crops, patch {}",
        v.num_hidden_layers, v.feature_layers, v.hidden_size, v.image_size, v.patch_size
    );
    crate::outln!(
        "weights   {} file(s), {} tensors, {:.1} MB",
        ckpt.weights.files().len(),
        ckpt.weights.tensors().len(),
        ckpt.weights.total_bytes() as f64 / 1e6
    );

    let mut counts = Vec::new();
    for (i, path) in args.images.iter().enumerate() {
        // The same checks as `ask` makes (limits, header, a full decode).
        let (w, h) = args.limits.open(path)?.dimensions();
        let (w, h) = (w as usize, h as usize);
        let layout = HdLayout::new(w, h, num_crops).with_context(|| format!("{}", path.display()))?;
        crate::outln!(
            "image {}   {} {w}×{h} -> {}×{} crops ({}×{} px), {} tokens",
            i + 1,
            path.display(),
            layout.rows(),
            layout.cols(),
            layout.size_hw.1,
            layout.size_hw.0,
            layout.num_img_tokens()
        );
        counts.push(layout.num_img_tokens());
    }
    let messages = question_messages(args.system.as_deref(), &args.question, counts.len());
    let tokenizer = PromptTokenizer::from_file(&ckpt.tokenizer_path())?;
    let ids = tokenizer.encode(&chat_prompt(&messages, true), &counts)?;
    let image_tokens: usize = counts.iter().sum();
    crate::outln!("prompt    {} tokens ({image_tokens} image, {} text)", ids.len(), ids.len() - image_tokens);
    crate::outln!("memory    {} (weights, and the KV cache for this prompt)", crate::memory_by_format(&ckpt, ids.len()));
    if ids.len() >= c.max_position_embeddings {
        // The library's own error, with the same numbers `ask` would give.
        let e = phi3v::Error::PromptTooLong { tokens: ids.len(), max: c.max_position_embeddings };
        return Err(e.into());
    }
    Ok(())
}
