//! `phi3v`: ask Phi-3-vision / Phi-3.5-vision about images from a terminal.
//!
//! - `phi3v ask --image chart.png "What is the highest bar?"`: one answer, streamed.
//! - `phi3v chat`: a conversation; `/image PATH` attaches an image, `/reset`, `/exit`.
//! - `phi3v inspect`: sizes and token costs, without loading weights.
//! - `phi3v eval run|score|report|generate`: the chart/OCR evaluation suite.
//! - `phi3v serve`: an OpenAI-compatible HTTP server (chat completions with images).
//! - `phi3v bench`: stage timings and peak memory, optionally against the PyTorch reference.
//! - `phi3v quantize`: a checkpoint stored in q8 or q4, loaded without quantising again.
//!
//! Every error ends as one line on stderr and exit code 1 (2 for bad flags and values). A
//! closed stdout (`phi3v ask … | head`) ends the command quietly, with success.

mod ask;
mod bench;
mod chat;
mod eval;
mod inspect;
mod quantize;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand, ValueEnum};
use phi3v::{GenerationParams, ImageLimits, KvDtype, Pipeline, PipelineOptions, WeightFormat};

/// A bad value on the command line that clap cannot see (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(String);

/// The reader of stdout went away: the command ends quietly, with success.
#[derive(Debug, thiserror::Error)]
#[error("stdout is closed")]
pub struct Closed;

/// Writes `text` to stdout at once; a closed pipe is [`Closed`].
pub fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => anyhow::Error::new(Closed),
        _ => anyhow::Error::new(e).context("writing to stdout"),
    })
}

/// `println!` through [`emit`], returning from the function on a closed stdout.
macro_rules! outln {
    () => {
        $crate::emit("\n")?
    };
    ($($arg:tt)*) => {
        $crate::emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}
pub(crate) use outln;

#[derive(Parser)]
#[command(name = "phi3v", version, about = "Phi-3-vision / Phi-3.5-vision on CPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ask one question about images and print the answer as it is generated.
    #[command(after_help = "Example:\n  phi3v ask --quant q4 -i chart.png \"Which quarter had the highest revenue?\"")]
    Ask(ask::AskArgs),
    /// Talk with the model; images can be attached in any turn.
    #[command(after_help = "Example:\n  phi3v chat --quant q4 -i scan.jpg      (then type; /help lists the commands)")]
    Chat(chat::ChatArgs),
    /// Serve the OpenAI chat-completions API over HTTP (images as data URLs, http(s) URLs or
    /// allowed local files).
    #[command(after_help = "Example:\n  phi3v serve --quant q4 --port 8000\n  curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' \\\n    -d '{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'")]
    Serve(serve::ServeArgs),
    /// Show a checkpoint's sizes and what a question with images costs in tokens.
    #[command(after_help = "Example:\n  phi3v inspect -i chart.png --num-crops 16 \"What is shown?\"")]
    Inspect(inspect::InspectArgs),
    /// Time every stage (preprocessing, CLIP, projector, prefill, first token, decode) and
    /// the peak memory on a checkpoint.
    #[command(after_help = "Example:\n  phi3v bench --quant q4 --json ours.json --compare torch.json")]
    Bench(bench::BenchArgs),
    /// Evaluate on ChartQA, DocVQA, InfoVQA, TextVQA, OCRBench, AI2D or generated data.
    #[command(subcommand, after_help = "Example:\n  phi3v eval run --task chartqa=\"ChartQA Dataset/test\" --out runs/chartqa")]
    Eval(eval::EvalCommand),
    /// Write a copy of a checkpoint with its matrices quantised (q8 or q4), which every
    /// command loads without quantising again: the same answers, a start in about a second.
    #[command(after_help = "Example:\n  phi3v quantize --quant q4 --out phi35v-q4\n  phi3v ask --model phi35v-q4 -i chart.png \"Which quarter had the highest revenue?\"")]
    Quantize(quantize::QuantizeArgs),
    /// Download a model into the Hugging Face cache (with progress), then print its folder.
    #[command(after_help = "Example:\n  phi3v pull microsoft/Phi-3-vision-128k-instruct")]
    Pull {
        /// Hugging Face model id.
        #[arg(default_value = "microsoft/Phi-3.5-vision-instruct")]
        id: String,
    },
    /// List the Phi-3-vision models in the Hugging Face cache, with their size and what each
    /// weight format needs in memory.
    #[command(after_help = "Example:\n  phi3v list")]
    List,
    /// Print a shell completion script.
    #[command(after_help = "Example:\n  phi3v completions bash > ~/.local/share/bash-completion/completions/phi3v")]
    Completions { shell: clap_complete::Shell },
    /// Print the manual page (roff), generated from these definitions.
    #[command(after_help = "Example:\n  phi3v manpage > ~/.local/share/man/man1/phi3v.1")]
    Manpage,
}

/// Which checkpoint, and how to run it: shared by `ask`, `chat`, `eval run` and `bench`.
#[derive(Args)]
pub struct LoadArgs {
    /// Checkpoint directory, or a Hugging Face model id (resolved through the HF cache).
    #[arg(short, long, env = "PHI3V_MODEL", default_value = "microsoft/Phi-3.5-vision-instruct")]
    model: String,
    /// Maximum crops per image (default: the checkpoint's, 4 for Phi-3.5-vision, 16 for Phi-3-vision).
    #[arg(long, value_parser = num_crops)]
    num_crops: Option<usize>,
    /// How unquantised weight matrices are held (auto: as stored, bf16 for the official
    /// checkpoints). Activations are always f32.
    #[arg(long, value_enum, default_value_t = Dtype::Auto)]
    dtype: Dtype,
    /// Quantise the weight matrices at load: q8 (int8) or q4 (int4), group-wise.
    #[arg(long, value_enum)]
    quant: Option<Quant>,
    /// Quantisation of the vision tower and projector, if not the same as `--quant`.
    #[arg(long, value_enum)]
    vision_quant: Option<VisionQuant>,
    /// How the KV cache holds keys and values (auto: f32 with --dtype f32, q8 with --quant q4,
    /// otherwise f16). f16 halves its memory and the bytes each generated token reads, q8
    /// (int8, a scale per position and head) nearly halves them again; f32 is the reference's
    /// arithmetic.
    #[arg(long, value_enum, default_value_t = KvCache::Auto)]
    kv_cache: KvCache,
    /// Worker threads (default: one per core; more than the cores are capped to them).
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// Bars on stderr for the pipeline's long steps: reading the weights (bytes), each image's
/// crops, the prompt's tokens. Each bar goes away when its step is done.
fn progress_bars() -> phi3v::Observer {
    use phi3v::Progress;
    let current: std::sync::Mutex<Option<(&'static str, indicatif::ProgressBar)>> = std::sync::Mutex::new(None);
    phi3v::Observer::new(move |p| {
        let (label, pos, len, unit) = match p {
            Progress::Loading { bytes, total } => ("loading weights", bytes, total, "{binary_bytes}/{binary_total_bytes}"),
            Progress::Encoding { crops, of } => ("encoding image, crops", crops as u64, of as u64, "{pos}/{len}"),
            Progress::Prefill { tokens, of } => ("reading the prompt, tokens", tokens as u64, of as u64, "{pos}/{len}"),
        };
        let mut current = current.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_ref().is_none_or(|(l, bar)| *l != label || bar.length() != Some(len)) {
            if let Some((_, old)) = current.take() {
                old.finish_and_clear();
            }
            let template = format!("{label} {{bar:30}} {unit} {{elapsed}}");
            let style = indicatif::ProgressStyle::with_template(&template).expect("valid template");
            *current = Some((label, indicatif::ProgressBar::new(len).with_style(style)));
        }
        if let Some((_, bar)) = current.as_ref() {
            bar.set_position(pos.max(bar.position()));
            if pos >= len {
                bar.finish_and_clear();
                *current = None;
            }
        }
    })
}

/// One line about an answer: its tokens, time to first token, speed and why it stopped (with
/// a word when `--max-tokens` cut it).
pub fn stats_line(g: &phi3v::Generation, max_tokens: usize) -> String {
    let t = &g.timings;
    let stop = match &g.stop {
        phi3v::StopReason::EndToken(_) => "end of answer".to_string(),
        phi3v::StopReason::StopString(s) => format!("stop string {s:?}"),
        phi3v::StopReason::MaxTokens => format!("cut at --max-tokens {max_tokens}"),
        phi3v::StopReason::ContextFull => "the model's context is full".to_string(),
        phi3v::StopReason::Cancelled => "stopped".to_string(),
    };
    format!(
        "({} prompt tokens, {} of them image; {} generated; first token after {:.2} s; {:.1} tokens/s; {stop})",
        g.prompt_tokens,
        g.image_tokens.iter().sum::<usize>(),
        g.tokens.len(),
        (t.encode + t.prefill).as_secs_f64(),
        t.decode_tokens_per_s(),
    )
}

/// `phi3v list`: the cached Phi-3-vision checkpoints, their size on disk and their memory (weights
/// only) as stored, with q8 and with q4.
fn list() -> Result<()> {
    let mut found = 0;
    for (id, dir) in phi3v::hub::cached() {
        let Ok(ckpt) = phi3v::checkpoint::Checkpoint::open(&dir) else { continue };
        let on_disk = size(ckpt.weights.total_bytes() as u64);
        outln!("{id:<44} {on_disk:>9} on disk; in memory {}   {}", memory_by_format(&ckpt, 0), dir.display());
        found += 1;
    }
    if found == 0 {
        eprintln!("no Phi-3-vision models in the Hugging Face cache; `phi3v pull` downloads one");
    }
    Ok(())
}

/// What `ckpt` needs in memory with `positions` in the KV cache, as stored, with q8 and with
/// q4: `bf16 9.21 GB, q8 5.02 GB, q4 2.98 GB` (for a checkpoint written by `phi3v quantize`, as
/// written: `q4/vision-q8 as quantised 2.61 GB`).
pub fn memory_by_format(ckpt: &phi3v::checkpoint::Checkpoint, positions: usize) -> String {
    let estimate = |f| size(phi3v::memory::estimate(ckpt, f, f, None, positions).total());
    if let Some(q) = ckpt.weights.quantized() {
        return format!("{}/vision-{} as quantised {}", q.decoder, q.vision, estimate(WeightFormat::Auto));
    }
    let stored = WeightFormat::Auto.resolve(ckpt.weights.stored_dtype());
    [(stored, WeightFormat::Auto), (WeightFormat::Q8, WeightFormat::Q8), (WeightFormat::Q4, WeightFormat::Q4)]
        .map(|(label, f)| format!("{label} {}", estimate(f)))
        .join(", ")
}

/// Bytes for people: `9.21 GB`, `4.5 MB`.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000 => format!("{:.2} GB", b as f64 / 1e9),
        b => format!("{:.1} MB", b as f64 / 1e6),
    }
}

/// `--num-crops`: 1 to the most the HD transform takes.
pub fn num_crops(value: &str) -> std::result::Result<usize, String> {
    let max = phi3v::vision::MAX_CROPS;
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of crops from 1 to {max}")),
    }
}

/// What an image may cost, checked before it is read or decoded.
#[derive(Args)]
pub struct LimitArgs {
    /// Largest image accepted, in pixels (width × height).
    #[arg(long, default_value_t = phi3v::vision::MAX_PIXELS)]
    max_image_pixels: u64,
    /// Largest image file accepted, in bytes.
    #[arg(long, default_value_t = phi3v::vision::MAX_BYTES)]
    max_image_bytes: u64,
}

impl LimitArgs {
    fn limits(&self) -> ImageLimits {
        ImageLimits { max_pixels: self.max_image_pixels, max_bytes: self.max_image_bytes }
    }

    /// Opens an image file within the limits and decodes it once (then drops the pixels), so
    /// that a corrupt file is reported before any model work.
    /// `-` reads the image from stdin, an `http(s)://` URL is downloaded (30 s at most).
    fn open(&self, path: &Path) -> Result<phi3v::ImageInput> {
        let limits = self.limits();
        let text = path.to_string_lossy();
        let image = if path == Path::new("-") {
            use std::io::Read;
            let mut bytes = Vec::new();
            std::io::stdin().take(limits.max_bytes + 1).read_to_end(&mut bytes)?;
            phi3v::ImageInput::from_bytes_within(bytes, &limits).map_err(|e| anyhow::anyhow!("<stdin>: {e}"))?
        } else if text.starts_with("http://") || text.starts_with("https://") {
            phi3v::ImageInput::fetch(&text, &limits, std::time::Duration::from_secs(30))?
        } else {
            phi3v::ImageInput::open_within(path, &limits)?
        };
        image.check()?;
        Ok(image)
    }
}

/// Model and generation flags shared by `ask` and `chat`.
#[derive(Args)]
pub struct ModelArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(short, long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this probability mass.
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Keep only this many most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// Random seed for sampling (default: a fresh one each run, reported by `--json`).
    #[arg(long)]
    seed: Option<u64>,
    /// Penalise tokens already seen (1: off).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    /// End the answer where this text appears (not included); repeat for several.
    #[arg(long = "stop", value_name = "TEXT")]
    stop: Vec<String>,
    /// After each answer, one line on stderr: tokens, time to first token, speed, why it
    /// stopped (always on a terminal).
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    Auto,
    F32,
    Bf16,
    F16,
}

#[derive(Clone, Copy, ValueEnum)]
enum Quant {
    Q8,
    Q4,
}

impl Quant {
    fn format(self) -> WeightFormat {
        match self {
            Quant::Q8 => WeightFormat::Q8,
            Quant::Q4 => WeightFormat::Q4,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum KvCache {
    Auto,
    F32,
    F16,
    Q8,
}

#[derive(Clone, Copy, ValueEnum)]
enum VisionQuant {
    None,
    Q8,
    Q4,
}

impl ModelArgs {
    /// The generation settings, checked (a bad value is a [`Usage`] error).
    fn params(&self) -> Result<GenerationParams> {
        let params = GenerationParams {
            max_new_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            top_k: self.top_k,
            seed: self.seed.unwrap_or_else(rand::random),
            repetition_penalty: self.repetition_penalty,
            stop: self.stop.clone(),
            cancel: None,
        };
        let flag = |e: phi3v::ParamError| {
            let text = e.to_string();
            let (field, rest) = text.split_once(' ').unwrap_or((&text, ""));
            let flag = if field == "max_new_tokens" { "max-tokens".to_string() } else { field.replace('_', "-") };
            Usage(format!("--{flag} {rest}"))
        };
        params.validate().map_err(flag)?;
        Ok(params)
    }

    /// Whether to print [`stats_line`] after an answer.
    fn show_stats(&self) -> bool {
        self.verbose || std::io::stderr().is_terminal()
    }
}

impl LoadArgs {
    /// The checkpoint directory (downloading into the HF cache if need be).
    fn dir(&self) -> Result<PathBuf> {
        Ok(phi3v::hub::resolve(&self.model, std::io::stderr().is_terminal())?)
    }

    /// Loads the checkpoint in `dir` (with a bar on a terminal).
    fn pipeline_from(&self, dir: &Path) -> Result<Pipeline> {
        if std::io::stderr().is_terminal() {
            self.suggest_quant(dir);
        }
        Ok(Pipeline::load(dir, &self.options(dir))?)
    }

    /// On a terminal, 16-bit weights run as stored get a word on `--quant q4`: exact is the
    /// default, but most CPU users want the speed.
    fn suggest_quant(&self, dir: &Path) {
        let Ok(ckpt) = phi3v::checkpoint::Checkpoint::open(dir) else { return };
        let (decoder, vision) = self.formats();
        let Ok((decoder, _)) = phi3v::resolve_formats(&ckpt, decoder, vision) else { return };
        if matches!(decoder, WeightFormat::Bf16 | WeightFormat::F16) {
            eprintln!(
                "note: running the {decoder} weights as stored; --quant q4 is ~3× faster on a CPU in a third of the memory \
                 (full-size model: 13 vs 3.6 tokens/s, 3.0 vs 9.2 GB; docs/PERFORMANCE.md)"
            );
        }
    }

    /// Load-time options from the flags, for the checkpoint in `dir`. A checkpoint written by
    /// `phi3v quantize` keeps its vision tower's format unless `--vision-quant` names one.
    fn options(&self, dir: &Path) -> PipelineOptions {
        let (weights, mut vision_weights) = self.formats();
        if self.vision_quant.is_none() {
            vision_weights = phi3v::default_vision_format(dir, vision_weights);
        }
        let kv_cache = self.kv_dtype();
        let progress = std::io::stderr().is_terminal().then(progress_bars);
        PipelineOptions { weights, vision_weights, kv_cache, threads: self.threads(), progress, ..Default::default() }
    }

    /// The flags that choose how the model loads (`--dtype`, `--quant`, `--vision-quant`,
    /// `--kv-cache`, `--threads`) as given, to run another `phi3v` command the same way.
    fn load_flags(&self) -> Vec<String> {
        fn name(v: &impl ValueEnum) -> String {
            v.to_possible_value().map(|p| p.get_name().to_string()).unwrap_or_default()
        }
        let mut flags = vec!["--dtype".to_string(), name(&self.dtype), "--kv-cache".to_string(), name(&self.kv_cache)];
        let optional = [
            ("--quant", self.quant.map(|q| name(&q))),
            ("--vision-quant", self.vision_quant.map(|q| name(&q))),
            ("--threads", self.threads.map(|t| t.to_string())),
        ];
        for (flag, value) in optional {
            flags.extend(value.map(|v| [flag.to_string(), v]).into_iter().flatten());
        }
        flags
    }

    /// `--kv-cache` (`None` for auto).
    fn kv_dtype(&self) -> Option<KvDtype> {
        match self.kv_cache {
            KvCache::Auto => None,
            KvCache::F32 => Some(KvDtype::F32),
            KvCache::F16 => Some(KvDtype::F16),
            KvCache::Q8 => Some(KvDtype::Q8),
        }
    }

    /// `--threads`, capped to the cores with a warning (more only slows the model down).
    fn threads(&self) -> Option<usize> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        match self.threads {
            Some(n) if n > cores => {
                eprintln!("warning: --threads {n} is more than the {cores} cores here; using {cores}");
                Some(cores)
            }
            other => other,
        }
    }

    /// The decoder's and the vision tower's weight formats from `--dtype`, `--quant` and
    /// `--vision-quant`.
    fn formats(&self) -> (WeightFormat, WeightFormat) {
        let dense = match self.dtype {
            Dtype::Auto => WeightFormat::Auto,
            Dtype::F32 => WeightFormat::F32,
            Dtype::Bf16 => WeightFormat::Bf16,
            Dtype::F16 => WeightFormat::F16,
        };
        let decoder = self.quant.map_or(dense, Quant::format);
        let vision = match self.vision_quant {
            None => decoder,
            Some(VisionQuant::None) => dense,
            Some(VisionQuant::Q8) => WeightFormat::Q8,
            Some(VisionQuant::Q4) => WeightFormat::Q4,
        };
        (decoder, vision)
    }

    /// The weight formats as one label, e.g. `q4`, `q4/vision-bf16` or `auto/kv-f16` (the KV
    /// cache only when `--kv-cache` names one).
    fn formats_label(&self) -> String {
        let label = match self.formats() {
            (d, v) if d == v => d.to_string(),
            (d, v) => format!("{d}/vision-{v}"),
        };
        match self.kv_dtype() {
            Some(kv) => format!("{label}/kv-{}", kv.name()),
            None => label,
        }
    }

    /// Resolves and loads the model.
    fn pipeline(&self) -> Result<Pipeline> {
        self.pipeline_from(&self.dir()?)
    }

    /// An image input with this invocation's limits and `--num-crops`.
    fn image(&self, path: &Path) -> Result<phi3v::ImageInput> {
        let img = self.limits.open(path)?;
        Ok(match self.num_crops {
            Some(n) => img.with_num_crops(n),
            None => img,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Ask(args) => ask::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Inspect(args) => inspect::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Eval(command) => eval::run(command),
        Command::Bench(args) => bench::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "phi3v", &mut script);
            emit(&String::from_utf8_lossy(&script))
        }
        Command::Pull { id } => phi3v::hub::resolve(&id, std::io::stderr().is_terminal())
            .map_err(anyhow::Error::from)
            .and_then(|dir| emit(&format!("{}\n", dir.display()))),
        Command::List => list(),
        Command::Manpage => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page).map_err(anyhow::Error::from).and_then(|()| emit(&String::from_utf8_lossy(&page)))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<Closed>() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", phi3v::one_line(e.as_ref()));
            ExitCode::from(if e.is::<Usage>() { 2 } else { 1 })
        }
    }
}
