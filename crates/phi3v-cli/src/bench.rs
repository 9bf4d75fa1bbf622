//! `phi3v bench`: where the time and memory go on a checkpoint, stage by stage, as a table and
//! a JSON file; with `--compare`, beside the same numbers from another run (the PyTorch
//! reference script `tests/reference/bench_torch.py` writes the same JSON).
//!
//! Inputs: `assets/chart.png` (640×480) and the same picture resized to 1344×1008, one
//! question, greedy decoding. Every stage is timed on its own; the time to first token is a
//! full `ask` with nothing cached.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use rayon::prelude::*;
use phi3v::checkpoint::Checkpoint;
use phi3v::image::ImageEncoder;
use phi3v::{Device, GenerationParams, ImageInput, PipelineOptions};
use serde_json::{json, Value};

use crate::LoadArgs;

/// `assets/chart.png`, the benchmark's image wherever the binary runs.
const CHART: &[u8] = include_bytes!("../../../assets/chart.png");

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// A 640×480 test image (the 1344×1008 one is this, resized); default: `assets/chart.png`,
    /// built into the binary.
    #[arg(long)]
    image: Option<PathBuf>,
    /// Tokens to decode after the 4-crop prompt.
    #[arg(long, default_value_t = 64)]
    decode_tokens: usize,
    /// Repeats of the short stages (median reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Write the results here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A JSON file from another run (e.g. the PyTorch reference) to print ratios against.
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Skip the 16-crop time to first token (the longest stage).
    #[arg(long)]
    skip_16: bool,
}

const QUESTION: &str = "Which quarter had the highest revenue?";

/// One measured quantity.
struct Metric {
    key: &'static str,
    label: &'static str,
    value: f64,
    unit: &'static str,
    /// Times and bytes: lower is better; rates: higher.
    lower_is_better: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, Duration)> {
    let start = Instant::now();
    let out = f()?;
    Ok((out, start.elapsed()))
}

/// Peak resident memory of this process so far (VmHWM), in bytes.
fn peak_rss() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024.0)
}

/// Plain reads of a 256 MiB buffer (eight times a large L3 cache; on huge pages, as the weights
/// are) on `pool`'s threads, in GB/s: five passes after one to warm up. Decode streams its
/// weights and cache from memory, so this bounds it: tokens/s ≤ bandwidth / bytes per token.
fn read_bandwidth(pool: &rayon::ThreadPool) -> Vec<f64> {
    let len = 256 << 20;
    let mut buf = phi3v::linear::huge::with_capacity(len);
    buf.resize(len, 1u8);
    let per = len.div_ceil(pool.current_num_threads());
    let pass = || {
        let start = Instant::now();
        let x = pool.install(|| {
            buf.par_chunks(per)
                .map(|c| c.chunks_exact(8).fold(0u64, |a, w| a ^ u64::from_ne_bytes(w.try_into().expect("8 bytes"))))
                .reduce(|| 0, |a, b| a ^ b)
        });
        std::hint::black_box(x);
        len as f64 / start.elapsed().as_secs_f64() / 1e9
    };
    (0..6).map(|_| pass()).skip(1).collect()
}

pub fn run(args: BenchArgs) -> Result<()> {
    let load = &args.load;
    let dir = load.dir()?;
    let rgb = match &args.image {
        Some(path) => phi3v::vision::load_rgb(path)?,
        None => phi3v::vision::decode_rgb(CHART)?,
    };
    let large = image::imageops::resize(&rgb, 1344, 1008, image::imageops::FilterType::Triangle);
    let mut metrics = Vec::new();
    let mut add = |key, label, value, unit, lower_is_better| metrics.push(Metric { key, label, value, unit, lower_is_better });

    // Vision stages on their own (in the weight format the pipeline will use), then dropped.
    let ckpt = Checkpoint::open(&dir)?;
    let crops = load.num_crops.unwrap_or(ckpt.preprocessor.num_crops);
    let options = load.options(&dir);
    let (_, vision) = phi3v::resolve_formats(&ckpt, options.weights, options.vision_weights)?;
    let encoder = ImageEncoder::load(&ckpt, vision, &Device::Cpu)?;
    let pool = rayon::ThreadPoolBuilder::new().num_threads(load.threads.unwrap_or(0)).build()?;
    pool.install(|| -> Result<()> {
        for (key, label, img) in [("preprocess_640x480", "preprocess 640×480", &rgb), ("preprocess_1344x1008", "preprocess 1344×1008", &large)] {
            let ms = (0..args.repeats)
                .map(|_| Ok(timed(|| Ok(encoder.preprocess(img, crops)?))?.1.as_secs_f64() * 1e3))
                .collect::<Result<Vec<_>>>()?;
            add(key, label, median(ms), "ms", true);
        }
        let pre = encoder.preprocess(&rgb, crops)?;
        let (features, clip) = timed(|| Ok(encoder.features(&pre)?))?;
        add("clip_per_crop", "CLIP per crop", clip.as_secs_f64() / pre.num_crops() as f64, "s", true);
        let (_, projector) = timed(|| Ok(encoder.project(&features, &pre)?))?;
        add("projector", "projector", projector.as_secs_f64() * 1e3, "ms", true);
        Ok(())
    })?;
    drop(encoder);

    // The memory bandwidth, before the weights are loaded (its buffer is freed again, far
    // below the peak the weights bring) and after the last stage.
    let mut bandwidth = read_bandwidth(&pool);
    let (pipeline, load_time) = timed(|| {
        let options = PipelineOptions { image_cache_bytes: 0, ..options.clone() };
        Ok(phi3v::Pipeline::load(&dir, &options)?)
    })?;
    add("load", "load weights", load_time.as_secs_f64(), "s", true);
    let mut prompt_tokens = Vec::new();
    let (mut decoded, mut decode_bytes, mut decode_rate) = (0, 0.0, 0.0);
    let crop_counts: &[usize] = if args.skip_16 { &[4] } else { &[4, 16] };
    for &n in crop_counts {
        let image = ImageInput::from_rgb(rgb.clone()).with_num_crops(n);
        let max_new_tokens = if n == 4 { args.decode_tokens.max(1) } else { 1 };
        let params = GenerationParams { max_new_tokens, ..Default::default() };
        let g = pipeline.ask(QUESTION, &[image], &params, |_| {})?;
        let t = &g.timings;
        prompt_tokens.push(g.prompt_tokens);
        if n == 4 {
            add("image_embedding_4_crops", "image embedding, 4 crops", t.encode.as_secs_f64(), "s", true);
            add("prefill_4_crops", "prefill, 4-crop prompt", t.prefill_tokens_per_s(), "tok/s", false);
            add("ttft_4_crops", "time to first token, 4 crops", (t.encode + t.prefill).as_secs_f64(), "s", true);
            add("decode", "decode", t.decode_tokens_per_s(), "tok/s", false);
            decoded = t.decode_steps;
            // The cache holds the prompt and, on average, half of the decoded tokens.
            decode_bytes = pipeline.decode_bytes_per_token(g.prompt_tokens + decoded / 2) as f64;
            decode_rate = t.decode_tokens_per_s();
            if let Some(rss) = peak_rss() {
                add("peak_rss_4_crops", "peak memory to here (RSS)", rss / 1e9, "GB", true);
            }
        } else {
            add("prefill_16_crops", "prefill, 16-crop prompt", t.prefill_tokens_per_s(), "tok/s", false);
            add("ttft_16_crops", "time to first token, 16 crops", (t.encode + t.prefill).as_secs_f64(), "s", true);
        }
    }
    if let Some(rss) = peak_rss() {
        add("peak_rss", "peak memory, whole run (RSS)", rss / 1e9, "GB", true);
    }
    // Read again once the peak memory is known (the buffer must not raise it).
    bandwidth.extend(read_bandwidth(&pool));
    let bandwidth = median(bandwidth);
    add("read_bandwidth", "plain memory read", bandwidth, "GB/s", false);
    add("decode_bytes_per_token", "bytes read per decoded token", decode_bytes / 1e9, "GB", true);
    add("decode_bandwidth_share", "decode, share of read bound", 100.0 * decode_rate * decode_bytes / 1e9 / bandwidth, "%", false);

    let result = json!({
        "implementation": "phi3v",
        "model": dir.display().to_string(),
        "weights": load.formats_label(),
        "threads": load.threads.unwrap_or_else(rayon::current_num_threads),
        "prompt_tokens": prompt_tokens,
        "decode_steps": decoded,
        "metrics": metrics.iter().map(|m| (m.key.to_string(), json!({"value": m.value, "unit": m.unit}))).collect::<serde_json::Map<_, _>>(),
    });
    let reference: Option<Value> = match &args.compare {
        Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(p).with_context(|| p.display().to_string())?).with_context(|| p.display().to_string())?),
        None => None,
    };
    crate::emit(&table(&metrics, reference.as_ref()))?;
    crate::outln!("prompts: {prompt_tokens:?} tokens; {decoded} tokens decoded");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n").with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The metrics, and with a reference run its values and ours/theirs (for times: below 1 is
/// faster; for rates: above 1 is faster).
fn table(metrics: &[Metric], reference: Option<&Value>) -> String {
    let name = reference.and_then(|r| r["implementation"].as_str()).unwrap_or("reference");
    let mut out = format!("{:<32} {:>12}", "stage", "phi3v");
    if reference.is_some() {
        out += &format!(" {:>12} {:>14}", name, "ratio");
    }
    out.push('\n');
    for m in metrics {
        out += &format!("{:<32} {:>8.2} {:<5}", m.label, m.value, m.unit);
        if let Some(r) = reference {
            match r["metrics"][m.key]["value"].as_f64() {
                Some(v) => {
                    let ratio = m.value / v;
                    let meaning = match (m.lower_is_better, m.unit) {
                        (true, "GB") => "memory",
                        (true, _) => "time",
                        (false, _) => "rate",
                    };
                    out += &format!(" {v:>8.2} {:<5} {ratio:>6.2}× {meaning}", m.unit);
                }
                None => out += &format!(" {:>14}", "—"),
            }
        }
        out.push('\n');
    }
    out
}
