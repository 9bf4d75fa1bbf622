//! int4 weights, 32 to a group with one f16 scale, used as stored.
//!
//! Row `r`, group `g` of a `[n, k]` matrix holds 32 weights `w ≈ scale · (q − 8)` with
//! `q ∈ 0..=15`, the scale chosen so the largest-magnitude weight maps to `−8` exactly (so both
//! signs keep 4 bits of resolution). Groups are stored in pairs: byte `j` of pair `h` holds
//! `q[j]` of group `2h` in its low nibble and `q[j]` of group `2h + 1` in its high nibble, so
//! one 32-byte load gives two groups. A row with an odd number of groups gets a zero group
//! (scale 0) to complete its last pair. 18 bytes per 32 weights: 0.5625 byte per weight.
//!
//! Few rows (decode): the input rows are quantised to int8 per group of 32 (`x ≈ d · p`), and
//! each group's dot product is integer: `Σ q·p` with AVX2 `vpmaddubsw`/`vpmaddwd`, then
//! `scale · (d · Σ q·p − 8 · d · Σ p)` in f32. Many rows (prefill, CLIP): 128 output rows at a
//! time are dequantised into a cache-sized f32 buffer for the f32 GEMM, the input stays f32.

use std::ops::Range;

use half::f16;

use crate::{gemm, gemv};

/// Weights per group (one scale each).
pub const GROUP: usize = 32;

/// A `[n, k]` int4 matrix (`k` a multiple of [`GROUP`]).
pub struct Q4Matrix {
    n: usize,
    k: usize,
    /// Groups per row, rounded up to even: `k / 32` or one more.
    groups: usize,
    /// `[n, groups]`.
    scales: Vec<f16>,
    /// `[n, groups / 2, 32]`: one byte per weight pair of a group pair.
    quants: Vec<u8>,
}

impl Q4Matrix {
    /// Quantises `w` `[n, k]` (row-major). `k` must be a multiple of [`GROUP`].
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert!(k.is_multiple_of(GROUP) && w.len() == n * k, "int4 weights need [n, k] with k a multiple of {GROUP}");
        let groups = (k / GROUP).next_multiple_of(2);
        let mut scales = Vec::with_capacity(n * groups);
        let mut quants = vec![0u8; n * groups * GROUP / 2];
        let mut levels = [0u8; GROUP];
        for (row, q) in w.chunks_exact(k).zip(quants.chunks_exact_mut(groups * GROUP / 2)) {
            for g in 0..groups {
                let group = row.get(g * GROUP..(g + 1) * GROUP).unwrap_or(&[0.0; GROUP]);
                // The value of largest magnitude, with its sign, becomes −8.
                let max = group.iter().fold(0f32, |m, &v| if v.abs() > m.abs() { v } else { m });
                let scale = f16::from_f32(max / -8.0);
                let inv = if scale.to_f32() == 0.0 { 0.0 } else { 1.0 / scale.to_f32() };
                for (l, v) in levels.iter_mut().zip(group) {
                    *l = ((v * inv + 8.5).max(0.0) as u8).min(15);
                }
                let shift = 4 * (g % 2);
                for (byte, l) in q[g / 2 * GROUP..(g / 2 + 1) * GROUP].iter_mut().zip(&levels) {
                    *byte |= l << shift;
                }
                scales.push(scale);
            }
        }
        Self { n, k, groups, scales, quants }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.scales.len() * 2 + self.quants.len()
    }

    /// Appends rows `rows` as f32 (`[rows.len(), k]`) to `out`.
    pub fn dequantize_rows(&self, rows: Range<usize>, out: &mut Vec<f32>) {
        for r in rows {
            for g in 0..self.k / GROUP {
                let pair = &self.quants[(r * self.groups + g) / 2 * GROUP..][..GROUP];
                let (scale, shift) = (self.scales[r * self.groups + g].to_f32(), 4 * (g % 2));
                out.extend(pair.iter().map(|b| scale * ((b >> shift & 15) as f32 - 8.0)));
            }
        }
    }

    /// `xs` `[m, k]` → `[m, n]`: the int8 mat-vec, one pass over the weights for all `m` rows.
    pub fn matvec(&self, xs: &[f32], m: usize) -> Vec<f32> {
        assert_eq!(xs.len(), m * self.k, "input is not [{m}, {}]", self.k);
        let rows: Vec<QuantRow> = xs.chunks_exact(self.k).map(|x| QuantRow::new(x, self.groups)).collect();
        gemv::by_output_rows(self.n, m, |r, out| {
            let q = &self.quants[r * self.groups * GROUP / 2..(r + 1) * self.groups * GROUP / 2];
            let scales = &self.scales[r * self.groups..(r + 1) * self.groups];
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

/// One input row quantised to int8 per group, `x ≈ d · p`, padded with zero groups to the
/// weights' even group count.
struct QuantRow {
    /// `[groups, 32]`.
    p: Vec<i8>,
    /// `[groups]`: `d` of each group.
    d: Vec<f32>,
    /// `[groups]`: `8 · d · Σ p` of each group (the offset of the weights' `q − 8`).
    offset: Vec<f32>,
}

impl QuantRow {
    fn new(x: &[f32], groups: usize) -> Self {
        let (mut p, mut d, mut offset) = (vec![0; groups * GROUP], vec![0.0; groups], vec![0.0; groups]);
        for (g, group) in x.chunks_exact(GROUP).enumerate() {
            let amax = group.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
            let pg = &mut p[g * GROUP..(g + 1) * GROUP];
            for (q, v) in pg.iter_mut().zip(group) {
                *q = (v * inv).round() as i8;
            }
            d[g] = scale;
            offset[g] = 8.0 * scale * pg.iter().map(|&v| v as i32).sum::<i32>() as f32;
        }
        Self { p, d, offset }
    }
}

/// One weight row (`q` `[groups / 2, 32]`, `scales` `[groups]`) against one quantised input row.
fn dot(q: &[u8], scales: &[f16], x: &QuantRow) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if avx2::available() {
        // SAFETY: the CPU features were checked; the lengths agree (groups · 16, groups, groups · 32).
        return unsafe { avx2::dot(q, scales, x) };
    }
    dot_scalar(q, scales, x)
}

fn dot_scalar(q: &[u8], scales: &[f16], x: &QuantRow) -> f32 {
    let mut sum = 0f32;
    for (g, (scale, pg)) in scales.iter().zip(x.p.chunks_exact(GROUP)).enumerate() {
        let pair = &q[g / 2 * GROUP..(g / 2 + 1) * GROUP];
        let int: i32 = pair.iter().zip(pg).map(|(b, p)| (b >> (4 * (g % 2)) & 15) as i32 * *p as i32).sum();
        sum += scale.to_f32() * (x.d[g] * int as f32 - x.offset[g]);
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{QuantRow, GROUP};
    use half::f16;
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
    }

    /// The 8 i32 partial sums of `Σ q·p` of the two groups of pair `h`.
    #[inline(always)]
    unsafe fn pair(qp: *const u8, pp: *const i8, h: usize) -> (__m256i, __m256i) {
        let packed = _mm256_loadu_si256(qp.add(h * GROUP) as *const __m256i);
        let mask = _mm256_set1_epi8(15);
        let (lo, hi) = (_mm256_and_si256(packed, mask), _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask));
        // u8 × i8 pairs summed to i16 (at most 2·15·127, no saturation), then to i32.
        let sums = |levels, g: usize| {
            let p = _mm256_loadu_si256(pp.add(g * GROUP) as *const __m256i);
            _mm256_madd_epi16(_mm256_maddubs_epi16(levels, p), _mm256_set1_epi16(1))
        };
        (sums(lo, 2 * h), sums(hi, 2 * h + 1))
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }

    /// Eight groups (four pairs) at a time, each group's sums converted to f32 and scaled by
    /// `scale · d` into one of two accumulators; the offsets `scale · 8 d Σ p` eight at once.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot(q: &[u8], scales: &[f16], x: &QuantRow) -> f32 {
        let groups = scales.len();
        debug_assert!(groups.is_multiple_of(2) && q.len() == groups * GROUP / 2 && x.p.len() == groups * GROUP && x.d.len() == groups);
        let (qp, pp) = (q.as_ptr(), x.p.as_ptr());
        let (mut acc, mut offset) = ([_mm256_setzero_ps(); 2], _mm256_setzero_ps());
        let mut g = 0;
        while g + 8 <= groups {
            let scale = _mm256_cvtph_ps(_mm_loadu_si128(scales.as_ptr().add(g) as *const __m128i));
            offset = _mm256_fmadd_ps(scale, _mm256_loadu_ps(x.offset.as_ptr().add(g)), offset);
            let mut combined = [0f32; 8];
            _mm256_storeu_ps(combined.as_mut_ptr(), _mm256_mul_ps(scale, _mm256_loadu_ps(x.d.as_ptr().add(g))));
            for j in 0..4 {
                let (a, b) = pair(qp, pp, g / 2 + j);
                acc[0] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(combined[2 * j]), acc[0]);
                acc[1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(b), _mm256_set1_ps(combined[2 * j + 1]), acc[1]);
            }
            g += 8;
        }
        let mut sum = hsum(_mm256_add_ps(acc[0], acc[1])) - hsum(offset);
        while g < groups {
            let (a, b) = pair(qp, pp, g / 2);
            for (i, s) in [a, b].into_iter().enumerate() {
                let g = g + i;
                sum += scales[g].to_f32() * (x.d[g] * hsum(_mm256_cvtepi32_ps(s)) - x.offset[g]);
            }
            g += 2;
        }
        sum
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
        // 18 bytes per 32 weights; a row of one group is padded to a pair.
        assert_eq!(q.bytes(), 36);
        assert_eq!(Q4Matrix::quantize(&[w.clone(), w].concat(), 1, 64).bytes(), 36);
        // Otherwise every weight is within half a step, and the largest one is exact up to the
        // f16 rounding of the scale; only values beyond 7.5 steps on the other side of zero
        // clip to 7 steps (error < 1 step).
        let w = values(4 * 64, 3);
        let q = Q4Matrix::quantize(&w, 4, 64);
        let mut back = Vec::new();
        q.dequantize_rows(1..3, &mut back);
        for (g, (want, got)) in w[64..192].chunks(32).zip(back.chunks(32)).enumerate() {
            let step = q.scales[2 + g].to_f32().abs();
            let max = want.iter().fold(0f32, |m, v| m.max(v.abs()));
            assert!((max - step * 8.0).abs() <= max * 1e-3);
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
                    let row = QuantRow::new(x, q.groups);
                    (0..n).map(move |r| (r, row.p.clone(), row.d.clone(), row.offset.clone()))
                })
                .map(|(r, p, d, offset)| {
                    let g = q.groups;
                    dot_scalar(&q.quants[r * g * 16..(r + 1) * g * 16], &q.scales[r * g..(r + 1) * g], &QuantRow { p, d, offset })
                })
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
