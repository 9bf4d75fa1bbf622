//! `phi3v eval`: the chart/OCR evaluation suite.
//!
//! - `phi3v eval run --task chartqa=ChartQA/test --out runs/x`: asks what is not answered yet
//!   (resumable), then scores and writes the results.
//! - `phi3v eval score --task … --out runs/x`: scores the saved predictions again (after a
//!   metric change, or to merge shards), without the model.
//! - `phi3v eval report runs/a runs/b`: the runs side by side with the model cards' numbers.
//! - `phi3v eval generate --out data/`: the offline chart/OCR set.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use phi3v::{GenerationParams, Message, Pipeline};
use phi3v_evals::compare::{Comparison, Run};
use phi3v_evals::report::{self, Judge, Report};
use phi3v_evals::runner::{self, Model, Progress, Selection, Shard, Store, TaskSpec};
use phi3v_evals::{synth, Harness, Task};
use sha2::{Digest, Sha256};

use crate::LoadArgs;

#[derive(Subcommand)]
pub enum EvalCommand {
    /// Answer every selected sample not answered yet, then score.
    Run(RunArgs),
    /// Score saved predictions (no model needed); merges the files of sharded runs.
    Score(ScoreArgs),
    /// Set scored runs side by side with the model cards' numbers (Markdown on stdout;
    /// report.md and report.csv written).
    Report(ReportArgs),
    /// Write the offline chart QA and OCR set (deterministic for a seed).
    Generate(GenerateArgs),
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run folders (the --out of `eval run` or `eval score`), one column each.
    #[arg(required = true, value_name = "RUN")]
    runs: Vec<PathBuf>,
    /// Where report.md and report.csv go.
    #[arg(long, default_value = ".")]
    out: PathBuf,
}

/// Which samples, scored how, and where the files go.
#[derive(Args)]
pub struct SuiteArgs {
    /// NAME=PATH; repeat for several. NAME: chartqa, docvqa, infovqa, textvqa, vqav2, ocrbench,
    /// ai2d, pope, mmbench, scienceqa, blink, mmmu, mathvista.
    /// PATH: the benchmark's file as downloaded (ChartQA: a test_*.json or the test folder;
    /// AI2D: the released folder or VLMEvalKit's TSV) or a .jsonl file of ours.
    #[arg(long = "task", required = true, value_name = "NAME=PATH")]
    tasks: Vec<String>,
    /// NAME=DIR: where a task's images are, when not where the download puts them.
    #[arg(long = "images", value_name = "NAME=DIR")]
    images: Vec<String>,
    /// NAME=TEMPLATE: the task's prompt, with {question}, {question_capitalized},
    /// {question_stripped} and {options}; `\n` is a newline.
    #[arg(long = "prompt", value_name = "NAME=TEMPLATE")]
    prompts: Vec<String>,
    /// Scoring rules (and default prompts and answer lengths) of this harness.
    #[arg(long, default_value = "lmms-eval", value_parser = ["lmms-eval", "vlmevalkit", "official"])]
    harness: String,
    /// Output folder: predictions, results, per-sample log, chart.
    #[arg(long)]
    out: PathBuf,
    /// Skip this many samples of each task.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Take at most this many samples of each task (after --offset).
    #[arg(long)]
    limit: Option<usize>,
    /// Take part i of n (0-based), e.g. 0/4, so that n processes split the set; `auto` takes it
    /// from a Slurm array job, `auto/n` from a Kubernetes Indexed Job of n completions.
    #[arg(long)]
    shard: Option<Shard>,
    /// An OpenAI-compatible endpoint (e.g. http://127.0.0.1:8000/v1) whose model reads the
    /// answer where the harness asks its judge (MathVista's extraction). OPENAI_API_KEY is sent
    /// when set; replies are kept in OUT/judge.jsonl and not asked for again.
    #[arg(long, value_name = "URL")]
    judge_url: Option<String>,
    /// The judge's model name.
    #[arg(long, default_value = "gpt-3.5-turbo", value_name = "NAME")]
    judge_model: String,
}

#[derive(Args)]
pub struct RunArgs {
    #[command(flatten)]
    suite: SuiteArgs,
    #[command(flatten)]
    load: LoadArgs,
    /// Most new tokens per answer (default: the harness's per-task limit).
    #[arg(long)]
    max_tokens: Option<usize>,
}

#[derive(Args)]
pub struct ScoreArgs {
    #[command(flatten)]
    suite: SuiteArgs,
    /// Whose predictions to score, when the folder holds several models' (see `model` in the
    /// predictions files).
    #[arg(long)]
    model_key: Option<String>,
    /// The answer length the predictions were made with, when not the harness's default.
    #[arg(long)]
    max_tokens: Option<usize>,
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Charts (bar, line, pie in turn).
    #[arg(long, default_value_t = 30)]
    charts: usize,
    /// Bar charts of the quarters Q1–Q4 ("Which quarter had the highest revenue?"), after the others.
    #[arg(long, default_value_t = 0)]
    quarterly: usize,
    #[arg(long, default_value_t = 3)]
    questions_per_chart: usize,
    /// OCR items (word, number, line in turn).
    #[arg(long, default_value_t = 30)]
    ocr: usize,
    /// Scenes of coloured shapes (two POPE questions each per split, one or two MMBench ones, a
    /// ScienceQA one, the MMBench ones again for MathVista; BLINK and MMMU questions compare
    /// neighbours).
    #[arg(long, default_value_t = 30)]
    scenes: usize,
}

pub fn run(command: EvalCommand) -> Result<()> {
    match command {
        EvalCommand::Run(args) => run_suite(args),
        EvalCommand::Score(args) => score_only(args),
        EvalCommand::Report(args) => compare(args),
        EvalCommand::Generate(args) => generate(args),
    }
}

/// `NAME=VALUE` pairs, names checked against the tasks.
fn pairs<'a>(values: &'a [String], flag: &str) -> Result<Vec<(Task, &'a str)>> {
    values
        .iter()
        .map(|v| {
            let (name, value) = v.split_once('=').with_context(|| format!("--{flag} {v:?}: expected NAME=VALUE"))?;
            let names: Vec<&str> = Task::ALL.iter().map(|t| t.name()).collect();
            let task = Task::from_name(name).with_context(|| format!("--{flag} {v:?}: unknown task {name:?} (one of {})", names.join(", ")))?;
            Ok((task, value))
        })
        .collect()
}

impl SuiteArgs {
    fn harness(&self) -> Harness {
        Harness::from_name(&self.harness).expect("clap checked the value")
    }

    fn selection(&self) -> Selection {
        Selection { offset: self.offset, limit: self.limit, shard: self.shard }
    }

    /// File names for this process: its own predictions file and results stem.
    fn names(&self) -> (String, String) {
        match self.shard {
            Some(s) => (format!("predictions.shard-{}-of-{}.jsonl", s.index, s.count), format!("results.shard-{}-of-{}", s.index, s.count)),
            None => ("predictions.jsonl".into(), "results".into()),
        }
    }

    /// Reads every task's samples; a task named twice gets both files' samples.
    fn specs(&self, max_new_tokens: Option<usize>) -> Result<Vec<TaskSpec>> {
        let images: HashMap<Task, &str> = pairs(&self.images, "images")?.into_iter().collect();
        let prompts: HashMap<Task, String> =
            pairs(&self.prompts, "prompt")?.into_iter().map(|(t, p)| (t, p.replace("\\n", "\n"))).collect();
        for (task, template) in &prompts {
            phi3v_evals::template::check_template(template).map_err(|e| crate::Usage(format!("--prompt {}: {e}", task.name())))?;
        }
        let mut specs: Vec<TaskSpec> = Vec::new();
        for (task, path) in pairs(&self.tasks, "task")? {
            let samples = task.load(Path::new(path), images.get(&task).map(Path::new))?;
            match specs.iter_mut().find(|s| s.task == task) {
                Some(spec) => spec.samples.extend(samples),
                None => specs.push(TaskSpec { task, samples, template: prompts.get(&task).cloned(), max_new_tokens }),
            }
        }
        Ok(specs)
    }

    /// Scores `model`'s stored answers to `items`, with the judge when one is given.
    fn score(&self, items: &[runner::Item], store: &Store, model: &str) -> Result<Report> {
        let mut judge = match &self.judge_url {
            Some(url) => Some(HttpJudge::open(url, &self.judge_model, &self.out.join("judge.jsonl"))?),
            None => None,
        };
        Ok(report::score(items, store, model, self.harness(), self.selection(), judge.as_mut().map(|j| j as &mut dyn Judge)))
    }

    /// Writes the result files, then prints the table.
    fn finish(&self, report: Report) -> Result<Report> {
        // The files first: a closed stdout must not lose them.
        let files = report.write(&self.out, &self.names().1)?;
        for f in files {
            eprintln!("wrote {}", f.display());
        }
        crate::emit(&report.table())?;
        Ok(report)
    }
}

/// The model under test: a pipeline, greedy, with a key naming the weights and settings.
struct PipelineModel<'a> {
    pipeline: Pipeline,
    key: String,
    load: &'a LoadArgs,
}

impl Model for PipelineModel<'_> {
    fn key(&self) -> String {
        self.key.clone()
    }

    fn answer(&mut self, images: &[PathBuf], prompt: &str, max_new_tokens: usize) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
        let inputs = images.iter().map(|p| self.load.image(p)).collect::<anyhow::Result<Vec<_>>>()?;
        let params = GenerationParams { max_new_tokens, ..Default::default() };
        if prompt.contains("<|image_") {
            // The question places its images itself (interleaved).
            return Ok(self.pipeline.chat(&[Message::new("user", prompt)], &inputs, &params, |_| {})?.text);
        }
        Ok(self.pipeline.ask(prompt, &inputs, &params, |_| {})?.text)
    }
}

/// A judge model behind an OpenAI-compatible `/chat/completions` (temperature 0, 256 tokens, as
/// the harnesses ask theirs), its replies kept in a JSONL file by model and prompt.
struct HttpJudge {
    url: String,
    model: String,
    key: Option<String>,
    agent: ureq::Agent,
    cache_path: PathBuf,
    cache: HashMap<String, String>,
}

impl HttpJudge {
    fn open(base: &str, model: &str, cache_path: &Path) -> Result<HttpJudge> {
        let mut cache = HashMap::new();
        if cache_path.is_file() {
            let text = std::fs::read_to_string(cache_path).with_context(|| cache_path.display().to_string())?;
            for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}: line {}", cache_path.display(), n + 1))?;
                if let (Some(m), Some(p), Some(a)) = (v["model"].as_str(), v["prompt"].as_str(), v["answer"].as_str()) {
                    if m == model {
                        cache.insert(p.to_string(), a.to_string());
                    }
                }
            }
        }
        Ok(HttpJudge {
            url: format!("{}/chat/completions", base.trim_end_matches('/')),
            model: model.to_string(),
            key: std::env::var("OPENAI_API_KEY").ok().filter(|k| !k.is_empty()),
            agent: ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(120)).build(),
            cache_path: cache_path.to_path_buf(),
            cache,
        })
    }

    /// One request: the reply's text, or why there is none.
    fn request(&self, prompt: &str) -> std::result::Result<String, String> {
        let body = serde_json::json!({"model": self.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0, "max_tokens": 256});
        let mut request = self.agent.post(&self.url).set("Content-Type", "application/json");
        if let Some(key) = &self.key {
            request = request.set("Authorization", &format!("Bearer {key}"));
        }
        let reply: serde_json::Value = match request.send_string(&body.to_string()) {
            Ok(r) => r.into_json().map_err(|e| format!("{}: the reply is not JSON: {e}", self.url))?,
            Err(ureq::Error::Status(code, r)) => return Err(format!("{}: HTTP {code}: {}", self.url, r.into_string().unwrap_or_default())),
            Err(e) => return Err(format!("{}: {e}", self.url)),
        };
        reply["choices"][0]["message"]["content"].as_str().map(|c| c.trim().to_string()).ok_or_else(|| format!("{}: no choices[0].message.content in {reply}", self.url))
    }
}

impl Judge for HttpJudge {
    /// Three tries (an empty reply is tried again, as the harnesses do); the reply is kept.
    fn ask(&mut self, prompt: &str) -> std::result::Result<String, String> {
        if let Some(answer) = self.cache.get(prompt) {
            return Ok(answer.clone());
        }
        let mut last = Err(String::new());
        for attempt in 0..3 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_secs(attempt));
            }
            last = self.request(prompt);
            if last.as_ref().is_ok_and(|a| !a.is_empty()) {
                break;
            }
        }
        let answer = last?;
        let line = serde_json::json!({"model": self.model, "prompt": prompt, "answer": answer}).to_string() + "\n";
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.cache_path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()))
            .map_err(|e| format!("{}: {e}", self.cache_path.display()))?;
        self.cache.insert(prompt.to_string(), answer.clone());
        Ok(answer)
    }
}

/// `{name}@{hash}|crops={n}|{weights}`: the hash covers config.json and the weight files' names
/// and sizes, so a renamed copy keeps its predictions and changed weights do not.
fn model_key(spec: &str, dir: &Path, crops: usize, formats: &str) -> Result<String> {
    let mut h = Sha256::new();
    h.update(std::fs::read(dir.join("config.json")).with_context(|| dir.join("config.json").display().to_string())?);
    let mut weights: Vec<(String, u64)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
        .map(|e| Ok((e.file_name().to_string_lossy().into_owned(), std::fs::metadata(e.path())?.len())))
        .collect::<std::io::Result<_>>()?;
    weights.sort();
    for (name, len) in weights {
        h.update(format!("{name}:{len};"));
    }
    let hash: String = h.finalize().iter().take(4).map(|b| format!("{b:02x}")).collect();
    let name = if Path::new(spec).is_dir() {
        dir.canonicalize().ok().and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| spec.into())
    } else {
        spec.to_string()
    };
    Ok(format!("{name}@{hash}|crops={crops}|{formats}"))
}

/// Progress on stderr: a bar with an ETA on a terminal, a line every 5 % otherwise (batch logs).
fn reporter() -> impl FnMut(Progress) {
    let tty = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    let start = Instant::now();
    move |p: Progress| {
        if tty {
            let b = bar.get_or_insert_with(|| {
                indicatif::ProgressBar::new(p.to_generate as u64).with_style(
                    indicatif::ProgressStyle::with_template("answering {bar:30} {pos}/{len} [{elapsed_precise} < {eta_precise}] {per_sec}")
                        .expect("valid template"),
                )
            });
            b.set_position(p.generated as u64);
            if p.generated == p.to_generate {
                b.finish_and_clear();
            }
        } else if p.generated > 0 && (p.generated.is_multiple_of((p.to_generate / 20).max(1)) || p.generated == p.to_generate) {
            let elapsed = start.elapsed().as_secs_f64();
            let eta = elapsed / p.generated as f64 * (p.to_generate - p.generated) as f64;
            eprintln!("answered {}/{} in {elapsed:.0} s, about {eta:.0} s left", p.generated, p.to_generate);
        }
    }
}

fn run_suite(args: RunArgs) -> Result<()> {
    let suite = &args.suite;
    let harness = suite.harness();
    let items = runner::plan(&suite.specs(args.max_tokens)?, suite.selection(), harness)?;
    let mut store = Store::open(&suite.out, &suite.names().0)?;
    let load = &args.load;
    let dir = load.dir()?;
    let pipeline = load.pipeline_from(&dir)?;
    let crops = load.num_crops.unwrap_or_else(|| pipeline.default_crops());
    let key = model_key(&load.model, &dir, crops, &load.formats_label())?;
    let mut model = PipelineModel { pipeline, key: key.clone(), load };
    let stats = runner::run(&items, &mut model, &mut store, reporter())?;
    eprintln!("{} answers generated, {} reused from {}", stats.generated, stats.reused, suite.out.display());
    let report = suite.finish(suite.score(&items, &store, &key)?)?;
    if stats.failed > 0 {
        let first = report.samples.iter().find_map(|s| s.error.as_ref().map(|e| format!("{} {}: {e}", s.task, s.id)));
        bail!(
            "{} sample(s) could not be answered (scored 0 above; run again to retry them), e.g. {}",
            stats.failed,
            first.unwrap_or_default()
        );
    }
    Ok(())
}

fn score_only(args: ScoreArgs) -> Result<()> {
    let suite = &args.suite;
    let items = runner::plan(&suite.specs(args.max_tokens)?, suite.selection(), suite.harness())?;
    if !suite.out.is_dir() {
        bail!("{}: no such folder (the --out of an earlier run)", suite.out.display());
    }
    let store = Store::open(&suite.out, &suite.names().0)?;
    let models = store.models();
    let model = match (&args.model_key, models.len()) {
        (Some(k), _) if models.contains(k.as_str()) => k.clone(),
        (Some(k), _) => bail!("no predictions by {k:?} in {}; there are: {:?}", suite.out.display(), models),
        (None, 1) => models.first().expect("one").to_string(),
        (None, 0) => bail!("{}: no predictions*.jsonl with answers", suite.out.display()),
        (None, _) => bail!("{} holds predictions of several models; pick one with --model-key: {:?}", suite.out.display(), models),
    };
    // Results are only (over)written when there is something to score.
    let report = suite.score(&items, &store, &model)?;
    if report.samples.is_empty() {
        bail!("{}: no predictions by {model:?} for the selected samples (run `phi3v eval run` first); nothing written", suite.out.display());
    }
    let report = suite.finish(report)?;
    let missing: usize = report.tasks.iter().map(|t| t.missing).sum();
    if missing > 0 {
        eprintln!("warning: {missing} selected sample(s) have no prediction and were not scored");
    }
    Ok(())
}

fn compare(args: ReportArgs) -> Result<()> {
    let runs = args.runs.iter().map(|dir| Run::read(dir, &dir.display().to_string())).collect::<Result<Vec<_>, _>>()?;
    let table = Comparison::new(runs);
    for f in table.write(&args.out)? {
        eprintln!("wrote {}", f.display());
    }
    crate::emit(&table.markdown())
}

fn generate(args: GenerateArgs) -> Result<()> {
    let spec = synth::Spec {
        seed: args.seed,
        charts: args.charts,
        quarterly: args.quarterly,
        questions_per_chart: args.questions_per_chart,
        ocr: args.ocr,
        scenes: args.scenes,
    };
    let written = synth::generate(&args.out, spec)?;
    crate::outln!(
        "{} chart questions, {} OCR items, {} POPE, {} MMBench, {} ScienceQA, {} BLINK, {} MMMU and {} MathVista questions in {}: run them with --task chartqa={} --task ocrbench={} --task pope={} --task mmbench={} --task scienceqa={} --task blink={} --task mmmu={} --task mathvista={}",
        written.chart_questions,
        written.ocr_items,
        written.pope_questions,
        written.mmbench_questions,
        written.scienceqa_questions,
        written.blink_questions,
        written.mmmu_questions,
        written.mathvista_questions,
        args.out.display(),
        args.out.join("chartqa/test_generated.json").display(),
        args.out.join("ocr.jsonl").display(),
        args.out.join("pope").display(),
        args.out.join("mmbench/synth_mmbench.tsv").display(),
        args.out.join("scienceqa").display(),
        args.out.join("blink/synth_blink.tsv").display(),
        args.out.join("mmmu/synth_mmmu.tsv").display(),
        args.out.join("mathvista/testmini.json").display()
    );
    Ok(())
}
