//! Loading a checkpoint: quantising at load against a pre-quantised copy, in the same run.
//!
//! `cargo bench -p phi3v --bench load -- [MODEL_DIR] [--quant q4] [--vision-quant q8] [--runs 3]
//! [--out DIR]` (default: the tiny test checkpoint, q4 with a q8 vision tower). Writes the
//! pre-quantised copy with `phi3v::quantize` (into `--out`, or a temporary directory), then
//! loads the original with the formats asked for and the copy as it is, alternately, `runs`
//! times each after one untimed load of each (the page cache warm), and prints every time, the
//! medians and their ratio.

use std::path::Path;
use std::time::Instant;

use phi3v::{Pipeline, PipelineOptions, WeightFormat};

fn seconds(dir: &Path, options: &PipelineOptions) -> Result<f64, phi3v::Error> {
    let start = Instant::now();
    let pipeline = Pipeline::load(dir, options)?;
    let elapsed = start.elapsed().as_secs_f64();
    drop(pipeline);
    Ok(elapsed)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = phi3v_fixtures::BenchArgs::from_env();
    let dir = args.model();
    let decoder: WeightFormat = args.flag("--quant").unwrap_or("q4").parse()?;
    let vision: WeightFormat = args.flag("--vision-quant").unwrap_or("q8").parse()?;
    let runs: usize = args.parsed("--runs", 3)?;
    let temp = tempfile::tempdir()?;
    let out = args.flag("--out").map_or_else(|| temp.path().join("quantized"), Into::into);

    let start = Instant::now();
    let written = phi3v::quantize(&dir, decoder, vision, &out, None)?;
    println!("{} → {} ({decoder}/vision-{vision}, {:.2} GB) in {:.1} s", dir.display(), out.display(), written.bytes as f64 / 1e9, start.elapsed().as_secs_f64());

    let at_load = PipelineOptions { weights: decoder, vision_weights: vision, ..Default::default() };
    let stored = PipelineOptions::default();
    seconds(&dir, &at_load)?;
    seconds(&out, &stored)?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        a.push(seconds(&dir, &at_load)?);
        b.push(seconds(&out, &stored)?);
        println!("run {run}: quantising at load {:.2} s, pre-quantised {:.2} s", a[run - 1], b[run - 1]);
    }
    let (a, b) = (median(a), median(b));
    println!("median: quantising at load {a:.2} s, pre-quantised {b:.2} s ({:.2}×)", b / a);
    Ok(())
}
