//! `y = W·x` for a few rows `x` against compact weights `W` `[out, in]` (16-bit), accumulated
//! in f32.
//!
//! The decode path: one row of activations against the whole matrix, so the time is the time to
//! stream the weights from memory. Output rows are split across the rayon pool in blocks small
//! enough that a block of weights stays in cache while every input row uses it. With AVX2 + FMA
//! (and F16C for f16) each group of 8 weights is widened to f32 in registers; elsewhere a plain
//! loop does the same arithmetic. [`Widen::kernels`] also gives the widening dot product and
//! `y += s·w` on their own (the decoder's attention over its KV cache, which may be f32, f16 or
//! int8).

use half::{bf16, f16};
use rayon::prelude::*;

use crate::SharedOut;

/// An element that widens exactly to f32: a 16-bit weight, an int8 or f32 cache value.
pub trait Widen: Copy + Send + Sync + 'static {
    fn widen(self) -> f32;
    /// The dot product and `axpy` for this type on this CPU (checks its features; call once
    /// per batch of rows, not per row).
    fn kernels() -> Kernels<Self>;
}

/// The widening kernels of one element type, chosen for the running CPU.
#[derive(Clone, Copy)]
pub struct Kernels<T> {
    /// Σ `w[i]·x[i]`; callers guarantee `x.len() >= w.len()`.
    dot: unsafe fn(&[T], &[f32]) -> f32,
    /// `y[i] += s·w[i]`; callers guarantee `y.len() >= w.len()`.
    axpy: unsafe fn(f32, &[T], &mut [f32]),
}

impl<T: Widen> Kernels<T> {
    /// The plain loops, for any CPU.
    fn scalar() -> Self {
        Self { dot: dot_scalar::<T>, axpy: axpy_scalar::<T> }
    }

    /// `Σ w[i]·x[i]` over `w.len()` elements (`x` at least as long).
    pub fn dot(&self, w: &[T], x: &[f32]) -> f32 {
        assert!(x.len() >= w.len(), "dot of {} weights with {} inputs", w.len(), x.len());
        // SAFETY: the kernel was chosen for this CPU; the lengths were checked.
        unsafe { (self.dot)(w, x) }
    }

    /// `y[i] += s·w[i]` over `w.len()` elements (`y` at least as long).
    pub fn axpy(&self, s: f32, w: &[T], y: &mut [f32]) {
        assert!(y.len() >= w.len(), "axpy of {} weights into {} outputs", w.len(), y.len());
        // SAFETY: as above.
        unsafe { (self.axpy)(s, w, y) }
    }
}

/// Output rows per parallel task: 32 rows of 3 072 bf16 weights are 192 KiB.
const BLOCK_ROWS: usize = 32;

/// `xs` `[m, k]` (row-major) against `w` `[n, k]` → `out` `[m, n]`, allocating nothing.
///
/// Output rows go to the rayon pool in blocks of `BLOCK_ROWS`, so a block of weights stays in
/// cache while every input row uses it.
pub fn gemv_into<T: Widen>(w: &[T], n: usize, k: usize, xs: &[f32], m: usize, out: &mut [f32]) {
    assert_eq!(w.len(), n * k, "weights are not [{n}, {k}]");
    assert_eq!(xs.len(), m * k, "input is not [{m}, {k}]");
    assert_eq!(out.len(), m * n, "output is not [{m}, {n}]");
    let kernels = T::kernels();
    let y = SharedOut(out.as_mut_ptr());
    (0..n.div_ceil(BLOCK_ROWS)).into_par_iter().for_each(|b| {
        for r in b * BLOCK_ROWS..n.min((b + 1) * BLOCK_ROWS) {
            let wr = &w[r * k..(r + 1) * k];
            for (i, x) in xs.chunks_exact(k).enumerate() {
                // SAFETY: element (i, r) of the [m, n] output, in bounds (checked above);
                // column r belongs to this task alone.
                unsafe { *y.ptr().add(i * n + r) = kernels.dot(wr, x) };
            }
        }
    });
}

fn dot_scalar<T: Widen>(w: &[T], x: &[f32]) -> f32 {
    w.iter().zip(x).map(|(w, x)| w.widen() * x).sum()
}

fn axpy_scalar<T: Widen>(s: f32, w: &[T], y: &mut [f32]) {
    y.iter_mut().zip(w).for_each(|(y, w)| *y += s * w.widen());
}

/// `Kernels` with the AVX2 functions `$dot` and `$axpy` where the products' SIMD level has AVX2
/// and FMA (`int8::Simd::best`) and the CPU `$extra`, the plain loops elsewhere.
macro_rules! kernels {
    ($dot:ident, $axpy:ident $(, $extra:tt)?) => {{
        #[cfg(target_arch = "x86_64")]
        if crate::int8::Simd::best() >= crate::int8::Simd::Avx2 $(&& std::arch::is_x86_feature_detected!($extra))? {
            return Kernels { dot: avx2::$dot, axpy: avx2::$axpy };
        }
        Kernels::scalar()
    }};
}

impl Widen for f32 {
    fn widen(self) -> f32 {
        self
    }

    fn kernels() -> Kernels<Self> {
        kernels!(dot_f32, axpy_f32)
    }
}

impl Widen for bf16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }

    fn kernels() -> Kernels<Self> {
        kernels!(dot_bf16, axpy_bf16)
    }
}

impl Widen for f16 {
    fn widen(self) -> f32 {
        self.to_f32()
    }

    fn kernels() -> Kernels<Self> {
        kernels!(dot_f16, axpy_f16, "f16c")
    }
}

impl Widen for i8 {
    fn widen(self) -> f32 {
        self as f32
    }

    fn kernels() -> Kernels<Self> {
        kernels!(dot_i8, axpy_i8)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{bf16, f16, Widen};
    use std::arch::x86_64::*;

    /// Four independent accumulators over 32 weights per step, then the scalar tail.
    #[inline(always)]
    unsafe fn dot_with<T: Widen>(w: &[T], x: &[f32], widen8: impl Fn(*const T) -> __m256) -> f32 {
        let k = w.len();
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= k {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(widen8(wp.add(i + 8 * j)), _mm256_loadu_ps(xp.add(i + 8 * j)), *a);
            }
            i += 32;
        }
        while i + 8 <= k {
            acc[0] = _mm256_fmadd_ps(widen8(wp.add(i)), _mm256_loadu_ps(xp.add(i)), acc[0]);
            i += 8;
        }
        let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let s = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
        _mm_cvtss_f32(s) + super::dot_scalar(&w[i..], &x[i..])
    }

    /// Eight elements per step, then the scalar tail.
    #[inline(always)]
    unsafe fn axpy_with<T: Widen>(s: f32, w: &[T], y: &mut [f32], widen8: impl Fn(*const T) -> __m256) {
        let (wp, yp, sv) = (w.as_ptr(), y.as_mut_ptr(), _mm256_set1_ps(s));
        let mut i = 0;
        while i + 8 <= w.len() {
            _mm256_storeu_ps(yp.add(i), _mm256_fmadd_ps(widen8(wp.add(i)), sv, _mm256_loadu_ps(yp.add(i))));
            i += 8;
        }
        super::axpy_scalar(s, &w[i..], &mut y[i..]);
    }

    /// bf16 is the top half of an f32: zero-extend to 32 bits and shift left by 16.
    #[inline(always)]
    unsafe fn widen_bf16(p: *const bf16) -> __m256 {
        _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(p as *const __m128i)), 16))
    }

    #[inline(always)]
    unsafe fn widen_f16(p: *const f16) -> __m256 {
        _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i))
    }

    /// Eight bytes sign-extended to 32 bits, then converted.
    #[inline(always)]
    unsafe fn widen_i8(p: *const i8) -> __m256 {
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(p as *const __m128i)))
    }

    /// The dot product `$dot` and `axpy` `$axpy` for `$t`, whose 8 elements at a pointer
    /// `$widen` turns into f32 lanes, compiled with the target features `$features`.
    macro_rules! widening {
        ($dot:ident, $axpy:ident, $t:ty, $features:tt, $widen:expr) => {
            #[target_feature(enable = $features)]
            pub unsafe fn $dot(w: &[$t], x: &[f32]) -> f32 {
                dot_with(w, x, $widen)
            }

            #[target_feature(enable = $features)]
            pub unsafe fn $axpy(s: f32, w: &[$t], y: &mut [f32]) {
                axpy_with(s, w, y, $widen)
            }
        };
    }

    widening!(dot_f32, axpy_f32, f32, "avx2,fma", |p| _mm256_loadu_ps(p));
    widening!(dot_bf16, axpy_bf16, bf16, "avx2,fma", |p| widen_bf16(p));
    widening!(dot_f16, axpy_f16, f16, "avx2,fma,f16c", |p| widen_f16(p));
    widening!(dot_i8, axpy_i8, i8, "avx2,fma", |p| widen_i8(p));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(w: &[f32], n: usize, k: usize, xs: &[f32], m: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                y[i * n + j] = (0..k).map(|t| w[j * k + t] as f64 * xs[i * k + t] as f64).sum::<f64>() as f32;
            }
        }
        y
    }

    fn check<T: Widen>(convert: fn(f32) -> T) {
        // Odd sizes: tails of the 32- and 8-wide loops, a partial last block of rows.
        for (m, n, k) in [(1, 70, 3), (1, 33, 77), (3, 65, 300), (2, 1, 1)] {
            let w: Vec<T> = (0..n * k).map(|i| convert(((i * 7919 % 1000) as f32 - 500.0) / 700.0)).collect();
            let xs: Vec<f32> = (0..m * k).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 300.0).collect();
            let wf: Vec<f32> = w.iter().map(|v| v.widen()).collect();
            let want = reference(&wf, n, k, &xs, m);
            let mut got = vec![f32::NAN; m * n];
            gemv_into(&w, n, k, &xs, m, &mut got);
            for (g, r) in got.iter().zip(&want) {
                assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()), "{m}×{n}×{k}: {g} vs {r}");
            }
            // axpy: y + 0.5·w for the first row of weights, against the same sum in f64, with
            // this CPU's kernels and with the plain loops.
            for kernels in [T::kernels(), Kernels::scalar()] {
                let mut y = xs[..k].to_vec();
                kernels.axpy(0.5, &w[..k], &mut y);
                for ((g, x), w) in y.iter().zip(&xs).zip(&wf) {
                    let want = (*x as f64 + 0.5 * *w as f64) as f32;
                    assert!((g - want).abs() <= 1e-6 * (1.0 + want.abs()), "axpy {k}: {g} vs {want}");
                }
                let (dot, want) = (kernels.dot(&w[..k], &xs[..k]), want[0]);
                assert!((dot - want).abs() <= 1e-4 * (1.0 + want.abs()), "dot {k}: {dot} vs {want}");
            }
        }
    }

    #[test]
    fn bf16_matches_f64_reference() {
        check(bf16::from_f32);
    }

    #[test]
    fn f16_matches_f64_reference() {
        check(f16::from_f32);
    }

    #[test]
    fn f32_and_i8_match_f64_reference() {
        check(|v| v);
        check(|v| (v * 150.0).round() as i8);
    }
}
