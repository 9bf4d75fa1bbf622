//! The elementwise work around the products, over f32 slices in place: the softmax of
//! attention and the activations (SiLU-GLU in the decoder, quick GELU in CLIP, erf GELU in the
//! projector). All of it
//! is exponentials, taken eight at a time with AVX2 and FMA at the products' SIMD level (a degree-6
//! polynomial after range reduction by ln 2, within 2 ulp of `f32::exp` over the normal range;
//! see the test) and with `f32::exp` otherwise. A scalar `expf` call costs about as much as a
//! vector of eight; the exponentials of a 777-token prompt's attention alone are 600 million.
//! [`each_row`] spreads a row-wise loop over the pool.

use rayon::prelude::*;

/// `row` ← `softmax(scale · row)` for `scale > 0` (the largest value subtracted first; `−∞`
/// gives 0). An empty row stays empty.
pub fn softmax(row: &mut [f32], scale: f32) {
    let max = lanes(row, f32::NEG_INFINITY, f32::max);
    exp_shifted(row, -max, scale);
    let inv = 1.0 / lanes(row, 0.0, |a, b| a + b);
    row.iter_mut().for_each(|v| *v *= inv);
}

/// `row` folded with `f` in eight independent lanes (which the compiler turns into vector
/// instructions; one running value would keep it scalar), then across the lanes.
#[inline(always)]
fn lanes(row: &[f32], start: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [start; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(start, |a, &v| f(a, v));
    for chunk in chunks {
        for (a, &v) in acc.iter_mut().zip(chunk) {
            *a = f(*a, v);
        }
    }
    acc.into_iter().fold(rest, f)
}

/// `out[i] = up[i] · silu(gate[i])`, `silu(g) = g · σ(g)`: Phi-3's MLP activation.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    assert!(gate.len() == out.len() && up.len() == out.len(), "silu_mul: {} gates, {} ups, {} outputs", gate.len(), up.len(), out.len());
    // out = exp(−g), then up · g / (1 + out).
    out.copy_from_slice(gate);
    exp_shifted(out, 0.0, -1.0);
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        *o = u * (g / (1.0 + *o));
    }
}

/// `x[i]` ← `x[i] · σ(1.702 · x[i])`: CLIP's activation.
pub fn quick_gelu(x: &mut [f32]) {
    let mut e = [0f32; 64];
    for chunk in x.chunks_mut(64) {
        let e = &mut e[..chunk.len()];
        e.copy_from_slice(chunk);
        exp_shifted(e, 0.0, -1.702);
        for (v, e) in chunk.iter_mut().zip(e.iter()) {
            *v /= 1.0 + e;
        }
    }
}

/// `x[i]` ← `x[i] · Φ(x[i]) = x[i] · (1 + erf(x[i] / √2)) / 2`: the exact (erf) GELU of the
/// image projector (`torch.nn.GELU()`). erf by Abramowitz and Stegun's 7.1.26,
/// `erf(z) = 1 − t·(a₁ + t·(a₂ + …)) · exp(−z²)` with `t = 1 / (1 + p·z)` for `z ≥ 0` (odd
/// for `z < 0`), within 1.5·10⁻⁷ of erf everywhere; the exponentials eight at a time as above.
pub fn gelu_erf(x: &mut [f32]) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152, 1.061_405_4];
    let mut e = [0f32; 64];
    for chunk in x.chunks_mut(64) {
        let e = &mut e[..chunk.len()];
        // e = exp(−z²), z = x / √2.
        for (e, &v) in e.iter_mut().zip(chunk.iter()) {
            *e = v * v;
        }
        exp_shifted(e, 0.0, -0.5);
        for (v, &e) in chunk.iter_mut().zip(e.iter()) {
            let z = v.abs() * std::f32::consts::FRAC_1_SQRT_2;
            let t = 1.0 / (1.0 + P * z);
            let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
            let erf = (1.0 - poly * e).copysign(*v);
            *v = 0.5 * *v * (1.0 + erf);
        }
    }
}

/// `x[i]` ← `exp(scale · (x[i] + shift))`.
fn exp_shifted(x: &mut [f32], shift: f32, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if crate::int8::Simd::best() >= crate::int8::Simd::Avx2 {
        // SAFETY: the level was detected, so the CPU has AVX2 and FMA.
        return unsafe { avx2::exp_shifted(x, shift, scale) };
    }
    x.iter_mut().for_each(|v| *v = (scale * (*v + shift)).exp());
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Below this, `exp` is 0 here (the smallest normal f32 is `exp(−87.34)`).
    const LOW: f32 = -87.3;
    /// Above this, `exp` is `+∞` here (for want of a 2^128 in the exponent bits; the true
    /// overflow is at 88.72).
    const HIGH: f32 = 88.3;

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shifted(x: &mut [f32], shift: f32, scale: f32) {
        let (shift, scale) = (_mm256_set1_ps(shift), _mm256_set1_ps(scale));
        let mut chunks = x.chunks_exact_mut(8);
        for chunk in &mut chunks {
            let v = _mm256_loadu_ps(chunk.as_ptr());
            let e = exp8(_mm256_mul_ps(scale, _mm256_add_ps(v, shift)));
            _mm256_storeu_ps(chunk.as_mut_ptr(), e);
        }
        let rest = chunks.into_remainder();
        if !rest.is_empty() {
            let mut tail = [0f32; 8];
            tail[..rest.len()].copy_from_slice(rest);
            let e = exp8(_mm256_mul_ps(scale, _mm256_add_ps(_mm256_loadu_ps(tail.as_ptr()), shift)));
            _mm256_storeu_ps(tail.as_mut_ptr(), e);
            rest.copy_from_slice(&tail[..rest.len()]);
        }
    }

    /// `exp` of eight lanes: `x = n · ln 2 + r` with `|r| ≤ ln 2 / 2` (ln 2 in two parts, so
    /// that `r` is exact to f32), `e^r` by its Taylor-like minimax polynomial of degree 6
    /// (Cephes' `expf` coefficients), times `2^n` built in the exponent bits. Lanes below
    /// [`LOW`] (and `−∞`) give 0, above [`HIGH`] `+∞`; NaN stays NaN.
    #[inline(always)]
    unsafe fn exp8(x: __m256) -> __m256 {
        let clamped = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(LOW)), _mm256_set1_ps(HIGH));
        let n = _mm256_round_ps(_mm256_mul_ps(clamped, _mm256_set1_ps(std::f32::consts::LOG2_E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), clamped);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e_r = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0));
        let two_n = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
        let e = _mm256_mul_ps(e_r, two_n);
        let e = _mm256_blendv_ps(e, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(LOW), _CMP_LT_OQ));
        let e = _mm256_blendv_ps(e, _mm256_set1_ps(f32::INFINITY), _mm256_cmp_ps(x, _mm256_set1_ps(HIGH), _CMP_GT_OQ));
        _mm256_blendv_ps(e, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q))
    }
}

/// `f(i, row)` for each row `i` of `rows` (`[n, width]`): spread over the rayon pool for many
/// rows (a prefill's norms, RoPE, activations and residuals were 7 % of it in one thread), in
/// the calling thread for one (a decode step: no hand-off, no allocation).
pub fn each_row(rows: &mut [f32], width: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if rows.len() == width {
        f(0, rows)
    } else {
        rows.par_chunks_exact_mut(width).enumerate().for_each(|(i, row)| f(i, row))
    }
}

/// `x[i] += y[i]` for `x` and `y` `[n, width]` (a residual), rows as [`each_row`] spreads them.
pub fn add_rows(x: &mut [f32], y: &[f32], width: usize) {
    assert_eq!(x.len(), y.len(), "residual of {} values onto {}", y.len(), x.len());
    each_row(x, width, |i, x| x.iter_mut().zip(&y[i * width..][..width]).for_each(|(x, y)| *x += y));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Units in the last place between `a` and `b` (finite, same sign).
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_std_and_exact_at_the_edges() {
        // Every 1 001st f32 step over the range where exp is a normal number, and a few more.
        let mut xs: Vec<f32> = (0..=1_000_000).map(|i| -87.0 + 175.0 * i as f32 / 1e6).collect();
        xs.extend([0.0, -0.0, 1e-30, -1e-30, 1.0, -1.0]);
        let mut got = xs.clone();
        exp_shifted(&mut got, 0.0, 1.0);
        for (&x, &e) in xs.iter().zip(&got) {
            let want = x.exp();
            assert!(ulps(e, want) <= 2, "exp({x}) = {e}, std {want}");
        }
        let mut edges = [f32::NEG_INFINITY, -200.0, -87.5, 89.0, f32::INFINITY, f32::NAN, -88.0, 88.2];
        exp_shifted(&mut edges, 0.0, 1.0);
        // The vector part cuts off at its bounds; `f32::exp` (PHI3V_SIMD=scalar, or no AVX2)
        // gives the subnormal values there. Both are near enough to 0 for a softmax.
        if crate::int8::Simd::best() >= crate::int8::Simd::Avx2 {
            assert_eq!(edges[2], 0.0);
        }
        assert!(edges[2] < 1e-37);
        assert_eq!([edges[0], edges[1], edges[3], edges[4]], [0.0, 0.0, f32::INFINITY, f32::INFINITY]);
        assert!(edges[5].is_nan());
        assert!(edges[6] < 1e-37 && ulps(edges[7], 88.2f32.exp()) <= 2);
    }

    #[test]
    fn softmax_silu_and_gelu_match_their_definitions() {
        let x: Vec<f32> = (0..137).map(|i| (i as f32 * 0.37).sin() * 9.0).collect();
        let mut s = x.clone();
        s.push(f32::NEG_INFINITY); // a masked position
        softmax(&mut s, 0.7);
        let max = x.iter().fold(f32::MIN, |m, &v| m.max(v));
        let sum: f64 = x.iter().map(|&v| (0.7 * (v - max) as f64).exp()).sum();
        for (&v, &p) in x.iter().zip(&s) {
            let want = (0.7 * (v - max) as f64).exp() / sum;
            assert!((p as f64 - want).abs() <= 1e-6 * want + 1e-9, "{p} vs {want}");
        }
        assert_eq!(s[137], 0.0);

        let up: Vec<f32> = x.iter().map(|v| v * 0.5 - 1.0).collect();
        let mut out = vec![0f32; x.len()];
        silu_mul(&x, &up, &mut out);
        let mut gelu = x.clone();
        quick_gelu(&mut gelu);
        for (i, &g) in x.iter().enumerate() {
            let sigmoid = |t: f64| 1.0 / (1.0 + (-t).exp());
            let silu = up[i] as f64 * g as f64 * sigmoid(g as f64);
            assert!((out[i] as f64 - silu).abs() <= 1e-6 * (1.0 + silu.abs()), "silu at {i}: {} vs {silu}", out[i]);
            let want = g as f64 * sigmoid(1.702 * g as f64);
            assert!((gelu[i] as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()), "gelu at {i}: {} vs {want}", gelu[i]);
        }
    }

    #[test]
    fn erf_gelu_matches_its_definition() {
        // erf by its Taylor series in f64 (exact enough for |z| ≤ 3.5); beyond, Φ is within
        // 10⁻⁶ of 0 or 1. A wrong coefficient or sign is off by far more than the bound.
        let erf = |z: f64| {
            let (mut term, mut sum) = (z, z);
            for n in 1..200 {
                term *= -z * z / n as f64;
                sum += term / (2 * n + 1) as f64;
            }
            sum * 2.0 / std::f64::consts::PI.sqrt()
        };
        let x: Vec<f32> = (0..=4000).map(|i| -12.0 + 24.0 * i as f32 / 4000.0).chain([0.0, -0.0, 1e-20]).collect();
        let mut got = x.clone();
        gelu_erf(&mut got);
        for (&v, &g) in x.iter().zip(&got) {
            let z = v as f64 / std::f64::consts::SQRT_2;
            let want = if z.abs() <= 3.5 { 0.5 * v as f64 * (1.0 + erf(z)) } else if z > 0.0 { v as f64 } else { 0.0 };
            // erf's 1.5·10⁻⁷ scaled by x / 2, f32 rounding, and Φ's distance from 0 or 1 past 3.5.
            let bound = 0.8e-7 * v.abs() as f64 + 2e-7 * (1.0 + want.abs()) + if z.abs() > 3.5 { 1e-6 * v.abs() as f64 } else { 0.0 };
            assert!((g as f64 - want).abs() <= bound, "gelu({v}) = {g}, want {want}");
        }
    }
}
