//! `y = x·Wᵀ` for many rows `x` against 16-bit weights `W` `[out, in]`: the prefill and CLIP
//! path.
//!
//! The weights are widened to f32 one block of output rows at a time, into a small buffer
//! that stays in cache, and each block goes through the `gemm` crate's f32 kernel (the one
//! candle uses) on one thread, blocks spread over the rayon pool. No f32 copy of the whole
//! matrix is ever made, and nothing is allocated but one block's buffer per thread.

use gemm::Parallelism;
use rayon::prelude::*;

use crate::gemv::Widen;
use crate::SharedOut;

/// Output rows widened at a time: 128 rows of 3 072 weights are 1.5 MiB of f32.
const BLOCK_ROWS: usize = 128;

/// `xs` `[m, k]` (row-major) against `w` `[n, k]` → `y` `[m, n]`.
pub fn matmul_into<T: Widen>(w: &[T], n: usize, k: usize, xs: &[f32], m: usize, y: &mut [f32]) {
    assert_eq!(w.len(), n * k, "weights are not [{n}, {k}]");
    assert_eq!(xs.len(), m * k, "input is not [{m}, {k}]");
    assert_eq!(y.len(), m * n, "output is not [{m}, {n}]");
    let out = SharedOut(y.as_mut_ptr());
    (0..n.div_ceil(BLOCK_ROWS)).into_par_iter().for_each_init(Vec::new, |block_f32: &mut Vec<f32>, b| {
        let rows = b * BLOCK_ROWS..n.min((b + 1) * BLOCK_ROWS);
        let count = rows.len();
        block_f32.clear();
        block_f32.extend(w[rows.start * k..rows.end * k].iter().map(|v| v.widen()));
        // SAFETY: dst is columns b·BLOCK_ROWS .. + count of the [m, n] output (row stride n),
        // within bounds and written by this task only; lhs is xs [m, k] (row stride k); rhs is
        // the block transposed: element (i, j) is block_f32[j·k + i]. Lengths checked above.
        unsafe { product((m, count, k), (out.ptr().add(b * BLOCK_ROWS), n, 1), (xs.as_ptr(), k, 1), (block_f32.as_ptr(), 1, k)) }
    });
}

/// A matrix operand: its first element and the strides, in elements, between its rows and
/// between its columns.
pub(crate) type Strided<P> = (P, usize, usize);

/// `dst` `[m, n]` ← `lhs` `[m, k]` · `rhs` `[k, n]` in f32 with the `gemm` crate's kernel, in the
/// calling thread (callers spread the work over the pool).
///
/// # Safety
/// Every element the extents and strides reach is in bounds of its operand, and nothing else
/// writes `dst`'s elements meanwhile.
pub(crate) unsafe fn product((m, n, k): (usize, usize, usize), dst: Strided<*mut f32>, lhs: Strided<*const f32>, rhs: Strided<*const f32>) {
    let s = |stride: usize| stride as isize;
    // SAFETY: as the caller promised; beta 1, alpha 0 and read_dst false overwrite dst.
    unsafe {
        gemm::gemm(m, n, k, dst.0, s(dst.2), s(dst.1), false, lhs.0, s(lhs.2), s(lhs.1), rhs.0, s(rhs.2), s(rhs.1), 0.0, 1.0, false, false, false, Parallelism::None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    #[test]
    fn matches_f64_reference_with_partial_blocks() {
        for (m, n, k) in [(5, 300, 70), (1, 129, 3), (17, 128, 256)] {
            let w: Vec<bf16> = (0..n * k).map(|i| bf16::from_f32(((i * 7919 % 1000) as f32 - 500.0) / 700.0)).collect();
            let xs: Vec<f32> = (0..m * k).map(|i| ((i * 104_729 % 997) as f32 - 498.0) / 300.0).collect();
            let mut y = vec![f32::NAN; m * n];
            matmul_into(&w, n, k, &xs, m, &mut y);
            for i in 0..m {
                for j in 0..n {
                    let r: f64 = (0..k).map(|t| w[j * k + t].to_f32() as f64 * xs[i * k + t] as f64).sum();
                    let g = y[i * n + j] as f64;
                    assert!((g - r).abs() <= 1e-4 * (1.0 + r.abs()), "{m}×{n}×{k} at ({i}, {j}): {g} vs {r}");
                }
            }
        }
    }
}
