//! The int8 multiply-add rate this CPU reaches in registers alone, with the instructions the
//! integer products use at their level ([`crate::int8`]'s `Simd::best`): what a product's rate
//! is measured against (`phi3v bench` reports each stage as a share of it).
//!
//! | level | instruction | multiply-adds each |
//! |---|---|---|
//! | `avx512` | `vpdpbusd` on 512-bit registers | 64 |
//! | `vnni` | `vpdpbusd` on 256-bit registers | 32 |
//! | `avx2` | `vpmaddubsw`, `vpmaddwd`, `vpaddd` | 32 (per three) |

use std::time::{Duration, Instant};

use crate::int8::Simd;

/// A measured peak.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Peak {
    /// The level measured: `avx512`, `vnni` or `avx2`.
    pub level: &'static str,
    /// int8 multiply-adds per second on the calling thread.
    pub multiply_adds_per_s: f64,
}

/// Instructions per timed batch: well under a millisecond at any of the levels.
const BATCH: u64 = 1 << 16;

/// The peak on the calling thread, measured for about `window` (run it on every thread of a
/// pool at once for the machine's). `None` where the products have no SIMD level.
pub fn int8_peak(window: Duration) -> Option<Peak> {
    #[cfg(target_arch = "x86_64")]
    {
        let (level, per_batch, run): (&'static str, u64, fn() -> i32) = match Simd::best() {
            // SAFETY: the level was detected, so the CPU has AVX512F, BW and VNNI.
            Simd::Avx512 => ("avx512", 64 * BATCH, || unsafe { kernels::avx512() }),
            // SAFETY: the level was detected, so the CPU has AVX2, AVX512-VL and VNNI.
            Simd::Vnni => ("vnni", 32 * BATCH, || unsafe { kernels::vnni() }),
            // SAFETY: the level was detected, so the CPU has AVX2.
            Simd::Avx2 => ("avx2", 32 * BATCH, || unsafe { kernels::avx2() }),
            Simd::Scalar => return None,
        };
        let start = Instant::now();
        let mut batches = 0u64;
        while start.elapsed() < window || batches == 0 {
            std::hint::black_box(run());
            batches += 1;
        }
        let multiply_adds_per_s = (batches * per_batch) as f64 / start.elapsed().as_secs_f64();
        Some(Peak { level, multiply_adds_per_s })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = window;
        None
    }
}

/// One batch of [`BATCH`] instructions at each level: sixteen independent accumulators (more
/// than latency × throughput), operands from `black_box`, and each product depending on its
/// accumulator, so nothing folds away or leaves the loop.
#[cfg(target_arch = "x86_64")]
mod kernels {
    use super::BATCH;
    use std::arch::x86_64::*;
    use std::hint::black_box;

    const CHAINS: usize = 16;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub unsafe fn avx512() -> i32 {
        let (a, b) = (_mm512_set1_epi8(black_box(3)), _mm512_set1_epi8(black_box(-2)));
        let mut acc = [_mm512_setzero_si512(); CHAINS];
        for _ in 0..BATCH / CHAINS as u64 {
            for r in acc.iter_mut() {
                *r = _mm512_dpbusd_epi32(*r, a, b);
            }
        }
        acc.iter().fold(0, |s, r| s ^ _mm512_reduce_add_epi32(*r))
    }

    #[target_feature(enable = "avx2,avx512vl,avx512vnni")]
    pub unsafe fn vnni() -> i32 {
        let (a, b) = (_mm256_set1_epi8(black_box(3)), _mm256_set1_epi8(black_box(-2)));
        let mut acc = [_mm256_setzero_si256(); CHAINS];
        for _ in 0..BATCH / CHAINS as u64 {
            for r in acc.iter_mut() {
                *r = _mm256_dpbusd_epi32(*r, a, b);
            }
        }
        acc.iter().fold(0, |s, r| s ^ _mm256_extract_epi32::<0>(*r))
    }

    #[target_feature(enable = "avx2")]
    pub unsafe fn avx2() -> i32 {
        let (a, ones) = (_mm256_set1_epi8(black_box(3)), _mm256_set1_epi16(black_box(1)));
        let mut acc = [_mm256_set1_epi8(black_box(-2)); CHAINS];
        for _ in 0..BATCH / CHAINS as u64 {
            for r in acc.iter_mut() {
                // The accumulator's bytes are the signed operand: the product cannot be hoisted.
                *r = _mm256_add_epi32(*r, _mm256_madd_epi16(_mm256_maddubs_epi16(a, *r), ones));
            }
        }
        acc.iter().fold(0, |s, r| s ^ _mm256_extract_epi32::<0>(*r))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_peak_is_measured_where_the_products_have_simd() {
        let peak = super::int8_peak(std::time::Duration::from_millis(200));
        if crate::int8::Simd::best() != crate::int8::Simd::Scalar {
            let p = peak.expect("a SIMD level");
            eprintln!("{}: {:.0} G int8 multiply-adds/s on one thread", p.level, p.multiply_adds_per_s / 1e9);
            // Any x86-64 core with AVX2 does well over 10⁹ int8 multiply-adds a second.
            assert!(p.multiply_adds_per_s > 1e9, "{p:?}");
        }
    }
}
