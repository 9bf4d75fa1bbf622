//! Geometry of the HD transform: how an image of a given size is resized, padded and cut into
//! 336×336 crops, and how many image tokens that costs.
//!
//! The arithmetic reproduces the reference's float64 steps exactly (ratio, `ceil`, truncation),
//! not an exact-rational equivalent: they differ at the last ulp for some sizes.

use crate::VisionError;

/// Side of one crop in pixels.
pub const CROP: usize = 336;
/// Tokens per crop after the 2×2 merge (12×12).
pub const TOKENS_PER_CROP: usize = 144;
/// Merged tokens per crop side.
const MERGED_SIDE: usize = 12;
/// Largest accepted `num_crops`: 1024 crops are already ~148K image tokens, more than the
/// 131072-position context of the official checkpoints.
pub const MAX_CROPS: usize = 1024;

/// Where an image goes in the HD transform.
///
/// Portrait images (width < height) are transposed first, so `resized`, `pad_top` and
/// `pad_bottom` are in the transposed frame, where width ≥ height; the padding then lies left and
/// right in the original frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HdLayout {
    /// Source size (width, height).
    pub source_wh: (usize, usize),
    /// Whether the image is transposed for the resize (portrait input).
    pub transposed: bool,
    /// Resize target (width, height) in the working frame; width = 336·cols there.
    pub resized_wh: (usize, usize),
    /// White rows above the resized image in the working frame (the smaller half).
    pub pad_top: usize,
    /// White rows below it.
    pub pad_bottom: usize,
    /// Final size (height, width) in the original orientation: the reference's `image_sizes`.
    pub size_hw: (usize, usize),
}

impl HdLayout {
    /// Lays out a `width`×`height` image for at most `num_crops` crops.
    pub fn new(width: usize, height: usize, num_crops: usize) -> Result<Self, VisionError> {
        if width == 0 || height == 0 {
            return Err(VisionError::EmptyImage { width, height });
        }
        if num_crops == 0 || num_crops > MAX_CROPS {
            return Err(VisionError::NumCrops(num_crops));
        }
        let transposed = width < height;
        let (w, h) = if transposed { (height, width) } else { (width, height) };
        let ratio = w as f64 / h as f64;
        let mut scale = 1usize;
        while scale as f64 * (scale as f64 / ratio).ceil() <= num_crops as f64 {
            scale += 1;
        }
        scale -= 1;
        let new_w = scale * CROP;
        let new_h = (new_w as f64 / ratio) as usize; // truncation, as Python's int()
        if new_h == 0 {
            return Err(VisionError::Collapsed { width, height, num_crops, resized_width: new_w });
        }
        let target_h = ((new_h as f64 / CROP as f64).ceil() * CROP as f64) as usize;
        let pad_top = ((target_h - new_h) as f64 / 2.0) as usize;
        let pad_bottom = target_h - new_h - pad_top;
        let size_hw = if transposed { (new_w, target_h) } else { (target_h, new_w) };
        Ok(Self { source_wh: (width, height), transposed, resized_wh: (new_w, new_h), pad_top, pad_bottom, size_hw })
    }

    /// Crop rows in the original orientation.
    pub fn rows(&self) -> usize {
        self.size_hw.0 / CROP
    }

    /// Crop columns in the original orientation.
    pub fn cols(&self) -> usize {
        self.size_hw.1 / CROP
    }

    /// Image tokens this image occupies in the prompt:
    /// rows·12 × (cols·12 + 1) sub-image tokens, one `glb_GN`, 12 × 13 global-view tokens.
    pub fn num_img_tokens(&self) -> usize {
        let (r, c) = (self.rows(), self.cols());
        (r * c + 1) * TOKENS_PER_CROP + 1 + (r + 1) * MERGED_SIDE
    }
}
