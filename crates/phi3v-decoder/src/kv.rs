//! One layer's key/value cache, in f32, f16 or int8, and attention of a single new row
//! against it (the decode step) without going through a matrix multiply or allocating.

use std::str::FromStr;

use half::f16;
use phi3v_linear::act::softmax;
use phi3v_linear::gemv::Widen;
use rayon::prelude::*;

/// How cached keys and values are stored. For Phi-3-mini (32 kv heads of 96) one position
/// takes 786 KB in f32, 393 KB in f16 and 205 KB in int8 over the 32 layers, and each decode
/// step reads the whole cache once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDtype {
    /// The reference arithmetic, exactly.
    #[default]
    F32,
    /// Rounded to f16: about 5e-4 relative per value.
    F16,
    /// int8 with one f32 scale per position and head (its largest magnitude maps to 127):
    /// about 4e-3 of that largest value per element.
    Q8,
}

impl KvDtype {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Q8 => "q8",
        }
    }

    /// Bytes of one cached row (the keys or the values of one position and kv head).
    pub fn row_bytes(self, head_dim: usize) -> usize {
        match self {
            Self::F32 => 4 * head_dim,
            Self::F16 => 2 * head_dim,
            Self::Q8 => head_dim + 4,
        }
    }
}

/// A name that is not a [`KvDtype`].
#[derive(Debug, thiserror::Error)]
#[error("unknown KV cache dtype {0:?} (expected f32, f16 or q8)")]
pub struct UnknownKvDtype(String);

impl FromStr for KvDtype {
    type Err = UnknownKvDtype;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [Self::F32, Self::F16, Self::Q8].into_iter().find(|d| d.name() == s).ok_or_else(|| UnknownKvDtype(s.to_string()))
    }
}

/// Positions the buffers grow by: appending writes into spare room, and a new block is added
/// every `BLOCK` positions.
pub(crate) const BLOCK: usize = 512;

/// A cached element type.
trait Cached: Widen + Default {
    /// Whether each row carries a scale (int8); other types store rows as they round.
    const SCALED: bool;
    /// Writes `row` into `out` and returns the scale to multiply the stored values by.
    fn encode(row: &[f32], out: &mut [Self]) -> f32;
}

impl Cached for f32 {
    const SCALED: bool = false;
    fn encode(row: &[f32], out: &mut [Self]) -> f32 {
        out.copy_from_slice(row);
        1.0
    }
}

impl Cached for f16 {
    const SCALED: bool = false;
    fn encode(row: &[f32], out: &mut [Self]) -> f32 {
        out.iter_mut().zip(row).for_each(|(o, v)| *o = f16::from_f32(*v));
        1.0
    }
}

impl Cached for i8 {
    const SCALED: bool = true;
    fn encode(row: &[f32], out: &mut [Self]) -> f32 {
        let scale = row.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
        out.iter_mut().zip(row).for_each(|(o, v)| *o = (v * inv).round() as i8);
        scale
    }
}

/// The shape of a layer's buffers: `[kv_heads, capacity, head_dim]`, the first `len`
/// positions of each head filled.
#[derive(Clone, Copy)]
struct Dims {
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

/// The keys or the values of one layer: rows `[kv_heads, capacity, head_dim]` and, for a
/// scaled type, one scale per row `[kv_heads, capacity]`.
struct Rows<T> {
    data: Vec<T>,
    scales: Vec<f32>,
}

impl<T: Cached> Rows<T> {
    fn new() -> Self {
        Self { data: Vec::new(), scales: Vec::new() }
    }

    /// Row `i` (`head · capacity + position`).
    fn row(&self, i: usize, hd: usize) -> &[T] {
        &self.data[i * hd..][..hd]
    }

    fn scale(&self, i: usize) -> f32 {
        if T::SCALED {
            self.scales[i]
        } else {
            1.0
        }
    }

    /// Moves the filled positions of each head to buffers of capacity `cap`.
    fn grow(&mut self, d: Dims, cap: usize) {
        let (heads, hd, len, old) = (d.kv_heads, d.head_dim, d.len, d.capacity);
        let mut data = vec![T::default(); heads * cap * hd];
        let mut scales = vec![0f32; if T::SCALED { heads * cap } else { 0 }];
        for h in 0..heads {
            data[h * cap * hd..][..len * hd].copy_from_slice(&self.data[h * old * hd..][..len * hd]);
            if T::SCALED {
                scales[h * cap..][..len].copy_from_slice(&self.scales[h * old..][..len]);
            }
        }
        (self.data, self.scales) = (data, scales);
    }

    /// Stores `values` `[kv_heads, head_dim]` at position `len`.
    fn put(&mut self, values: &[f32], d: Dims) {
        let (hd, len, cap) = (d.head_dim, d.len, d.capacity);
        for (h, row) in values.chunks_exact(hd).enumerate() {
            let at = h * cap + len;
            let scale = T::encode(row, &mut self.data[at * hd..][..hd]);
            if T::SCALED {
                self.scales[at] = scale;
            }
        }
    }

    /// The filled positions of head `h`, widened and scaled to f32 into `out`: `[len, head_dim]`.
    fn widen_into(&self, h: usize, d: Dims, out: &mut Vec<f32>) {
        let (hd, len, cap) = (d.head_dim, d.len, d.capacity);
        out.clear();
        out.extend((h * cap..h * cap + len).flat_map(|i| {
            let scale = self.scale(i);
            self.row(i, hd).iter().map(move |v| v.widen() * scale)
        }));
    }
}

/// What a [`LayerCache`] needs of its two buffers, whatever their element type.
trait Store: Send + Sync {
    fn grow(&mut self, d: Dims, cap: usize);
    fn put(&mut self, k: &[f32], v: &[f32], d: Dims);
    fn head_into(&self, h: usize, d: Dims, k: &mut Vec<f32>, v: &mut Vec<f32>);
    fn attend(&self, q: &[f32], heads: usize, scale: f32, d: Dims, out: &mut [f32], scores: &mut [f32]);
}

/// Keys and values in one element type.
struct Pair<T> {
    k: Rows<T>,
    v: Rows<T>,
}

impl<T: Cached> Store for Pair<T> {
    fn grow(&mut self, d: Dims, cap: usize) {
        self.k.grow(d, cap);
        self.v.grow(d, cap);
    }

    fn put(&mut self, k: &[f32], v: &[f32], d: Dims) {
        self.k.put(k, d);
        self.v.put(v, d);
    }

    fn head_into(&self, h: usize, d: Dims, k: &mut Vec<f32>, v: &mut Vec<f32>) {
        self.k.widen_into(h, d, k);
        self.v.widen_into(h, d, v);
    }

    fn attend(&self, q: &[f32], heads: usize, scale: f32, d: Dims, out: &mut [f32], scores: &mut [f32]) {
        let (hd, len, cap) = (d.head_dim, d.len, d.capacity);
        let group = heads / d.kv_heads;
        let kernels = T::kernels();
        out.fill(0.0);
        out.par_chunks_mut(hd).zip(scores.par_chunks_mut(cap)).enumerate().for_each(|(h, (out, scores))| {
            let (rows, q) = (h / group * cap..h / group * cap + len, &q[h * hd..][..hd]);
            let scores = &mut scores[..len];
            for (s, i) in scores.iter_mut().zip(rows.clone()) {
                *s = kernels.dot(self.k.row(i, hd), q) * self.k.scale(i) * scale;
            }
            softmax(scores, 1.0);
            for (p, i) in scores.iter().zip(rows) {
                kernels.axpy(p * self.v.scale(i), self.v.row(i, hd), out);
            }
        });
    }
}

/// Keys (after RoPE) and values of one layer.
pub(crate) struct LayerCache {
    store: Box<dyn Store>,
    dims: Dims,
}

impl LayerCache {
    pub fn new(dtype: KvDtype, kv_heads: usize, head_dim: usize) -> Self {
        fn pair<T: Cached>() -> Box<dyn Store> {
            Box::new(Pair::<T> { k: Rows::new(), v: Rows::new() })
        }
        let store = match dtype {
            KvDtype::F32 => pair::<f32>(),
            KvDtype::F16 => pair::<f16>(),
            KvDtype::Q8 => pair::<i8>(),
        };
        Self { store, dims: Dims { kv_heads, head_dim, capacity: 0, len: 0 } }
    }

    /// Appends the keys and values `[kv_heads, head_dim]` (f32) of the next position. Allocates
    /// only when the buffers grow by a block, once every [`BLOCK`] positions.
    pub fn append(&mut self, k: &[f32], v: &[f32]) {
        let d = &mut self.dims;
        assert_eq!((k.len(), v.len()), (d.kv_heads * d.head_dim, d.kv_heads * d.head_dim), "one position's keys and values");
        if d.len == d.capacity {
            let capacity = d.capacity + BLOCK;
            self.store.grow(*d, capacity);
            d.capacity = capacity;
        }
        self.store.put(k, v, *d);
        d.len += 1;
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.dims.len
    }

    /// Forgets the positions from `len` on.
    pub fn truncate(&mut self, len: usize) {
        self.dims.len = self.dims.len.min(len);
    }

    /// Keys and values of kv head `head` at the filled positions, widened to f32 into `k`
    /// and `v` (`[len, head_dim]` each), for attention of many rows at once (prefill).
    pub fn head_into(&self, head: usize, k: &mut Vec<f32>, v: &mut Vec<f32>) {
        self.store.head_into(head, self.dims, k, v)
    }

    /// Softmax attention of one query row per head over every filled position, into `out`.
    ///
    /// `q`: `[heads, head_dim]` (after RoPE); query head `h` reads kv head
    /// `h / (heads / kv_heads)`. `out`: `[heads, head_dim]`. `scores` holds the weights,
    /// `[heads, capacity]`; it is resized (allocating) only when the cache has grown.
    pub fn attend_one(&self, q: &[f32], heads: usize, scale: f32, out: &mut [f32], scores: &mut Vec<f32>) {
        let d = self.dims;
        assert_eq!((q.len(), out.len()), (heads * d.head_dim, heads * d.head_dim), "one row of {heads} heads");
        if scores.len() < heads * d.capacity {
            scores.resize(heads * d.capacity, 0.0);
        }
        self.store.attend(q, heads, scale, d, out, &mut scores[..heads * d.capacity]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 1000) as f32 - 500.0) / 300.0).collect()
    }

    /// Attention of one row computed with candle in f32: the reference for `attend_one`.
    fn reference(k: &Tensor, v: &Tensor, q: &[f32], heads: usize, scale: f64) -> Vec<f32> {
        let (kvh, _, hd) = k.dims3().unwrap();
        let q = Tensor::from_slice(q, (kvh, heads / kvh, hd), &Device::Cpu).unwrap();
        let scores = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        probs.matmul(v).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn appends_across_blocks_and_attends_like_a_matmul() {
        // 4 query heads on 2 kv heads, head_dim 40 (tails of the 32-wide kernels); the cache
        // grows past one block in uneven appends.
        let (kvh, hd, heads) = (2, 40, 4);
        for (dtype, tol) in [(KvDtype::F32, 1e-5), (KvDtype::F16, 2e-3), (KvDtype::Q8, 5e-3)] {
            let mut cache = LayerCache::new(dtype, kvh, hd);
            let mut all_k = Vec::new();
            let mut all_v = Vec::new();
            for (i, n) in [300, 1, 250, 7].into_iter().enumerate() {
                // Positions [n, kv_heads, head_dim] appended one at a time; the reference is
                // [kv_heads, n, head_dim].
                let (k, v) = (values(n * kvh * hd, i), values(n * kvh * hd, i + 9));
                for (k, v) in k.chunks_exact(kvh * hd).zip(v.chunks_exact(kvh * hd)) {
                    cache.append(k, v);
                }
                let heads_first = |x: Vec<f32>| Tensor::from_vec(x, (n, kvh, hd), &Device::Cpu).unwrap().transpose(0, 1).unwrap();
                all_k.push(heads_first(k));
                all_v.push(heads_first(v));
            }
            assert_eq!((cache.dims.len, cache.dims.capacity), (558, 1024));
            let (k, v) = (Tensor::cat(&all_k, 1).unwrap(), Tensor::cat(&all_v, 1).unwrap());
            let (ck, cv): (Vec<Tensor>, Vec<Tensor>) = (0..kvh)
                .map(|h| {
                    let (mut k, mut v) = (Vec::new(), Vec::new());
                    cache.head_into(h, &mut k, &mut v);
                    let tensor = |x: Vec<f32>| Tensor::from_vec(x, (558, hd), &Device::Cpu).unwrap();
                    (tensor(k), tensor(v))
                })
                .unzip();
            let (ck, cv) = (Tensor::stack(&ck, 0).unwrap(), Tensor::stack(&cv, 0).unwrap());
            assert_eq!((cache.len(), ck.dims()), (558, [kvh, 558, hd].as_slice()));
            let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&ck, &k) <= tol * 4.0 && diff(&cv, &v) <= tol * 4.0, "{dtype:?}: stored values differ");
            let q = values(heads * hd, 3);
            let want = reference(&k, &v, &q, heads, 0.15);
            let mut got = vec![f32::NAN; heads * hd];
            cache.attend_one(&q, heads, 0.15, &mut got, &mut Vec::new());
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{dtype:?}: {g} vs {w}");
            }
        }
        assert_eq!("f16".parse::<KvDtype>().unwrap(), KvDtype::F16);
        assert_eq!("q8".parse::<KvDtype>().unwrap(), KvDtype::Q8);
        assert!("bf16".parse::<KvDtype>().unwrap_err().to_string().contains("bf16"));
    }
}
