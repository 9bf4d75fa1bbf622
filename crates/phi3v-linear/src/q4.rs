//! int4 weights, 32 to a group with one f32 scale, used as stored.
//!
//! Row `r`, group `g` of a `[n, k]` matrix holds 32 weights `w ≈ scale · (q − 8)` with
//! `q ∈ 0..=15`, the scale chosen so the largest-magnitude weight maps to `−8` exactly (so both
//! signs keep 4 bits of resolution). Byte `j` of a group holds `q[j]` in its low nibble and
//! `q[j + 16]` in its high nibble. 20 bytes per 32 weights: 0.625 byte per weight.
//!
//! Few rows (decode): the input rows are quantised to int8 per group of 32 (`x ≈ d · p`), and
//! each group's dot product is integer: `Σ q·p` with AVX2 `vpmaddubsw`/`vpmaddwd`, then
//! `scale · d · (Σ q·p − 8 Σ p)` in f32. Many rows (prefill, CLIP): 128 output rows at a time
//! are dequantised into a cache-sized f32 buffer for the f32 GEMM, the input stays f32.

use std::ops::Range;

use crate::{gemm, gemv};

/// Weights per group (one scale each).
pub const GROUP: usize = 32;

/// A `[n, k]` int4 matrix (`k` a multiple of [`GROUP`]).
pub struct Q4Matrix {
    n: usize,
    k: usize,
    /// `[n, k / 32]`.
    scales: Vec<f32>,
    /// `[n, k / 2]`: 16 bytes per group.
    quants: Vec<u8>,
}

impl Q4Matrix {
    /// Quantises `w` `[n, k]` (row-major). `k` must be a multiple of [`GROUP`].
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert!(k.is_multiple_of(GROUP) && w.len() == n * k, "int4 weights need [n, k] with k a multiple of {GROUP}");
        let groups = w.len() / GROUP;
        let mut scales = Vec::with_capacity(groups);
        let mut quants = vec![0u8; w.len() / 2];
        for (group, q) in w.chunks_exact(GROUP).zip(quants.chunks_exact_mut(GROUP / 2)) {
            // The value of largest magnitude, with its sign, becomes −8.
            let max = group.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
            let scale = max / -8.0;
            let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
            let level = |v: f32| ((v * inv + 8.5) as u8).min(15);
            for (j, byte) in q.iter_mut().enumerate() {
                *byte = level(group[j]) | (level(group[j + GROUP / 2]) << 4);
            }
            scales.push(scale);
        }
        Self { n, k, scales, quants }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.scales.len() * 4 + self.quants.len()
    }

    /// Appends rows `rows` as f32 (`[rows.len(), k]`) to `out`.
    pub fn dequantize_rows(&self, rows: Range<usize>, out: &mut Vec<f32>) {
        let groups = rows.start * self.k / GROUP..rows.end * self.k / GROUP;
        for g in groups {
            let q = &self.quants[g * GROUP / 2..(g + 1) * GROUP / 2];
            let scale = self.scales[g];
            out.extend(q.iter().map(|b| scale * ((b & 15) as f32 - 8.0)));
            out.extend(q.iter().map(|b| scale * ((b >> 4) as f32 - 8.0)));
        }
    }

    /// `xs` `[m, k]` → `[m, n]`: the int8 mat-vec, one pass over the weights for all `m` rows.
    pub fn matvec(&self, xs: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(xs.len(), m * self.k, "input is not [{m}, {}]", self.k);
        let rows: Vec<QuantRow> = xs.chunks_exact(self.k).map(QuantRow::new).collect();
        let per_row = self.k / GROUP;
        gemv::by_output_rows(self.n, m, |r, out| {
            let q = &self.quants[r * self.k / 2..(r + 1) * self.k / 2];
            let scales = &self.scales[r * per_row..(r + 1) * per_row];
            for (o, x) in out.iter_mut().zip(&rows) {
                *o = dot(q, scales, x);
            }
        })
    }

    /// `xs` `[m, k]` → `[m, n]` through the f32 GEMM, dequantising a block of rows at a time.
    pub fn matmul(&self, xs: &[f32], m: usize) -> Vec<f32> {
        gemm::matmul_widened(self.n, self.k, xs, m, |rows, buf| self.dequantize_rows(rows, buf))
    }
}

/// One input row quantised to int8 per group: `x ≈ d · p`.
struct QuantRow {
    /// `[k]`.
    p: Vec<i8>,
    /// `[k / 32]`: `d` of each group.
    d: Vec<f32>,
    /// `[k / 32]`: `8 · d · Σ p` of each group (the offset of the weights' `q − 8`).
    offset: Vec<f32>,
}

impl QuantRow {
    fn new(x: &[f32]) -> Self {
        let groups = x.len() / GROUP;
        let (mut p, mut d, mut offset) = (Vec::with_capacity(x.len()), Vec::with_capacity(groups), Vec::with_capacity(groups));
        for group in x.chunks_exact(GROUP) {
            let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
            let start = p.len();
            p.extend(group.iter().map(|v| (v * inv).round() as i8));
            let sum: i32 = p[start..].iter().map(|&v| v as i32).sum();
            d.push(scale);
            offset.push(8.0 * scale * sum as f32);
        }
        Self { p, d, offset }
    }
}

/// One weight row (`q` `[k / 2]`, `scales` `[k / 32]`) against one quantised input row.
fn dot(q: &[u8], scales: &[f32], x: &QuantRow) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU features were checked; the lengths agree (k / 2, k / 32, k).
        return unsafe { avx2::dot(q, scales, x) };
    }
    dot_scalar(q, scales, x)
}

fn dot_scalar(q: &[u8], scales: &[f32], x: &QuantRow) -> f32 {
    let mut sum = 0f32;
    for (g, (qg, pg)) in q.chunks_exact(GROUP / 2).zip(x.p.chunks_exact(GROUP)).enumerate() {
        let (lo, hi) = pg.split_at(GROUP / 2);
        let int: i32 = qg.iter().zip(lo.iter().zip(hi)).map(|(b, (l, h))| (b & 15) as i32 * *l as i32 + (b >> 4) as i32 * *h as i32).sum();
        sum += scales[g] * (x.d[g] * int as f32 - x.offset[g]);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QuantRow, GROUP};
    use std::arch::x86_64::*;

    /// The 8 i32 partial sums of `Σ q·p` over group `g` (weights `qp`, input `pp`).
    #[inline(always)]
    unsafe fn group(qp: *const u8, pp: *const i8, g: usize) -> __m256i {
        // The 16 bytes in both halves, the high half shifted by 4: q[0..16] then q[16..32].
        let packed = _mm256_broadcastsi128_si256(_mm_loadu_si128(qp.add(g * GROUP / 2) as *const __m128i));
        let shifted = _mm256_srlv_epi32(packed, _mm256_set_epi32(4, 4, 4, 4, 0, 0, 0, 0));
        let levels = _mm256_and_si256(shifted, _mm256_set1_epi8(15)); // each 0..=15
        let p = _mm256_loadu_si256(pp.add(g * GROUP) as *const __m256i);
        // u8 × i8 pairs summed to i16 (at most 2·15·127, no saturation), then to i32.
        _mm256_madd_epi16(_mm256_maddubs_epi16(levels, p), _mm256_set1_epi16(1))
    }

    /// Four groups' partial sums → their totals, group `j` in lane `j`.
    #[inline(always)]
    unsafe fn totals4(s: &[__m256i]) -> __m128i {
        // Pairwise adds leave each group's lanes 0–3 in the low half, lanes 4–7 in the high.
        let h = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// Eight groups at a time: their integer sums gathered into one vector, converted and
    /// scaled together; leftover groups one by one.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(q: &[u8], scales: &[f32], x: &QuantRow) -> f32 {
        let groups = scales.len();
        debug_assert!(q.len() == groups * GROUP / 2 && x.p.len() == groups * GROUP && x.d.len() == groups);
        let (qp, pp) = (q.as_ptr(), x.p.as_ptr());
        let mut acc = _mm256_setzero_ps();
        let mut g = 0;
        while g + 8 <= groups {
            let mut s = [_mm256_setzero_si256(); 8];
            for (j, v) in s.iter_mut().enumerate() {
                *v = group(qp, pp, g + j);
            }
            let totals = _mm256_set_m128i(totals4(&s[4..]), totals4(&s[..4]));
            let scale = _mm256_mul_ps(_mm256_loadu_ps(scales.as_ptr().add(g)), _mm256_loadu_ps(x.d.as_ptr().add(g)));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(totals), scale, acc);
            g += 8;
        }
        let mut sum = hsum(acc);
        for (g, (scale, d)) in scales.iter().zip(&x.d).enumerate().skip(g) {
            sum += scale * d * hsum(_mm256_cvtepi32_ps(group(qp, pp, g)));
        }
        let offset: f32 = scales.iter().zip(&x.offset).map(|(s, o)| s * o).sum();
        sum - offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 1000) as f32 - 500.0) / 700.0).collect()
    }

    #[test]
    fn levels_round_trip_and_the_largest_weight_is_exact() {
        // A group that is exactly representable: scale 0.25, levels −8..=7.
        let w: Vec<f32> = (0..32).map(|i| 0.25 * ((i % 16) as f32 - 8.0)).collect();
        let q = Q4Matrix::quantize(&w, 1, 32);
        let mut back = Vec::new();
        q.dequantize_rows(0..1, &mut back);
        assert_eq!(back, w);
        assert_eq!(q.bytes(), 20);
        // Otherwise every weight is within half a step, and the largest one is exact; only
        // values beyond 7.5 steps on the other side of zero clip to 7 steps (error < 1 step).
        let w = values(4 * 64, 3);
        let q = Q4Matrix::quantize(&w, 4, 64);
        let mut back = Vec::new();
        q.dequantize_rows(1..3, &mut back);
        for (g, (want, got)) in w[64..192].chunks(32).zip(back.chunks(32)).enumerate() {
            let step = q.scales[2 + g].abs();
            let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!((max - step * 8.0).abs() < 1e-6);
            for (a, b) in want.iter().zip(got) {
                let clipped = (b.abs() - 7.0 * step).abs() < 1e-6 && a.abs() > 7.5 * step;
                let bound = if clipped { step } else { step * 0.5 };
                assert!((a - b).abs() <= bound + 1e-6, "{a} vs {b} (step {step})");
            }
        }
    }

    #[test]
    fn matvec_and_matmul_match_the_dequantised_weights() {
        // Against f64 products of the dequantised weights: the mat-vec adds only the int8
        // rounding of the input (≤ 1/254 of each group's largest value), the GEMM nothing.
        for (m, n, k) in [(1, 70, 32), (3, 33, 320), (4, 129, 96), (9, 40, 64)] {
            let q = Q4Matrix::quantize(&values(n * k, 1), n, k);
            let xs = values(m * k, 5);
            let mut w = Vec::new();
            q.dequantize_rows(0..n, &mut w);
            let scalar: Vec<f32> = xs
                .chunks_exact(k)
                .flat_map(|x| {
                    let row = QuantRow::new(x);
                    (0..n).map(move |r| (r, row.p.clone(), row.d.clone(), row.offset.clone()))
                })
                .map(|(r, p, d, offset)| dot_scalar(&q.quants[r * k / 2..(r + 1) * k / 2], &q.scales[r * k / 32..(r + 1) * k / 32], &QuantRow { p, d, offset }))
                .collect();
            for (name, got, tol) in [("matvec", q.matvec(&xs, m), 3e-2), ("matmul", q.matmul(&xs, m), 1e-4)] {
                for i in 0..m {
                    for j in 0..n {
                        let want: f64 = (0..k).map(|t| w[j * k + t] as f64 * xs[i * k + t] as f64).sum();
                        let g = got[i * n + j] as f64;
                        assert!((g - want).abs() <= tol * (1.0 + want.abs()), "{name} {m}×{n}×{k} at ({i}, {j}): {g} vs {want}");
                    }
                }
            }
            // The SIMD and scalar dot products agree to rounding.
            for (a, b) in q.matvec(&xs, m).iter().zip(&scalar) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
        }
    }
}
