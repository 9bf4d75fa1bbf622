//! The Phi-3-mini decoder stack: RMSNorm, fused qkv, LongRoPE, causal attention over a KV cache,
//! fused gate/up SiLU-GLU MLP, final norm and untied `lm_head`.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::VarBuilder;
use phi3v_linear::{Linear, WeightFormat};
use phi3v_checkpoint::Phi3VConfig;
use rayon::prelude::*;

use crate::kv::{KvDtype, LayerCache};
use crate::rope::LongRope;

/// Prompt rows processed per forward chunk during prefill: attention scores are
/// `[heads, chunk, past + chunk]`, never `[T, T]`.
pub const PREFILL_CHUNK: usize = 256;

struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?.to_dtype(DType::F32)?, eps: eps as f32 })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        candle_nn::ops::rms_norm(x, &self.weight, self.eps)
    }
}

struct Layer {
    input_layernorm: RmsNorm,
    qkv_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    gate_up_proj: Linear,
    down_proj: Linear,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
}

impl Layer {
    fn load(cfg: &Phi3VConfig, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let (h, hd) = (cfg.hidden_size, cfg.head_dim());
        let (heads, kv_heads) = (cfg.num_attention_heads, cfg.kv_heads());
        let eps = cfg.rms_norm_eps;
        Ok(Self {
            input_layernorm: RmsNorm::load(h, eps, vb.pp("input_layernorm"))?,
            qkv_proj: Linear::load(h, (heads + 2 * kv_heads) * hd, false, format, vb.pp("self_attn.qkv_proj"))?,
            o_proj: Linear::load(heads * hd, h, false, format, vb.pp("self_attn.o_proj"))?,
            post_attention_layernorm: RmsNorm::load(h, eps, vb.pp("post_attention_layernorm"))?,
            gate_up_proj: Linear::load(h, 2 * cfg.intermediate_size, false, format, vb.pp("mlp.gate_up_proj"))?,
            down_proj: Linear::load(cfg.intermediate_size, h, false, format, vb.pp("mlp.down_proj"))?,
            heads,
            kv_heads,
            head_dim: hd,
            intermediate: cfg.intermediate_size,
        })
    }

    /// `x`: `[n, H]` rows at positions `past..past + n` → `[n, H]`; appends to `cache`.
    fn forward(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, cache: &mut LayerCache) -> Result<Tensor> {
        let (n, _) = x.dims2()?;
        let (hd, heads, kvh) = (self.head_dim, self.heads, self.kv_heads);
        let qkv = self.qkv_proj.forward(&self.input_layernorm.forward(x)?)?;
        // [n, heads·hd] → [1, heads, n, hd]
        let split = |start: usize, count: usize| {
            qkv.narrow(1, start * hd, count * hd)?.reshape((1, n, count, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = candle_nn::rotary_emb::rope(&split(0, heads)?, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&split(heads, kvh)?, cos, sin)?.squeeze(0)?;
        let v = split(heads + kvh, kvh)?.squeeze(0)?;
        cache.append(&k, &v)?;
        let scale = (hd as f64).powf(-0.5);
        let attn = if n == 1 {
            // One new row sees every position: dot products straight off the cache.
            let q = q.flatten_all()?.to_vec1::<f32>()?;
            Tensor::from_vec(cache.attend_one(&q, heads, scale as f32), (1, heads * hd), x.device())?
        } else {
            let total = cache.len();
            let past = total - n;
            // Grouped heads: each kv head serves heads/kvh query heads.
            let group = heads / kvh;
            let q = q.reshape((kvh, group * n, hd))?;
            // Row i sees positions ≤ past + i.
            let mask: Vec<f32> = (0..n)
                .flat_map(|i| (0..total).map(move |j| if j > past + i { f32::NEG_INFINITY } else { 0.0 }))
                .collect();
            let mask = Tensor::from_vec(mask, (n, total), x.device())?;
            // One kv head at a time: its scores are [group, n, total] (2 MB for 256 rows of a
            // 1 941-token prompt, where all heads at once would be 64 MB, three times over).
            let per_head = (0..kvh)
                .map(|h| {
                    let (k, v) = cache.head(h, x.device())?; // [total, hd]
                    let scores = (q.get(h)?.matmul(&k.t()?)? * scale)?.reshape((group, n, total))?;
                    let probs = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
                    probs.reshape((group * n, total))?.matmul(&v) // [group·n, hd]
                })
                .collect::<Result<Vec<_>>>()?;
            Tensor::stack(&per_head, 0)?.reshape((heads, n, hd))?.transpose(0, 1)?.reshape((n, heads * hd))?
        };
        let x = (x + self.o_proj.forward(&attn)?)?;

        let gu = self.gate_up_proj.forward(&self.post_attention_layernorm.forward(&x)?)?;
        let gate = gu.narrow(1, 0, self.intermediate)?;
        let up = gu.narrow(1, self.intermediate, self.intermediate)?;
        x + self.down_proj.forward(&(up * candle_nn::ops::silu(&gate)?)?)?
    }
}

/// What the decoder has seen of one sequence: per-layer keys/values, the input rows (kept so
/// the cache can be rebuilt when the rotary factors switch), and which factors its keys use.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    inputs: Vec<Tensor>,
    len: usize,
    long: bool,
}

impl KvCache {
    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the held keys were rotated with the long factors.
    pub fn is_long(&self) -> bool {
        self.long
    }

    /// Drops everything (a new conversation).
    pub fn clear(&mut self) {
        *self = Self::default();
    }
}

/// Errors specific to running the decoder.
#[derive(Debug, thiserror::Error)]
pub enum DecoderError {
    #[error("sequence of {len} positions exceeds max_position_embeddings = {max}")]
    TooLong { len: usize, max: usize },
    #[error("input rows have width {got}, the decoder expects {expected}")]
    Width { got: usize, expected: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    TokenId { id: u32, vocab: usize },
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
}

/// The text decoder.
pub struct Decoder {
    embed_tokens: Tensor, // [vocab, H]
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: LongRope,
    hidden: usize,
    vocab: usize,
    max_positions: usize,
    kv_dtype: KvDtype,
    device: Device,
}

impl Decoder {
    /// Loads `model.embed_tokens` (in the `VarBuilder`'s dtype), `model.layers.*` and `lm_head`
    /// (matrices in `format`, which must be resolved) and `model.norm`. Activations are f32.
    pub fn load(cfg: &Phi3VConfig, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let (h, v) = (cfg.hidden_size, cfg.vocab_size);
        let m = vb.pp("model");
        // Layers load in parallel: reading, converting and quantising are per tensor. A
        // failure is reported for the first bad layer, whichever thread finds it first.
        let layers: Vec<Result<Layer>> = (0..cfg.num_hidden_layers)
            .into_par_iter()
            .map(|i| Layer::load(cfg, format, m.pp(format!("layers.{i}"))))
            .collect();
        let layers = layers.into_iter().collect::<Result<_>>()?;
        Ok(Self {
            embed_tokens: m.get((v, h), "embed_tokens.weight")?,
            layers,
            norm: RmsNorm::load(h, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head: Linear::load(h, v, false, format, vb.pp("lm_head"))?,
            rope: LongRope::new(cfg),
            hidden: h,
            vocab: v,
            max_positions: cfg.max_position_embeddings,
            kv_dtype: KvDtype::F32,
            device: vb.device().clone(),
        })
    }

    /// Stores the keys and values of caches this decoder fills from now on as `dtype`
    /// (f32 unless set). A cache filled in another dtype keeps it until cleared.
    pub fn with_kv_dtype(mut self, dtype: KvDtype) -> Self {
        self.kv_dtype = dtype;
        self
    }

    /// Bytes one generated token reads with `context` positions cached: every matrix (the
    /// layers' and `lm_head`) once, and the keys and values of every position in the dtype of
    /// caches this decoder fills. Norms and the one embedding row are left out (< 0.01 %).
    pub fn bytes_per_token(&self, context: usize) -> usize {
        let matrices: usize = self
            .layers
            .iter()
            .flat_map(|l| [&l.qkv_proj, &l.o_proj, &l.gate_up_proj, &l.down_proj])
            .chain([&self.lm_head])
            .map(Linear::weight_bytes)
            .sum();
        let cache: usize = self.layers.iter().map(|l| 2 * l.kv_heads * self.kv_dtype.row_bytes(l.head_dim)).sum();
        matrices + cache * context
    }

    /// Token embeddings `[ids.len(), H]`.
    pub fn embed(&self, ids: &[u32]) -> std::result::Result<Tensor, DecoderError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(DecoderError::TokenId { id, vocab: self.vocab });
        }
        let ids = Tensor::new(ids, &self.device)?;
        Ok(self.embed_tokens.index_select(&ids, 0)?.to_dtype(DType::F32)?)
    }

    /// The rotary tables in use.
    pub fn rope(&self) -> &LongRope {
        &self.rope
    }

    /// Appends `rows` (`[n, H]`, text or image embeddings) to the sequence in `cache` and returns
    /// the logits `[vocab]` (f32) of the last row.
    ///
    /// When this forward takes the sequence past `original_max_position_embeddings` while the
    /// cache still holds short-factor keys, the cache is rebuilt from its stored input rows with
    /// the long factors first (the Phi-3.5 rule; transformers does the same re-prefill).
    pub fn forward(&self, rows: &Tensor, cache: &mut KvCache) -> std::result::Result<Tensor, DecoderError> {
        let (n, width) = rows.dims2()?;
        if width != self.hidden {
            return Err(DecoderError::Width { got: width, expected: self.hidden });
        }
        let total = cache.len + n;
        if total > self.max_positions {
            return Err(DecoderError::TooLong { len: total, max: self.max_positions });
        }
        let long = self.rope.is_long(total);
        let rows = rows.to_dtype(DType::F32)?;
        let rows = if long && !cache.long && !cache.is_empty() {
            let mut all = std::mem::take(&mut cache.inputs);
            all.push(rows);
            cache.clear();
            Tensor::cat(&all, 0)?
        } else {
            rows
        };
        if cache.layers.is_empty() {
            cache.layers = self.layers.iter().map(|l| LayerCache::new(self.kv_dtype, l.kv_heads, l.head_dim)).collect();
        }
        cache.long = long;
        let n = rows.dim(0)?;
        let mut last = None;
        for start in (0..n).step_by(PREFILL_CHUNK) {
            let len = PREFILL_CHUNK.min(n - start);
            let chunk = rows.narrow(0, start, len)?;
            let (cos, sin) = self.rope.tables(cache.len, len, long, &self.device)?;
            let mut x = chunk.clone();
            for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
                x = layer.forward(&x, &cos, &sin, lc)?;
            }
            cache.inputs.push(chunk);
            cache.len += len;
            last = Some(x.narrow(0, len - 1, 1)?);
        }
        let last = last.ok_or_else(|| candle_core::Error::Msg("forward over zero rows".into()))?;
        let logits = self.lm_head.forward(&self.norm.forward(&last)?)?;
        Ok(logits.squeeze(0)?)
    }
}

/// Index of the largest value of a `[vocab]` logits tensor.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    logits.argmax(D::Minus1)?.to_scalar::<u32>()
}
