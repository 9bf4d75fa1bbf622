//! The phi-3-mini-128K decoder of Phi-3-vision.
//!
//! Input: rows `[n, hidden_size]`: text embeddings from [`Decoder::embed`] or image rows from the
//! projector, in prompt order. Output: logits `[vocab_size]` for the last row. A [`KvCache`]
//! carries a sequence across calls, so a prompt can be fed whole ([`Decoder::forward`], in
//! chunks of [`PREFILL_CHUNK`] rows) and generated tokens one at a time ([`Decoder::step`],
//! which allocates nothing once warm).
//!
//! ```no_run
//! # use candle_core::{DType, Device};
//! # let ckpt = phi3v_checkpoint::Checkpoint::open("Phi-3.5-vision-instruct".as_ref())?;
//! use phi3v_decoder::{argmax, Decoder, KvCache};
//! use phi3v_linear::WeightFormat;
//! // Matrices kept in bf16 as stored; embeddings too.
//! let vb = ckpt.weights.var_builder(DType::BF16, &Device::Cpu)?;
//! let decoder = Decoder::load(&ckpt.config, WeightFormat::Bf16, vb)?;
//! let mut cache = KvCache::default();
//! let logits = decoder.forward(&decoder.embed(&[1, 32010, 29871, 13])?, &mut cache)?;
//! let mut next = argmax(&logits)?;
//! for _ in 0..8 {
//!     let logits: &[f32] = decoder.step(next, &mut cache)?;
//!     next = (0..logits.len()).max_by(|&a, &b| logits[a].total_cmp(&logits[b])).unwrap() as u32;
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! LongRoPE follows the Phi-3.5 rule: long factors once the sequence is longer than
//! `original_max_position_embeddings`; the forward that first crosses that length rebuilds the
//! cache with the long factors (from the input rows the cache keeps).

mod kv;
mod model;
mod rope;

pub use kv::{KvDtype, UnknownKvDtype};
pub use model::{argmax, BatchBuffers, Decoder, DecoderError, KvCache, PREFILL_CHUNK};
pub use rope::LongRope;
