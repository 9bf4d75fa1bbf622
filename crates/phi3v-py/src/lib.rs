//! `import phi3v`: the library's [`phi3v::Pipeline`] for Python.
//!
//! - [`Pipeline`] loads a checkpoint (directory or Hugging Face id) and answers: `ask`,
//!   `stream`, `chat` (OpenAI-style messages), `session` (multi-turn, KV cache kept),
//!   `inspect` (token counts) and `pixel_values`.
//! - Images are a path, bytes, a `PIL.Image.Image` or an `H×W×3` uint8 array ([`images`]).
//! - The model runs on a thread of its own with the GIL released; the calling thread waits in
//!   short slices and checks for Ctrl-C between them ([`generation::Stream`]).
//! - Library errors become `phi3v.Error` or one of its subclasses `ImageError`, `PromptError`
//!   and `CheckpointError`, worded as the CLI words them; bad argument values are `ValueError`,
//!   wrong types `TypeError`.

mod chat;
mod generation;
mod images;
mod pipeline;
mod session;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

create_exception!(phi3v, Error, PyException, "Anything the phi3v library reports; the base of the other phi3v errors.");
create_exception!(phi3v, ImageError, Error, "An image that cannot be read, decoded, fetched or cropped.");
create_exception!(phi3v, PromptError, Error, "A prompt the model cannot take: image tags that do not match the images, or too long.");
create_exception!(phi3v, CheckpointError, Error, "A checkpoint that cannot be found, read or loaded.");

/// The Python exception for a library error, with the CLI's one-line message.
pub(crate) fn raise(e: phi3v::Error) -> PyErr {
    use phi3v::decoder::DecoderError;
    use phi3v::Error as E;
    let message = phi3v::one_line(&e);
    match e {
        E::Vision(_) | E::Fetch { .. } | E::DataUrl(_) => ImageError::new_err(message),
        E::Prompt(_) | E::EmptyPrompt | E::PromptTooLong { .. } | E::KvBudget { .. } | E::Decoder(DecoderError::TooLong { .. }) => {
            PromptError::new_err(message)
        }
        E::Checkpoint(_) | E::Model(_) | E::Hub(_) | E::QuantizedAs { .. } | E::TokenizerVocab { .. } | E::NonFiniteLogits { .. } => {
            CheckpointError::new_err(message)
        }
        E::Params(_) => PyValueError::new_err(message),
        _ => Error::new_err(message),
    }
}

#[pymodule(name = "phi3v")]
mod module {
    #[pymodule_export]
    use super::{CheckpointError, Error, ImageError, PromptError};
    #[pymodule_export]
    use crate::generation::{Answer, Stream, Timings};
    #[pymodule_export]
    use crate::pipeline::Pipeline;
    #[pymodule_export]
    use crate::session::Session;
}
