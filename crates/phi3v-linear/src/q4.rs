//! int4 weights in blocks of 256 with integer sub-scales, used as stored.
//!
//! Each row of a `[n, k]` matrix is cut into blocks of 256 weights (the last one padded with
//! zeros). A block has one f32 scale `D` and eight int8 sub-scales `s[g]`, and its weights are
//! `w[i] ≈ D · s[g] · (q[i] − 8)` with `q ∈ 0..=15` and `g = (i / 4) % 8`: the eight groups of
//! 32 weights are interleaved by fours, so that in a register of 32 weights the pair sums
//! `vpmaddubsw` makes land in i16 lanes `2g` and `2g + 1` (one `vpmaddwd` with the vector
//! `[s0, s0, s1, s1, …, s7, s7]` scales a whole block at once) and the four-byte sums of VNNI's
//! `vpdpbusd` in i32 lane `g` (the scheme of llama.cpp's Q4_K, with groups strided instead of
//! contiguous). Each group's scale `D · s[g]` maps its largest-magnitude weight to `−8`; `D` is
//! the largest group scale over 127. The quants of a block are 2 runs of 64 bytes: byte `b` of
//! run `c` holds `q[128c + b]` in its low nibble and `q[128c + 64 + b]` in its high nibble, so
//! that one 512-bit register of quants unpacks into two of 64 consecutive weights, and each
//! half of a run into two of 32.
//! 140 bytes per 256 weights: 0.547 byte per weight.
//!
//! A row is stored as one run of bytes, `[blocks × D (f32)][blocks × 8 sub-scales][blocks ×
//! 128 quants]`, the rows one after another: a mat-vec reads the matrix as one sequential stream
//! per thread (with scales, sub-scales and quants in three arrays it read three, 4 % slower in
//! alternating runs on 2 threads, 10 % on one).
//!
//! Products: each input row is quantised to int8 per block of 256 (`x ≈ d · p`, see
//! [`int8`](crate::int8)), and a block's dot product is
//! `D · d · Σ_g s[g] · (Σ_{i in g} q[i]·p[i] − 8 · Σ_{i in g} p[i])`: integer up to one `D · d`,
//! the second sum depending on the input alone (kept per register lane, `QuantRow::offsets`,
//! and subtracted from the pair sums before the one `vpmaddwd` by the sub-scales). With VNNI the
//! block's sums are `vpdpbusd`'s, on 256-bit registers or, with AVX-512, on 512-bit ones (a run
//! of 64 bytes is one register). With many input rows (prefill, CLIP), each weight row is
//! unpacked once for four of them at a time; that runs at about twice the f32 GEMM's rate on an
//! AVX2 core.

use crate::gemv::Widen;
use crate::int8::{self, Int8Rows, Packed, QuantRow, Quantize, BLOCK};

/// Sub-scales per block; weight `i` of a block belongs to group `(i / 4) % GROUPS`.
const GROUPS: usize = 8;
/// Bytes of quants per block.
const QBYTES: usize = BLOCK / 2;
/// Bytes per block in a row: the f32 scale, the sub-scales and the quants.
const ROW_BYTES_PER_BLOCK: usize = 4 + GROUPS + QBYTES;

/// A `[n, k]` int4 matrix: its rows' bytes `[n, blocks · 140]` (see the module docs),
/// quantised here or as a pre-quantised checkpoint stores them, lent to products as [`Q4Rows`].
pub struct Q4Matrix(Packed);

/// The rows of a `[n, k]` int4 matrix as products read them, from `data` `[n, blocks · 140]`.
pub(crate) struct Q4Rows<B> {
    n: usize,
    k: usize,
    /// Blocks per row: `k / 256` rounded up.
    blocks: usize,
    data: B,
}

/// The group (sub-scale index) of weight `i` of a block.
fn group(i: usize) -> usize {
    i / 4 % GROUPS
}

/// Where weight `i` of a block lives: byte offset in the block's quants and nibble shift.
fn nibble(i: usize) -> (usize, usize) {
    (i / 128 * 64 + i % 64, 4 * (i / 64 % 2))
}

impl Quantize for Q4Matrix {
    /// Quantises `w` `[n, k]` (row-major; f32, or 16-bit as stored), rows in parallel.
    fn quantize<T: Widen>(w: &[T], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "int4 weights need [{n}, {k}]");
        let blocks = k.div_ceil(BLOCK);
        let data = int8::quantize_rows(w, k, blocks * ROW_BYTES_PER_BLOCK, #[inline(always)] |row, bytes| {
            let (scales, rest) = bytes.split_at_mut(4 * blocks);
            let (subs, quants) = rest.split_at_mut(GROUPS * blocks);
            for (b, part) in row.chunks(BLOCK).enumerate() {
                let v = int8::widened_block(part);
                // Each group's value of largest magnitude (the first, on a tie), with its sign,
                // becomes −8. Lane j of a run of 32 is in group j / 4.
                let lanes = int8::lane_max::<32>(&v);
                let mut max = [0f32; GROUPS];
                for (g, m) in max.iter_mut().enumerate() {
                    let big = lanes[4 * g..][..4].iter().fold(0f32, |m, &x| m.max(x));
                    *m = v.chunks_exact(32).flat_map(|run| &run[4 * g..][..4]).fold(0.0, |m, &x| if m == 0.0 && x.abs() == big { x } else { m });
                }
                let big = max.iter().fold(0f32, |a, m| a.max(m.abs())) / 8.0;
                let d = big / 127.0;
                let inv_d = if d == 0.0 { 0.0 } else { 1.0 / d };
                let (mut s, mut inv) = ([0i8; GROUPS], [0f32; 32]);
                for (g, s) in s.iter_mut().enumerate() {
                    *s = int8::whole((max[g] / -8.0 * inv_d).round().clamp(-127.0, 127.0)) as i8;
                    inv[4 * g..][..4].fill(if *s == 0 { 0.0 } else { 1.0 / (d * *s as f32) });
                }
                // Run c of 64 bytes: weights 128c + j (low nibbles) and 128c + 64 + j (high).
                let level = |x: f32| int8::whole((x + 8.5).clamp(0.0, 15.0).floor()) as u8;
                for (q, pair) in quants[b * QBYTES..][..QBYTES].chunks_exact_mut(64).zip(v.chunks_exact(128)) {
                    let (lo, hi) = pair.split_at(64);
                    for j in 0..64 {
                        q[j] = level(lo[j] * inv[j % 32]) | level(hi[j] * inv[j % 32]) << 4;
                    }
                }
                scales[4 * b..][..4].copy_from_slice(&d.to_ne_bytes());
                subs[GROUPS * b..][..GROUPS].iter_mut().zip(s).for_each(|(u, s)| *u = s as u8);
            }
        });
        Self(Packed::new(n, k, blocks * ROW_BYTES_PER_BLOCK, data))
    }
}

impl Q4Matrix {
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
    pub(crate) fn with_rows<R>(&self, f: impl FnOnce(&Q4Rows<&[u8]>) -> R) -> candle_core::Result<R> {
        let (n, k) = (self.0.n, self.0.k);
        self.0.with_bytes(|data| f(&Q4Rows { n, k, blocks: k.div_ceil(BLOCK), data }))
    }
}

impl<B: AsRef<[u8]>> Q4Rows<B> {
    /// Row `r`'s scales, sub-scales and quants.
    fn row(&self, r: usize) -> RowRef<'_> {
        let blocks = self.blocks;
        let bytes = &self.data.as_ref()[r * blocks * ROW_BYTES_PER_BLOCK..][..blocks * ROW_BYTES_PER_BLOCK];
        let (scales, rest) = bytes.split_at(4 * blocks);
        let (subs, quants) = rest.split_at(GROUPS * blocks);
        RowRef { scales, subs, quants }
    }
}

impl<B: AsRef<[u8]> + Sync> Int8Rows for Q4Rows<B> {
    fn shape(&self) -> (usize, usize) {
        (self.n, self.k)
    }

    /// The eight unpacked registers of a row's block leave room for two rows.
    const VNNI_ROWS: usize = 2;

    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [f32; N] {
        // SAFETY: as the caller promised.
        unsafe { avx2::dots(&self.row(r), xs) }
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
        let w = self.row(r);
        let mut sum = 0f32;
        for (b, &d) in x.d.iter().enumerate().take(w.blocks()) {
            let (q, p) = (&w.quants[b * QBYTES..][..QBYTES], &x.p[b * BLOCK..][..BLOCK]);
            let mut per_group = [0i32; GROUPS];
            for (i, &p) in p.iter().enumerate() {
                let (byte, shift) = nibble(i);
                per_group[group(i)] += (q[byte] >> shift & 15) as i32 * p as i32;
            }
            // Group g's offset is in the lanes of its two pairs of each run.
            let offsets = &x.offsets[b * 16..][..16];
            let int: i32 = (0..GROUPS)
                .map(|g| w.sub(b, g) as i32 * (per_group[g] - offsets[2 * g] as i32 - offsets[2 * g + 1] as i32))
                .sum();
            sum += w.scale(b) * d * int as f32;
        }
        sum
    }
}

/// One row of weights: `blocks` scales (f32, native byte order), sub-scales (i8, 8 per block)
/// and quants (128 bytes per block).
struct RowRef<'a> {
    scales: &'a [u8],
    subs: &'a [u8],
    quants: &'a [u8],
}

impl RowRef<'_> {
    fn blocks(&self) -> usize {
        self.scales.len() / 4
    }

    /// `D` of block `b`.
    fn scale(&self, b: usize) -> f32 {
        f32::from_ne_bytes(self.scales[4 * b..][..4].try_into().expect("4 bytes"))
    }

    /// `s[g]` of block `b`.
    fn sub(&self, b: usize, g: usize) -> i8 {
        self.subs[GROUPS * b + g] as i8
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{RowRef, BLOCK, GROUPS, QBYTES};
    use crate::int8::{avx2::hsum, QuantRow};
    use std::arch::x86_64::*;

    /// How far ahead of the block being multiplied the matrix is prefetched (its rows follow
    /// each other): nearly two rows of a 3 072-wide matrix (1 680 bytes each). The hardware
    /// prefetcher alone left the 2-thread mat-vec at about 77–85 % of the bandwidth it reaches
    /// with this (medians of alternating runs).
    const PREFETCH: usize = 3072;

    /// Per block and input row: eight `vpmaddubsw` (u4 × i8 pairs, at most 2·15·127 each)
    /// summed in i16 (at most 8 times that, 30 480: no overflow), the offsets subtracted in
    /// i16 (each lane is then `Σ (q − 8)·p` over 16 weights, at most 16·8·127 = 16 256), one
    /// `vpmaddwd` by the sub-scales, then one f32 multiply-add by `D · d`. The block's weights
    /// are unpacked once for all `N` rows.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dots<const N: usize>(w: &RowRef, xs: [&QuantRow; N]) -> [f32; N] {
        let blocks = w.blocks();
        debug_assert!(w.quants.len() == blocks * QBYTES && w.subs.len() == blocks * GROUPS);
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks && x.offsets.len() == blocks * 16));
        let mut acc = [_mm256_setzero_ps(); N];
        for b in 0..blocks {
            let unpacked = unpack(w, b, PREFETCH);
            // [s0, s0, s1, s1, …, s7, s7]: i16 lanes 2g and 2g + 1 are group g's pairs.
            let s8 = _mm_loadl_epi64(w.subs.as_ptr().add(b * GROUPS) as *const __m128i);
            let subs = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(s8, s8));
            let scale = w.scale(b);
            for (acc, x) in acc.iter_mut().zip(xs) {
                let pp = x.p.as_ptr().add(b * BLOCK);
                let product = |t: usize| _mm256_maddubs_epi16(unpacked[t], _mm256_loadu_si256(pp.add(32 * t) as *const __m256i));
                let sums = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_add_epi16(product(0), product(1)), _mm256_add_epi16(product(2), product(3))),
                    _mm256_add_epi16(_mm256_add_epi16(product(4), product(5)), _mm256_add_epi16(product(6), product(7))),
                );
                let offsets = _mm256_loadu_si256(x.offsets.as_ptr().add(b * 16) as *const __m256i);
                let int = _mm256_madd_epi16(_mm256_sub_epi16(sums, offsets), subs);
                *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(int), _mm256_set1_ps(scale * x.d[b]), *acc);
            }
        }
        acc.map(|a| hsum(a))
    }

    /// As [`dots`] with VNNI, for `R` weight rows at once: per block, row and input row, eight
    /// `vpdpbusd` (u4 × i8, four at a time into i32 lane `g` of group `g`, at most 32·15·127
    /// per lane) onto a start of `−8 · Σ p` over the group ([`QuantRow::starts`], so each lane
    /// is `Σ (q − 8)·p`),
    /// then one f32 multiply-add by `D · s[g] · d`. The runs go round the inputs and rows
    /// innermost, so that `R · N` sums are in flight (`vpdpbusd` takes four cycles and two
    /// issue per cycle) and each input register feeds `R` products.
    #[target_feature(enable = "avx2,fma,avx512vnni,avx512vl")]
    pub unsafe fn dots_vnni<const R: usize, const N: usize>(w: [RowRef; R], xs: [&QuantRow; N]) -> [[f32; N]; R] {
        let blocks = w[0].blocks();
        debug_assert!(w.iter().all(|w| w.quants.len() == blocks * QBYTES && w.subs.len() == blocks * GROUPS));
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks && x.starts.len() == blocks * 8));
        let mut acc = [[_mm256_setzero_ps(); N]; R];
        for b in 0..blocks {
            // (Loops rather than closures: a closure does not inherit the target features.)
            let mut unpacked = [[_mm256_setzero_si256(); 8]; R];
            // D · s[g] in lane g.
            let mut steps = [_mm256_setzero_ps(); R];
            for ((u, step), w) in unpacked.iter_mut().zip(&mut steps).zip(&w) {
                // R rows are read side by side: as far ahead in time is R times as many bytes.
                *u = unpack(w, b, PREFETCH * R);
                let subs = _mm256_cvtepi8_epi32(_mm_loadl_epi64(w.subs.as_ptr().add(b * GROUPS) as *const __m128i));
                *step = _mm256_mul_ps(_mm256_cvtepi32_ps(subs), _mm256_set1_ps(w.scale(b)));
            }
            let mut starts = [_mm256_setzero_si256(); N];
            for (start, x) in starts.iter_mut().zip(xs) {
                *start = _mm256_loadu_si256(x.starts.as_ptr().add(b * GROUPS) as *const __m256i);
            }
            let mut ints = [starts; R];
            for t in 0..8 {
                for (j, x) in xs.iter().enumerate() {
                    let p = _mm256_loadu_si256(x.p.as_ptr().add(b * BLOCK + 32 * t) as *const __m256i);
                    for (int, u) in ints.iter_mut().zip(&unpacked) {
                        int[j] = _mm256_dpbusd_epi32(int[j], u[t], p);
                    }
                }
            }
            for (j, x) in xs.iter().enumerate() {
                let d = _mm256_set1_ps(x.d[b]);
                for ((acc, int), step) in acc.iter_mut().zip(&ints).zip(&steps) {
                    acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(int[j]), _mm256_mul_ps(*step, d), acc[j]);
                }
            }
        }
        acc.map(|a| a.map(|a| hsum(a)))
    }

    /// As [`dots_vnni`] on 512-bit registers. A block's two runs of quants unpack into four
    /// registers of 64 consecutive weights, each multiplied by the input straight from memory.
    /// i32 lanes `g` and `g + 8` both sum group `g`: the start `−8 · Σ p` goes in the low half
    /// only and `D · s[g]` is in both. Per block, row and input row: four `vpdpbusd` (at most
    /// 16·15·127 per lane beside the start), one f32 multiply-add by `D · s[g] · d`.
    #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::needless_range_loop, reason = "index loops: iterator adaptors were left as calls here")]
    pub unsafe fn dots_avx512<const R: usize, const N: usize>(w: [RowRef; R], xs: [&QuantRow; N]) -> [[f32; N]; R] {
        let blocks = w[0].blocks();
        debug_assert!(w.iter().all(|w| w.quants.len() == blocks * QBYTES && w.subs.len() == blocks * GROUPS && w.scales.len() == blocks * 4));
        debug_assert!(xs.iter().all(|x| x.p.len() == blocks * BLOCK && x.d.len() == blocks && x.starts.len() == blocks * 8));
        // (Index loops and raw pointers: iterator adaptors were left as calls in this loop.)
        let (quants, subs, scales): ([*const u8; R], [*const u8; R], [*const f32; R]) = (
            std::array::from_fn(|h| w[h].quants.as_ptr()),
            std::array::from_fn(|h| w[h].subs.as_ptr()),
            std::array::from_fn(|h| w[h].scales.as_ptr() as *const f32),
        );
        let (ps, ds, starts): ([*const i8; N], [*const f32; N], [*const i32; N]) =
            (std::array::from_fn(|j| xs[j].p.as_ptr()), std::array::from_fn(|j| xs[j].d.as_ptr()), std::array::from_fn(|j| xs[j].starts.as_ptr()));
        let mask = _mm512_set1_epi8(15);
        let mut acc = [[_mm512_setzero_ps(); N]; R];
        for b in 0..blocks {
            let mut unpacked = [[_mm512_setzero_si512(); 4]; R];
            // D · s[g] in lanes g and g + 8.
            let mut steps = [_mm512_setzero_ps(); R];
            for h in 0..R {
                let qp = quants[h].add(b * QBYTES);
                _mm_prefetch(qp.wrapping_add(PREFETCH * R) as *const i8, _MM_HINT_T0);
                _mm_prefetch(qp.wrapping_add(PREFETCH * R + 64) as *const i8, _MM_HINT_T0);
                for c in 0..2 {
                    let packed = _mm512_loadu_si512(qp.add(64 * c) as *const _);
                    unpacked[h][2 * c] = _mm512_and_si512(packed, mask);
                    unpacked[h][2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask);
                }
                let s = _mm_set1_epi64x((subs[h].add(b * GROUPS) as *const i64).read_unaligned());
                let d = scales[h].add(b).read_unaligned();
                steps[h] = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(s)), _mm512_set1_ps(d));
            }
            let mut ints = [[_mm512_setzero_si512(); N]; R];
            for j in 0..N {
                let start = _mm512_zextsi256_si512(_mm256_loadu_si256(starts[j].add(b * GROUPS) as *const __m256i));
                for int in ints.iter_mut() {
                    int[j] = start;
                }
            }
            for t in 0..4 {
                for j in 0..N {
                    let p = _mm512_loadu_si512(ps[j].add(b * BLOCK + 64 * t) as *const _);
                    for h in 0..R {
                        ints[h][j] = _mm512_dpbusd_epi32(ints[h][j], unpacked[h][t], p);
                    }
                }
            }
            for j in 0..N {
                let d = _mm512_set1_ps(ds[j].add(b).read());
                for h in 0..R {
                    acc[h][j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ints[h][j]), _mm512_mul_ps(steps[h], d), acc[h][j]);
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

    /// Block `b`'s quants as eight registers of 32 bytes `0..=15`: weights `32t..32t + 32` in
    /// register `t`. Prefetches the matrix `ahead` bytes on (prefetch never faults, so it may
    /// run past the end of the matrix).
    #[inline(always)]
    unsafe fn unpack(w: &RowRef, b: usize, ahead: usize) -> [__m256i; 8] {
        let qp = w.quants.as_ptr().add(b * QBYTES);
        _mm_prefetch(qp.wrapping_add(ahead) as *const i8, _MM_HINT_T0);
        _mm_prefetch(qp.wrapping_add(ahead + 64) as *const i8, _MM_HINT_T0);
        // Half h of run c (32 bytes) holds weights 128c + 32h.. in its low nibbles and
        // 128c + 64 + 32h.. in its high ones.
        let mask = _mm256_set1_epi8(15);
        let mut unpacked = [_mm256_setzero_si256(); 8];
        for c in 0..2 {
            for h in 0..2 {
                let packed = _mm256_loadu_si256(qp.add(64 * c + 32 * h) as *const __m256i);
                unpacked[4 * c + h] = _mm256_and_si256(packed, mask);
                unpacked[4 * c + 2 + h] = _mm256_and_si256(_mm256_srli_epi16(packed, 4), mask);
            }
        }
        unpacked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::int8::tests::values;

    /// The rows of `q`, owning a copy of its bytes.
    fn rows(q: &Q4Matrix) -> Q4Rows<Vec<u8>> {
        q.with_rows(|r| Q4Rows { n: r.n, k: r.k, blocks: r.blocks, data: r.data.to_vec() }).unwrap()
    }

    /// The weights as f32 `[n, k]`, weight by weight from the layout's definition.
    fn dequantized(q: &Q4Rows<Vec<u8>>) -> Vec<f32> {
        let mut w = Vec::with_capacity(q.n * q.k);
        for r in 0..q.n {
            let row = q.row(r);
            w.extend((0..q.k).map(|col| {
                let (b, i) = (col / BLOCK, col % BLOCK);
                let (byte, shift) = nibble(i);
                let level = row.quants[b * QBYTES + byte] >> shift & 15;
                row.scale(b) * row.sub(b, group(i)) as f32 * (level as f32 - 8.0)
            }));
        }
        w
    }

    #[test]
    fn levels_round_trip_and_each_weight_is_within_a_step() {
        // A block that is exactly representable: every group (weights 32m + 4g .. + 4) has
        // step 0.25 and every level −8..=7.
        let w: Vec<f32> = (0..BLOCK).map(|i| 0.25 * ((2 * (i / 32) + i % 4 / 2) as f32 - 8.0)).collect();
        let q = Q4Matrix::quantize(&w, 1, BLOCK);
        for (a, b) in w.iter().zip(dequantized(&rows(&q))) {
            assert!((a - b).abs() <= 1e-6, "{a} vs {b}");
        }
        // 140 bytes per 256 weights; a shorter row is padded to a whole block.
        assert_eq!(q.bytes(), 140);
        assert_eq!(Q4Matrix::quantize(&w[..40], 1, 40).bytes(), 140);
        assert_eq!(Q4Matrix::quantize(&[w.clone(), w].concat(), 1, 2 * BLOCK).bytes(), 280);
        // Otherwise every weight is within half a step of its group, plus what rounding the
        // group's scale to a multiple of D moves the largest weight (8 · D / 2); values beyond
        // 7.5 steps on the positive side clip to 7 steps (one more step).
        let (n, k) = (3, 2 * BLOCK + 40);
        let w: Vec<f32> = values(n * k, 3).iter().enumerate().map(|(i, v)| v * (1.0 + (i / 32 % 5) as f32)).collect();
        let q = rows(&Q4Matrix::quantize(&w, n, k));
        let back = dequantized(&q);
        assert_eq!(back.len(), n * k);
        for (i, (a, b)) in w.iter().zip(&back).enumerate() {
            let (r, col) = (i / k, i % k);
            let (row, block) = (q.row(r), col / BLOCK);
            let d = row.scale(block);
            let step = (d * row.sub(block, group(col % BLOCK)) as f32).abs();
            let bound = step + 4.0 * d;
            assert!((a - b).abs() <= bound * (1.0 + 1e-5), "weight {i}: {a} vs {b} (step {step}, D {d})");
        }
        // The largest weight of each block is exact up to f32 rounding.
        for (r, row) in w.chunks(k).enumerate() {
            for (b, block) in row.chunks(BLOCK).enumerate() {
                let (j, max) = block.iter().enumerate().fold((0, 0f32), |m, (j, v)| if v.abs() > m.1.abs() { (j, *v) } else { m });
                let got = back[r * k + b * BLOCK + j];
                assert!((got - max).abs() <= max.abs() * 1e-5, "row {r} block {b}: {got} vs {max}");
            }
        }
    }

    #[test]
    fn products_match_the_dequantised_weights() {
        crate::int8::tests::assert_products_match(|w, n, k| {
            let q = rows(&Q4Matrix::quantize(w, n, k));
            let w = dequantized(&q);
            (q, w)
        });
    }
}
