//! int8 weights in blocks of 256 with one f32 scale, used as stored.
//!
//! Each row of a `[n, k]` matrix is cut into blocks of 256 weights (the last one padded with
//! zeros); a block's weights are `w[i] ≈ D · q[i]` with `q ∈ −127..=127`, `D` mapping the
//! block's largest magnitude to 127. Quants are stored offset by 128, as unsigned bytes
//! `u = q + 128`. A row is stored as one run of bytes, `[blocks × D (f32)][blocks × 256
//! quants]`, the rows one after another (one sequential stream per thread in a mat-vec). 260
//! bytes per 256 weights: 1.016 byte per weight.
//!
//! Products: each input row is quantised to int8 per block of 256 (`x ≈ d · p`, see
//! [`int8`](crate::int8)), so a block's dot product is `D · d · Σ q[i]·p[i]`, integer up to one
//! `D · d`. VNNI's `vpdpbusd` multiplies the unsigned `u` by the signed `p` directly, from a
//! start of `−128 · Σ p`; AVX2 multiplies signed by signed bytes with `vpmaddubsw` on `|q|` and
//! `p` carrying the sign of `q` (`vpsignb`). With many input rows (prefill, CLIP), each weight
//! run is loaded once for four of them at a time (and with VNNI, each input run for four weight
//! rows; with AVX-512 on 512-bit registers).

use crate::gemv::Widen;
use crate::int8::{self, Int8Rows, Packed, QuantRow, Quantize, BLOCK};

/// Bytes per block in a row: the f32 scale and the quants.
const ROW_BYTES_PER_BLOCK: usize = 4 + BLOCK;

/// A `[n, k]` int8 matrix: its rows' bytes `[n, blocks · 260]` (see the module docs),
/// quantised here or as a pre-quantised checkpoint stores them, lent to products as [`Q8Rows`].
pub struct Q8Matrix(Packed);

/// The rows of a `[n, k]` int8 matrix as products read them, from `data` `[n, blocks · 260]`.
pub(crate) struct Q8Rows<B> {
    n: usize,
    k: usize,
    /// Blocks per row: `k / 256` rounded up.
    blocks: usize,
    data: B,
}

impl Quantize for Q8Matrix {
    /// Quantises `w` `[n, k]` (row-major; f32, or 16-bit as stored), rows in parallel.
    fn quantize<T: Widen>(w: &[T], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "int8 weights need [{n}, {k}]");
        let blocks = k.div_ceil(BLOCK);
        let data = int8::quantize_rows(w, k, blocks * ROW_BYTES_PER_BLOCK, #[inline(always)] |row, bytes| {
            let (scales, quants) = bytes.split_at_mut(4 * blocks);
            for ((part, q), scale) in row.chunks(BLOCK).zip(quants.chunks_exact_mut(BLOCK)).zip(scales.chunks_exact_mut(4)) {
                // Padding becomes the level 0 too.
                let v = int8::widened_block(part);
                let d = int8::lane_max::<16>(&v).iter().fold(0f32, |m, &x| m.max(x)) / 127.0;
                let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
                for (u, v) in q.iter_mut().zip(&v) {
                    *u = (int8::whole((v * inv).round().clamp(-127.0, 127.0)) + 128) as u8;
                }
                scale.copy_from_slice(&d.to_ne_bytes());
            }
        });
        Self(Packed::new(n, k, blocks * ROW_BYTES_PER_BLOCK, data))
    }
}

impl Q8Matrix {
    /// A stored matrix: `data` must be u8 `[n, Self::bytes_for(1, k)]`.
    pub fn from_stored(data: candle_core::Tensor, n: usize, k: usize) -> candle_core::Result<Self> {
        Packed::from_stored(data, n, k, Self::bytes_for(1, k)).map(Self)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        Self::bytes_for(self.0.n, self.0.k)
    }

    /// Bytes a `rows × cols` matrix takes in this format.
    pub fn bytes_for(rows: usize, cols: usize) -> usize {
        rows * cols.div_ceil(BLOCK) * ROW_BYTES_PER_BLOCK
    }

    /// The bytes as a u8 tensor `[n, Self::bytes_for(1, k)]`, as a checkpoint stores them.
    pub fn tensor(&self) -> &candle_core::Tensor {
        self.0.tensor()
    }

    /// `f` of the rows as products read them.
    pub(crate) fn with_rows<R>(&self, f: impl FnOnce(&Q8Rows<&[u8]>) -> R) -> candle_core::Result<R> {
        let (n, k) = (self.0.n, self.0.k);
        self.0.with_bytes(|data| f(&Q8Rows { n, k, blocks: k.div_ceil(BLOCK), data }))
    }
}

impl<B: AsRef<[u8]>> Q8Rows<B> {
    /// Row `r`'s scales (f32, native byte order) and quants (`q + 128`).
    fn row(&self, r: usize) -> (&[u8], &[u8]) {
        let stride = self.blocks * ROW_BYTES_PER_BLOCK;
        self.data.as_ref()[r * stride..][..stride].split_at(4 * self.blocks)
    }
}

/// The level `q` of a stored quant.
fn level(u: u8) -> i32 {
    u as i32 - 128
}

/// `D` of block `b` of a row's scales.
fn scale(scales: &[u8], b: usize) -> f32 {
    f32::from_ne_bytes(scales[4 * b..][..4].try_into().expect("4 bytes"))
}

impl<B: AsRef<[u8]> + Sync> Int8Rows for Q8Rows<B> {
    fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// A row's run is one register, so four rows fit (12 % faster than two in the prefill bench).
    const VNNI_ROWS: usize = 4;

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [f32; N] {
        let (scales, quants) = self.row(r);
        // SAFETY: as the caller promised.
        unsafe { avx2::dots(scales, quants, xs) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_vnni<const R: usize, const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [[f32; N]; R] {
        // SAFETY: as the caller promised.
        unsafe { avx2::dots_vnni(std::array::from_fn(|h| self.row(r + h)), xs) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx512<const R: usize, const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [[f32; N]; R] {
        // SAFETY: as the caller promised.
        unsafe { avx2::dots_avx512(std::array::from_fn(|h| self.row(r + h)), xs) }
    }

    fn dot_scalar(&self, r: usize, x: &QuantRow) -> f32 {
        let (scales, quants) = self.row(r);
        let blocks = quants.chunks_exact(BLOCK).zip(x.p.chunks_exact(BLOCK));
        blocks
            .enumerate()
            .map(|(b, (q, p))| {
                let int: i32 = q.iter().zip(p).map(|(&u, &p)| level(u) * p as i32).sum();
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
    /// multiply-add by `D · d`. Each weight run is loaded (and its offset of 128 taken off) once
    /// for all `N` rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dots<const N: usize>(scales: &[u8], quants: &[u8], xs: [&QuantRow; N]) -> [f32; N] {
        let blocks = scales.len() / 4;
        debug_assert!(quants.len() == blocks * BLOCK);
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks));
        let (ones, offset) = (_mm256_set1_epi16(1), _mm256_set1_epi8(-128));
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..blocks {
            let qp = quants.as_ptr().add(b * BLOCK);
            prefetch(qp);
            let mut ints = [_mm256_setzero_si256(); N];
            for run in 0..BLOCK / 32 {
                let q = _mm256_xor_si256(_mm256_loadu_si256(qp.add(32 * run) as *const __m256i), offset);
                let magnitude = _mm256_sign_epi8(q, q);
                for (int, x) in ints.iter_mut().zip(xs) {
                    let p = _mm256_loadu_si256(x.p.as_ptr().add(b * BLOCK + 32 * run) as *const __m256i);
                    let pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(p, q));
                    *int = _mm256_add_epi32(*int, _mm256_madd_epi16(pairs, ones));
                }
            }
            let d = scale(scales, b);
            for ((acc, int), x) in acc.iter_mut().zip(ints).zip(xs) {
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(int), _mm256_set1_ps(d * x.d[b]), *acc);
            }
        }
        acc.map(|a| hsum(a))
    }

    /// As [`dots`] with VNNI, for `R` weight rows at once: per block, row and input row, eight
    /// `vpdpbusd` of the stored `q + 128` by `p` (at most 8·4·255·127 per lane) onto a start of
    /// `−128 · Σ p` (16 times [`QuantRow::starts`]), then one f32 multiply-add by `D · d`. The runs go
    /// round the inputs and rows innermost, as in q4, so that `R · N` sums are in flight.
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    pub unsafe fn dots_vnni<const R: usize, const N: usize>(rows: [(&[u8], &[u8]); R], xs: [&QuantRow; N]) -> [[f32; N]; R] {
        let blocks = rows[0].0.len() / 4;
        debug_assert!(rows.iter().all(|(_, quants)| quants.len() == blocks * BLOCK));
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks && x.starts.len() == blocks * 8));
        let mut acc = [[_mm256_setzero_ps(); N]; R];
        for b in 0..blocks {
            // (Loops rather than closures: a closure does not inherit the target features.)
            let mut qps = [std::ptr::null(); R];
            for (qp, (_, quants)) in qps.iter_mut().zip(&rows) {
                *qp = quants.as_ptr().add(b * BLOCK);
                prefetch(*qp);
            }
            let mut starts = [_mm256_setzero_si256(); N];
            for (start, x) in starts.iter_mut().zip(xs) {
                *start = _mm256_slli_epi32(_mm256_loadu_si256(x.starts.as_ptr().add(b * 8) as *const __m256i), 4);
            }
            let mut ints = [starts; R];
            for run in (0..BLOCK).step_by(32) {
                let mut u = [_mm256_setzero_si256(); R];
                for (u, qp) in u.iter_mut().zip(qps) {
                    *u = _mm256_loadu_si256(qp.add(run) as *const __m256i);
                }
                for (j, x) in xs.iter().enumerate() {
                    let p = _mm256_loadu_si256(x.p.as_ptr().add(b * BLOCK + run) as *const __m256i);
                    for (int, u) in ints.iter_mut().zip(u) {
                        int[j] = _mm256_dpbusd_epi32(int[j], u, p);
                    }
                }
            }
            for (j, x) in xs.iter().enumerate() {
                for ((acc, int), (scales, _)) in acc.iter_mut().zip(&ints).zip(&rows) {
                    let d = scale(scales, b);
                    acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(int[j]), _mm256_set1_ps(d * x.d[b]), acc[j]);
                }
            }
        }
        acc.map(|a| a.map(|a| hsum(a)))
    }

    /// As [`dots_vnni`] on 512-bit registers: four `vpdpbusd` per block, row and input row,
    /// the input straight from memory; the start in the low half of the sums only.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
    pub unsafe fn dots_avx512<const R: usize, const N: usize>(rows: [(&[u8], &[u8]); R], xs: [&QuantRow; N]) -> [[f32; N]; R] {
        let blocks = rows[0].0.len() / 4;
        debug_assert!(rows.iter().all(|(scales, quants)| scales.len() == blocks * 4 && quants.len() == blocks * BLOCK));
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks && x.starts.len() == blocks * 8));
        // (Index loops and raw pointers: iterator adaptors were left as calls in such loops.)
        let (quants, scales): ([*const u8; R], [*const f32; R]) =
            (std::array::from_fn(|h| rows[h].1.as_ptr()), std::array::from_fn(|h| rows[h].0.as_ptr() as *const f32));
        let (ps, ds, starts): ([*const i8; N], [*const f32; N], [*const i32; N]) =
            (std::array::from_fn(|j| xs[j].p.as_ptr()), std::array::from_fn(|j| xs[j].d.as_ptr()), std::array::from_fn(|j| xs[j].starts.as_ptr()));
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        for b in 0..blocks {
            for qp in quants {
                prefetch(qp.add(b * BLOCK));
            }
            let mut ints = [[_mm512_setzero_si512(); N]; R];
            for j in 0..N {
                let start = _mm256_slli_epi32(_mm256_loadu_si256(starts[j].add(b * 8) as *const __m256i), 4);
                for int in ints.iter_mut() {
                    int[j] = _mm512_zextsi256_si512(start);
                }
            }
            for t in 0..4 {
                let mut u = [_mm512_setzero_si512(); R];
                for h in 0..R {
                    u[h] = _mm512_loadu_si512(quants[h].add(b * BLOCK + 64 * t) as *const _);
                }
                for j in 0..N {
                    let p = _mm512_loadu_si512(ps[j].add(b * BLOCK + 64 * t) as *const _);
                    for h in 0..R {
                        ints[h][j] = _mm512_dpbusd_epi32(ints[h][j], u[h], p);
                    }
                }
            }
            for h in 0..R {
                let d = _mm512_set1_ps(scales[h].add(b).read_unaligned());
                for j in 0..N {
                    let dd = _mm512_mul_ps(d, _mm512_set1_ps(ds[j].add(b).read()));
                    acc[h][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ints[h][j]), dd, acc[h][j]);
                }
            }
        }
        let mut out = [[0f32; N]; R];
        for h in 0..R {
            for j in 0..N {
                out[h][j] = _mm512_reduce_add_ps(acc[h][j]);
            }
        }
        out
    }

    /// Prefetches the four lines [`PREFETCH`] bytes past `qp` (prefetch never faults, so it
    /// may run past the end of the matrix).
    #[inline(always)]
    unsafe fn prefetch(qp: *const u8) {
        for line in 0..4 {
            _mm_prefetch(qp.wrapping_add(PREFETCH + 64 * line) as *const i8, _MM_HINT_T0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::values;

    /// The rows of `q`, owning a copy of its bytes.
    fn rows(q: &Q8Matrix) -> Q8Rows<Vec<u8>> {
        q.with_rows(|r| Q8Rows { n: r.n, k: r.k, blocks: r.blocks, data: r.data.to_vec() }).unwrap()
    }

    /// The weights as f32 `[n, k]`, weight by weight from the layout's definition.
    fn dequantized(q: &Q8Rows<Vec<u8>>) -> Vec<f32> {
        (0..q.n)
            .flat_map(|r| {
                let (scales, quants) = q.row(r);
                (0..q.k).map(move |col| scale(scales, col / BLOCK) * level(quants[col]) as f32)
            })
            .collect()
    }

    #[test]
    fn each_weight_is_within_half_a_step_and_rows_pad_to_whole_blocks() {
        let (n, k) = (3, 2 * BLOCK + 40);
        let w: Vec<f32> = values(n * k, 3).iter().enumerate().map(|(i, v)| v * (1.0 + (i / 32 % 5) as f32)).collect();
        let q = Q8Matrix::quantize(&w, n, k);
        assert_eq!(q.bytes(), n * 3 * 260);
        let q = rows(&q);
        let back = dequantized(&q);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            let (scales, _) = q.row(i / k);
            let d = scale(scales, i % k / BLOCK);
            assert!((a - b).abs() <= d / 2.0 * (1.0 + 1e-5), "weight {i}: {a} vs {b} (step {d})");
        }
        let (_, quants) = q.row(1);
        assert!(quants[k..].iter().all(|&u| level(u) == 0), "padding is zero");
        // A block's largest magnitude is exactly ±127 steps.
        for (r, row) in w.chunks(k).enumerate() {
            let (scales, quants) = q.row(r);
            for (b, block) in row.chunks(BLOCK).enumerate() {
                let j = (0..block.len()).max_by(|&a, &c| block[a].abs().total_cmp(&block[c].abs())).unwrap();
                assert_eq!(level(quants[b * BLOCK + j]).abs(), 127);
                assert!((scale(scales, b) * 127.0 - block[j].abs()).abs() <= block[j].abs() * 1e-6);
            }
        }
    }

    #[test]
    fn products_match_the_dequantised_weights() {
        crate::int8::tests::assert_products_match(|w, n, k| {
            let q = rows(&Q8Matrix::quantize(w, n, k));
            let w = dequantized(&q);
            (q, w)
        });
    }
}
