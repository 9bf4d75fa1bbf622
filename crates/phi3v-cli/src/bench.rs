//! `phi3v bench`: where the time and memory go on a checkpoint, stage by stage, as a table and
//! a JSON file; with `--compare`, beside the same numbers from another run (the PyTorch
//! reference script `tests/reference/bench_torch.py` writes the same JSON).
//!
//! Inputs: `assets/chart.png` (640×480) and the same picture resized to 1344×1008, one
//! question, greedy decoding. Every stage is timed on its own; the time to first token is a
//! full `ask` with nothing cached.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    /// Skip the 16-crop time to first token (the longest stage), and the 16-crop cold question.
    #[arg(long)]
    skip_16: bool,
    /// Cold questions: the wall time of a whole `phi3v ask` process (this binary, this model and
    /// these flags; load, image, prompt and 32 tokens), the median of this many at 4 crops and
    /// at 16 crops.
    #[arg(long, default_value_t = 0)]
    cold: usize,
    /// With `--cold`: a command that answers the same question cold, run alternately with ours
    /// and given `--image PATH --num-crops N --max-tokens 32`, e.g. `"tests/reference/.venv/bin/python
    /// tests/reference/ask_torch.py --model /data/phi35v-random"`.
    #[arg(long, value_name = "COMMAND")]
    cold_reference: Option<String>,
    /// Only the cold questions (no stage timings).
    #[arg(long, requires = "cold")]
    only_cold: bool,
}

/// Tokens each cold question generates.
const COLD_TOKENS: usize = 32;

const QUESTION: &str = "Which quarter had the highest revenue?";

/// One measured quantity.
struct Metric {
    key: String,
    label: String,
    value: f64,
    unit: &'static str,
    /// Times and bytes: lower is better; rates: higher.
    lower_is_better: bool,
}

impl Metric {
    fn new(key: &str, label: &str, value: f64, unit: &'static str, lower_is_better: bool) -> Self {
        Self { key: key.to_string(), label: label.to_string(), value, unit, lower_is_better }
    }
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
    let mut metrics = Vec::new();
    let (prompt_tokens, decoded) = if args.only_cold { (Vec::new(), 0) } else { stages(&args, &dir, &mut metrics)? };
    if args.cold > 0 {
        cold(&args, &dir, &mut metrics)?;
    }

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
    if !prompt_tokens.is_empty() {
        crate::outln!("prompts: {prompt_tokens:?} tokens; {decoded} tokens decoded");
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&result)? + "\n").with_context(|| path.display().to_string())?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Every stage on its own, into `metrics`: the prompts' token counts and the tokens decoded.
fn stages(args: &BenchArgs, dir: &Path, metrics: &mut Vec<Metric>) -> Result<(Vec<usize>, usize)> {
    let load = &args.load;
    let rgb = match &args.image {
        Some(path) => phi3v::vision::load_rgb(path)?,
        None => phi3v::vision::decode_rgb(CHART)?,
    };
    let large = image::imageops::resize(&rgb, 1344, 1008, image::imageops::FilterType::Triangle);
    let mut add = |key: &str, label: &str, value, unit, lower_is_better| metrics.push(Metric::new(key, label, value, unit, lower_is_better));

    // Vision stages on their own (in the weight format the pipeline will use), then dropped.
    let ckpt = Checkpoint::open(dir)?;
    let crops = load.num_crops.unwrap_or(ckpt.preprocessor.num_crops);
    let options = load.options(dir);
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
    // The int8 multiply-add peak of the products' instructions, every thread at once.
    let peak = pool.broadcast(|_| phi3v::linear::peak::int8_peak(Duration::from_millis(500)));
    let peak_ops = peak.iter().flatten().map(|p| 2.0 * p.multiply_adds_per_s).sum::<f64>();
    if let Some(p) = peak.iter().flatten().next() {
        let label = match p.level {
            "avx512" => "int8 peak (512-bit vpdpbusd)",
            "vnni" => "int8 peak (256-bit vpdpbusd)",
            _ => "int8 peak (vpmaddubsw)",
        };
        add("int8_peak", label, peak_ops / 1e9, "GOP/s", false);
    }
    let (pipeline, load_time) = timed(|| {
        let options = PipelineOptions { image_cache_bytes: 0, ..options.clone() };
        Ok(phi3v::Pipeline::load(dir, &options)?)
    })?;
    add("load", "load weights", load_time.as_secs_f64(), "s", true);
    let mut prompt_tokens = Vec::new();
    let (mut decoded, mut decode_bytes, mut decode_rate) = (0, 0.0, 0.0);
    let crop_counts: &[usize] = if args.skip_16 { &[4] } else { &[4, 16] };
    for &n in crop_counts {
        let image = ImageInput::from_rgb(rgb.clone()).with_num_crops(n);
        let max_new_tokens = if n == 4 { args.decode_tokens.max(1) } else { 1 };
        let params = GenerationParams { max_new_tokens, ..Default::default() };
        let image_work = pipeline.image_multiply_adds(&image)? as f64;
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
        // Arithmetic (G multiply-adds) and its rate as a share of the int8 peak, per stage.
        let prefill_work = pipeline.prefill_multiply_adds(g.prompt_tokens) as f64;
        let share = |work: f64, time: Duration| 100.0 * 2.0 * work / time.as_secs_f64() / peak_ops;
        let stages = [(image_work, t.encode), (prefill_work, t.prefill), (image_work + prefill_work, t.encode + t.prefill)];
        for ((work, time), (key, label)) in stages.into_iter().zip([("image_embedding", "image"), ("prefill", "prefill"), ("ttft", "first token")]) {
            add(&format!("{key}_{n}_crops_gmac"), &format!("{label} {n} crops, work"), work / 1e9, "GMAC", true);
            if peak_ops > 0.0 {
                add(&format!("{key}_{n}_crops_share"), &format!("{label} {n} crops, of peak"), share(work, time), "%", false);
            }
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
    Ok((prompt_tokens, decoded))
}

/// The cold questions (`--cold`), ours and the reference command's alternately, into
/// `metrics`: medians in seconds and, with a reference, ours over theirs.
fn cold(args: &BenchArgs, dir: &Path, metrics: &mut Vec<Metric>) -> Result<()> {
    let temp;
    let image = match &args.image {
        Some(path) => path.clone(),
        None => {
            temp = TempImage::new(CHART)?;
            temp.0.clone()
        }
    };
    let crops: &[usize] = if args.skip_16 { &[4] } else { &[4, 16] };
    for &n in crops {
        let (tokens, image, n_text) = (COLD_TOKENS.to_string(), image.to_string_lossy().into_owned(), n.to_string());
        let ours = || -> Result<(f64, usize)> {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["ask", "--model"]).arg(dir).args(args.load.load_flags());
            cmd.args(["--image", &image, "--num-crops", &n_text, "--max-tokens", &tokens, "--json", QUESTION]);
            wall(&mut cmd)
        };
        let theirs = |line: &str| -> Result<(f64, usize)> {
            let words = shell_words::split(line).context("--cold-reference")?;
            let (program, rest) = words.split_first().context("--cold-reference is empty")?;
            let mut cmd = Command::new(program);
            cmd.args(rest).args(["--image", &image, "--num-crops", &n_text, "--max-tokens", &tokens]);
            wall(&mut cmd)
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..args.cold {
            a.push(ours()?);
            if let Some(line) = &args.cold_reference {
                b.push(theirs(line)?);
            }
        }
        let generated = |runs: &[(f64, usize)]| runs.iter().map(|r| r.1).min().unwrap_or(0);
        let ours = median(a.iter().map(|r| r.0).collect());
        let times = |runs: &[(f64, usize)]| runs.iter().map(|r| format!("{:.2}", r.0)).collect::<Vec<_>>().join(", ");
        eprintln!("cold, {n} crops: phi3v {} s ({} tokens or more each)", times(&a), generated(&a));
        let key = format!("cold_ask_{n}_crops");
        metrics.push(Metric::new(&key, &format!("cold ask, {n} crops"), ours, "s", true));
        if !b.is_empty() {
            let theirs = median(b.iter().map(|r| r.0).collect());
            eprintln!("cold, {n} crops: reference {} s ({} tokens or more each)", times(&b), generated(&b));
            metrics.push(Metric::new(&format!("{key}_reference"), &format!("cold ask {n} crops, reference"), theirs, "s", true));
            metrics.push(Metric::new(&format!("{key}_ratio"), &format!("cold ask {n} crops, ÷ reference"), ours / theirs, "×", true));
        }
    }
    Ok(())
}

/// Wall time of `cmd` to its end, and the number of `tokens` in the JSON it prints last; a
/// failure is an error with its stderr.
fn wall(cmd: &mut Command) -> Result<(f64, usize)> {
    let start = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {cmd:?}"))?;
    let seconds = start.elapsed().as_secs_f64();
    if !out.status.success() {
        anyhow::bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().rev().find_map(|l| serde_json::from_str::<Value>(l).ok());
    let tokens = last.and_then(|v| v["tokens"].as_array().map(Vec::len)).unwrap_or(0);
    Ok((seconds, tokens))
}

/// An image written to a temporary file for other processes, removed when dropped.
struct TempImage(PathBuf);

impl TempImage {
    fn new(bytes: &[u8]) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("phi3v-bench-{}.png", std::process::id()));
        std::fs::write(&path, bytes).with_context(|| path.display().to_string())?;
        Ok(Self(path))
    }
}

impl Drop for TempImage {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
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
            match r["metrics"][&m.key]["value"].as_f64() {
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
