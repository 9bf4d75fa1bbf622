//! The CLIP ViT vision tower (ViT-L/14-336 in the official checkpoints), run up to the layer
//! whose output Phi-3-vision uses (`hidden_states[-2]`, i.e. all but the last encoder layer),
//! without `post_layernorm`, CLS token dropped.
//!
//! Tensor names under `model.vision_embed_tokens.img_processor.vision_model.`:
//! `embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}`,
//! `pre_layrnorm.*`, `encoder.layers.{i}.{self_attn.{q,k,v,out}_proj, layer_norm1, layer_norm2,
//! mlp.fc1, mlp.fc2}.*`. Layers past the feature layer are not loaded.

use candle_core::{DType, Module, Result, Tensor};
use candle_nn::{layer_norm, LayerNorm, LayerNormConfig, VarBuilder};
use phi3v_checkpoint::VisionConfig;
use phi3v_linear::act::{add_rows, each_row, quick_gelu};
use phi3v_linear::attention::{attend, gather_heads, Rows};
use phi3v_linear::{Linear, Scratch, WeightFormat};
use rayon::prelude::*;

/// Prefix of the tower's tensors in a Phi-3-vision checkpoint.
pub const CLIP_PREFIX: &str = "model.vision_embed_tokens.img_processor.vision_model";

/// `torch.nn.LayerNorm` over rows of `C`: `(x − mean) / √(var + eps) · weight + bias`
/// (biased variance, taken about the mean).
struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl Norm {
    fn load(c: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        let get = |name| vb.get(c, name)?.to_dtype(DType::F32)?.to_vec1::<f32>();
        Ok(Self { weight: get("weight")?, bias: get("bias")?, eps: eps as f32 })
    }

    /// `x` `[rows, C]` → `out` `[rows, C]`.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let c = self.weight.len();
        each_row(out, c, |i, out| {
            let x = &x[i * c..][..c];
            let mean = x.iter().sum::<f32>() / c as f32;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
            let inv = 1.0 / (var + self.eps).sqrt();
            for (((o, v), w), b) in out.iter_mut().zip(x).zip(&self.weight).zip(&self.bias) {
                *o = (v - mean) * inv * w + b;
            }
        });
    }
}

/// The intermediates of a layer, reused layer after layer.
#[derive(Default)]
struct Buffers {
    /// `[rows, C]`: a norm's output.
    normed: Vec<f32>,
    /// `[rows, 3C]`: q | k | v.
    qkv: Vec<f32>,
    /// `[rows, C]`: the heads' outputs side by side.
    attn: Vec<f32>,
    /// `[rows, C]`: `out_proj`'s, then `fc2`'s output.
    proj: Vec<f32>,
    /// `[rows, intermediate]`.
    hidden: Vec<f32>,
    linear: Scratch,
}

struct EncoderLayer {
    layer_norm1: Norm,
    /// `q_proj`, `k_proj` and `v_proj` as one `[3C, C]` product.
    qkv_proj: Linear,
    out_proj: Linear,
    layer_norm2: Norm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
}

impl EncoderLayer {
    fn load(cfg: &VisionConfig, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let (c, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let attn = vb.pp("self_attn");
        Ok(Self {
            layer_norm1: Norm::load(c, eps, vb.pp("layer_norm1"))?,
            qkv_proj: Linear::load_stacked(c, &["q_proj", "k_proj", "v_proj"].map(|p| (c, attn.pp(p))), true, format)?,
            out_proj: Linear::load(c, c, true, format, attn.pp("out_proj"))?,
            layer_norm2: Norm::load(c, eps, vb.pp("layer_norm2"))?,
            fc1: Linear::load(c, cfg.intermediate_size, true, format, vb.pp("mlp").pp("fc1"))?,
            fc2: Linear::load(cfg.intermediate_size, c, true, format, vb.pp("mlp").pp("fc2"))?,
            heads: cfg.num_attention_heads,
        })
    }

    /// `x`: `[N, L, C]` (N crops of L rows) in place (pre-norm attention and MLP blocks with
    /// residuals).
    fn forward(&self, x: &mut [f32], (n, l): (usize, usize), b: &mut Buffers) -> Result<()> {
        let c = self.layer_norm1.weight.len();
        let (rows, hd) = (n * l, c / self.heads);
        for (buf, width) in [(&mut b.normed, c), (&mut b.qkv, 3 * c), (&mut b.attn, c), (&mut b.proj, c), (&mut b.hidden, self.fc1.out_dim())] {
            buf.resize(rows * width, 0.0);
        }
        self.layer_norm1.forward(x, &mut b.normed);
        self.qkv_proj.forward_into(&b.normed, rows, &mut b.qkv, &mut b.linear)?;
        let scale = (hd as f64).powf(-0.5) as f32;
        // Each crop's heads in parallel, read in place from its rows of q | k | v.
        let qkv = &b.qkv;
        let per_head: Vec<Vec<f32>> = (0..n * self.heads)
            .into_par_iter()
            .map_init(Vec::new, |scores, i| {
                let (crop, head) = (i / self.heads, i % self.heads);
                let rows = &qkv[crop * l * 3 * c..][..l * 3 * c];
                let part = |p: usize| Rows::columns(rows, 3 * c, p * c + head * hd);
                let mut out = vec![0f32; l * hd];
                attend(part(0), part(1), part(2), (l, l, hd), scale, None, scores, &mut out);
                out
            })
            .collect();
        for (crop, out) in b.attn.chunks_exact_mut(l * c).enumerate() {
            gather_heads(&per_head[crop * self.heads..][..self.heads], hd, out);
        }
        self.out_proj.forward_into(&b.attn, rows, &mut b.proj, &mut b.linear)?;
        add_rows(x, &b.proj, c);
        self.layer_norm2.forward(x, &mut b.normed);
        self.fc1.forward_into(&b.normed, rows, &mut b.hidden, &mut b.linear)?;
        each_row(&mut b.hidden, self.fc1.out_dim(), |_, row| quick_gelu(row));
        self.fc2.forward_into(&b.hidden, rows, &mut b.proj, &mut b.linear)?;
        add_rows(x, &b.proj, c);
        Ok(())
    }
}

/// The vision tower, loaded up to its feature layer.
pub struct ClipVisionTower {
    patch_embedding: Tensor, // [C, 3·P·P]
    class_embedding: Tensor, // [1, 1, C]
    position_embedding: Tensor, // [1, 1 + G², C]
    pre_layrnorm: LayerNorm,
    layers: Vec<EncoderLayer>,
    cfg: VisionConfig,
}

impl ClipVisionTower {
    /// Multiply-adds of one crop through the tower: the patch embedding, then per layer the
    /// matrices for each of its `1 + G²` rows and attention (`q·k` and the weighted sum of values,
    /// every row against every row, per head).
    pub fn multiply_adds_per_crop(&self) -> u64 {
        let c = &self.cfg;
        let (grid, width) = (c.grid(), c.hidden_size);
        let rows = grid * grid + 1;
        let patches = (grid * grid * width * 3 * c.patch_size * c.patch_size) as u64;
        let matrices: u64 = self.linears().map(|m| m.multiply_adds(rows)).sum();
        let attention = (self.layers.len() * 2 * rows * rows * width) as u64;
        patches + matrices + attention
    }

    /// Every matrix of the layers loaded, in order.
    pub fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.layers.iter().flat_map(|l| [&l.qkv_proj, &l.out_proj, &l.fc1, &l.fc2])
    }

    /// Loads from a `VarBuilder` rooted at the checkpoint (tensor names under [`CLIP_PREFIX`]),
    /// the encoder layers' matrices in `format` (resolved; `q8` and `q4` quantise them as
    /// fetched in `vb`'s dtype, best the stored one), everything else in f32.
    pub fn load(cfg: &VisionConfig, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let vb = vb.pp(CLIP_PREFIX);
        let f32s = vb.clone().set_dtype(DType::F32);
        let (c, p) = (cfg.hidden_size, cfg.patch_size);
        let emb = f32s.pp("embeddings");
        let positions = cfg.grid() * cfg.grid() + 1;
        // In parallel; a failure is reported for the first bad layer.
        let layers: Vec<Result<EncoderLayer>> = (0..cfg.feature_layers)
            .into_par_iter()
            .map(|i| EncoderLayer::load(cfg, format, vb.pp(format!("encoder.layers.{i}"))))
            .collect();
        let layers = layers.into_iter().collect::<Result<_>>()?;
        Ok(Self {
            patch_embedding: emb.get((c, 3, p, p), "patch_embedding.weight")?.reshape((c, 3 * p * p))?,
            class_embedding: emb.get(c, "class_embedding")?.reshape((1, 1, c))?,
            position_embedding: emb.get((positions, c), "position_embedding.weight")?.unsqueeze(0)?,
            pre_layrnorm: layer_norm(c, LayerNormConfig { eps: cfg.layer_norm_eps, ..Default::default() }, f32s.pp("pre_layrnorm"))?,
            layers,
            cfg: cfg.clone(),
        })
    }

    /// `crops`: `[N, 3, S, S]` pixel values (S = 336) → patch features `[N, G², C]`
    /// (G = 24 patches per side; CLS dropped). Crops are independent and run in parallel.
    pub fn forward(&self, crops: &Tensor) -> Result<Tensor> {
        self.forward_observed(crops, &|_| {})
    }

    /// [`Self::forward`], calling `done(k)` as the k-th crop is finished (from the worker
    /// threads, in any order of crops).
    pub fn forward_observed(&self, crops: &Tensor, done: &(dyn Fn(usize) + Sync)) -> Result<Tensor> {
        let n = crops.dim(0)?;
        let finished = std::sync::atomic::AtomicUsize::new(0);
        let features = (0..n)
            .into_par_iter()
            .map(|i| {
                let f = self.forward_batch(&crops.narrow(0, i, 1)?);
                done(finished.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
                f
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&features, 0)
    }

    /// [`Self::forward`] on one batch, without splitting it.
    fn forward_batch(&self, crops: &Tensor) -> Result<Tensor> {
        let mut pass = self.start(crops)?;
        self.advance(&mut pass, self.layers.len())?;
        self.finish(pass)
    }

    /// Encoder layers a crop goes through (all but the checkpoint's last).
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// The tower's sizes.
    pub fn config(&self) -> &VisionConfig {
        &self.cfg
    }

    /// Starts a pass of `crops` `[N, 3, S, S]` through the tower: patch and position
    /// embeddings and `pre_layrnorm`; the layers follow in [`Self::advance`], as many at a time
    /// as the caller likes (a scheduler can interleave other work between them).
    pub fn start(&self, crops: &Tensor) -> Result<TowerPass> {
        let (n, _, s, _) = crops.dims4()?;
        let (p, g, c) = (self.cfg.patch_size, self.cfg.grid(), self.cfg.hidden_size);
        let crops = crops.to_dtype(self.patch_embedding.dtype())?;
        // Non-overlapping P×P patches, row-major, each flattened as (channel, y, x) like the
        // conv weight: [N, 3, G, P, G, P] → [N, G, G, 3, P, P] → [N·G², 3·P·P].
        let patches = crops
            .reshape((n, 3, g, p, g, p))?
            .permute((0, 2, 4, 1, 3, 5))?
            .reshape((n * g * g, 3 * p * p))?;
        debug_assert_eq!(s, g * p);
        let x = patches.matmul(&self.patch_embedding.t()?)?.reshape((n, g * g, c))?;
        let x = Tensor::cat(&[&self.class_embedding.broadcast_as((n, 1, c))?.contiguous()?, &x], 1)?;
        let x = self.pre_layrnorm.forward(&x.broadcast_add(&self.position_embedding)?)?;
        let x = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(TowerPass { x, crops: n, layers_done: 0, buffers: Buffers::default() })
    }

    /// Runs up to `layers` more encoder layers of `pass`; true once it has been through all.
    pub fn advance(&self, pass: &mut TowerPass, layers: usize) -> Result<bool> {
        let l = self.cfg.grid() * self.cfg.grid() + 1;
        let end = (pass.layers_done + layers).min(self.layers.len());
        for layer in &self.layers[pass.layers_done..end] {
            layer.forward(&mut pass.x, (pass.crops, l), &mut pass.buffers)?;
        }
        pass.layers_done = end;
        Ok(pass.is_done(self))
    }

    /// The patch features `[N, G², C]` of a pass that has been through every layer.
    pub fn finish(&self, pass: TowerPass) -> Result<Tensor> {
        if !pass.is_done(self) {
            candle_core::bail!("the tower pass stopped after {} of {} layers", pass.layers_done, self.layers.len());
        }
        let (g, c) = (self.cfg.grid(), self.cfg.hidden_size);
        Tensor::from_vec(pass.x, (pass.crops, g * g + 1, c), self.patch_embedding.device())?.narrow(1, 1, g * g)
    }
}

/// Crops part-way through the tower ([`ClipVisionTower::start`]): their rows `[N, 1 + G², C]`
/// after the first `layers_done` layers.
pub struct TowerPass {
    x: Vec<f32>,
    crops: usize,
    layers_done: usize,
    buffers: Buffers,
}

impl TowerPass {
    /// Layers this pass has been through.
    pub fn layers_done(&self) -> usize {
        self.layers_done
    }

    fn is_done(&self, tower: &ClipVisionTower) -> bool {
        self.layers_done == tower.layers.len()
    }
}
