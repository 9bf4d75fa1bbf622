//! Phi-3-vision and Phi-3.5-vision on CPU.
//!
//! Load a checkpoint directory (the official Hugging Face layout) once as a [`Pipeline`], then
//! ask questions about images. Preprocessing and tokenisation follow the official processor
//! exactly; the network matches transformers' reference to float32 tolerance.
//!
//! ```
//! use phi3v::{GenerationParams, ImageInput, Pipeline, PipelineOptions};
//! # let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
//! # let model_dir = root.join("tests/fixtures/tiny-phi35v"); // a tiny random-weight checkpoint
//! # let chart_png = root.join("assets/chart.png");
//! let pipeline = Pipeline::load(&model_dir, &PipelineOptions::default())?;
//! let chart = ImageInput::open(&chart_png)?;
//! let params = GenerationParams { max_new_tokens: 8, ..Default::default() }; // greedy
//! let answer = pipeline.ask("Which quarter had the highest revenue?", &[chart], &params, |piece| {
//!     print!("{piece}"); // streamed as it is generated
//! })?;
//! assert_eq!(answer.image_tokens, [757]); // 640×480 at 4 crops
//! println!("\n{} prompt tokens, {:.1} tokens/s", answer.prompt_tokens, answer.timings.decode_tokens_per_s());
//! # Ok::<(), phi3v::Error>(())
//! ```
//!
//! - [`Pipeline::ask`] places the images before the question; [`Pipeline::chat`] takes a whole
//!   conversation; [`Pipeline::generate`] takes a prompt already in the chat template, with
//!   `<|image_N|>` tags.
//! - [`Session`] keeps the KV cache between turns, so a follow-up only costs its new tokens.
//! - [`GenerationParams`]: greedy by default; temperature, top-k, top-p, seed, repetition
//!   penalty, stop strings, a [`Cancel`] flag. Generation also stops at `<|end|>`,
//!   `<|endoftext|>` and `</s>`, and when prompt and answer fill the context.
//! - [`ImageInput`] checks a file or buffer against [`ImageLimits`] (bytes, pixels) from its
//!   header and decodes it only when the model encodes it.
//! - [`Engine`] generates for many requests at once (continuous batching, prompts fed in
//!   chunks between decode steps) from a bounded queue on a worker thread, for servers
//!   (`phi3v serve` is built on it).
//! - Images seen before (same pixels, same `num_crops`) are not encoded again.
//!
//! The stages are re-exported: [`checkpoint`], [`vision`], [`projector`], [`decoder`].

mod engine;
mod error;
mod generate;
pub mod hub;
pub mod image;
mod input;
pub mod memory;
mod pipeline;
pub mod progress;
pub mod prompt;
mod prefix;
mod quantize;
pub mod sampling;
mod session;
mod stream;

pub use engine::{ChatRequest, Engine, EngineOptions, Event, KvBudget, QueueFull};
pub use error::{one_line, Error, Result};
pub use generate::{Generation, StopReason, Timings};
pub use input::ImageInput;
pub use pipeline::{default_vision_format, max_threads, resolve_formats, Pipeline, PipelineOptions, PromptInputs, STOP_IDS};
pub use quantize::{quantize, Quantized};
pub use progress::{Observer, Progress};
pub use prompt::{Message, Part};
pub use sampling::{Cancel, GenerationParams, ParamError};
pub use session::Session;
pub use stream::TextStream;
pub use candle_core::{DType, Device};
pub use phi3v_decoder::KvDtype;
pub use phi3v_linear::WeightFormat;
pub use phi3v_vision::ImageLimits;
pub use phi3v_checkpoint as checkpoint;
pub use phi3v_decoder as decoder;
pub use phi3v_linear as linear;
pub use phi3v_projector as projector;
pub use phi3v_vision as vision;

/// The README's Rust blocks, compiled as doctests so the README cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
