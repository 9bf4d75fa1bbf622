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
mod weights;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use config::{EmbdLayer, ImgProcessor, Phi3VConfig, RopeScaling, VisionConfig};
pub use weights::{TensorInfo, Weights};

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
        let weights = Weights::open(dir)?;
        Ok(Self { dir: dir.to_path_buf(), config, vision, preprocessor, weights })
    }

    /// Path of `tokenizer.json` (its existence is checked by whoever loads it).
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, CheckpointError> {
    let text = std::fs::read_to_string(path).map_err(|e| CheckpointError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| CheckpointError::Json { path: path.to_path_buf(), message: e.to_string() })
}
