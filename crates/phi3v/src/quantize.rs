//! [`quantize`]: a checkpoint written once in q8 or q4, so that loading it reads the matrices
//! into their buffers instead of quantising them on every start.

use std::path::Path;

use candle_core::Device;
use phi3v_checkpoint::Checkpoint;
use phi3v_decoder::Decoder;
use phi3v_linear::{PackedPart, WeightFormat};

use crate::image::ImageEncoder;
use crate::progress::Observer;
use crate::{Error, Result};

/// What [`quantize`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantized {
    /// The formats, as the checkpoint's metadata records them.
    pub formats: phi3v_checkpoint::Quantized,
    /// Matrices stored packed (CLIP's query, key and value count as three).
    pub matrices: usize,
    /// Bytes of the weight file written.
    pub bytes: u64,
}

/// Quantises the checkpoint in `dir` (official layout) and writes it to `out` as a
/// pre-quantised checkpoint ([`phi3v_checkpoint::quantized`]), which [`crate::Pipeline::load`]
/// and every command accept like any other and load without quantising again, to the same
/// bytes, so with the same results.
///
/// `decoder` must be q8 or q4; `vision` (the vision tower and projector) q8, q4, or `Auto` to
/// keep them as stored. The matrices are quantised by the very code that quantises at load
/// (each layer is loaded in its format, then its bytes are written). `progress` sees the
/// reading as [`crate::Progress::Loading`].
pub fn quantize(dir: &Path, decoder: WeightFormat, vision: WeightFormat, out: &Path, progress: Option<Observer>) -> Result<Quantized> {
    if !matches!(decoder, WeightFormat::Q8 | WeightFormat::Q4) {
        return Err(Error::Quantize(format!("the decoder's format must be q8 or q4, not {decoder}")));
    }
    if !matches!(vision, WeightFormat::Q8 | WeightFormat::Q4 | WeightFormat::Auto) {
        return Err(Error::Quantize(format!("the vision tower's format must be q8, q4 or as stored, not {vision}")));
    }
    let ckpt = Checkpoint::open(dir)?;
    if ckpt.weights.quantized().is_some() {
        return Err(Error::Quantize(format!("{} is already quantised by `phi3v quantize`: quantise the original checkpoint", dir.display())));
    }
    let stored = ckpt.weights.stored_dtype();
    let formats = phi3v_checkpoint::Quantized { decoder, vision: vision.resolve(stored) };
    let on_read = crate::progress::loading(progress, ckpt.weights.total_bytes() as u64);
    let device = Device::Cpu;
    let vb = ckpt.weights.var_builder_observed(decoder.table_dtype(stored), &device, on_read.clone())?;
    let mut packed: Vec<PackedPart> = Vec::new();
    {
        let model = Decoder::load(&ckpt.config, decoder, vb)?;
        for linear in model.linears() {
            packed.extend(linear.packed_parts()?.unwrap_or_default());
        }
    }
    {
        let images = ImageEncoder::load_observed(&ckpt, formats.vision, &device, on_read)?;
        for linear in images.linears() {
            packed.extend(linear.packed_parts()?.unwrap_or_default());
        }
    }
    ckpt.write_quantized(&packed, formats, out)?;
    let file = out.join("model.safetensors");
    let bytes = std::fs::metadata(&file).map_err(|e| phi3v_checkpoint::CheckpointError::Io { path: file, source: e })?.len();
    Ok(Quantized { formats, matrices: packed.len(), bytes })
}
