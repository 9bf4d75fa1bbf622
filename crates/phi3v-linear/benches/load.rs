//! Load-time cost per weight format: one full-size phi-3-mini layer's matrices (qkv, o,
//! gate/up, down: 113 M weights) taken from bf16 tensors, as a checkpoint stores them, into
//! each format (bf16 keeps the tensor as it is, q8 and q4 quantise it), reported as milliseconds and as
//! millions of weights per second, the best of three runs.
//!
//! `cargo bench -p phi3v-linear --bench load` (`-- q4` runs only the formats named).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use phi3v_linear::{Linear, WeightFormat};

/// `(name, in, out)`: the decoder layer's matrices.
const SHAPES: [(&str, usize, usize); 4] =
    [("qkv_proj", 3072, 9216), ("o_proj", 3072, 3072), ("gate_up_proj", 3072, 16384), ("down_proj", 8192, 3072)];

fn main() -> candle_core::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let formats = [WeightFormat::Bf16, WeightFormat::Q8, WeightFormat::Q4];
    let dev = Device::Cpu;
    let matrices = SHAPES
        .iter()
        .map(|&(name, k, n)| Ok((name, k, n, Tensor::randn(0f32, 0.02, (n, k), &dev)?.to_dtype(DType::BF16)?)))
        .collect::<candle_core::Result<Vec<_>>>()?;
    println!("{:<6} {:<13} {:>9} {:>10}", "format", "matrix", "ms", "M weights/s");
    for format in formats.into_iter().filter(|f| wanted.is_empty() || wanted.iter().any(|w| w == f.name())) {
        let (mut total_ms, mut total) = (0.0, 0.0);
        for (name, k, n, w) in &matrices {
            let vb = VarBuilder::from_tensors(HashMap::from([("weight".to_string(), w.clone())]), DType::BF16, &dev);
            let mut ms = f64::INFINITY;
            for _ in 0..3 {
                let start = Instant::now();
                let lin = Linear::load(*k, *n, false, format, vb.clone())?;
                ms = ms.min(start.elapsed().as_secs_f64() * 1e3);
                drop(lin);
            }
            let weights = (k * n) as f64;
            println!("{:<6} {:<13} {:>9.1} {:>10.0}", format.name(), name, ms, weights / ms / 1e3);
            total_ms += ms;
            total += weights;
        }
        println!("{:<6} {:<13} {:>9.1} {:>10.0}", format.name(), "all", total_ms, total / total_ms / 1e3);
    }
    Ok(())
}
