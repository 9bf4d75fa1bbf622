//! The image path of Phi-3-vision up to the CLIP features.
//!
//! - [`hd`]: the HD dynamic-crop geometry (resize target, white padding, crop grid, token count).
//! - [`read_dimensions`]: an image file's size from its header, without decoding it.
//!
//! Pixel-exact preprocessing (Pillow's fixed-point bilinear resize, normalisation, torch-bicubic
//! global view) and the CLIP ViT-L/14-336 encoder follow in this crate; see
//! `docs/ARCHITECTURE.md`.

pub mod hd;

use std::path::{Path, PathBuf};

pub use hd::{HdLayout, CROP, MAX_CROPS, TOKENS_PER_CROP};

/// Errors of the image path. Each names the size or setting at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VisionError {
    #[error("image is empty ({width}×{height} pixels)")]
    EmptyImage { width: usize, height: usize },
    #[error("num_crops must be between 1 and {MAX_CROPS}, got {0}")]
    NumCrops(usize),
    #[error(
        "image {width}×{height} is too elongated for {num_crops} crops: resized to {resized_width} px \
         along its long side, its short side would be 0 px"
    )]
    Collapsed { width: usize, height: usize, num_crops: usize, resized_width: usize },
    #[error("{path}: cannot read image: {message}")]
    Read { path: PathBuf, message: String },
}

/// Width and height of an image file, read from its header (format guessed from the content).
pub fn read_dimensions(path: &Path) -> Result<(usize, usize), VisionError> {
    let err = |message: String| VisionError::Read { path: path.to_path_buf(), message };
    let reader = image::ImageReader::open(path).map_err(|e| err(e.to_string()))?;
    let (w, h) = reader.with_guessed_format().map_err(|e| err(e.to_string()))?.into_dimensions().map_err(|e| err(e.to_string()))?;
    Ok((w as usize, h as usize))
}
