//! The image path of Phi-3-vision up to the CLIP features.
//!
//! - [`load`]: image files to 8-bit RGB as PIL converts them, with size limits.
//! - [`hd`]: the HD dynamic-crop geometry (resize target, white padding, crop grid, token count).
//! - [`resize`]: Pillow's fixed-point antialiased bilinear resize, bit-exact.
//! - [`preprocess`]: the reference image processor: HD image, normalisation, bicubic global
//!   view, crops.
//! - [`clip`]: the CLIP ViT tower up to its penultimate layer.
//!
//! ```no_run
//! use phi3v_vision::{load_rgb, preprocess, Normalization};
//! let rgb = load_rgb("chart.png".as_ref())?;
//! let pre = preprocess(&rgb, 16, &Normalization::CLIP)?;
//! println!("{}×{} crops, {} image tokens", pre.layout.rows(), pre.layout.cols(), pre.layout.num_img_tokens());
//! # Ok::<(), phi3v_vision::VisionError>(())
//! ```

pub mod clip;
pub mod hd;
pub mod load;
pub mod preprocess;
pub mod resize;

use std::path::{Path, PathBuf};

pub use clip::{ClipVisionTower, TowerPass};
pub use hd::{HdLayout, CROP, MAX_CROPS, TOKENS_PER_CROP};
pub use load::{decode_rgb, decode_rgb_within, load_rgb, probe, read_file, ImageHeader, ImageLimits, MAX_BYTES, MAX_PIXELS};
pub use preprocess::{hd_image, preprocess, Normalization, Preprocessed, CROP_LEN};

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
    #[error("image {width}×{height} has more than {max} pixels (the pixel limit)")]
    TooLarge { width: usize, height: usize, max: u64 },
    #[error("image data is {bytes} bytes, more than the limit of {max}")]
    TooManyBytes { bytes: u64, max: u64 },
    #[error("{path}: cannot read image: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: {error}")]
    InFile { path: PathBuf, error: Box<VisionError> },
}

impl VisionError {
    /// This error, naming the image file it is about.
    pub fn at(self, path: &Path) -> Self {
        match self {
            VisionError::Read { message, .. } => VisionError::Read { path: path.to_path_buf(), message },
            VisionError::InFile { error, .. } => VisionError::InFile { path: path.to_path_buf(), error },
            other => VisionError::InFile { path: path.to_path_buf(), error: Box::new(other) },
        }
    }
}
