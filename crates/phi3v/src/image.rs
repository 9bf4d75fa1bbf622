//! Images to decoder rows: the reference preprocessing, the CLIP tower and the projector.

use candle_core::{Device, Tensor};
use phi3v_linear::WeightFormat;
use phi3v_checkpoint::{Checkpoint, ReadObserver};
use phi3v_projector::Projector;
use phi3v_vision::{ClipVisionTower, Normalization, Preprocessed, TowerPass, CROP, CROP_LEN};

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

    /// Multiply-adds of encoding an image laid out as `layout`: its crops (global view
    /// included) through the vision tower, then its rows through the projector.
    pub fn multiply_adds(&self, layout: &phi3v_vision::HdLayout) -> u64 {
        let crops = (layout.rows() * layout.cols() + 1) as u64;
        crops * self.tower.multiply_adds_per_crop() + self.projector.multiply_adds(layout.num_img_tokens())
    }

    /// Every matrix: the vision tower's, then the projector's.
    pub fn linears(&self) -> impl Iterator<Item = &phi3v_linear::Linear> {
        self.tower.linears().chain(self.projector.linears())
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

    /// Multiply-adds of one CLIP encoder layer over one crop: its 577 rows through q | k | v,
    /// out, fc1 and fc2, and attention's scores and sums (577² per channel, twice).
    pub(crate) fn layer_macs(&self) -> usize {
        let cfg = self.tower.config();
        let (rows, c) = (cfg.grid() * cfg.grid() + 1, cfg.hidden_size);
        rows * (4 * c * c + 2 * c * cfg.intermediate_size) + 2 * rows * rows * c
    }

    /// Starts encoding `pre` a few layers at a time ([`Self::advance`]).
    pub(crate) fn begin(&self, pre: Preprocessed) -> ImageEncoding {
        ImageEncoding { pre, features: Vec::new(), pass: None }
    }

    /// Runs up to `layers` more CLIP layers of `encoding` (its crops one after another);
    /// the image's rows `[num_img_tokens, hidden]` once the last crop is through, with the
    /// projector. The rows equal [`Self::encode`]'s: each crop goes through the same layers.
    pub(crate) fn advance(&self, encoding: &mut ImageEncoding, layers: usize) -> Result<Option<Tensor>> {
        let mut budget = layers.max(1);
        while budget > 0 && encoding.features.len() < encoding.pre.num_crops() {
            let pass = match &mut encoding.pass {
                Some(pass) => pass,
                None => {
                    let k = encoding.features.len();
                    let crop = Tensor::from_slice(&encoding.pre.crops[k * CROP_LEN..][..CROP_LEN], (1, 3, CROP, CROP), &self.device)?;
                    encoding.pass.insert(self.tower.start(&crop)?)
                }
            };
            let run = budget.min(self.tower.depth() - pass.layers_done());
            budget -= run;
            if self.tower.advance(pass, run)? {
                let pass = encoding.pass.take().expect("the pass just advanced");
                encoding.features.push(self.tower.finish(pass)?);
            }
        }
        if encoding.features.len() < encoding.pre.num_crops() {
            return Ok(None);
        }
        let features = Tensor::cat(&encoding.features, 0)?;
        Ok(Some(self.project(&features, &encoding.pre)?))
    }
}

/// An image part-way through the tower ([`ImageEncoder::begin`]).
pub(crate) struct ImageEncoding {
    pre: Preprocessed,
    /// `[1, 576, vision_hidden]` per finished crop, global view first.
    features: Vec<Tensor>,
    /// The crop under way.
    pass: Option<TowerPass>,
}
