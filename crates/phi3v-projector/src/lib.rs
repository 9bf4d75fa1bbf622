//! HD feature assembly and projector of Phi-3-vision.
//!
//! Input: one image's CLIP patch features `[1 + rows·cols, G², C]` (G = 24; global view first,
//! then the tiles row-major) and its crop grid. Output: `num_img_tokens` rows of width H (the
//! decoder's hidden size) in the order the decoder consumes them:
//!
//! 1. 2×2 merge of every crop: token (i, j) of the 12×12 result concatenates the patches at
//!    (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1) → `[12, 12, 4C]`;
//! 2. the tiles' merged grids placed as a `(rows·12) × (cols·12)` grid, `sub_GN` appended after
//!    each grid row;
//! 3. one `glb_GN`;
//! 4. the global view's merged grid, also with `sub_GN` after each of its 12 rows;
//! 5. every token through Linear(4C→H) · GELU(erf) · Linear(H→H).
//!
//! Tensors: `model.vision_embed_tokens.{sub_GN [1,1,1,4C], glb_GN [1,1,4C],
//! img_projection.0.{weight,bias}, img_projection.2.{weight,bias}}`.

use candle_core::{Result, Tensor};
use candle_nn::VarBuilder;
use phi3v_linear::act::{each_row, gelu_erf};
use phi3v_linear::{Linear, Scratch, WeightFormat};

/// Prefix of the projector's tensors in a Phi-3-vision checkpoint.
pub const PREFIX: &str = "model.vision_embed_tokens";

/// Separators and MLP of the image embedding.
pub struct Projector {
    sub_gn: Tensor, // [1, 4C]
    glb_gn: Tensor, // [1, 4C]
    fc1: Linear,
    fc2: Linear,
}

impl Projector {
    /// Loads for CLIP width `clip_hidden` (C) and decoder width `hidden` (H); the MLP's
    /// matrices in `format` (resolved; `q8` and `q4` quantise them as fetched in `vb`'s
    /// dtype, best the stored one), the rest in f32.
    pub fn load(clip_hidden: usize, hidden: usize, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp(PREFIX);
        let f32s = vb.clone().set_dtype(candle_core::DType::F32);
        let c4 = 4 * clip_hidden;
        Ok(Self {
            sub_gn: f32s.get((1, 1, 1, c4), "sub_GN")?.reshape((1, c4))?,
            glb_gn: f32s.get((1, 1, c4), "glb_GN")?.reshape((1, c4))?,
            fc1: Linear::load(c4, hidden, true, format, vb.pp("img_projection.0"))?,
            fc2: Linear::load(hidden, hidden, true, format, vb.pp("img_projection.2"))?,
        })
    }

    /// Multiply-adds of the MLP for `rows` image rows.
    pub fn multiply_adds(&self, rows: usize) -> u64 {
        self.fc1.multiply_adds(rows) + self.fc2.multiply_adds(rows)
    }

    /// The MLP's two matrices.
    pub fn linears(&self) -> impl Iterator<Item = &Linear> {
        [&self.fc1, &self.fc2].into_iter()
    }

    /// `features` `[1 + rows·cols, G², C]` → image rows `[num_img_tokens, H]`.
    pub fn forward(&self, features: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        let tokens = self.assemble(features, rows, cols)?;
        let (n, hidden) = (tokens.dim(0)?, self.fc1.out_dim());
        let x = tokens.flatten_all()?.to_vec1::<f32>()?;
        let (mut h, mut y, mut scratch) = (vec![0f32; n * hidden], vec![0f32; n * hidden], Scratch::default());
        self.fc1.forward_into(&x, n, &mut h, &mut scratch)?;
        each_row(&mut h, hidden, |_, row| gelu_erf(row));
        self.fc2.forward_into(&h, n, &mut y, &mut scratch)?;
        Tensor::from_vec(y, (n, hidden), tokens.device())
    }

    /// The unprojected token sequence `[num_img_tokens, 4C]` (steps 1–4 above).
    pub fn assemble(&self, features: &Tensor, rows: usize, cols: usize) -> Result<Tensor> {
        let (n, l, c) = features.dims3()?;
        if n != 1 + rows * cols {
            candle_core::bail!("{n} crops of features for a {rows}×{cols} grid plus the global view");
        }
        let g = (l as f64).sqrt() as usize;
        let m = g / 2;
        // [n, G, G, C] → [n, m, 2, m, 2, C] → [n, m, m, 2, 2, C] → [n, m, m, 4C]
        let merged = features
            .reshape((n, m, 2, m, 2, c))?
            .permute((0, 1, 3, 2, 4, 5))?
            .reshape((n, m, m, 4 * c))?;
        let with_newlines = |grid: Tensor, height: usize| -> Result<Tensor> {
            let newline = self.sub_gn.unsqueeze(0)?.broadcast_as((height, 1, 4 * c))?;
            Tensor::cat(&[&grid, &newline.contiguous()?], 1)?.reshape(((), 4 * c))
        };
        // Tiles [rows·cols, m, m, 4C] → [rows, cols, m, m, 4C] → [rows, m, cols, m, 4C].
        let sub = merged
            .narrow(0, 1, rows * cols)?
            .reshape((rows, cols, m, m, 4 * c))?
            .permute((0, 2, 1, 3, 4))?
            .reshape((rows * m, cols * m, 4 * c))?;
        let glb = merged.get(0)?;
        Tensor::cat(&[with_newlines(sub, rows * m)?, self.glb_gn.clone(), with_newlines(glb, m)?], 0)
    }
}
