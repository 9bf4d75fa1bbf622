//! One layer's key/value cache, in f32 or f16, and attention of a single new row against it
//! (the decode step) without going through a matrix multiply.

use std::str::FromStr;

use candle_core::{Device, Result, Tensor};
use half::f16;
use phi3v_linear::gemv::Half;
use rayon::prelude::*;

/// How cached keys and values are stored. f16 halves the cache (393 KB instead of 786 KB per
/// position for Phi-3-mini) and the bytes each decode step reads, at a relative rounding of
/// about 5e-4 per value; f32 keeps the reference arithmetic exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvDtype {
    #[default]
    F32,
    F16,
}

impl KvDtype {
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
        }
    }
}

/// A name that is not a [`KvDtype`].
#[derive(Debug, thiserror::Error)]
#[error("unknown KV cache dtype {0:?} (expected f32 or f16)")]
pub struct UnknownKvDtype(String);

impl FromStr for KvDtype {
    type Err = UnknownKvDtype;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        [Self::F32, Self::F16].into_iter().find(|d| d.name() == s).ok_or_else(|| UnknownKvDtype(s.to_string()))
    }
}

/// Positions the buffers grow by: appending writes into spare room, and a new block is added
/// every `BLOCK` positions.
const BLOCK: usize = 512;

/// A cached element: f32, or f16 widened on the fly.
trait Elem: Copy + Default + Send + Sync {
    fn from_f32(v: f32) -> Self;
    fn to_f32(self) -> f32;
    /// `Σ a[i]·x[i]`.
    fn dot(a: &[Self], x: &[f32]) -> f32;
    /// `y += s·a`.
    fn axpy(s: f32, a: &[Self], y: &mut [f32]);
}

impl Elem for f32 {
    fn from_f32(v: f32) -> Self {
        v
    }
    fn to_f32(self) -> f32 {
        self
    }
    fn dot(a: &[Self], x: &[f32]) -> f32 {
        a.iter().zip(x).map(|(a, x)| a * x).sum()
    }
    fn axpy(s: f32, a: &[Self], y: &mut [f32]) {
        y.iter_mut().zip(a).for_each(|(y, a)| *y += s * a);
    }
}

impl Elem for f16 {
    fn from_f32(v: f32) -> Self {
        f16::from_f32(v)
    }
    fn to_f32(self) -> f32 {
        self.widen()
    }
    fn dot(a: &[Self], x: &[f32]) -> f32 {
        Half::dot(a, x)
    }
    fn axpy(s: f32, a: &[Self], y: &mut [f32]) {
        Half::axpy(s, a, y)
    }
}

enum Store {
    F32 { k: Vec<f32>, v: Vec<f32> },
    F16 { k: Vec<f16>, v: Vec<f16> },
}

/// Keys (after RoPE) and values of one layer: `[kv_heads, capacity, head_dim]` buffers, the
/// first `len` positions of each head filled.
pub(crate) struct LayerCache {
    store: Store,
    kv_heads: usize,
    head_dim: usize,
    capacity: usize,
    len: usize,
}

impl LayerCache {
    pub fn new(dtype: KvDtype, kv_heads: usize, head_dim: usize) -> Self {
        let store = match dtype {
            KvDtype::F32 => Store::F32 { k: Vec::new(), v: Vec::new() },
            KvDtype::F16 => Store::F16 { k: Vec::new(), v: Vec::new() },
        };
        Self { store, kv_heads, head_dim, capacity: 0, len: 0 }
    }

    /// Appends keys and values `[kv_heads, n, head_dim]` (f32).
    pub fn append(&mut self, k: &Tensor, v: &Tensor) -> Result<()> {
        let n = k.dim(1)?;
        let (k, v) = (k.flatten_all()?.to_vec1::<f32>()?, v.flatten_all()?.to_vec1::<f32>()?);
        let (heads, hd, len) = (self.kv_heads, self.head_dim, self.len);
        let capacity = if len + n > self.capacity { (len + n).next_multiple_of(BLOCK) } else { self.capacity };
        fn put<T: Elem>(buf: &mut Vec<T>, new: &[f32], (heads, hd, len, n): (usize, usize, usize, usize), (old, cap): (usize, usize)) {
            if cap != old {
                let mut grown = phi3v_linear::huge::with_capacity(heads * cap * hd);
                grown.resize(heads * cap * hd, T::default());
                for h in 0..heads {
                    grown[h * cap * hd..][..len * hd].copy_from_slice(&buf[h * old * hd..][..len * hd]);
                }
                *buf = grown;
            }
            for h in 0..heads {
                let dst = &mut buf[(h * cap + len) * hd..][..n * hd];
                dst.iter_mut().zip(&new[h * n * hd..][..n * hd]).for_each(|(d, s)| *d = T::from_f32(*s));
            }
        }
        let dims = (heads, hd, len, n);
        let sizes = (self.capacity, capacity);
        match &mut self.store {
            Store::F32 { k: kb, v: vb } => {
                put(kb, &k, dims, sizes);
                put(vb, &v, dims, sizes);
            }
            Store::F16 { k: kb, v: vb } => {
                put(kb, &k, dims, sizes);
                put(vb, &v, dims, sizes);
            }
        }
        self.capacity = capacity;
        self.len += n;
        Ok(())
    }

    /// Positions held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Keys and values of kv head `head` at the filled positions as f32 tensors
    /// `[len, head_dim]`, for attention of many rows at once (prefill), one head at a time so
    /// that no more than one head's scores and widened cache exist at once.
    pub fn head(&self, head: usize, device: &Device) -> Result<(Tensor, Tensor)> {
        match &self.store {
            Store::F32 { k, v } => Ok((self.filled(k, head, device)?, self.filled(v, head, device)?)),
            Store::F16 { k, v } => Ok((self.filled(k, head, device)?, self.filled(v, head, device)?)),
        }
    }

    /// The filled positions of one head of one buffer, widened to f32: `[len, head_dim]`.
    fn filled<T: Elem>(&self, buf: &[T], head: usize, device: &Device) -> Result<Tensor> {
        let (hd, len, cap) = (self.head_dim, self.len, self.capacity);
        let rows: Vec<f32> = buf[head * cap * hd..][..len * hd].iter().map(|v| v.to_f32()).collect();
        Tensor::from_vec(rows, (len, hd), device)
    }

    /// Softmax attention of one query row per head over every filled position.
    ///
    /// `q`: `[heads, head_dim]` (after RoPE); query head `h` reads kv head
    /// `h / (heads / kv_heads)`. Returns `[heads, head_dim]`.
    pub fn attend_one(&self, q: &[f32], heads: usize, scale: f32) -> Vec<f32> {
        match &self.store {
            Store::F32 { k, v } => self.attend(k, v, q, heads, scale),
            Store::F16 { k, v } => self.attend(k, v, q, heads, scale),
        }
    }

    fn attend<T: Elem>(&self, k: &[T], v: &[T], q: &[f32], heads: usize, scale: f32) -> Vec<f32> {
        let (hd, len, cap) = (self.head_dim, self.len, self.capacity);
        let group = heads / self.kv_heads;
        let mut out = vec![0f32; heads * hd];
        out.par_chunks_mut(hd).enumerate().for_each(|(h, out)| {
            let base = h / group * cap * hd;
            let (k, v, q) = (&k[base..][..len * hd], &v[base..][..len * hd], &q[h * hd..][..hd]);
            let mut scores: Vec<f32> = k.chunks_exact(hd).map(|key| T::dot(key, q) * scale).collect();
            let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let mut sum = 0.0;
            for s in &mut scores {
                *s = (*s - max).exp();
                sum += *s;
            }
            for (p, value) in scores.iter().zip(v.chunks_exact(hd)) {
                T::axpy(p / sum, value, out);
            }
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        for (dtype, tol) in [(KvDtype::F32, 1e-5), (KvDtype::F16, 2e-3)] {
            let mut cache = LayerCache::new(dtype, kvh, hd);
            let mut all_k = Vec::new();
            let mut all_v = Vec::new();
            for (i, n) in [300, 1, 250, 7].into_iter().enumerate() {
                let k = Tensor::from_vec(values(kvh * n * hd, i), (kvh, n, hd), &Device::Cpu).unwrap();
                let v = Tensor::from_vec(values(kvh * n * hd, i + 9), (kvh, n, hd), &Device::Cpu).unwrap();
                cache.append(&k, &v).unwrap();
                all_k.push(k);
                all_v.push(v);
            }
            assert_eq!((cache.len, cache.capacity), (558, 1024));
            let (k, v) = (Tensor::cat(&all_k, 1).unwrap(), Tensor::cat(&all_v, 1).unwrap());
            let (ck, cv): (Vec<Tensor>, Vec<Tensor>) = (0..kvh).map(|h| cache.head(h, &Device::Cpu).unwrap()).unzip();
            let (ck, cv) = (Tensor::stack(&ck, 0).unwrap(), Tensor::stack(&cv, 0).unwrap());
            assert_eq!((cache.len(), ck.dims()), (558, [kvh, 558, hd].as_slice()));
            let diff = |a: &Tensor, b: &Tensor| (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(diff(&ck, &k) <= tol * 4.0 && diff(&cv, &v) <= tol * 4.0, "{dtype:?}: stored values differ");
            let q = values(heads * hd, 3);
            let want = reference(&k, &v, &q, heads, 0.15);
            let got = cache.attend_one(&q, heads, 0.15);
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{dtype:?}: {g} vs {w}");
            }
        }
        assert_eq!("f16".parse::<KvDtype>().unwrap(), KvDtype::F16);
        assert!("bf16".parse::<KvDtype>().unwrap_err().to_string().contains("bf16"));
    }
}
