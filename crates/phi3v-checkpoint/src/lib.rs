//! Reading a Phi-3-vision checkpoint directory in the official Hugging Face layout.
//!
//! A checkpoint directory holds `config.json` (`model_type: phi3_v`), `preprocessor_config.json`,
//! `tokenizer.json`, and weights as `model.safetensors` or as shards listed in
//! `model.safetensors.index.json`. This crate parses and validates the two configs, finds the
//! weights and reads their headers; the pipeline stages build their networks from
//! [`Weights::var_builder`].
//!
//! ```no_run
//! let ckpt = phi3v_checkpoint::Checkpoint::open("Phi-3.5-vision-instruct".as_ref())?;
//! println!("{} decoder layers, {} crops", ckpt.config.num_hidden_layers, ckpt.preprocessor.num_crops);
//! # Ok::<(), phi3v_checkpoint::CheckpointError>(())
//! ```

mod config;
pub mod quantized;
mod sizes;
mod weights;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use config::{EmbdLayer, ImgProcessor, Phi3VConfig, RopeScaling, VisionConfig};
pub use quantized::Quantized;
pub use weights::{ReadObserver, TensorInfo, Weights};

/// What can go wrong reading a checkpoint. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {0} does not exist")]
    MissingDir(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Json { path: PathBuf, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}: no model.safetensors or model.safetensors.index.json")]
    NoWeights(PathBuf),
    #[error("{path}: not a readable safetensors file: {message}")]
    Safetensors { path: PathBuf, message: String },
}

impl CheckpointError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), source }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        Self::Invalid { path: path.to_path_buf(), message: message.into() }
    }
}

/// `preprocessor_config.json`: the image processor's settings.
#[derive(Debug, Clone, Deserialize)]
pub struct PreprocessorConfig {
    /// Maximum number of 336×336 crops per image (16 for Phi-3-vision, 4 for Phi-3.5-vision).
    pub num_crops: usize,
    /// Tokens per 336×336 crop after the 2×2 merge (144).
    pub num_img_tokens: usize,
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    #[serde(default)]
    pub do_convert_rgb: Option<bool>,
}

/// An opened checkpoint directory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    pub config: Phi3VConfig,
    /// The vision tower's sizes, resolved from `config.img_processor`.
    pub vision: VisionConfig,
    pub preprocessor: PreprocessorConfig,
    pub weights: Weights,
}

impl Checkpoint {
    /// Reads and validates `config.json` and `preprocessor_config.json`, finds the weights and
    /// reads their headers. Tensor data is not touched.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        if !dir.is_dir() {
            return Err(CheckpointError::MissingDir(dir.to_path_buf()));
        }
        let config_path = dir.join("config.json");
        let config: Phi3VConfig = read_json(&config_path)?;
        config.validate().map_err(|m| CheckpointError::invalid(&config_path, m))?;
        let vision = config.vision().map_err(|m| CheckpointError::invalid(&config_path, m))?;
        let pp_path = dir.join("preprocessor_config.json");
        let preprocessor: PreprocessorConfig = read_json(&pp_path)?;
        if preprocessor.num_crops == 0 {
            return Err(CheckpointError::invalid(&pp_path, "num_crops must be at least 1"));
        }
        if preprocessor.image_std.contains(&0.0) {
            return Err(CheckpointError::invalid(&pp_path, "image_std must not contain 0"));
        }
        if !preprocessor.image_mean.iter().chain(&preprocessor.image_std).all(|v| v.is_finite()) {
            return Err(CheckpointError::invalid(&pp_path, "image_mean and image_std must be finite numbers"));
        }
        let weights = Weights::open(dir)?;
        sizes::check(&config, &vision, &weights).map_err(|m| CheckpointError::invalid(&config_path, m))?;
        Ok(Self { dir: dir.to_path_buf(), config, vision, preprocessor, weights })
    }

    /// Writes this checkpoint into `out` as a pre-quantised one ([`quantized`]): its other
    /// files copied, `packed` (the q8 and q4 matrices of the loaded layers, as
    /// `phi3v_linear::Linear::packed_parts` gives them) in place of the tensors they were
    /// quantised from, every other tensor as stored. `quantized` says how.
    pub fn write_quantized(&self, packed: &[phi3v_linear::PackedPart], quantized: Quantized, out: &Path) -> Result<(), CheckpointError> {
        if self.weights.quantized().is_some() {
            return Err(CheckpointError::invalid(&self.dir, "is already quantised by `phi3v quantize`: quantise the original checkpoint"));
        }
        quantized::write(&self.dir, &self.weights, packed, quantized, out)
    }

    /// Path of `tokenizer.json` (its existence is checked by whoever loads it).
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let bytes = read_regular(path, MAX_JSON_BYTES)?;
    serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Json { path: path.to_path_buf(), message: e.to_string() })
}

/// The most a checkpoint's JSON file (configs, index, tokenizer) may hold: 256 MiB.
pub const MAX_JSON_BYTES: u64 = 256 << 20;

/// Why [`read_capped`] refused a file.
#[derive(Debug)]
pub enum CappedReadError {
    Io(std::io::Error),
    /// A FIFO, a device or a directory.
    NotRegular,
    /// The file's size in bytes (or what was read of it), over the cap.
    TooLarge(u64),
}

/// The bytes of a regular file of at most `max_bytes`. Anything else (a FIFO or device, which
/// would block or never end; a directory; a larger file) is refused before it is read, and
/// reading stops at the cap if the file grows meanwhile.
pub fn read_capped(path: &Path, max_bytes: u64) -> Result<Vec<u8>, CappedReadError> {
    use std::io::Read;
    // Looked at before it is opened: opening a FIFO blocks until someone writes to it.
    let meta = std::fs::metadata(path).map_err(CappedReadError::Io)?;
    if !meta.is_file() {
        return Err(CappedReadError::NotRegular);
    }
    if meta.len() > max_bytes {
        return Err(CappedReadError::TooLarge(meta.len()));
    }
    let file = std::fs::File::open(path).map_err(CappedReadError::Io)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes).map_err(CappedReadError::Io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(CappedReadError::TooLarge(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_capped`] with the refusal as a [`CheckpointError`] naming the file.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>, CheckpointError> {
    read_capped(path, max_bytes).map_err(|e| match e {
        CappedReadError::Io(e) => CheckpointError::io(path, e),
        CappedReadError::NotRegular => CheckpointError::invalid(path, "not a regular file"),
        CappedReadError::TooLarge(n) => CheckpointError::invalid(path, format!("{n} bytes, more than the {max_bytes} allowed")),
    })
}

/// Whether `name` (a shard file named in an index) stays inside the checkpoint directory: a
/// relative path of plain components (no `..`, no root).
pub fn confined(name: &str) -> bool {
    let path = Path::new(name);
    !name.is_empty() && path.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
}
