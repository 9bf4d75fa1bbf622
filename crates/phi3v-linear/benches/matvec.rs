//! Decode-shaped mat-vec speed per weight format: one input row against each full-size
//! phi-3-mini matrix, reported as milliseconds and as weight bytes streamed per second (the
//! decode bound is the machine's memory bandwidth).
//!
//! `cargo bench -p phi3v-linear --bench matvec` (`-- q4` runs only the formats named).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use phi3v_linear::{Linear, WeightFormat};

/// `(name, in, out)` of the decoder's matrices (Phi-3-mini: hidden 3072, MLP 8192, vocab 32064).
const SHAPES: [(&str, usize, usize); 5] =
    [("qkv_proj", 3072, 9216), ("o_proj", 3072, 3072), ("gate_up_proj", 3072, 16384), ("down_proj", 8192, 3072), ("lm_head", 3072, 32064)];

fn main() -> candle_core::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let formats = [WeightFormat::Bf16, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4];
    let dev = Device::Cpu;
    println!("{:<6} {:<13} {:>9} {:>8}", "format", "matrix", "ms", "GB/s");
    for format in formats.into_iter().filter(|f| wanted.is_empty() || wanted.iter().any(|w| w == f.name())) {
        let (mut total_ms, mut total_bytes) = (0.0, 0usize);
        for (name, k, n) in SHAPES {
            let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?.to_dtype(DType::BF16)?;
            let vb = VarBuilder::from_tensors(HashMap::from([("weight".to_string(), w)]), DType::F32, &dev);
            let lin = Linear::load(k, n, false, format, vb)?;
            let x = Tensor::randn(0f32, 1.0, (1, k), &dev)?;
            lin.forward(&x)?; // warm-up
            let runs = 20;
            let start = Instant::now();
            for _ in 0..runs {
                lin.forward(&x)?;
            }
            let ms = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
            let bytes = lin.weight_bytes();
            println!("{:<6} {:<13} {:>9.3} {:>8.1}", format.name(), name, ms, bytes as f64 / ms / 1e6);
            total_ms += ms;
            total_bytes += bytes;
        }
        println!("{:<6} {:<13} {:>9.3} {:>8.1}", format.name(), "all", total_ms, total_bytes as f64 / total_ms / 1e6);
    }
    Ok(())
}
