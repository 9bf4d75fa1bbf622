//! `y = x·Wᵀ` for many rows `x` against compact weights `W` `[out, in]` (16-bit or int4): the
//! prefill and CLIP path.
//!
//! The weights are widened to f32 one block of output rows at a time, into a small buffer
//! that stays in cache, and each block goes through the `gemm` crate's f32 kernel (the one
//! candle uses) on one thread, blocks spread over the rayon pool. No f32 copy of the whole
//! matrix is ever made, and nothing large is allocated besides the output.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::gemv::Widen;

/// Output rows widened at a time: 128 rows of 3 072 weights are 1.5 MiB of f32.
const BLOCK_ROWS: usize = 128;

/// The output pointer, shared by tasks that write disjoint columns.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes only its own block of columns of the output.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// `xs` `[m, k]` (row-major) against `w` `[n, k]` → `[m, n]`.
pub fn matmul<T: Widen>(w: &[T], n: usize, k: usize, xs: &[f32], m: usize) -> Vec<f32> {
    assert_eq!(w.len(), n * k, "weights are not [{n}, {k}]");
    matmul_widened(n, k, xs, m, |rows, buf| buf.extend(w[rows.start * k..rows.end * k].iter().map(|v| v.widen())))
}

/// `xs` `[m, k]` against a `[n, k]` matrix held in any form: `widen(rows, buf)` appends rows
/// `rows` of it to `buf` as f32 (`[rows.len(), k]`).
pub(crate) fn matmul_widened(
    n: usize,
    k: usize,
    xs: &[f32],
    m: usize,
    widen: impl Fn(Range<usize>, &mut Vec<f32>) + Sync,
) -> Vec<f32> {
    assert_eq!(xs.len(), m * k, "input is not [{m}, {k}]");
    let mut y = vec![0f32; m * n];
    let out = Out(y.as_mut_ptr());
    (0..n.div_ceil(BLOCK_ROWS)).into_par_iter().for_each_init(Vec::new, |block_f32: &mut Vec<f32>, b| {
        let rows = b * BLOCK_ROWS..n.min((b + 1) * BLOCK_ROWS);
        let count = rows.len();
        block_f32.clear();
        widen(rows, block_f32);
        assert_eq!(block_f32.len(), count * k, "widened block is not [{count}, {k}]");
        // SAFETY: dst is columns b·BLOCK_ROWS .. + count of the [m, n] output (row stride n),
        // within bounds and written by this task only; lhs is xs [m, k] (row stride k); rhs is
        // the block transposed: element (i, j) is block_f32[j·k + i]. Lengths checked above.
        unsafe {
            gemm::gemm(
                m,
                count,
                k,
                out.ptr().add(b * BLOCK_ROWS),
                1,
                n as isize,
                false,
                xs.as_ptr(),
                1,
                k as isize,
                block_f32.as_ptr(),
                k as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    });
    y
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
            let y = matmul(&w, n, k, &xs, m);
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
