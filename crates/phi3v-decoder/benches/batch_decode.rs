//! Aggregate decode speed of batched steps against one sequence at a time, on a checkpoint.
//!
//! `cargo bench -p phi3v-decoder --bench batch_decode -- [MODEL_DIR] [--format q4|q8|bf16|f32]
//! [--steps N] [--context N] [--streams 1,2,4,8]` (default: the tiny test checkpoint, q4, 32
//! steps, 64-token prompts, those four stream counts). For each number of sequences it prefills each with its own prompt, then times
//! `steps` tokens per sequence fed one sequence at a time ([`Decoder::step`], our
//! single-stream path) and all together ([`Decoder::step_batch`]), in the same run, and prints
//! the aggregate tokens/s of each and their ratio. Greedy tokens are fed back, so the batched
//! run does the work a server does.

use std::time::Instant;

use candle_core::Device;
use phi3v_checkpoint::Checkpoint;
use phi3v_decoder::{BatchBuffers, Decoder, KvCache};
use phi3v_linear::WeightFormat;

fn greedy(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0) as u32
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = phi3v_fixtures::BenchArgs::from_env();
    let dir = args.model();
    let format: WeightFormat = args.flag("--format").unwrap_or("q4").parse()?;
    let steps: usize = args.parsed("--steps", 32)?;
    let context: usize = args.parsed("--context", 64)?;
    let streams: Vec<usize> = args.flag("--streams").unwrap_or("1,2,4,8").split(',').map(str::parse).collect::<Result<_, _>>()?;
    let ckpt = Checkpoint::open(&dir)?;
    let stored = ckpt.weights.stored_dtype();
    let format = format.resolve(stored);
    let vb = ckpt.weights.var_builder(format.table_dtype(stored), &Device::Cpu)?;
    let start = Instant::now();
    let decoder = Decoder::load(&ckpt.config, format, vb)?;
    println!("{} ({format}) loaded in {:.1} s; {steps} steps per sequence after {context}-token prompts", dir.display(), start.elapsed().as_secs_f64());
    println!("{:>9} {:>16} {:>16} {:>7}", "sequences", "one at a time", "batched", "ratio");
    for n in streams {
        let prompts: Vec<Vec<u32>> = (0..n).map(|k| (0..context).map(|i| ((i * 131 + k * 17) % 30000 + 100) as u32).collect()).collect();
        // Caches with the prompts read, and each one's first greedy token.
        let fresh = || -> Result<(Vec<KvCache>, Vec<u32>), Box<dyn std::error::Error>> {
            let mut first = Vec::new();
            let caches = prompts
                .iter()
                .map(|p| {
                    let mut cache = KvCache::default();
                    let logits = decoder.forward(&decoder.embed(p)?, &mut cache)?.to_vec1::<f32>()?;
                    first.push(greedy(&logits));
                    Ok(cache)
                })
                .collect::<Result<Vec<_>, Box<dyn std::error::Error>>>()?;
            Ok((caches, first))
        };
        // One sequence at a time.
        let (mut caches, mut next) = fresh()?;
        let start = Instant::now();
        for (cache, token) in caches.iter_mut().zip(next.iter_mut()) {
            for _ in 0..steps {
                *token = greedy(decoder.step(*token, cache)?);
            }
        }
        let alone = (n * steps) as f64 / start.elapsed().as_secs_f64();
        // All together.
        let (mut caches, mut next) = fresh()?;
        let mut buffers = BatchBuffers::default();
        let start = Instant::now();
        for _ in 0..steps {
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().collect();
            let logits = decoder.step_batch(&next, &mut refs, &mut buffers)?;
            let vocab = logits.len() / n;
            next = logits.chunks_exact(vocab).map(greedy).collect();
        }
        let batched = (n * steps) as f64 / start.elapsed().as_secs_f64();
        println!("{n:>9} {:>12.1} t/s {:>12.1} t/s {:>6.2}×", alone, batched, batched / alone);
    }
    Ok(())
}
