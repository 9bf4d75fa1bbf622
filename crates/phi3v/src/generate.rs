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
    /// The sequence filled the model's context (`max_position_embeddings`) first, or all of an
    /// [`crate::Engine`]'s KV budget.
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

impl std::fmt::Display for StopReason {
    /// `token 32007`, `string "###"`, `max_tokens`, `context_full` or `cancelled`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::EndToken(id) => write!(f, "token {id}"),
            StopReason::StopString(s) => write!(f, "string {s:?}"),
            StopReason::MaxTokens => f.write_str("max_tokens"),
            StopReason::ContextFull => f.write_str("context_full"),
            StopReason::Cancelled => f.write_str("cancelled"),
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
    /// Prompt tokens whose keys and values came from an [`crate::Engine`]'s prefix cache (not
    /// read again); 0 elsewhere.
    pub cached_tokens: usize,
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
    let mut decoding = prefill(pipeline, inputs, cache, params)?;
    while let Some(token) = decoding.next(seen, &mut on_text)? {
        let step = Instant::now();
        // The step's logits are copied into the same buffer: nothing is allocated per token.
        let decoder = &pipeline.0.decoder;
        pipeline.compute(|| decoder.step(token, cache).map(|next| decoding.logits.copy_from_slice(next)))?;
        decoding.fed(cache.len(), step.elapsed())?;
    }
    Ok(decoding.finish(&mut on_text))
}

/// Feeds the whole prompt into `cache` (reporting progress) and starts its token loop.
pub(crate) fn prefill<'t>(pipeline: &'t Pipeline, inputs: &PromptInputs, cache: &mut KvCache, params: &GenerationParams) -> Result<Decoding<'t>> {
    let start = Instant::now();
    let of = inputs.ids.len();
    let progress = &pipeline.0.progress;
    crate::progress::report(progress, Progress::Prefill { tokens: 0, of });
    let mut on_rows = |tokens| crate::progress::report(progress, Progress::Prefill { tokens, of });
    let decoder = &pipeline.0.decoder;
    let logits = pipeline.compute(|| decoder.forward_observed(&inputs.rows, cache, &mut on_rows))?.to_vec1::<f32>()?;
    let timings = Timings { encode: inputs.encode_time, prefill: start.elapsed(), prefill_tokens: of, ..Default::default() };
    Decoding::new(pipeline, params, logits, cache.len(), inputs.image_tokens.clone(), timings)
}

/// One sequence's token loop after its prefill: sampling, stop tokens and strings, the
/// context limit, cancellation, text released in UTF-8-safe pieces, timings. The caller feeds
/// each token [`Decoding::next`] returns to the decoder (alone, or batched with other
/// sequences) and hands back the logits through [`Decoding::logits`] and [`Decoding::fed`].
pub(crate) struct Decoding<'t> {
    params: GenerationParams,
    sampler: Sampler,
    stream: TextStream<'t>,
    /// `[vocab]`: the logits of the next token (written by the caller after each step).
    pub(crate) logits: Vec<f32>,
    /// Released to `on_text` so far.
    text: String,
    /// Decoded but held back: could start a stop string.
    pending: String,
    /// The longest stop string's length.
    hold: usize,
    tokens: Vec<u32>,
    /// Most tokens this sequence may generate (the context may allow fewer than asked).
    limit: usize,
    stop: StopReason,
    finished: bool,
    prompt_tokens: usize,
    cached_tokens: usize,
    image_tokens: Vec<usize>,
    timings: Timings,
}

impl<'t> Decoding<'t> {
    /// `logits` of the prompt's last row, with `cached` positions in the sequence's cache;
    /// `timings` of the prompt (its `prefill_tokens` are all the prompt's tokens).
    pub(crate) fn new(
        pipeline: &'t Pipeline,
        params: &GenerationParams,
        logits: Vec<f32>,
        cached: usize,
        image_tokens: Vec<usize>,
        timings: Timings,
    ) -> Result<Self> {
        finite(&logits, cached)?;
        // As transformers' `max_length`: prompt and answer together fill at most the context, so
        // every generated token still fits in the cache.
        let room = pipeline.0.config.max_position_embeddings.saturating_sub(cached);
        let limit = params.max_new_tokens.min(room);
        Ok(Self {
            params: params.clone(),
            sampler: Sampler::new(params),
            stream: TextStream::new(pipeline.0.tokenizer.tokenizer()),
            logits,
            text: String::new(),
            pending: String::new(),
            hold: params.stop.iter().map(String::len).max().unwrap_or(0),
            tokens: Vec::new(),
            limit,
            stop: if limit < params.max_new_tokens { StopReason::ContextFull } else { StopReason::MaxTokens },
            finished: false,
            prompt_tokens: timings.prefill_tokens,
            cached_tokens: 0,
            image_tokens,
            timings,
        })
    }

    /// Notes that the first `tokens` of the prompt came from a prefix cache.
    pub(crate) fn with_cached(mut self, tokens: usize) -> Self {
        self.cached_tokens = tokens;
        self.timings.prefill_tokens -= tokens.min(self.timings.prefill_tokens);
        self
    }

    /// Samples the next token from [`Self::logits`] (`seen`: the penalty's history, which it
    /// joins) and releases what text became final. `None` when the sequence is done; otherwise
    /// the token to feed (the last one too when it completed a stop string).
    pub(crate) fn next(&mut self, seen: &mut Vec<u32>, on_text: &mut dyn FnMut(&str)) -> Result<Option<u32>> {
        if self.finished || self.tokens.len() >= self.limit {
            return Ok(None);
        }
        if self.params.cancelled() {
            self.stop = StopReason::Cancelled;
            return Ok(None);
        }
        let token = self.sampler.next(&self.logits, seen);
        if STOP_IDS.contains(&token) {
            self.stop = StopReason::EndToken(token);
            return Ok(None);
        }
        self.tokens.push(token);
        seen.push(token);
        self.pending.push_str(&self.stream.push(token)?);
        let found = self.params.stop.iter().filter_map(|s| self.pending.find(s.as_str()).map(|at| (at, s))).min();
        if let Some((at, s)) = found {
            self.pending.truncate(at);
            self.stop = StopReason::StopString(s.clone());
            self.finished = true;
        }
        // Release what can no longer be the start of a stop string.
        let mut cut = if self.finished { self.pending.len() } else { self.pending.len().saturating_sub(self.hold) };
        while !self.pending.is_char_boundary(cut) {
            cut -= 1;
        }
        let released: String = self.pending.drain(..cut).collect();
        if !released.is_empty() {
            on_text(&released);
            self.text.push_str(&released);
        }
        Ok(Some(token))
    }

    /// Tokens generated so far (each fed to the decoder once [`Self::fed`] was called).
    pub(crate) fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Ends the answer where it is, as when the context is full (the engine's KV budget cannot
    /// hold another position of it).
    pub(crate) fn end_for_length(&mut self) {
        self.stop = StopReason::ContextFull;
        self.finished = true;
    }

    /// The decoder has taken the token: [`Self::logits`] holds the next ones, `cached`
    /// positions are in the cache, the step took `elapsed`.
    pub(crate) fn fed(&mut self, cached: usize, elapsed: Duration) -> Result<()> {
        finite(&self.logits, cached)?;
        self.timings.decode += elapsed;
        self.timings.decode_steps += 1;
        Ok(())
    }

    /// The generation, with any text still held back released.
    pub(crate) fn finish(mut self, on_text: &mut dyn FnMut(&str)) -> Generation {
        if !self.pending.is_empty() {
            on_text(&self.pending);
            self.text.push_str(&self.pending);
        }
        Generation {
            text: self.text,
            tokens: self.tokens,
            prompt_tokens: self.prompt_tokens,
            cached_tokens: self.cached_tokens,
            image_tokens: self.image_tokens,
            stop: self.stop,
            timings: self.timings,
        }
    }
}

/// Refuses logits with NaN or infinities (broken weights), which would otherwise decode as an
/// endless run of token 0 or an empty answer.
fn finite(logits: &[f32], position: usize) -> Result<()> {
    match logits.iter().position(|v| !v.is_finite()) {
        Some(at) => Err(crate::Error::NonFiniteLogits { position, token: at, value: logits[at] }),
        None => Ok(()),
    }
}
