//! What the integer formats ([`q8`](crate::q8), [`q4`](crate::q4)) share: the input rows
//! quantised to int8 per block of 256 ([`QuantRow`]) and the parallel product that passes them
//! over a matrix's rows ([`matmul`]). Each format supplies one weight row's dot products with
//! up to [`INPUT_GROUP`] input rows ([`Int8Rows`]), and with VNNI several weight rows at a time.

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::gemv::Widen;
use crate::{huge, with_avx2, with_elements, SharedOut};

/// Weights (and input values) per block: one scale each.
pub const BLOCK: usize = 256;

/// Output rows per parallel task: 32 rows of 3 072 weights are 26–96 KiB in the integer formats.
const TASK_ROWS: usize = 32;
/// Input rows multiplied together against each unpacked weight row.
pub(crate) const INPUT_GROUP: usize = 4;
/// The most weight rows multiplied together against a group of input rows (with VNNI; one
/// otherwise): see [`Int8Rows::VNNI_ROWS`].
pub(crate) const ROW_GROUP: usize = 4;

/// One input row quantised to int8 per block of 256, `x ≈ d · p` (`|p| ≤ 127`), padded with
/// zeros to whole blocks. Refilling one ([`QuantRow::fill`]) reuses its buffers.
#[derive(Default)]
pub(crate) struct QuantRow {
    /// `[blocks, 256]`.
    pub p: Vec<i8>,
    /// `[blocks]`.
    pub d: Vec<f32>,
    /// `[blocks, 16]`: lane `l` holds `8 · Σ_c (p[32c + 2l] + p[32c + 2l + 1])` over the
    /// block's eight runs `c` of 32 (at most `8 · 16 · 127`, an i16). q4 subtracts it to centre
    /// its unsigned quants (see [`crate::q4`]).
    pub offsets: Vec<i16>,
    /// `[blocks, 8]`: lane `l` holds `−8 · Σ p[i]` over the block's `i` with `(i / 4) % 8 = l`
    /// (the bytes that `vpdpbusd` sums into i32 lane `l` of a run of 32): where q4's VNNI sums
    /// start, taking away the offset 8 of its unsigned weights (q8's start at 16 times it, for
    /// an offset of 128).
    pub starts: Vec<i32>,
}

impl QuantRow {
    #[cfg(test)]
    pub fn new(x: &[f32], blocks: usize) -> Self {
        let mut row = Self::default();
        row.fill(x, blocks);
        row
    }

    /// Quantises `x` (at most `blocks · 256` values) into this row's buffers, which allocate
    /// only when they grow.
    pub fn fill(&mut self, x: &[f32], blocks: usize) {
        with_avx2(#[inline(always)] || self.quantize(x, blocks))
    }

    /// Plain code, compiled once as is and once with AVX2 enabled (vectorised rounding).
    #[inline(always)]
    pub fn quantize(&mut self, x: &[f32], blocks: usize) {
        let Self { p, d, offsets, starts } = self;
        p.clear();
        p.resize(blocks * BLOCK, 0);
        d.clear();
        d.resize(blocks, 0.0);
        offsets.clear();
        offsets.resize(blocks * 16, 0);
        starts.clear();
        starts.resize(blocks * 8, 0);
        for (b, block) in x.chunks(BLOCK).enumerate() {
            let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = amax / 127.0;
            let inv = if scale == 0.0 { 0.0 } else { 1.0 / scale };
            let pb = &mut p[b * BLOCK..][..block.len()];
            for (q, v) in pb.iter_mut().zip(block) {
                *q = (v * inv).round_ties_even() as i8;
            }
            d[b] = scale;
            let ob = &mut offsets[b * 16..][..16];
            for run in p[b * BLOCK..][..BLOCK].chunks_exact(32) {
                for (o, pair) in ob.iter_mut().zip(run.chunks_exact(2)) {
                    *o += 8 * (pair[0] as i16 + pair[1] as i16);
                }
                for (s, four) in starts[b * 8..][..8].iter_mut().zip(run.chunks_exact(4)) {
                    *s -= 8 * four.iter().map(|&v| v as i32).sum::<i32>();
                }
            }
        }
    }
}

/// An integer format's matrix, quantised from weights as stored.
pub(crate) trait Quantize {
    /// Quantises `w` `[n, k]` (row-major; f32 or 16-bit), rows in parallel.
    fn quantize<T: Widen>(w: &[T], n: usize, k: usize) -> Self;
}

/// The bytes of an integer format's `[n, k]` matrix, `stride` per row, in a u8 tensor
/// `[n, stride]`: quantised here, or read as a pre-quantised checkpoint stores them (into the
/// tensor's own buffer, not copied again). Products borrow them for their length.
pub(crate) struct Packed {
    pub n: usize,
    pub k: usize,
    data: Tensor,
}

impl Packed {
    /// `bytes` `[n, stride]` as quantised.
    pub fn new(n: usize, k: usize, stride: usize, bytes: Vec<u8>) -> Self {
        let data = Tensor::from_vec(bytes, (n, stride), &Device::Cpu).expect("quantised rows are [n, stride]");
        Self { n, k, data }
    }

    /// A stored tensor that must be u8 `[n, stride]`.
    pub fn from_stored(data: Tensor, n: usize, k: usize, stride: usize) -> candle_core::Result<Self> {
        if data.dtype() != DType::U8 || data.dims() != [n, stride] {
            candle_core::bail!("expected U8 [{n}, {stride}] for a {n}×{k} matrix, got {:?} {:?}", data.dtype(), data.dims());
        }
        Ok(Self { n, k, data })
    }

    /// `f` of the bytes, row-major.
    pub fn with_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> candle_core::Result<R> {
        with_elements(&self.data, f)
    }

    /// The tensor `[n, stride]`.
    pub fn tensor(&self) -> &Tensor {
        &self.data
    }
}

/// The rows of a weight matrix `[n, k]` (row-major, f32 or 16-bit as stored) quantised in
/// parallel into `n` runs of `stride` bytes, on huge pages: `row(values, bytes)` fills one run
/// from the row's `k` values, inside [`with_avx2`] (mark it `#[inline(always)]`, so its rounding
/// is vectorised rather than a call per value).
pub(crate) fn quantize_rows<T: Widen>(w: &[T], k: usize, stride: usize, row: impl Fn(&[T], &mut [u8]) + Sync) -> Vec<u8> {
    let mut data = huge::filled(w.len() / k * stride, 0u8);
    data.par_chunks_exact_mut(stride).zip(w.par_chunks_exact(k)).for_each(|(bytes, values)| with_avx2(#[inline(always)] || row(values, bytes)));
    data
}

/// One block of weights (at most 256 values) widened to f32 and padded with zeros.
#[inline(always)]
pub(crate) fn widened_block<T: Widen>(values: &[T]) -> [f32; BLOCK] {
    let mut block = [0f32; BLOCK];
    block.iter_mut().zip(values).for_each(|(b, v)| *b = v.widen());
    block
}

/// The largest magnitude in each lane `j < L` of a block's runs of `L` values (values `j`,
/// `L + j`, `2L + j`, …), in a form that vectorises.
#[inline(always)]
pub(crate) fn lane_max<const L: usize>(block: &[f32; BLOCK]) -> [f32; L] {
    let mut lanes = [0f32; L];
    for run in block.chunks_exact(L) {
        lanes.iter_mut().zip(run).for_each(|(m, x)| *m = m.max(x.abs()));
    }
    lanes
}

/// `x`, a whole number of magnitude below 2²², as an i32 (anything else gives an unspecified
/// value). Unlike `as`, which must saturate and map NaN to 0, this compiles to vector code.
#[inline(always)]
pub(crate) fn whole(x: f32) -> i32 {
    // 1.5 · 2²³ puts the number in the low mantissa bits of an exponent of 23.
    (x + 12_582_912.0).to_bits() as i32 - 0x4B40_0000
}

/// A `[n, k]` matrix in an integer format, as the product sees it.
pub(crate) trait Int8Rows: Sync {
    /// `(n, k)`.
    fn shape(&self) -> (usize, usize);

    /// Weight rows per [`Int8Rows::dots_vnni`] call in a product of many input rows, at most
    /// [`ROW_GROUP`]: as many as the format's unpacked weights leave registers for.
    const VNNI_ROWS: usize;

    /// Blocks per row (`k / 256` rounded up).
    fn blocks(&self) -> usize {
        self.shape().1.div_ceil(BLOCK)
    }

    /// Row `r` against each of `xs` (AVX2 and FMA).
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA; every input has [`Int8Rows::blocks`] blocks.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx2<const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [f32; N];

    /// Rows `r .. r + R` against each of `xs` with AVX-512 VNNI's `vpdpbusd` (on 256-bit
    /// registers), which multiplies and sums four byte pairs into each i32 lane in one
    /// instruction: element `[h][j]` is row `r + h` with `xs[j]`. The same integer sums as
    /// [`Int8Rows::dots_avx2`], scaled in f32 in another order.
    ///
    /// # Safety
    /// The CPU must also have AVX512-VNNI and AVX512-VL; rows `r .. r + R` exist.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_vnni<const R: usize, const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [[f32; N]; R];

    /// As [`Int8Rows::dots_vnni`] on 512-bit registers, where the format has such a kernel
    /// (the 256-bit one otherwise).
    ///
    /// # Safety
    /// As [`Int8Rows::dots_vnni`]; the CPU must also have AVX512F and AVX512BW.
    #[cfg(target_arch = "x86_64")]
    unsafe fn dots_avx512<const R: usize, const N: usize>(&self, r: usize, xs: [&QuantRow; N]) -> [[f32; N]; R] {
        // SAFETY: as the caller promised.
        unsafe { self.dots_vnni::<R, N>(r, xs) }
    }

    /// Row `r` against `x`, in plain code.
    fn dot_scalar(&self, r: usize, x: &QuantRow) -> f32;
}

/// `xs` `[m, k]` → `y` `[m, n]` against `w`, plus `bias` `[n]` if given (added as each value
/// is stored), the input rows quantised into `inputs` (which allocates only when it grows: one
/// row, as in decode, allocates nothing once warm).
///
/// Output rows go to the rayon pool [`TASK_ROWS`] at a time. Within a task, the input rows
/// pass over its weight rows [`INPUT_GROUP`] at a time, each weight row unpacked once per
/// group (and with VNNI, [`Int8Rows::VNNI_ROWS`] weight rows at a time, so that each input
/// register feeds as many products and that many times four sums are in flight): one row (decode) streams the
/// matrix once, many rows (prefill) re-read the task's weights from L2 while a group's int8
/// inputs stay in L1.
pub(crate) fn matmul_into<W: Int8Rows>(w: &W, xs: &[f32], m: usize, y: &mut [f32], bias: Option<&[f32]>, inputs: &mut Vec<QuantRow>) {
    let (n, k) = w.shape();
    assert_eq!(xs.len(), m * k, "input is not [{m}, {k}]");
    assert_eq!(y.len(), m * n, "output is not [{m}, {n}]");
    assert!(bias.is_none_or(|b| b.len() == n), "bias is not [{n}]");
    inputs.resize_with(m, QuantRow::default);
    let blocks = w.blocks();
    if m == 1 {
        inputs[0].fill(xs, blocks);
    } else {
        inputs.par_iter_mut().zip(xs.par_chunks_exact(k)).for_each(|(row, x)| row.fill(x, blocks));
    }
    let inputs = &inputs[..];
    let simd = Simd::best();
    // One input row reads the matrix as one stream, a row at a time.
    let row_group = if m == 1 || simd < Simd::Vnni { 1 } else { W::VNNI_ROWS };
    let out = SharedOut(y.as_mut_ptr());
    (0..n.div_ceil(TASK_ROWS)).into_par_iter().for_each(|t| {
        let task = t * TASK_ROWS..n.min((t + 1) * TASK_ROWS);
        for (g, group) in inputs.chunks(INPUT_GROUP).enumerate() {
            for r in task.clone().step_by(row_group) {
                let rows = row_group.min(task.end - r);
                dots(simd, w, r, rows, group, |h, j, v| {
                    let v = v + bias.map_or(0.0, |b| b[r + h]);
                    // SAFETY: element (g·INPUT_GROUP + j, r + h) of the [m, n] output, in bounds
                    // (j < group.len(), r + h < task.end ≤ n); column r + h belongs to this
                    // task alone.
                    unsafe { *out.ptr().add((g * INPUT_GROUP + j) * n + r + h) = v };
                });
            }
        }
    });
}

/// The instructions a product runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Simd {
    Scalar,
    /// AVX2 and FMA.
    Avx2,
    /// AVX2, FMA, AVX512-VNNI and AVX512-VL: VNNI on 256-bit registers.
    Vnni,
    /// All of those, AVX512F and AVX512BW: VNNI on 512-bit registers.
    Avx512,
}

impl Simd {
    /// The level the integer products run at: the best this CPU has, or a lower one named by
    /// the `PHI3V_SIMD` environment variable (`scalar`, `avx2`, `vnni`, `avx512`; for comparing
    /// kernels on one machine). Decided once per process.
    pub fn best() -> Self {
        static CHOSEN: OnceLock<Simd> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            let detected = Self::detected();
            std::env::var("PHI3V_SIMD").ok().and_then(|name| Self::named(&name)).map_or(detected, |cap| cap.min(detected))
        })
    }

    /// The best level this CPU has.
    fn detected() -> Self {
        #[cfg(target_arch = "x86_64")]
        if avx2::available() {
            if is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl") {
                if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                    return Self::Avx512;
                }
                return Self::Vnni;
            }
            return Self::Avx2;
        }
        Self::Scalar
    }

    /// The level `PHI3V_SIMD` names, if it names one.
    fn named(name: &str) -> Option<Self> {
        let all = [(Self::Scalar, "scalar"), (Self::Avx2, "avx2"), (Self::Vnni, "vnni"), (Self::Avx512, "avx512")];
        all.into_iter().find(|(_, n)| n.eq_ignore_ascii_case(name.trim())).map(|(level, _)| level)
    }

    /// Every level this CPU has (each includes the ones before it).
    #[cfg(test)]
    pub fn available() -> Vec<Self> {
        let all = [Self::Scalar, Self::Avx2, Self::Vnni, Self::Avx512];
        all.into_iter().filter(|&l| l <= Self::detected()).collect()
    }
}

/// Rows `r .. r + rows` (`rows` ≤ [`ROW_GROUP`]) of `w` against up to [`INPUT_GROUP`]
/// quantised input rows with `simd` (which the CPU must have): `store(h, j, v)` is called once
/// with each product `v` of row `r + h` and `xs[j]`, straight from the kernel's registers.
#[inline(always)]
pub(crate) fn dots(simd: Simd, w: &impl Int8Rows, r: usize, rows: usize, xs: &[QuantRow], mut store: impl FnMut(usize, usize, f32)) {
    assert!(rows <= ROW_GROUP && r + rows <= w.shape().0, "rows {r}..{} of {}", r + rows, w.shape().0);
    /// Each element `[h][j]` of `products` to `store`.
    #[inline(always)]
    fn each<const R: usize, const N: usize>(products: [[f32; N]; R], store: &mut impl FnMut(usize, usize, f32)) {
        for (h, row) in products.iter().enumerate() {
            for (j, &v) in row.iter().enumerate() {
                store(h, j, v);
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if simd != Simd::Scalar {
        /// # Safety
        /// As [`Int8Rows::dots_avx512`] for `Simd::Avx512`, [`Int8Rows::dots_vnni`] for
        /// `Simd::Vnni`, else [`Int8Rows::dots_avx2`].
        #[inline(always)]
        unsafe fn run<const N: usize>(simd: Simd, w: &impl Int8Rows, r: usize, rows: usize, xs: [&QuantRow; N], store: &mut impl FnMut(usize, usize, f32)) {
            // SAFETY: as the caller promised.
            unsafe {
                match (simd, rows) {
                    (Simd::Avx512, 4) => each(w.dots_avx512::<4, N>(r, xs), store),
                    (Simd::Avx512, 3) => each(w.dots_avx512::<3, N>(r, xs), store),
                    (Simd::Avx512, 2) => each(w.dots_avx512::<2, N>(r, xs), store),
                    (Simd::Avx512, _) => each(w.dots_avx512::<1, N>(r, xs), store),
                    (Simd::Vnni, 4) => each(w.dots_vnni::<4, N>(r, xs), store),
                    (Simd::Vnni, 3) => each(w.dots_vnni::<3, N>(r, xs), store),
                    (Simd::Vnni, 2) => each(w.dots_vnni::<2, N>(r, xs), store),
                    (Simd::Vnni, _) => each(w.dots_vnni::<1, N>(r, xs), store),
                    _ => {
                        for h in 0..rows {
                            each([w.dots_avx2(r + h, xs)], &mut |_, j, v| store(h, j, v));
                        }
                    }
                }
            }
        }
        // SAFETY: the caller chose a level this CPU has; every input was quantised for this
        // matrix; the rows exist (asserted).
        unsafe {
            match xs {
                [a] => return run(simd, w, r, rows, [a], &mut store),
                [a, b] => return run(simd, w, r, rows, [a, b], &mut store),
                [a, b, c] => return run(simd, w, r, rows, [a, b, c], &mut store),
                [a, b, c, d] => return run(simd, w, r, rows, [a, b, c, d], &mut store),
                _ => {}
            }
        }
    }
    for h in 0..rows {
        for (j, x) in xs.iter().enumerate() {
            store(h, j, w.dot_scalar(r + h, x));
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }

    /// `f` compiled for AVX2 and FMA (where it is inlined).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn run(f: impl FnOnce()) {
        f()
    }

    /// The sum of the eight lanes.
    #[inline(always)]
    pub unsafe fn hsum(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Deterministic values in about ±0.71.
    pub fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| (((i + seed) * 7919 % 1000) as f32 - 500.0) / 700.0).collect()
    }

    /// Checks a format's products: `quantize(w, n, k)` gives the matrix and its weights as
    /// f32 `[n, k]`, dequantised from the layout's definition. Products are compared with f64
    /// products of those weights, which differ only by the int8 rounding of the input (≤ 1/254
    /// of each block's largest value); the products of groups of every size at every SIMD level
    /// this CPU has with the scalar ones. Widths below, at, and between multiples of 256; row counts that fill groups
    /// of four and leave 1–3 over.
    pub fn assert_products_match<M: Int8Rows>(quantize: impl Fn(&[f32], usize, usize) -> (M, Vec<f32>)) {
        for (m, n, k) in [(1, 70, 32), (3, 33, 320), (4, 129, 96), (2, 17, 40), (1, 40, 768), (9, 40, 64), (7, 65, 512)] {
            let (q, w) = quantize(&values(n * k, 1), n, k);
            let xs = values(m * k, 5);
            let mut got = vec![f32::NAN; m * n];
            matmul_into(&q, &xs, m, &mut got, None, &mut Vec::new());
            for i in 0..m {
                for j in 0..n {
                    let want: f64 = (0..k).map(|t| w[j * k + t] as f64 * xs[i * k + t] as f64).sum();
                    let g = got[i * n + j] as f64;
                    assert!((g - want).abs() <= 3e-2 * (1.0 + want.abs()), "{m}×{n}×{k} at ({i}, {j}): {g} vs {want}");
                }
            }
            let inputs: Vec<QuantRow> = xs.chunks_exact(k).map(|x| QuantRow::new(x, q.blocks())).collect();
            for (level, size) in Simd::available().into_iter().flat_map(|l| (1..=INPUT_GROUP.min(m)).map(move |s| (l, s))) {
                for (r, rows) in (0..n).flat_map(|r| (1..=ROW_GROUP.min(n - r)).map(move |rows| (r, rows))) {
                    let mut stored = [[None; INPUT_GROUP]; ROW_GROUP];
                    dots(level, &q, r, rows, &inputs[..size], |h, j, v| {
                        assert!(stored[h][j].replace(v).is_none(), "{level:?}: [{h}][{j}] stored twice");
                    });
                    for (h, row) in stored.iter().enumerate() {
                        for (j, got) in row.iter().enumerate() {
                            let Some(got) = *got else {
                                assert!(h >= rows || j >= size, "{level:?}: [{h}][{j}] not stored");
                                continue;
                            };
                            assert!(h < rows && j < size, "{level:?}: [{h}][{j}] stored but unused");
                            let scalar = q.dot_scalar(r + h, &inputs[j]);
                            assert!((got - scalar).abs() <= 1e-5 * (1.0 + scalar.abs()), "{level:?}: {got} vs {scalar} at [{h}][{j}]");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn simd_levels_are_named_and_ordered() {
        assert_eq!(Simd::named("AVX2"), Some(Simd::Avx2));
        assert_eq!(Simd::named(" vnni"), Some(Simd::Vnni));
        assert_eq!(Simd::named("avx512"), Some(Simd::Avx512));
        assert_eq!(Simd::named("scalar"), Some(Simd::Scalar));
        assert_eq!(Simd::named("sse"), None);
        assert!(Simd::Scalar < Simd::Avx2 && Simd::Avx2 < Simd::Vnni && Simd::Vnni < Simd::Avx512);
        assert!(Simd::best() <= Simd::detected());
    }

    #[test]
    fn inputs_round_within_half_a_step_alike_with_and_without_simd() {
        let k = 2 * BLOCK + 40;
        let x: Vec<f32> = values(k, 3).iter().enumerate().map(|(i, v)| v * (1.0 + (i / BLOCK) as f32)).collect();
        let row = QuantRow::new(&x, 3);
        let mut plain = QuantRow::default();
        plain.quantize(&x, 3);
        assert_eq!((&row.p, &row.d, &row.offsets, &row.starts), (&plain.p, &plain.d, &plain.offsets, &plain.starts));
        assert_eq!(row.p.len(), 3 * BLOCK);
        assert!(row.p[k..].iter().all(|&p| p == 0), "padding is zero");
        for (i, &v) in x.iter().enumerate() {
            let d = row.d[i / BLOCK];
            assert!((d * row.p[i] as f32 - v).abs() <= d / 2.0 * (1.0 + 1e-5), "value {i}: {v}");
        }
        // Lane l of a block's offsets: 8 × the sum of its pairs (2l, 2l + 1) over the 8 runs.
        let lane = |b: usize, l: usize| (0..8).map(|c| 8 * (row.p[b * BLOCK + 32 * c + 2 * l] as i16 + row.p[b * BLOCK + 32 * c + 2 * l + 1] as i16)).sum::<i16>();
        for b in 0..3 {
            for l in 0..16 {
                assert_eq!(row.offsets[b * 16 + l], lane(b, l));
            }
            // Lane l of a block's starts: −8 × the sum of its bytes 4l .. 4l + 4 of each run of 32.
            for l in 0..8 {
                let sum: i32 = (0..BLOCK).filter(|i| i / 4 % 8 == l).map(|i| row.p[b * BLOCK + i] as i32).sum();
                assert_eq!(row.starts[b * 8 + l], -8 * sum);
            }
        }
    }
}
