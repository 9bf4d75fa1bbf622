//! The token loop shared by [`crate::Pipeline`] and [`crate::Session`].

use std::time::{Duration, Instant};

use phi3v_decoder::KvCache;

use crate::pipeline::{Pipeline, PromptInputs, STOP_IDS};
use crate::progress::Progress;
use crate::sampling::{GenerationParams, Sampler};
use crate::stream::TextStream;
use crate::Result;

/// Why generation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced a stop token (`<|end|>`, `<|endoftext|>` or `</s>`); its id.
    EndToken(u32),
    /// The text reached one of the requested stop strings.
    StopString(String),
    /// `max_new_tokens` were generated.
    MaxTokens,
    /// The sequence filled the model's context (`max_position_embeddings`) first.
    ContextFull,
    /// [`crate::GenerationParams::cancel`] was set.
    Cancelled,
}

impl StopReason {
    /// OpenAI's `finish_reason`: `stop` for a stop token or string, `length` when a limit cut
    /// the answer (tokens or context), `cancelled` when it was stopped from outside.
    pub fn finish_reason(&self) -> &'static str {
        match self {
            StopReason::EndToken(_) | StopReason::StopString(_) => "stop",
            StopReason::MaxTokens | StopReason::ContextFull => "length",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// Where the time went.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timings {
    /// Image preprocessing, CLIP and projector (zero for cached images).
    pub encode: Duration,
    /// The forward pass over the prompt.
    pub prefill: Duration,
    /// All later forward passes.
    pub decode: Duration,
    /// Rows in the prefill.
    pub prefill_tokens: usize,
    /// Forward passes after the prefill.
    pub decode_steps: usize,
}

impl Timings {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        self.prefill_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }

    pub fn decode_tokens_per_s(&self) -> f64 {
        self.decode_steps as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// The result of one generation.
#[derive(Debug, Clone)]
pub struct Generation {
    /// The reply, stop token and stop string excluded.
    pub text: String,
    /// Generated token ids (a final stop token excluded).
    pub tokens: Vec<u32>,
    /// Ids in the prompt (image placeholders included).
    pub prompt_tokens: usize,
    /// Image tokens per image of this prompt.
    pub image_tokens: Vec<usize>,
    pub stop: StopReason,
    pub timings: Timings,
}

/// Feeds `inputs` into `cache`, then samples up to `max_new_tokens` (fewer when the context
/// fills first), streaming text through `on_text`. Every generated token except a final stop
/// token ends up in the cache.
pub(crate) fn run(
    pipeline: &Pipeline,
    inputs: &PromptInputs,
    cache: &mut KvCache,
    seen: &mut Vec<u32>,
    params: &GenerationParams,
    mut on_text: impl FnMut(&str),
) -> Result<Generation> {
    params.validate()?;
    let decoder = &pipeline.0.decoder;
    let mut timings = Timings { encode: inputs.encode_time, prefill_tokens: inputs.ids.len(), ..Default::default() };
    let start = Instant::now();
    let of = inputs.ids.len();
    let progress = &pipeline.0.progress;
    crate::progress::report(progress, Progress::Prefill { tokens: 0, of });
    let mut on_rows = |tokens| crate::progress::report(progress, Progress::Prefill { tokens, of });
    let mut logits = pipeline.compute(|| decoder.forward_observed(&inputs.rows, cache, &mut on_rows))?.to_vec1::<f32>()?;
    timings.prefill = start.elapsed();
    finite(&logits, cache.len())?;
    // As transformers' `max_length`: prompt and answer together fill at most the context, so
    // every generated token still fits in the cache.
    let room = pipeline.0.config.max_position_embeddings.saturating_sub(cache.len());
    let limit = params.max_new_tokens.min(room);

    let mut sampler = Sampler::new(params);
    let mut stream = TextStream::new(pipeline.0.tokenizer.tokenizer());
    let mut text = String::new(); // released to on_text
    let mut pending = String::new(); // decoded but held back: could start a stop string
    let hold = params.stop.iter().map(String::len).max().unwrap_or(0);
    let mut tokens = Vec::new();
    let mut stop = if limit < params.max_new_tokens { StopReason::ContextFull } else { StopReason::MaxTokens };
    while tokens.len() < limit {
        if params.cancelled() {
            stop = StopReason::Cancelled;
            break;
        }
        let token = sampler.next(&logits, seen);
        if STOP_IDS.contains(&token) {
            stop = StopReason::EndToken(token);
            break;
        }
        tokens.push(token);
        seen.push(token);
        pending.push_str(&stream.push(token)?);
        if let Some((at, s)) = params.stop.iter().filter_map(|s| pending.find(s.as_str()).map(|at| (at, s))).min() {
            pending.truncate(at);
            stop = StopReason::StopString(s.clone());
        }
        // Release what can no longer be the start of a stop string.
        let mut cut = if matches!(stop, StopReason::StopString(_)) { pending.len() } else { pending.len().saturating_sub(hold) };
        while !pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let released: String = pending.drain(..cut).collect();
        if !released.is_empty() {
            on_text(&released);
            text.push_str(&released);
        }
        let step = Instant::now();
        // The step's logits are copied into the same buffer: nothing is allocated per token.
        pipeline.compute(|| decoder.step(token, cache).map(|next| logits.copy_from_slice(next)))?;
        finite(&logits, cache.len())?;
        timings.decode += step.elapsed();
        timings.decode_steps += 1;
        if matches!(stop, StopReason::StopString(_)) {
            break;
        }
    }
    if !pending.is_empty() {
        on_text(&pending);
        text.push_str(&pending);
    }
    Ok(Generation { text, tokens, prompt_tokens: inputs.ids.len(), image_tokens: inputs.image_tokens.clone(), stop, timings })
}

/// Refuses logits with NaN or infinities (broken weights), which would otherwise decode as an
/// endless run of token 0 or an empty answer.
fn finite(logits: &[f32], position: usize) -> Result<()> {
    match logits.iter().position(|v| !v.is_finite()) {
        Some(at) => Err(crate::Error::NonFiniteLogits { position, token: at, value: logits[at] }),
        None => Ok(()),
    }
}
