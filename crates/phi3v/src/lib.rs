//! Phi-3-vision and Phi-3.5-vision on CPU.
//!
//! This crate ties the pipeline stages together for applications. Today it provides the prompt
//! side: the chat template and the reference processor's tokenisation with image placeholders
//! ([`prompt`]), and the image side: image file to decoder rows ([`image::ImageEncoder`]).
//! Text generation follows; see `docs/ARCHITECTURE.md`.
//!
//! ```no_run
//! use phi3v::prompt::{chat_prompt, Message, PromptTokenizer};
//! let tok = PromptTokenizer::from_file("Phi-3.5-vision-instruct/tokenizer.json".as_ref())?;
//! let prompt = chat_prompt(&[Message::new("user", "<|image_1|>\nWhat is shown?")], true);
//! let ids = tok.encode(&prompt, &[757])?; // image 1 occupies 757 placeholder ids (-1)
//! assert_eq!(&ids[..4], &[1, 32010, 29871, 13]);
//! # Ok::<(), phi3v::prompt::PromptError>(())
//! ```

mod error;
mod generate;
pub mod image;
mod pipeline;
pub mod prompt;
pub mod sampling;
mod session;
mod stream;

pub use error::{Error, Result};
pub use generate::{Generation, StopReason, Timings};
pub use pipeline::{ImageInput, Pipeline, PipelineOptions, PromptInputs, STOP_IDS};
pub use prompt::Message;
pub use sampling::GenerationParams;
pub use session::Session;
pub use stream::TextStream;
pub use candle_core::DType;
pub use phi3v_checkpoint as checkpoint;
pub use phi3v_decoder as decoder;
pub use phi3v_projector as projector;
pub use phi3v_vision as vision;
