//! Prefill-shaped product speed per weight format: 757 input rows (one 640×480 image at four
//! crops and a short question) against each full-size phi-3-mini matrix, and 577 rows (one CLIP
//! crop) against CLIP's, reported as milliseconds and as integer or float operations per second
//! (`2 · m · n · k`; prefill and CLIP are compute-bound), the best of five runs each.
//!
//! `cargo bench -p phi3v-linear --bench prefill` (`-- q4` runs only the formats named).

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use phi3v_linear::{Linear, Scratch, WeightFormat};

/// `(name, rows, in, out)`: the decoder's matrices at 757 prompt rows, CLIP's at 577.
const SHAPES: [(&str, usize, usize, usize); 7] = [
    ("qkv_proj", 757, 3072, 9216),
    ("o_proj", 757, 3072, 3072),
    ("gate_up_proj", 757, 3072, 16384),
    ("down_proj", 757, 8192, 3072),
    ("clip_qkv", 577, 1024, 3072),
    ("clip_fc1", 577, 1024, 4096),
    ("clip_fc2", 577, 4096, 1024),
];

fn main() -> candle_core::Result<()> {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let formats = [WeightFormat::Bf16, WeightFormat::Q8, WeightFormat::Q4];
    let dev = Device::Cpu;
    println!("{:<6} {:<13} {:>9} {:>8}", "format", "matrix", "ms", "GOP/s");
    for format in formats.into_iter().filter(|f| wanted.is_empty() || wanted.iter().any(|w| w == f.name())) {
        let (mut total_ms, mut total_ops) = (0.0, 0.0);
        for (name, m, k, n) in SHAPES {
            let w = Tensor::randn(0f32, 0.02, (n, k), &dev)?.to_dtype(DType::BF16)?;
            let vb = VarBuilder::from_tensors(HashMap::from([("weight".to_string(), w)]), DType::F32, &dev);
            let lin = Linear::load(k, n, false, format, vb)?;
            let x: Vec<f32> = Tensor::randn(0f32, 1.0, (m, k), &dev)?.flatten_all()?.to_vec1()?;
            let (mut y, mut scratch) = (vec![0f32; m * n], Scratch::default());
            lin.forward_into(&x, m, &mut y, &mut scratch)?; // warm-up
            // The best of five: the least disturbed by whatever else the machine runs.
            let mut ms = f64::INFINITY;
            for _ in 0..5 {
                let start = Instant::now();
                lin.forward_into(&x, m, &mut y, &mut scratch)?;
                ms = ms.min(start.elapsed().as_secs_f64() * 1e3);
            }
            let ops = 2.0 * (m * n * k) as f64;
            println!("{:<6} {:<13} {:>9.1} {:>8.1}", format.name(), name, ms, ops / ms / 1e6);
            total_ms += ms;
            total_ops += ops;
        }
        println!("{:<6} {:<13} {:>9.1} {:>8.1}", format.name(), "all", total_ms, total_ops / total_ms / 1e6);
    }
    Ok(())
}
