//! Softmax attention of one head over many query rows (prefill, CLIP) on f32 rows read in
//! place: scores `q·kᵀ` through the `gemm` crate's kernel, the softmax of [`act`](crate::act)
//! row by row (causally where asked), then `·v`. Queries, keys and values are read where they
//! lie (a head's columns of wider rows), so a caller splits nothing into per-head copies, and
//! one head runs on one thread: callers spread heads over the pool.

use rayon::prelude::*;

use crate::act::softmax;
use crate::gemm::product;

/// A matrix inside a slice: element `(i, j)` is `data[i · stride + j]`.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl<'a> Rows<'a> {
    /// Columns `start ..` of `data` taken as rows of `stride` values.
    pub fn columns(data: &'a [f32], stride: usize, start: usize) -> Self {
        Self { data: &data[start.min(data.len())..], stride }
    }

    /// Panics unless `rows` rows of `width` values fit.
    fn check(&self, rows: usize, width: usize, what: &str) {
        let needed = if rows == 0 { 0 } else { (rows - 1) * self.stride + width };
        assert!(width <= self.stride && needed <= self.data.len(), "attention: {what} needs {rows} rows of {width} at stride {}", self.stride);
    }
}

/// One head: `out` `[n, d]` (row-major) ← `softmax(scale · q·kᵀ)·v` for `q` `[n, d]` against
/// `k`, `v` `[t, d]`. With `causal = Some(past)`, query row `i` sees keys `0 ..= past + i` only
/// (the rows are the last `n` of `past + n` positions; then `t = past + n`). `scores` is
/// scratch (`n · t` values; it allocates only when it grows).
#[allow(clippy::too_many_arguments)]
pub fn attend(q: Rows, k: Rows, v: Rows, (n, t, d): (usize, usize, usize), scale: f32, causal: Option<usize>, scores: &mut Vec<f32>, out: &mut [f32]) {
    q.check(n, d, "queries");
    k.check(t, d, "keys");
    v.check(t, d, "values");
    assert_eq!(out.len(), n * d, "attention: output is not [{n}, {d}]");
    if let Some(past) = causal {
        assert_eq!(past + n, t, "attention: {n} causal rows after {past} positions need {} keys, not {t}", past + n);
    }
    if n == 0 {
        return;
    }
    scores.resize(n * t, 0.0);
    // SAFETY: the extents were checked above: q is [n, d] at q.stride, kᵀ is read as element
    // (i, j) = k[j · k.stride + i] for i < d, j < t, and scores is [n, t].
    unsafe { product((n, t, d), (scores.as_mut_ptr(), t, 1), (q.data.as_ptr(), q.stride, 1), (k.data.as_ptr(), 1, k.stride)) }
    for (i, row) in scores.chunks_exact_mut(t).enumerate() {
        let seen = causal.map_or(t, |past| past + i + 1);
        softmax(&mut row[..seen], scale);
        row[seen..].fill(0.0);
    }
    // SAFETY: scores is [n, t], v is [t, d] at v.stride (checked), out is [n, d].
    unsafe { product((n, d, t), (out.as_mut_ptr(), d, 1), (scores.as_ptr(), t, 1), (v.data.as_ptr(), v.stride, 1)) }
}

/// `out` `[n, heads · d]` ← each head's `[n, d]` output (`per_head[h]`) in its columns, rows in
/// parallel.
pub fn gather_heads(per_head: &[Vec<f32>], d: usize, out: &mut [f32]) {
    let width = per_head.len() * d;
    assert!(per_head.iter().all(|h| h.len() * per_head.len() == out.len()), "attention: heads do not fill [{}, {width}]", out.len() / width.max(1));
    out.par_chunks_exact_mut(width).enumerate().for_each(|(i, row)| {
        for (o, head) in row.chunks_exact_mut(d).zip(per_head) {
            o.copy_from_slice(&head[i * d..][..d]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_direct_sum_with_and_without_the_causal_mask() {
        // Two heads side by side in rows of 2·d + 3 (q, k and v in one buffer, as CLIP's qkv).
        let (t, d) = (23, 5);
        let width = 3 * 2 * d + 3;
        let data: Vec<f32> = (0..t * width).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 300.0).collect();
        for (head, causal) in [(0, None), (1, None), (1, Some(16)), (0, Some(0))] {
            let n = causal.map_or(t, |past| t - past);
            let first = t - n;
            let q = Rows::columns(&data[first * width..], width, head * d);
            let (k, v) = (Rows::columns(&data, width, 2 * d + head * d), Rows::columns(&data, width, 4 * d + head * d));
            let mut out = vec![f32::NAN; n * d];
            attend(q, k, v, (n, t, d), 0.4, causal, &mut Vec::new(), &mut out);
            for i in 0..n {
                let seen = causal.map_or(t, |past| past + i + 1);
                let dot = |j: usize| (0..d).map(|c| q.data[i * width + c] as f64 * k.data[j * width + c] as f64).sum::<f64>() * 0.4;
                let max = (0..seen).map(dot).fold(f64::MIN, f64::max);
                let weights: Vec<f64> = (0..seen).map(|j| (dot(j) - max).exp()).collect();
                let sum: f64 = weights.iter().sum();
                for c in 0..d {
                    let want: f64 = weights.iter().enumerate().map(|(j, w)| w / sum * v.data[j * width + c] as f64).sum();
                    let got = out[i * d + c] as f64;
                    assert!((got - want).abs() <= 1e-5 * (1.0 + want.abs()), "head {head} {causal:?} ({i}, {c}): {got} vs {want}");
                }
            }
        }
    }

    #[test]
    fn heads_gather_into_their_columns() {
        let per_head: Vec<Vec<f32>> = (0..3).map(|h| (0..4 * 2).map(|i| (10 * h + i) as f32).collect()).collect();
        let mut out = vec![0f32; 4 * 6];
        gather_heads(&per_head, 2, &mut out);
        // Row i holds head 0's (2i, 2i + 1), then head 1's, then head 2's.
        assert_eq!(&out[6..12], &[2.0, 3.0, 12.0, 13.0, 22.0, 23.0]);
    }
}
