//! The linear layers of Phi-3-vision (CLIP, projector, decoder) with their weights in a chosen
//! [`WeightFormat`], so a full-size model never needs an f32 copy of every matrix.
//!
//! Activations are always f32 (`[.., in]` → `[.., out]`); only the weights change form:
//!
//! | format | bytes/weight | `m = 1` (decode) | `m > 1` (prefill, CLIP) |
//! |---|---|---|---|
//! | `f32` | 4 | candle matmul | candle matmul (gemm) |
//! | `bf16`, `f16` | 2 | [`gemv`] kernel, AVX2 | [`gemm`]: widened block by block in cache |
//! | `q8` | 1.016 | [`q8`]: int8 × int8, AVX2 or VNNI (256- or 512-bit) | [`q8`]: four input rows by four weight rows at a time (VNNI) |
//! | `q4` | 0.547 | [`q4`]: int8 × int4, AVX2 or VNNI (256- or 512-bit) | [`q4`]: four input rows by two weight rows at a time (VNNI) |
//!
//! `q8` and `q4` are group-wise, in blocks of 256 weights: [`q8::Q8Matrix`] keeps one f32
//! scale per block, [`q4::Q4Matrix`] one f32 scale and eight int8 sub-scales. Their products
//! quantise the input rows to int8 per block of 256 too ([`int8`]), so a block's dot product is
//! integer arithmetic.
//! [`act`] has the elementwise work around the products (softmax, activations), vectorised,
//! and [`attention`] one head's attention over many rows.
//!
//! `auto` keeps each matrix in the dtype the checkpoint stores it in (bf16 for the official
//! ones), which costs no accuracy: bf16 widens to f32 exactly and the sums run in f32.

pub mod act;
pub mod attention;
pub mod gemm;
pub mod gemv;
pub mod huge;
mod int8;
pub mod peak;
pub mod q4;
pub mod q8;
pub mod unsafe_io;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Module, Result, Storage, Tensor, WithDType};
use candle_nn::{Init, VarBuilder};
use half::{bf16, f16};
use int8::Quantize;

/// How the weight matrices of linear layers are held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightFormat {
    /// As stored in the checkpoint (16-bit stays 16-bit).
    #[default]
    Auto,
    F32,
    Bf16,
    F16,
    /// int8, group-wise ([`q8::Q8Matrix`]).
    Q8,
    /// int4, group-wise ([`q4::Q4Matrix`]).
    Q4,
}

impl WeightFormat {
    pub const ALL: [WeightFormat; 6] = [Self::Auto, Self::F32, Self::Bf16, Self::F16, Self::Q8, Self::Q4];

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
            Self::Q8 => "q8",
            Self::Q4 => "q4",
        }
    }

    /// `Auto` made concrete for a checkpoint whose matrices are stored as `stored`: bf16 and
    /// f16 stay as they are, anything else becomes f32. Other formats are returned unchanged.
    pub fn resolve(self, stored: DType) -> Self {
        match (self, stored) {
            (Self::Auto, DType::BF16) => Self::Bf16,
            (Self::Auto, DType::F16) => Self::F16,
            (Self::Auto, _) => Self::F32,
            (f, _) => f,
        }
    }

    /// Bytes a `rows × cols` weight matrix takes in this format (`Auto` counted as f32:
    /// resolve it first).
    pub fn matrix_bytes(self, rows: usize, cols: usize) -> usize {
        match self {
            Self::F32 | Self::Auto => 4 * rows * cols,
            Self::Bf16 | Self::F16 => 2 * rows * cols,
            Self::Q8 => q8::Q8Matrix::bytes_for(rows, cols),
            Self::Q4 => q4::Q4Matrix::bytes_for(rows, cols),
        }
    }

    /// The dtype for tables that are looked up rather than multiplied (token embeddings) under
    /// this resolved format: f32 with f32 weights, otherwise the stored 16-bit dtype.
    pub fn table_dtype(self, stored: DType) -> DType {
        match (self, stored) {
            (Self::F32, _) => DType::F32,
            (Self::F16, _) => DType::F16,
            (Self::Bf16, _) => DType::BF16,
            (_, DType::BF16 | DType::F16) => stored,
            _ => DType::F32,
        }
    }
}

impl fmt::Display for WeightFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a [`WeightFormat`].
#[derive(Debug, thiserror::Error)]
#[error("unknown weight format {0:?} (expected auto, f32, bf16, f16, q8 or q4)")]
pub struct UnknownFormat(String);

impl FromStr for WeightFormat {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|f| f.name() == s).ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

/// `f()`, compiled for AVX2 and FMA where the CPU has them (the integer products' level
/// decides, so `PHI3V_SIMD=scalar` turns this off too). Mark the closure `#[inline(always)]`:
/// its body, and what it inlines, is then compiled for those features (loops vectorised on
/// 256-bit registers, `f32::mul_add` one instruction rather than a call). What it computes does
/// not change. Rayon tasks started inside `f` are not covered: call it inside each task.
pub fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if int8::Simd::best() >= int8::Simd::Avx2 {
        let mut out = None;
        // SAFETY: the level was detected, so the CPU has AVX2 and FMA.
        unsafe { int8::avx2::run(#[inline(always)] || out = Some(f())) };
        return out.expect("run calls f once");
    }
    f()
}

/// A candle error as one line: the backtrace candle attaches when `RUST_BACKTRACE` is set is
/// dropped, and context is joined with `: ` instead of a newline.
pub fn without_backtrace(e: candle_core::Error) -> candle_core::Error {
    use candle_core::Error as E;
    match e {
        E::WithBacktrace { inner, .. } => without_backtrace(*inner),
        E::Context { inner, context } => E::Msg(format!("{context}: {}", without_backtrace(*inner))),
        E::WithPath { inner, path } => E::WithPath { inner: Box::new(without_backtrace(*inner)), path },
        other => other,
    }
}

enum Weight {
    /// `[out, in]` as loaded: f32, bf16 or f16 (the tensor's own buffer, not copied again; the
    /// checkpoint reader allocates it on huge pages, a joined or converted tensor is an
    /// ordinary allocation).
    F32(Tensor),
    Bf16(Tensor),
    F16(Tensor),
    Q8(q8::Q8Matrix),
    Q4(q4::Q4Matrix),
}

/// `y = x·Wᵀ + b` with `W` `[out, in]` in some [`WeightFormat`] and `b` `[out]` in f32.
pub struct Linear {
    weight: Weight,
    /// `[out]`.
    bias: Option<Vec<f32>>,
    in_dim: usize,
    out_dim: usize,
    /// The layers it was loaded from (one; CLIP's query, key and value are three): each one's
    /// tensor prefix and rows, in the order of the output.
    parts: Vec<(String, usize)>,
}

/// The name under which a pre-quantised checkpoint stores the `weight` of a layer as `format`
/// (q8 or q4): `weight.q4` holds the matrix's bytes as u8 `[out, format.matrix_bytes(1, in)]`.
pub fn packed_name(format: WeightFormat) -> Option<&'static str> {
    match format {
        WeightFormat::Q8 => Some("weight.q8"),
        WeightFormat::Q4 => Some("weight.q4"),
        _ => None,
    }
}

/// The integer formats a pre-quantised checkpoint may store, each with its [`packed_name`].
pub fn packed_names() -> impl Iterator<Item = (WeightFormat, &'static str)> {
    [WeightFormat::Q8, WeightFormat::Q4].into_iter().filter_map(|f| Some((f, packed_name(f)?)))
}

/// The integer format, and its tensor's name, of a packed weight stored under `vb`.
fn stored_packed(vb: &VarBuilder) -> Option<(WeightFormat, &'static str)> {
    packed_names().find(|(_, name)| vb.contains_tensor(name))
}

/// The error for a layer at `prefix`, stored packed as `stored`, asked for as `format`.
fn packed_as_other(prefix: &str, stored: WeightFormat, format: WeightFormat) -> candle_core::Error {
    candle_core::Error::Msg(format!(
        "{prefix}.weight is stored quantised as {stored} (a checkpoint written by `phi3v quantize`) and cannot be loaded as {format}"
    ))
}

/// One tensor of a pre-quantised checkpoint that a q8 or q4 [`Linear`] writes
/// ([`Linear::packed_parts`]).
pub struct PackedPart {
    /// Full tensor name, e.g. `model.layers.0.mlp.down_proj.weight.q4`.
    pub name: String,
    /// `[rows, bytes per row]`.
    pub shape: [usize; 2],
    /// Row-major bytes.
    pub bytes: Vec<u8>,
}

impl Linear {
    /// Loads `weight` `[out_dim, in_dim]` (and `bias` `[out_dim]` when `bias`) under `vb`.
    /// `format` must not be [`WeightFormat::Auto`]: [`WeightFormat::resolve`] it first. `q8`
    /// and `q4` quantise the weight as fetched in `vb`'s dtype: give `vb` the dtype the
    /// checkpoint stores (bf16) and a matrix is quantised straight from it, with no f32 copy.
    ///
    /// A pre-quantised checkpoint stores the matrix as it multiplies (see [`packed_name`]): it
    /// is read into its buffer as is, and loading it in any other format is an error.
    pub fn load(in_dim: usize, out_dim: usize, bias: bool, format: WeightFormat, vb: VarBuilder) -> Result<Self> {
        let get = |dtype| vb.get_with_hints_dtype((out_dim, in_dim), "weight", Init::Const(0.0), dtype);
        let packed = |name: &str| vb.get_with_hints_dtype((out_dim, format.matrix_bytes(1, in_dim)), name, Init::Const(0.0), DType::U8);
        let weight = match stored_packed(&vb) {
            Some((stored, _)) if stored != format => return Err(packed_as_other(&vb.prefix(), stored, format)),
            Some((WeightFormat::Q8, name)) => Weight::Q8(q8::Q8Matrix::from_stored(packed(name)?, out_dim, in_dim)?),
            Some((_, name)) => Weight::Q4(q4::Q4Matrix::from_stored(packed(name)?, out_dim, in_dim)?),
            None => Self::quantised_or_dense(format, out_dim, in_dim, &vb, get)?,
        };
        let bias = if bias { Some(vb.get_with_hints_dtype(out_dim, "bias", Init::Const(0.0), DType::F32)?.to_vec1()?) } else { None };
        Ok(Self { weight, bias, in_dim, out_dim, parts: vec![(vb.prefix(), out_dim)] })
    }

    /// The weight fetched from the checkpoint as stored (`get(dtype)`) and held in `format`.
    fn quantised_or_dense(format: WeightFormat, out_dim: usize, in_dim: usize, vb: &VarBuilder, get: impl Fn(DType) -> Result<Tensor>) -> Result<Weight> {
        Ok(match format {
            WeightFormat::F32 => Weight::F32(get(DType::F32)?),
            WeightFormat::Bf16 => Weight::Bf16(get(DType::BF16)?),
            WeightFormat::F16 => Weight::F16(get(DType::F16)?),
            WeightFormat::Q8 => Weight::Q8(quantized(&get(vb.dtype())?, out_dim, in_dim)?),
            WeightFormat::Q4 => Weight::Q4(quantized(&get(vb.dtype())?, out_dim, in_dim)?),
            WeightFormat::Auto => {
                candle_core::bail!("weight format {format} was not resolved against the checkpoint")
            }
        })
    }

    /// Loads layers that share their input as one (CLIP's query, key and value projections),
    /// their outputs side by side in the order given: `parts` holds each one's `out_dim` and
    /// `VarBuilder` (with `weight` `[out_dim, in_dim]` and, when `bias`, `bias` `[out_dim]`).
    pub fn load_stacked(in_dim: usize, parts: &[(usize, VarBuilder)], bias: bool, format: WeightFormat) -> Result<Self> {
        // Rows are quantised independently, so q8 and q4 matrices stack as their stored parts.
        let packed = parts.first().and_then(|(_, vb)| stored_packed(vb));
        let (name, dtype, width) = match (format, packed) {
            (_, Some((stored, _))) if stored != format => {
                return Err(packed_as_other(&parts.first().map(|(_, vb)| vb.prefix()).unwrap_or_default(), stored, format))
            }
            (_, Some((stored, name))) => (name, DType::U8, stored.matrix_bytes(1, in_dim)),
            (WeightFormat::Bf16, _) => ("weight", DType::BF16, in_dim),
            (WeightFormat::F16, _) => ("weight", DType::F16, in_dim),
            (WeightFormat::Q8 | WeightFormat::Q4, _) => ("weight", parts.first().map_or(DType::F32, |(_, vb)| vb.dtype()), in_dim),
            _ => ("weight", DType::F32, in_dim),
        };
        let stacked = |name: &str, dtype, width: Option<usize>| -> Result<Tensor> {
            let parts = parts
                .iter()
                .map(|(out, vb)| {
                    let shape = width.map_or(vec![*out], |w| vec![*out, w]);
                    vb.get_with_hints_dtype(shape, name, Init::Const(0.0), dtype)
                })
                .collect::<Result<Vec<_>>>()?;
            joined(&parts)
        };
        let mut tensors = HashMap::from([(name.to_string(), stacked(name, dtype, Some(width))?)]);
        if bias {
            tensors.insert("bias".to_string(), stacked("bias", DType::F32, None)?);
        }
        let out_dim = parts.iter().map(|(out, _)| out).sum();
        let device = tensors[name].device().clone();
        let table = if dtype == DType::U8 { DType::F32 } else { dtype };
        let joined = Self::load(in_dim, out_dim, bias, format, VarBuilder::from_tensors(tensors, table, &device))?;
        Ok(Self { parts: parts.iter().map(|(out, vb)| (vb.prefix(), *out)).collect(), ..joined })
    }

    /// Multiply-adds of a product with `rows` input rows: `rows · in · out`.
    pub fn multiply_adds(&self, rows: usize) -> u64 {
        (rows * self.in_dim * self.out_dim) as u64
    }

    /// Width of an output row.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// For a q8 or q4 weight, the tensors a pre-quantised checkpoint stores it as: one per
    /// layer it was loaded from, each its rows' bytes as the products read them. `None` for
    /// other formats.
    pub fn packed_parts(&self) -> Result<Option<Vec<PackedPart>>> {
        let (format, tensor) = match &self.weight {
            Weight::Q8(w) => (WeightFormat::Q8, w.tensor()),
            Weight::Q4(w) => (WeightFormat::Q4, w.tensor()),
            _ => return Ok(None),
        };
        let suffix = packed_name(format).expect("an integer format");
        let width = format.matrix_bytes(1, self.in_dim);
        let mut start = 0;
        let mut parts = Vec::with_capacity(self.parts.len());
        for (prefix, rows) in &self.parts {
            let bytes = with_elements(&tensor.narrow(0, start, *rows)?, <[u8]>::to_vec)?;
            let name = if prefix.is_empty() { suffix.to_string() } else { format!("{prefix}.{suffix}") };
            parts.push(PackedPart { name, shape: [*rows, width], bytes });
            start += rows;
        }
        Ok(Some(parts))
    }

    /// Bytes held by the weight matrix.
    pub fn weight_bytes(&self) -> usize {
        match &self.weight {
            Weight::F32(w) => w.elem_count() * 4,
            Weight::Bf16(w) | Weight::F16(w) => w.elem_count() * 2,
            Weight::Q8(w) => w.bytes(),
            Weight::Q4(w) => w.bytes(),
        }
    }
}

/// `f` applied to the elements of `t` in row-major order, borrowed from its CPU storage when it
/// is contiguous (a loaded weight always is), so a matrix is not copied once more on its way to
/// its own buffer.
pub fn with_elements<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> R) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    if let (Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
        return Ok(f(&cpu.as_slice::<T>()?[start..end]));
    }
    drop(storage);
    Ok(f(&t.flatten_all()?.to_vec1::<T>()?))
}

/// `parts` (each `[rows_i, ..]`, one dtype, contiguous) one after another along the first
/// dimension, in one buffer on huge pages (a joined matrix multiplies from it as one loaded
/// from the checkpoint does).
fn joined(parts: &[Tensor]) -> Result<Tensor> {
    fn join<T: WithDType>(parts: &[Tensor]) -> Result<Tensor> {
        let mut all = huge::with_capacity::<T>(parts.iter().map(Tensor::elem_count).sum());
        for p in parts {
            with_elements(p, |e: &[T]| all.extend_from_slice(e))?;
        }
        let first = parts.first().map(|p| p.dims().to_vec()).unwrap_or_default();
        let rows = parts.iter().map(|p| p.dims().first().copied().unwrap_or(1)).sum();
        let shape: Vec<usize> = std::iter::once(rows).chain(first.into_iter().skip(1)).collect();
        Tensor::from_vec(all, shape, parts.first().map_or(&candle_core::Device::Cpu, |p| p.device()))
    }
    match parts.first().map(Tensor::dtype) {
        Some(DType::BF16) => join::<bf16>(parts),
        Some(DType::F16) => join::<f16>(parts),
        Some(DType::U8) => join::<u8>(parts),
        _ => join::<f32>(parts),
    }
}

/// `t` `[n, k]` quantised from the elements it holds (a 16-bit weight without a widened copy).
fn quantized<M: Quantize>(t: &Tensor, n: usize, k: usize) -> Result<M> {
    match t.dtype() {
        DType::BF16 => with_elements(t, |w: &[bf16]| M::quantize(w, n, k)),
        DType::F16 => with_elements(t, |w: &[f16]| M::quantize(w, n, k)),
        _ => with_elements(&t.to_dtype(DType::F32)?, |w: &[f32]| M::quantize(w, n, k)),
    }
}

/// Input rows at or below which 16-bit (and f32) weights go through the mat-vec kernel instead
/// of the GEMM.
const GEMV_MAX_ROWS: usize = 4;

/// `xs` `[m, k]` against 16-bit `w` `[n, k]` → `y` `[m, n]`: the mat-vec for a few rows, the
/// GEMM for more.
fn widened<T: gemv::Widen>(w: &[T], n: usize, k: usize, xs: &[f32], m: usize, y: &mut [f32]) {
    if m <= GEMV_MAX_ROWS {
        gemv::gemv_into(w, n, k, xs, m, y)
    } else {
        gemm::matmul_into(w, n, k, xs, m, y)
    }
}

/// The output of a product, shared by parallel tasks that write disjoint elements of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every task writes only its own elements of the output.
unsafe impl Send for SharedOut {}
// SAFETY: as for `Send`: no two tasks touch the same element.
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    fn ptr(self) -> *mut f32 {
        self.0
    }
}

/// What a product keeps between calls (the int8 copies of its input rows), so that a caller
/// who passes the same one each time allocates nothing once it has seen its largest input.
#[derive(Default)]
pub struct Scratch {
    inputs: Vec<int8::QuantRow>,
}

impl Linear {
    /// `xs` `[m, in]` → `y` `[m, out]`, both f32 and row-major. With one row (decode) and a
    /// warm `scratch` this allocates nothing, whatever the format.
    pub fn forward_into(&self, xs: &[f32], m: usize, y: &mut [f32], scratch: &mut Scratch) -> Result<()> {
        let (k, n) = (self.in_dim, self.out_dim);
        if xs.len() != m * k || y.len() != m * n {
            candle_core::bail!("linear {k} → {n}: input of {} values, output of {} for {m} rows", xs.len(), y.len());
        }
        let bias = self.bias.as_deref();
        match &self.weight {
            // The integer products add the bias as they store each value.
            Weight::Q8(w) => return w.with_rows(|w| int8::matmul_into(w, xs, m, y, bias, &mut scratch.inputs)),
            Weight::Q4(w) => return w.with_rows(|w| int8::matmul_into(w, xs, m, y, bias, &mut scratch.inputs)),
            Weight::F32(w) if m <= GEMV_MAX_ROWS => with_elements(w, |w: &[f32]| gemv::gemv_into(w, n, k, xs, m, y))?,
            Weight::F32(w) => {
                let product = Tensor::from_slice(xs, (m, k), w.device())?.matmul(&w.t()?)?;
                with_elements(&product, |p: &[f32]| y.copy_from_slice(p))?
            }
            Weight::Bf16(w) => with_elements(w, |w: &[bf16]| widened(w, n, k, xs, m, y))?,
            Weight::F16(w) => with_elements(w, |w: &[f16]| widened(w, n, k, xs, m, y))?,
        }
        if let Some(b) = bias {
            act::each_row(y, n, |_, row| row.iter_mut().zip(b).for_each(|(v, b)| *v += b));
        }
        Ok(())
    }
}

impl Module for Linear {
    /// `x` `[.., in]` (f32) → `[.., out]` (f32).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let m = x.elem_count() / self.in_dim;
        let xs = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let mut y = vec![0f32; m * self.out_dim];
        self.forward_into(&xs, m, &mut y, &mut Scratch::default())?;
        let mut dims = x.dims().to_vec();
        *dims.last_mut().expect("at least one dim") = self.out_dim;
        Tensor::from_vec(y, dims, x.device())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use std::collections::HashMap;

    /// A bf16 layer `[n, k]` with bias, as a checkpoint would store it, and its f32 values.
    fn layer(n: usize, k: usize) -> (VarBuilder<'static>, Tensor, Tensor) {
        let dev = Device::Cpu;
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap().to_dtype(DType::BF16).unwrap();
        let b = Tensor::randn(0f32, 0.1, n, &dev).unwrap().to_dtype(DType::BF16).unwrap();
        let tensors = HashMap::from([("weight".to_string(), w.clone()), ("bias".to_string(), b.clone())]);
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
        (vb, w.to_dtype(DType::F32).unwrap(), b.to_dtype(DType::F32).unwrap())
    }

    fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
        let norm = |t: &Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
        norm(&(got - want).unwrap()) / norm(want)
    }

    #[test]
    fn every_format_stays_within_its_error_bound() {
        // Relative L2 error of y = x·Wᵀ + b against f32 arithmetic on the same bf16 weights.
        // k = 96 pads to one block of 256; m = 1 is the mat-vec path, m = 7 the matrix path.
        // A broken kernel or layout gives errors of order 1.
        let bounds = [
            (WeightFormat::F32, 1e-6),
            (WeightFormat::Bf16, 1e-6),
            (WeightFormat::F16, 1e-3),
            (WeightFormat::Q8, 2e-2),
            (WeightFormat::Q4, 1.5e-1),
        ];
        for (n, k) in [(40, 512), (33, 96)] {
            let (vb, w, b) = layer(n, k);
            for m in [1, 7] {
                let x = Tensor::randn(0f32, 1.0, (2, m, k), &Device::Cpu).unwrap();
                let want = x.broadcast_matmul(&w.t().unwrap()).unwrap().broadcast_add(&b).unwrap();
                for (format, bound) in bounds {
                    let lin = Linear::load(k, n, true, format, vb.clone()).unwrap();
                    assert_eq!(lin.weight_bytes(), format.matrix_bytes(n, k), "{format} {n}×{k}: bytes");
                    let got = lin.forward(&x).unwrap();
                    assert_eq!(got.dims(), [2, m, n]);
                    let e = rel_err(&got, &want);
                    eprintln!("{format:>4} m={m} k={k}: relative error {e:.2e}");
                    assert!(e <= bound, "{format} {m}×{k}→{n}: relative error {e:.2e} > {bound:.0e}");
                }
            }
        }
    }

    #[test]
    fn integer_formats_quantise_16_bit_weights_as_their_f32_values() {
        // q8 and q4 quantise a weight fetched as bf16 or f16 without widening it first; the
        // products must be bit for bit those of the same weight fetched as f32 (exact).
        let dev = Device::Cpu;
        let (n, k) = (48, 640);
        let x = Tensor::randn(0f32, 1.0, (3, k), &dev).unwrap();
        let w = Tensor::randn(0f32, 0.05, (n, k), &dev).unwrap();
        let load = |w: &Tensor, dtype, format| {
            let vb = VarBuilder::from_tensors(HashMap::from([("weight".to_string(), w.clone())]), dtype, &dev);
            Linear::load(k, n, false, format, vb).unwrap().forward(&x).unwrap().to_vec2::<f32>().unwrap()
        };
        for dtype in [DType::BF16, DType::F16] {
            let stored = w.to_dtype(dtype).unwrap();
            for format in [WeightFormat::Q8, WeightFormat::Q4] {
                assert_eq!(load(&stored, dtype, format), load(&stored, DType::F32, format), "{format} from {dtype:?}");
            }
        }
    }

    #[test]
    fn packed_weights_load_as_they_were_written() {
        // A q8 or q4 layer's packed parts, stored under their names beside the bias, load
        // back to a layer with the same bytes and bit-identical products; stacked layers split
        // into one part per layer and join again. Any other format is refused by name.
        let dev = Device::Cpu;
        let (n, k) = (24, 300);
        let x = Tensor::randn(0f32, 1.0, (3, k), &dev).unwrap();
        let (vb, _, _) = layer(n, k);
        let stored = |lin: &Linear, prefix: &str| {
            let mut tensors = HashMap::new();
            for part in lin.packed_parts().unwrap().unwrap() {
                tensors.insert(part.name, Tensor::from_vec(part.bytes, part.shape.as_slice(), &dev).unwrap());
            }
            tensors.insert(format!("{prefix}bias"), vb.get(n, "bias").unwrap());
            VarBuilder::from_tensors(tensors, DType::BF16, &dev)
        };
        for format in [WeightFormat::Q8, WeightFormat::Q4] {
            let direct = Linear::load(k, n, true, format, vb.clone()).unwrap();
            let vb2 = stored(&direct, "");
            assert!(vb2.contains_tensor(packed_name(format).unwrap()));
            let again = Linear::load(k, n, true, format, vb2.clone()).unwrap();
            assert_eq!(again.forward(&x).unwrap().to_vec2::<f32>().unwrap(), direct.forward(&x).unwrap().to_vec2::<f32>().unwrap());
            assert_eq!(Linear::load(k, n, true, format, vb.pp("w")).err().map(|_| ()), Some(()), "missing tensors fail");
            for other in [WeightFormat::Bf16, WeightFormat::Q8, WeightFormat::Q4].into_iter().filter(|&f| f != format) {
                let err = Linear::load(k, n, true, other, vb2.clone()).err().unwrap().to_string();
                assert!(err.contains(&format!("stored quantised as {format}")) && err.contains(&format!("loaded as {other}")), "{err}");
            }
            // Three layers stacked as one (CLIP's q, k, v) write three parts and stack back.
            let parts = ["a", "b", "c"].map(|p| {
                let tensors = HashMap::from([
                    (format!("{p}.weight"), vb.get((n, k), "weight").unwrap()),
                    (format!("{p}.bias"), vb.get(n, "bias").unwrap()),
                ]);
                (n, VarBuilder::from_tensors(tensors, DType::BF16, &dev).pp(p))
            });
            let joined = Linear::load_stacked(k, &parts, true, format).unwrap();
            let written = joined.packed_parts().unwrap().unwrap();
            assert_eq!(written.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"].map(|p| format!("{p}.{}", packed_name(format).unwrap())));
            let mut tensors = HashMap::new();
            for (p, part) in ["a", "b", "c"].into_iter().zip(written) {
                tensors.insert(part.name, Tensor::from_vec(part.bytes, part.shape.as_slice(), &dev).unwrap());
                tensors.insert(format!("{p}.bias"), vb.get(n, "bias").unwrap());
            }
            let vb3 = VarBuilder::from_tensors(tensors, DType::BF16, &dev);
            let back = Linear::load_stacked(k, &["a", "b", "c"].map(|p| (n, vb3.pp(p))), true, format).unwrap();
            assert_eq!(back.forward(&x).unwrap().to_vec2::<f32>().unwrap(), joined.forward(&x).unwrap().to_vec2::<f32>().unwrap());
        }
        assert!(Linear::load(k, n, true, WeightFormat::Bf16, vb).unwrap().packed_parts().unwrap().is_none());
    }

    #[test]
    fn elements_come_in_row_major_order_whatever_the_layout() {
        let t = Tensor::arange(0f32, 6.0, &Device::Cpu).unwrap().reshape((2, 3)).unwrap();
        assert_eq!(with_elements(&t.narrow(1, 1, 2).unwrap(), <[f32]>::to_vec).unwrap(), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(with_elements(&t.t().unwrap(), <[f32]>::to_vec).unwrap(), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
        assert_eq!(with_elements(&t.narrow(0, 1, 1).unwrap(), <[f32]>::to_vec).unwrap(), [3.0, 4.0, 5.0]);
    }

    #[test]
    fn storage_shrinks_with_the_format() {
        let (vb, _, _) = layer(64, 512);
        let bytes = |f| Linear::load(512, 64, true, f, vb.clone()).unwrap().weight_bytes();
        assert_eq!(bytes(WeightFormat::F32), 64 * 512 * 4);
        assert_eq!(bytes(WeightFormat::Bf16), 64 * 512 * 2);
        // int8: 260 bytes per 256 weights; int4: 140.
        assert_eq!(bytes(WeightFormat::Q8), 64 * 512 / 256 * 260);
        assert_eq!(bytes(WeightFormat::Q4), 64 * 512 / 256 * 140);
    }

    #[test]
    fn auto_resolves_against_the_stored_dtype_and_names_parse() {
        assert_eq!(WeightFormat::Auto.resolve(DType::BF16), WeightFormat::Bf16);
        assert_eq!(WeightFormat::Auto.resolve(DType::F32), WeightFormat::F32);
        assert_eq!(WeightFormat::Q4.resolve(DType::BF16), WeightFormat::Q4);
        for f in WeightFormat::ALL {
            assert_eq!(f.name().parse::<WeightFormat>().unwrap(), f);
        }
        assert!("int3".parse::<WeightFormat>().unwrap_err().to_string().contains("int3"));
        let (vb, _, _) = layer(8, 32);
        let err = Linear::load(32, 8, true, WeightFormat::Auto, vb).err().unwrap();
        assert!(err.to_string().contains("not resolved"), "{err}");
    }
}
