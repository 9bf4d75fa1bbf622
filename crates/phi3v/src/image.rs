//! Images to decoder rows: the reference preprocessing, the CLIP tower and the projector.

use candle_core::{Device, Tensor};
use phi3v_linear::WeightFormat;
use phi3v_checkpoint::{Checkpoint, ReadObserver};
use phi3v_projector::Projector;
use phi3v_vision::{ClipVisionTower, Normalization, Preprocessed, CROP};

use crate::Result;

/// The image half of the model.
pub struct ImageEncoder {
    tower: ClipVisionTower,
    projector: Projector,
    normalization: Normalization,
    default_crops: usize,
    device: Device,
}

impl ImageEncoder {
    /// Loads the vision tower and projector of a checkpoint, their matrices in `format`
    /// (resolved; quantised straight from the stored dtype), the rest in f32.
    pub fn load(ckpt: &Checkpoint, format: WeightFormat, device: &Device) -> Result<Self> {
        Self::load_observed(ckpt, format, device, std::sync::Arc::new(|_| {}))
    }

    /// [`Self::load`], reporting each tensor's stored bytes to `read` as it is read.
    pub fn load_observed(ckpt: &Checkpoint, format: WeightFormat, device: &Device, read: ReadObserver) -> Result<Self> {
        let vb = ckpt.weights.var_builder_observed(format.table_dtype(ckpt.weights.stored_dtype()), device, read)?;
        Ok(Self {
            tower: ClipVisionTower::load(&ckpt.vision, format, vb.clone())?,
            projector: Projector::load(ckpt.vision.hidden_size, ckpt.config.hidden_size, format, vb)?,
            normalization: Normalization { mean: ckpt.preprocessor.image_mean, std: ckpt.preprocessor.image_std },
            default_crops: ckpt.preprocessor.num_crops,
            device: device.clone(),
        })
    }

    /// The checkpoint's `num_crops` (16 for Phi-3-vision, 4 for Phi-3.5-vision).
    pub fn default_crops(&self) -> usize {
        self.default_crops
    }

    /// Preprocesses an RGB image for at most `num_crops` crops.
    pub fn preprocess(&self, rgb: &image::RgbImage, num_crops: usize) -> Result<Preprocessed> {
        Ok(phi3v_vision::preprocess(rgb, num_crops, &self.normalization)?)
    }

    /// Image rows `[num_img_tokens, hidden]` for a preprocessed image: [`Self::features`] then
    /// [`Self::project`].
    pub fn encode(&self, pre: &Preprocessed) -> Result<Tensor> {
        self.encode_observed(pre, &|_| {})
    }

    /// [`Self::encode`], calling `done(k)` as the k-th crop is through CLIP.
    pub fn encode_observed(&self, pre: &Preprocessed, done: &(dyn Fn(usize) + Sync)) -> Result<Tensor> {
        self.project(&self.features_observed(pre, done)?, pre)
    }

    /// CLIP penultimate-layer patch features `[crops, 576, vision_hidden]` (global view first).
    pub fn features(&self, pre: &Preprocessed) -> Result<Tensor> {
        self.features_observed(pre, &|_| {})
    }

    /// [`Self::features`], calling `done(k)` as the k-th crop is finished.
    pub fn features_observed(&self, pre: &Preprocessed, done: &(dyn Fn(usize) + Sync)) -> Result<Tensor> {
        let crops = Tensor::from_slice(&pre.crops, (pre.num_crops(), 3, CROP, CROP), &self.device)?;
        Ok(self.tower.forward_observed(&crops, done)?)
    }

    /// The 2×2 merge, separators and MLP projector: features → rows `[num_img_tokens, hidden]`.
    pub fn project(&self, features: &Tensor, pre: &Preprocessed) -> Result<Tensor> {
        Ok(self.projector.forward(features, pre.layout.rows(), pre.layout.cols())?)
    }
}
