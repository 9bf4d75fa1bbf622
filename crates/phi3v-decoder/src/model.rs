//! The Phi-3-mini decoder stack: RMSNorm, fused qkv, LongRoPE, causal attention over a KV cache,
//! fused gate/up SiLU-GLU MLP, final norm and untied `lm_head`.
//!
//! Activations are f32 rows in plain buffers ([`Buffers`]): a layer is four products
//! ([`Linear::forward_into`]) and loops over rows. The buffers of a decode step live in its
//! [`KvCache`], so a warm step ([`Decoder::step`]) allocates nothing.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;
use half::{bf16, f16};
use phi3v_checkpoint::Phi3VConfig;
use phi3v_linear::gemv::Widen;
use phi3v_linear::act::{add_rows, each_row, silu_mul};
use phi3v_linear::attention::{attend, gather_heads, Rows};
use phi3v_linear::{with_elements, Linear, Scratch, WeightFormat};
use rayon::prelude::*;

use crate::kv::{KvDtype, LayerCache};
use crate::rope::LongRope;

/// Prompt rows processed per forward chunk during prefill: attention scores are
/// `[heads, chunk, past + chunk]`, never `[T, T]`.
pub const PREFILL_CHUNK: usize = 256;

/// Positions the stored input rows grow by (the cache's block).
const INPUT_BLOCK: usize = 512;

/// The widths of the stack.
#[derive(Debug, Clone, Copy)]
struct Shape {
    hidden: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    intermediate: usize,
    vocab: usize,
}

impl Shape {
    /// Width of a qkv row: `(heads + 2 · kv_heads) · head_dim`.
    fn qkv(&self) -> usize {
        (self.heads + 2 * self.kv_heads) * self.head_dim
    }
}

struct RmsNorm {
    weight: Vec<f32>,
    eps: f32,
}

impl RmsNorm {
    fn load(size: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        Ok(Self { weight: vb.get(size, "weight")?.to_dtype(DType::F32)?.to_vec1()?, eps: eps as f32 })
    }

    /// Each row of `x` `[n, H]` → `out` `[n, H]`: `x / √(mean(x²) + eps) · weight`.
    fn forward(&self, x: &[f32], out: &mut [f32]) {
        let h = self.weight.len();
        each_row(out, h, |i, out| {
            let x = &x[i * h..][..h];
            let rms = (x.iter().map(|v| v * v).sum::<f32>() / h as f32 + self.eps).sqrt();
            for ((o, v), w) in out.iter_mut().zip(x).zip(&self.weight) {
                *o = v / rms * w;
            }
        });
    }
}

/// Every intermediate of a forward over `n` rows, reused layer after layer (and, kept in a
/// [`KvCache`], step after step).
#[derive(Default)]
struct Buffers {
    /// `[n, H]`: the residual stream.
    x: Vec<f32>,
    /// `[n, H]`: a norm's output.
    normed: Vec<f32>,
    /// `[n, (heads + 2 · kv_heads) · head_dim]`.
    qkv: Vec<f32>,
    /// `[n, heads · head_dim]`.
    attn: Vec<f32>,
    /// `[n, H]`: `o_proj`'s, then `down_proj`'s output.
    proj: Vec<f32>,
    /// `[n, 2 · I]`.
    gate_up: Vec<f32>,
    /// `[n, I]`: `up · silu(gate)`.
    act: Vec<f32>,
    /// `[n, head_dim / 2]` each.
    cos: Vec<f32>,
    sin: Vec<f32>,
    /// `[heads, cache capacity]`: one row's attention weights.
    scores: Vec<f32>,
    /// `[vocab]`: the last row's logits.
    logits: Vec<f32>,
    linear: Scratch,
}

impl Buffers {
    /// Sizes every buffer for `n` rows (allocating only what grows).
    fn size(&mut self, s: &Shape, n: usize) {
        for (buf, width) in [
            (&mut self.x, s.hidden),
            (&mut self.normed, s.hidden),
            (&mut self.qkv, s.qkv()),
            (&mut self.attn, s.heads * s.head_dim),
            (&mut self.proj, s.hidden),
            (&mut self.gate_up, 2 * s.intermediate),
            (&mut self.act, s.intermediate),
        ] {
            buf.resize(n * width, 0.0);
        }
        self.logits.resize(s.vocab, 0.0);
    }
}

struct Layer {
    input_layernorm: RmsNorm,
    qkv_proj: Linear,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    gate_up_proj: Linear,
    down_proj: Linear,
}

impl Layer {
    fn load(cfg: &Phi3VConfig, s: &Shape, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let (h, eps) = (s.hidden, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: RmsNorm::load(h, eps, vb.pp("input_layernorm"))?,
            qkv_proj: Linear::load(h, s.qkv(), false, format, vb.pp("self_attn.qkv_proj"))?,
            o_proj: Linear::load(s.heads * s.head_dim, h, false, format, vb.pp("self_attn.o_proj"))?,
            post_attention_layernorm: RmsNorm::load(h, eps, vb.pp("post_attention_layernorm"))?,
            gate_up_proj: Linear::load(h, 2 * s.intermediate, false, format, vb.pp("mlp.gate_up_proj"))?,
            down_proj: Linear::load(s.intermediate, h, false, format, vb.pp("mlp.down_proj"))?,
        })
    }

    /// `b.x`: `[n, H]` rows (rotary tables per row in `b.cos`, `b.sin`) → the layer's output in
    /// place; appends the rows' keys and values to their sequences' caches: `n` consecutive
    /// positions of one sequence, or one position of each of `n` sequences.
    fn forward(&self, s: &Shape, b: &mut Buffers, n: usize, seqs: Seqs<'_, '_>) -> Result<()> {
        let (hd, heads, kvh) = (s.head_dim, s.heads, s.kv_heads);
        self.input_layernorm.forward(&b.x, &mut b.normed);
        self.qkv_proj.forward_into(&b.normed, n, &mut b.qkv, &mut b.linear)?;
        let half = hd / 2;
        let (cos, sin) = (&b.cos, &b.sin);
        each_row(&mut b.qkv, s.qkv(), |i, row| LongRope::rotate(&mut row[..(heads + kvh) * hd], &cos[i * half..][..half], &sin[i * half..][..half]));
        let scale = (hd as f64).powf(-0.5) as f32;
        match seqs {
            Seqs::One(cache) => {
                for row in b.qkv.chunks_exact(s.qkv()) {
                    let (k, v) = row[heads * hd..].split_at(kvh * hd);
                    cache.append(k, v);
                }
                if n == 1 {
                    cache.attend_one(&b.qkv[..heads * hd], heads, scale, &mut b.attn, &mut b.scores);
                } else {
                    attend_rows(s, &b.qkv, n, cache, scale, &mut b.attn);
                }
            }
            Seqs::PerRow(caches) => {
                let rows = b.qkv.chunks_exact(s.qkv()).zip(b.attn.chunks_exact_mut(heads * hd));
                for ((row, out), cache) in rows.zip(caches) {
                    let (k, v) = row[heads * hd..].split_at(kvh * hd);
                    cache.append(k, v);
                    cache.attend_one(&row[..heads * hd], heads, scale, out, &mut b.scores);
                }
            }
        }
        self.o_proj.forward_into(&b.attn, n, &mut b.proj, &mut b.linear)?;
        add_rows(&mut b.x, &b.proj, s.hidden);

        self.post_attention_layernorm.forward(&b.x, &mut b.normed);
        self.gate_up_proj.forward_into(&b.normed, n, &mut b.gate_up, &mut b.linear)?;
        let inter = s.intermediate;
        let gate_up = &b.gate_up;
        each_row(&mut b.act, inter, |i, act| {
            let (gate, up) = gate_up[2 * i * inter..][..2 * inter].split_at(inter);
            silu_mul(gate, up, act);
        });
        self.down_proj.forward_into(&b.act, n, &mut b.proj, &mut b.linear)?;
        add_rows(&mut b.x, &b.proj, s.hidden);
        Ok(())
    }
}

/// Whose rows a layer's forward holds.
enum Seqs<'a, 'c> {
    /// Consecutive positions of one sequence.
    One(&'a mut LayerCache),
    /// The next position of each of several sequences, row `i` for `caches[i]`.
    PerRow(Vec<&'c mut LayerCache>),
}

/// Causal attention of `n` rows (the last `n` positions of `cache`), one kv head per task on
/// the rayon pool (its keys and values widened once for the query heads it serves): `qkv`
/// `[n, qkv width]` (queries after RoPE) → `out` `[n, heads · head_dim]`.
fn attend_rows(s: &Shape, qkv: &[f32], n: usize, cache: &LayerCache, scale: f32, out: &mut [f32]) {
    let (hd, heads, kvh) = (s.head_dim, s.heads, s.kv_heads);
    let (group, past) = (heads / kvh, cache.len() - n);
    // [heads][n, hd], gathered into rows after.
    let per_head: Vec<Vec<f32>> = (0..kvh)
        .into_par_iter()
        .map_init(
            || (Vec::new(), Vec::new(), Vec::new()),
            |(k, v, scores), kv_head| {
                cache.head_into(kv_head, k, v);
                let (k, v) = (Rows { data: k, stride: hd }, Rows { data: v, stride: hd });
                (kv_head * group..(kv_head + 1) * group)
                    .map(|head| {
                        let mut o = vec![0f32; n * hd];
                        let q = Rows::columns(qkv, s.qkv(), head * hd);
                        attend(q, k, v, (n, past + n, hd), scale, Some(past), scores, &mut o);
                        o
                    })
                    .collect::<Vec<_>>()
            },
        )
        .flatten()
        .collect();
    gather_heads(&per_head, hd, out);
}

/// What the decoder has seen of one sequence: per-layer keys/values, the input rows while a
/// switch of the rotary factors may still come (to rebuild the cache then), which factors its
/// keys use, and the buffers of its decode steps.
#[derive(Default)]
pub struct KvCache {
    layers: Vec<LayerCache>,
    /// `[len, H]`, kept while the sequence may still cross to the long factors.
    inputs: Vec<f32>,
    len: usize,
    long: bool,
    step: Buffers,
    /// `[H]`: the embedding of a step's token.
    row: Vec<f32>,
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

    /// Keeps input `rows` `[n, H]` while a later forward may still cross to the long rotary
    /// factors (`may_switch`: the model switches at all; the cache has not yet), to rebuild the
    /// cache from then. Grows by blocks.
    fn keep_input(&mut self, rows: &[f32], h: usize, may_switch: bool) {
        if !may_switch || self.long {
            return;
        }
        if self.inputs.len() + rows.len() > self.inputs.capacity() {
            let block = INPUT_BLOCK * h;
            self.inputs.reserve_exact((self.inputs.len() + rows.len()).next_multiple_of(block) - self.inputs.len());
        }
        self.inputs.extend_from_slice(rows);
    }

    /// Drops everything (a new conversation).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Goes back to the first `len` positions (undoing a failed turn). Keys keep the rotary
    /// factors they were written with, so a cache that has switched to the long factors cannot
    /// go back below the switch (`original`, the config's `original_max_position_embeddings`):
    /// it is cleared instead, and `false` returned.
    pub fn truncate(&mut self, len: usize, original: usize) -> bool {
        if len >= self.len {
            return true;
        }
        if self.long && len <= original {
            self.clear();
            return false;
        }
        let width = self.inputs.len().checked_div(self.len).unwrap_or(0);
        self.inputs.truncate(len * width);
        self.layers.iter_mut().for_each(|l| l.truncate(len));
        self.len = len;
        true
    }
}

/// The buffers of [`Decoder::step_batch`], kept by its caller between steps.
#[derive(Default)]
pub struct BatchBuffers {
    b: Buffers,
    /// `[n, vocab]`.
    logits: Vec<f32>,
    /// One row's rotary tables.
    cos: Vec<f32>,
    sin: Vec<f32>,
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
    #[error("a forward needs at least one input row")]
    NoRows,
    #[error(transparent)]
    Tensor(candle_core::Error),
}

impl From<candle_core::Error> for DecoderError {
    /// Keeps candle's message and drops the backtrace it attaches when `RUST_BACKTRACE` is set.
    fn from(e: candle_core::Error) -> Self {
        DecoderError::Tensor(phi3v_linear::without_backtrace(e))
    }
}

/// The text decoder.
pub struct Decoder {
    embed_tokens: Tensor, // [vocab, H]
    layers: Vec<Layer>,
    norm: RmsNorm,
    lm_head: Linear,
    rope: LongRope,
    shape: Shape,
    max_positions: usize,
    kv_dtype: KvDtype,
    device: Device,
}

impl Decoder {
    /// Loads `model.embed_tokens` (in the `VarBuilder`'s dtype), `model.layers.*` and `lm_head`
    /// (matrices in `format`, which must be resolved) and `model.norm`. Activations are f32.
    pub fn load(cfg: &Phi3VConfig, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let shape = Shape {
            hidden: cfg.hidden_size,
            heads: cfg.num_attention_heads,
            kv_heads: cfg.kv_heads(),
            head_dim: cfg.head_dim(),
            intermediate: cfg.intermediate_size,
            vocab: cfg.vocab_size,
        };
        let (h, v) = (shape.hidden, shape.vocab);
        let m = vb.pp("model");
        // Layers load in parallel: reading, converting and quantising are per tensor. A
        // failure is reported for the first bad layer, whichever thread finds it first.
        let layers: Vec<Result<Layer>> = (0..cfg.num_hidden_layers)
            .into_par_iter()
            .map(|i| Layer::load(cfg, &shape, format, m.pp(format!("layers.{i}"))))
            .collect();
        let layers = layers.into_iter().collect::<Result<_>>()?;
        Ok(Self {
            embed_tokens: m.get((v, h), "embed_tokens.weight")?,
            layers,
            norm: RmsNorm::load(h, cfg.rms_norm_eps, m.pp("norm"))?,
            lm_head: Linear::load(h, v, false, format, vb.pp("lm_head"))?,
            rope: LongRope::new(cfg),
            shape,
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

    /// Every matrix: the layers' in order, then `lm_head`.
    pub fn linears(&self) -> impl Iterator<Item = &Linear> {
        self.layer_linears().chain([&self.lm_head])
    }

    /// The layers' matrices, in order.
    fn layer_linears(&self) -> impl Iterator<Item = &Linear> {
        self.layers.iter().flat_map(|l| [&l.qkv_proj, &l.o_proj, &l.gate_up_proj, &l.down_proj])
    }

    /// Multiply-adds of a prefill of `positions` positions into an empty cache: every layer's
    /// matrices for each position, causal attention (`q·k` and the weighted sum of values over
    /// the positions up to each one, per head) and `lm_head` for the last position only.
    pub fn prefill_multiply_adds(&self, positions: usize) -> u64 {
        let s = &self.shape;
        let matrices: u64 = self.layer_linears().map(|m| m.multiply_adds(positions)).sum();
        let attention = (self.layers.len() * s.heads * 2 * s.head_dim * positions * (positions + 1) / 2) as u64;
        matrices + attention + self.lm_head.multiply_adds(1)
    }

    /// Bytes one generated token reads with `context` positions cached: every matrix (the
    /// layers' and `lm_head`) once, and the keys and values of every position in the dtype of
    /// caches this decoder fills. Norms and the one embedding row are left out (< 0.01 %).
    pub fn bytes_per_token(&self, context: usize) -> usize {
        let matrices: usize = self.linears().map(Linear::weight_bytes).sum();
        let s = &self.shape;
        matrices + self.layers.len() * 2 * s.kv_heads * self.kv_dtype.row_bytes(s.head_dim) * context
    }

    /// The most memory a [`KvCache`] of `positions` positions filled by this decoder holds:
    /// keys and values in its cache dtype (allocated by blocks of 512 positions) and, for a
    /// model that may switch to its long rotary factors, the input rows `[positions, H]` kept
    /// until then. A decode step's buffers (a few rows) are left out.
    pub fn cache_bytes(&self, positions: usize) -> usize {
        let s = &self.shape;
        let kv = self.layers.len() * 2 * s.kv_heads * self.kv_dtype.row_bytes(s.head_dim) * positions.next_multiple_of(crate::kv::BLOCK);
        let inputs = if self.rope.is_long(self.max_positions) { positions.next_multiple_of(INPUT_BLOCK) * s.hidden * 4 } else { 0 };
        kv + inputs
    }

    /// Token embeddings `[ids.len(), H]`.
    pub fn embed(&self, ids: &[u32]) -> std::result::Result<Tensor, DecoderError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.shape.vocab) {
            return Err(DecoderError::TokenId { id, vocab: self.shape.vocab });
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
        self.forward_observed(rows, cache, &mut |_| {})
    }

    /// [`Self::forward`], calling `done(k)` each time the first `k` rows are through every
    /// layer (once per chunk of [`PREFILL_CHUNK`] rows).
    pub fn forward_observed(
        &self,
        rows: &Tensor,
        cache: &mut KvCache,
        done: &mut dyn FnMut(usize),
    ) -> std::result::Result<Tensor, DecoderError> {
        let (_, width) = rows.dims2()?;
        if width != self.shape.hidden {
            return Err(DecoderError::Width { got: width, expected: self.shape.hidden });
        }
        let rows = rows.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut buffers = Buffers::default();
        self.run(&rows, cache, &mut buffers, done)?;
        Ok(Tensor::from_slice(&buffers.logits, self.shape.vocab, &self.device)?)
    }

    /// Appends token `id` to the sequence in `cache` and returns the logits `[vocab]` of the
    /// next one: [`Decoder::forward`] of its embedding, with the buffers the cache keeps for
    /// steps. Once they are warm a step allocates nothing, except once every 512 positions
    /// when the cache grows a block (and at the one step that rebuilds it with the long
    /// rotary factors).
    pub fn step<'c>(&self, id: u32, cache: &'c mut KvCache) -> std::result::Result<&'c [f32], DecoderError> {
        let h = self.shape.hidden;
        if id as usize >= self.shape.vocab {
            return Err(DecoderError::TokenId { id, vocab: self.shape.vocab });
        }
        let mut row = std::mem::take(&mut cache.row);
        row.resize(h, 0.0);
        self.embed_into(id, &mut row)?;
        let mut buffers = std::mem::take(&mut cache.step);
        let result = self.run(&row, cache, &mut buffers, &mut |_| {});
        (cache.step, cache.row) = (buffers, row);
        result?;
        Ok(&cache.step.logits)
    }

    /// The embedding of token `id` (checked to be in the vocabulary) into `out` `[H]`.
    fn embed_into(&self, id: u32, out: &mut [f32]) -> std::result::Result<(), DecoderError> {
        let (h, id) = (self.shape.hidden, id as usize);
        match self.embed_tokens.dtype() {
            DType::BF16 => with_elements(&self.embed_tokens, |t: &[bf16]| widen_into(&t[id * h..][..h], out))?,
            DType::F16 => with_elements(&self.embed_tokens, |t: &[f16]| widen_into(&t[id * h..][..h], out))?,
            _ => with_elements(&self.embed_tokens, |t: &[f32]| out.copy_from_slice(&t[id * h..][..h]))?,
        }
        Ok(())
    }

    /// One token for each of several sequences in one pass: `ids[i]` is appended to `caches[i]`
    /// and row `i` of the returned logits `[n, vocab]` is its next token's. Every matrix is read
    /// once for all `n` rows (what makes several streams cost barely more than one); attention
    /// is per sequence, over its own cache. Row by row this is [`Self::step`] on each (the
    /// products are row-independent; a test holds the tokens equal). When one sequence's step
    /// must run on its own (its cache is rebuilt for the long rotary factors, or is still
    /// empty), that step runs every sequence one at a time with [`Self::step`]; it happens once
    /// in a sequence's life.
    pub fn step_batch<'b>(
        &self,
        ids: &[u32],
        caches: &mut [&mut KvCache],
        buffers: &'b mut BatchBuffers,
    ) -> std::result::Result<&'b [f32], DecoderError> {
        let (s, n) = (self.shape, ids.len());
        assert_eq!(n, caches.len(), "one token per sequence");
        if n == 0 {
            return Err(DecoderError::NoRows);
        }
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= s.vocab) {
            return Err(DecoderError::TokenId { id, vocab: s.vocab });
        }
        let alone = |c: &KvCache| c.layers.is_empty() || (!c.long && self.rope.is_long(c.len + 1)) || c.len + 1 > self.max_positions;
        if n == 1 || caches.iter().any(|c| alone(c)) {
            buffers.logits.resize(n * s.vocab, 0.0);
            for (i, (&id, cache)) in ids.iter().zip(caches.iter_mut()).enumerate() {
                let logits = self.step(id, cache)?;
                buffers.logits[i * s.vocab..][..s.vocab].copy_from_slice(logits);
            }
            return Ok(&buffers.logits);
        }
        let (b, h, half) = (&mut buffers.b, s.hidden, s.head_dim / 2);
        b.size(&s, n);
        b.cos.clear();
        b.sin.clear();
        for (i, (&id, cache)) in ids.iter().zip(caches.iter_mut()).enumerate() {
            self.embed_into(id, &mut b.x[i * h..][..h])?;
            cache.keep_input(&b.x[i * h..][..h], h, self.rope.is_long(self.max_positions));
            self.rope.fill(cache.len, 1, cache.long, &mut buffers.cos, &mut buffers.sin);
            b.cos.extend_from_slice(&buffers.cos[..half]);
            b.sin.extend_from_slice(&buffers.sin[..half]);
        }
        for (l, layer) in self.layers.iter().enumerate() {
            let layer_caches = caches.iter_mut().map(|c| &mut c.layers[l]).collect();
            layer.forward(&s, b, n, Seqs::PerRow(layer_caches))?;
        }
        caches.iter_mut().for_each(|c| c.len += 1);
        self.norm.forward(&b.x, &mut b.normed);
        buffers.logits.resize(n * s.vocab, 0.0);
        self.lm_head.forward_into(&b.normed, n, &mut buffers.logits, &mut b.linear)?;
        Ok(&buffers.logits)
    }

    /// The forward of `rows` `[n, H]` into `cache`, the last row's logits left in `b.logits`.
    fn run(&self, rows: &[f32], cache: &mut KvCache, b: &mut Buffers, done: &mut dyn FnMut(usize)) -> std::result::Result<(), DecoderError> {
        let h = self.shape.hidden;
        let n = rows.len() / h;
        if n == 0 {
            return Err(DecoderError::NoRows);
        }
        let total = cache.len + n;
        if total > self.max_positions {
            return Err(DecoderError::TooLong { len: total, max: self.max_positions });
        }
        let long = self.rope.is_long(total);
        if long && !cache.long && !cache.is_empty() {
            // Rebuild with the long factors, in buffers of its own (a prefill's worth).
            let mut all = std::mem::take(&mut cache.inputs);
            all.extend_from_slice(rows);
            (cache.layers, cache.len) = (Vec::new(), 0);
            let mut rebuild = Buffers::default();
            let earlier = all.len() / h - n;
            self.run(&all, cache, &mut rebuild, &mut |k| done(k.saturating_sub(earlier)))?;
            b.logits.clone_from(&rebuild.logits);
            return Ok(());
        }
        if cache.layers.is_empty() {
            let s = &self.shape;
            cache.layers = self.layers.iter().map(|_| LayerCache::new(self.kv_dtype, s.kv_heads, s.head_dim)).collect();
        }
        cache.long = long;
        cache.keep_input(rows, h, self.rope.is_long(self.max_positions));
        let (mut last, mut through) = (0, 0);
        for chunk in rows.chunks(PREFILL_CHUNK * h) {
            let len = chunk.len() / h;
            b.size(&self.shape, len);
            b.x.copy_from_slice(chunk);
            self.rope.fill(cache.len, len, long, &mut b.cos, &mut b.sin);
            for (layer, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
                layer.forward(&self.shape, b, len, Seqs::One(lc))?;
            }
            cache.len += len;
            last = len - 1;
            through += len;
            done(through);
        }
        self.norm.forward(&b.x[last * h..][..h], &mut b.normed[..h]);
        self.lm_head.forward_into(&b.normed[..h], 1, &mut b.logits, &mut b.linear)?;
        Ok(())
    }
}

/// `out[i] = row[i]` widened to f32.
fn widen_into<T: Widen>(row: &[T], out: &mut [f32]) {
    out.iter_mut().zip(row).for_each(|(o, v)| *o = v.widen());
}

/// Index of the largest value of a `[vocab]` logits tensor.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    logits.argmax(D::Minus1)?.to_scalar::<u32>()
}
