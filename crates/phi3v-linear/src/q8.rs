//! int8 weights in blocks of 256 with one f32 scale, used as stored.
//!
//! Each row of a `[n, k]` matrix is cut into blocks of 256 weights (the last one padded with
//! zeros); a block's weights are `w[i] ≈ D · q[i]` with `q ∈ −127..=127`, `D` mapping the
//! block's largest magnitude to 127. A row is stored as one run of bytes, `[blocks × D (f32)]
//! [blocks × 256 quants]`, the rows one after another (one sequential stream per thread in a
//! mat-vec). 260 bytes per 256 weights: 1.016 byte per weight.
//!
//! Products: each input row is quantised to int8 per block of 256 (`x ≈ d · p`, see
//! [`int8`](crate::int8)), so a block's dot product is `D · d · Σ q[i]·p[i]`, integer up to one `D · d`. AVX2
//! multiplies signed by signed bytes with `vpmaddubsw` on `|q|` and `p` carrying the sign of `q`
//! (`vpsignb`). With many input rows (prefill, CLIP), each weight run is loaded once for four
//! of them at a time.

use crate::huge;
use crate::int8::{Int8Rows, QuantRow, BLOCK};

/// Bytes per block in a row: the f32 scale and the quants.
const ROW_BYTES_PER_BLOCK: usize = 4 + BLOCK;

/// A `[n, k]` int8 matrix.
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// Blocks per row: `k / 256` rounded up.
    blocks: usize,
    /// `[n, blocks · 260]`: each row's scales and quants (see the module docs).
    data: Vec<u8>,
}

impl Q8Matrix {
    /// Quantises `w` `[n, k]` (row-major).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "int8 weights need [{n}, {k}]");
        let blocks = k.div_ceil(BLOCK);
        let stride = blocks * ROW_BYTES_PER_BLOCK;
        let mut data = huge::filled(n * stride, 0u8);
        for (row, bytes) in w.chunks_exact(k).zip(data.chunks_exact_mut(stride)) {
            let (scales, quants) = bytes.split_at_mut(4 * blocks);
            for (b, part) in row.chunks(BLOCK).enumerate() {
                let d = part.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
                let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
                for (q, v) in quants[b * BLOCK..].iter_mut().zip(part) {
                    *q = (v * inv).round().clamp(-127.0, 127.0) as i8 as u8;
                }
                scales[4 * b..][..4].copy_from_slice(&d.to_ne_bytes());
            }
        }
        Self { n, k, blocks, data }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Row `r`'s scales (f32, native byte order) and quants (i8).
    fn row(&self, r: usize) -> (&[u8], &[i8]) {
        let stride = self.blocks * ROW_BYTES_PER_BLOCK;
        let (scales, quants) = self.data[r * stride..][..stride].split_at(4 * self.blocks);
        // SAFETY: u8 and i8 have the same size and alignment.
        let quants = unsafe { std::slice::from_raw_parts(quants.as_ptr() as *const i8, quants.len()) };
        (scales, quants)
    }
}

/// `D` of block `b` of a row's scales.
fn scale(scales: &[u8], b: usize) -> f32 {
    f32::from_ne_bytes(scales[4 * b..][..4].try_into().expect("4 bytes"))
}

impl Int8Rows for Q8Matrix {
    fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [f32; N] {
        let (scales, quants) = self.row(r);
        // SAFETY: as the caller promised.
        unsafe { avx2::dots(scales, quants, xs) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_vnni<const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [f32; N] {
        let (scales, quants) = self.row(r);
        // SAFETY: as the caller promised.
        unsafe { avx2::dots_vnni(scales, quants, xs) }
    }

    fn dot_scalar(&self, r: usize, x: &QuantRow) -> f32 {
        let (scales, quants) = self.row(r);
        let blocks = quants.chunks_exact(BLOCK).zip(x.p.chunks_exact(BLOCK));
        blocks
            .enumerate()
            .map(|(b, (q, p))| {
                let int: i32 = q.iter().zip(p).map(|(&q, &p)| q as i32 * p as i32).sum();
                scale(scales, b) * x.d[b] * int as f32
            })
            .sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{scale, BLOCK};
    use crate::int8::{avx2::hsum, QuantRow};
    use std::arch::x86_64::*;

    /// How far ahead of the block being multiplied the matrix is prefetched (its rows follow
    /// each other), as in q4: about a row of a 3 072-wide matrix.
    const PREFETCH: usize = 3072;

    /// Per run of 32 weights and input row: `vpsignb`, `vpmaddubsw` (`|q| · ±p` pairs, at most
    /// 2·127·127 = 32 258: no overflow), `vpmaddwd` by ones into i32; per block one f32
    /// multiply-add by `D · d`. Each weight run is loaded once for all `N` rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dots<const N: usize>(scales: &[u8], quants: &[i8], xs: [&QuantRow; N]) -> [f32; N] {
        let ones = _mm256_set1_epi16(1);
        // SAFETY: as the caller promised.
        unsafe { body(scales, quants, xs, |int, magnitude, signed| _mm256_add_epi32(int, _mm256_madd_epi16(_mm256_maddubs_epi16(magnitude, signed), ones))) }
    }

    /// As [`dots`], with one `vpdpbusd` for `vpmaddubsw`, `vpmaddwd` and the add.
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    pub unsafe fn dots_vnni<const N: usize>(scales: &[u8], quants: &[i8], xs: [&QuantRow; N]) -> [f32; N] {
        // SAFETY: as the caller promised.
        unsafe { body(scales, quants, xs, |int, magnitude, signed| _mm256_dpbusd_epi32(int, magnitude, signed)) }
    }

    /// The loop of both: `product(int, |q|, ±p)` adds a run's 32 products into `int`'s lanes.
    #[inline(always)]
    unsafe fn body<const N: usize>(
        scales: &[u8],
        quants: &[i8],
        xs: [&QuantRow; N],
        product: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
    ) -> [f32; N] {
        let blocks = scales.len() / 4;
        debug_assert!(quants.len() == blocks * BLOCK);
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks));
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..blocks {
            let qp = quants.as_ptr().add(b * BLOCK);
            for line in 0..4 {
                // Prefetch never faults, so it may run past the end of the matrix.
                _mm_prefetch(qp.wrapping_add(PREFETCH + 64 * line), _MM_HINT_T0);
            }
            let mut ints = [_mm256_setzero_si256(); N];
            for run in 0..BLOCK / 32 {
                let q = _mm256_loadu_si256(qp.add(32 * run) as *const __m256i);
                let magnitude = _mm256_sign_epi8(q, q);
                for (int, x) in ints.iter_mut().zip(xs) {
                    let p = _mm256_loadu_si256(x.p.as_ptr().add(b * BLOCK + 32 * run) as *const __m256i);
                    *int = product(*int, magnitude, _mm256_sign_epi8(p, q));
                }
            }
            let d = scale(scales, b);
            for ((acc, int), x) in acc.iter_mut().zip(ints).zip(xs) {
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(int), _mm256_set1_ps(d * x.d[b]), *acc);
            }
        }
        acc.map(|a| hsum(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::values;

    /// The weights as f32 `[n, k]`, weight by weight from the layout's definition.
    fn dequantized(q: &Q8Matrix) -> Vec<f32> {
        (0..q.n)
            .flat_map(|r| {
                let (scales, quants) = q.row(r);
                (0..q.k).map(move |col| scale(scales, col / BLOCK) * quants[col] as f32)
            })
            .collect()
    }

    #[test]
    fn each_weight_is_within_half_a_step_and_rows_pad_to_whole_blocks() {
        let (n, k) = (3, 2 * BLOCK + 40);
        let w: Vec<f32> = values(n * k, 3).iter().enumerate().map(|(i, v)| v * (1.0 + (i / 32 % 5) as f32)).collect();
        let q = Q8Matrix::quantize(&w, n, k);
        assert_eq!(q.bytes(), n * 3 * 260);
        let back = dequantized(&q);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            let (scales, _) = q.row(i / k);
            let d = scale(scales, i % k / BLOCK);
            assert!((a - b).abs() <= d / 2.0 * (1.0 + 1e-5), "weight {i}: {a} vs {b} (step {d})");
        }
        let (_, quants) = q.row(1);
        assert!(quants[k..].iter().all(|&q| q == 0), "padding is zero");
        // A block's largest magnitude is exactly ±127 steps.
        for (r, row) in w.chunks(k).enumerate() {
            let (scales, quants) = q.row(r);
            for (b, block) in row.chunks(BLOCK).enumerate() {
                let j = (0..block.len()).max_by(|&a, &c| block[a].abs().total_cmp(&block[c].abs())).unwrap();
                assert_eq!(quants[b * BLOCK + j].unsigned_abs(), 127);
                assert!((scale(scales, b) * 127.0 - block[j].abs()).abs() <= block[j].abs() * 1e-6);
            }
        }
    }

    #[test]
    fn products_match_the_dequantised_weights() {
        crate::int8::tests::assert_products_match(|w, n, k| {
            let q = Q8Matrix::quantize(w, n, k);
            let w = dequantized(&q);
            (q, w)
        });
    }
}
