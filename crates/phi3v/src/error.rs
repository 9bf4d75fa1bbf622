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
    Model(#[from] candle_core::Error),
    #[error("the prompt is empty (no text and no images)")]
    EmptyPrompt,
    #[error("the prompt needs {tokens} positions (images included); the model has {max}")]
    PromptTooLong { tokens: usize, max: usize },
    #[error("cannot start the worker threads: {0}")]
    Threads(String),
    #[error("tokenizer.json has {tokenizer} tokens but the model's vocabulary has only {model}")]
    TokenizerVocab { tokenizer: usize, model: usize },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
