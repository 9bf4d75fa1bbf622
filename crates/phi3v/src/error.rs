//! The library's error type.

use phi3v_checkpoint::CheckpointError;
use phi3v_vision::VisionError;

use crate::prompt::PromptError;

/// Everything that can go wrong in the library. Messages name the file, tensor or setting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Vision(#[from] VisionError),
    #[error(transparent)]
    Prompt(#[from] PromptError),
    #[error(transparent)]
    Decoder(#[from] phi3v_decoder::DecoderError),
    /// A tensor operation or weight load failed (missing or mis-shaped tensors name the tensor).
    #[error("model: {0}")]
    Model(candle_core::Error),
    #[error(transparent)]
    Params(#[from] crate::sampling::ParamError),
    #[error("the prompt is empty (no text and no images)")]
    EmptyPrompt,
    #[error(
        "the prompt needs {tokens} positions (images and earlier turns included) and the answer at least one more; \
         the model has {max}"
    )]
    PromptTooLong { tokens: usize, max: usize },
    /// A prompt whose keys and values alone need more memory than an [`crate::Engine`] may use.
    #[error(
        "the prompt needs {tokens} positions (images included) and the answer at least one more: {bytes} bytes of KV cache, \
         more than the engine's budget of {budget} bytes (raise --kv-budget, or send less)"
    )]
    KvBudget { tokens: usize, bytes: usize, budget: usize },
    #[error(
        "the model computed a non-finite logit ({value} for token {token} at position {position}): \
         its weights or config values are broken"
    )]
    NonFiniteLogits { position: usize, token: usize, value: f32 },
    /// An image URL that cannot be fetched, or whose content is refused.
    #[error("{url}: {message}")]
    Fetch { url: String, message: String },
    /// A `data:` image URL that is malformed or too large.
    #[error("{0}")]
    DataUrl(String),
    /// A model id that cannot be resolved or downloaded.
    #[error("{0}")]
    Hub(String),
    /// An [`crate::Engine`] request whose cancel flag was set before it started.
    #[error("the request was cancelled before it started")]
    Cancelled,
    /// A bug: the generation panicked (the engine keeps serving other requests).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("cannot start the worker threads: {0}")]
    Threads(String),
    /// [`crate::quantize`] asked for something it cannot do.
    #[error("quantize: {0}")]
    Quantize(String),
    /// A checkpoint written by `phi3v quantize` asked to load in another format.
    #[error(
        "{}: its {part} was quantised to {stored} by `phi3v quantize` and cannot load as {asked}: \
         leave the format option out, or quantise the original checkpoint to {asked}",
        dir.display()
    )]
    QuantizedAs { dir: std::path::PathBuf, part: &'static str, stored: phi3v_linear::WeightFormat, asked: phi3v_linear::WeightFormat },
    #[error("tokenizer.json has token ids up to {} but the model's vocabulary has only {model}", tokenizer - 1)]
    TokenizerVocab { tokenizer: usize, model: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<candle_core::Error> for Error {
    /// Keeps candle's message and drops the backtrace it attaches when `RUST_BACKTRACE` is set.
    fn from(e: candle_core::Error) -> Self {
        Error::Model(phi3v_linear::without_backtrace(e))
    }
}

/// An error and its causes as one line, each cause once (a cause whose text is already in the
/// line is left out, as when a wrapper repeats its source) and by its first line: how the CLI
/// and the Python package word every error.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cause = Some(e);
    while let Some(e) = cause {
        // The first line only: what follows is a backtrace or a dump, never the message.
        let text = e.to_string();
        let text = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or_default();
        if !line.contains(text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(text);
        }
        cause = e.source();
    }
    line
}
