//! The resumable runner: which samples to ask, asking a [`Model`] for the ones not answered
//! yet, and the predictions file that makes runs resumable and re-scorable.
//!
//! Predictions are JSONL, one [`Prediction`] per line, written and flushed as each answer
//! arrives, keyed by task, sample id, prompt, model and answer length: a run that is stopped
//! and started again, or widened with `--limit`, only asks what it has not got. Every
//! `predictions*.jsonl` in the output folder is read, so shards written by separate processes
//! (`--shard i/n`, each to its own file) are merged by pointing a later run, or a scoring-only
//! pass, at the same folder.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::datasets::{DatasetError, Sample};
use crate::tasks::Task;
use crate::template::render;
use crate::Harness;

/// What can stop a run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Results { path: PathBuf, message: String },
    #[error("{path}: line {line}: {message}")]
    Predictions { path: PathBuf, line: usize, message: String },
    #[error("{count} image file(s) missing, e.g. {first} (task {task}, sample {id})")]
    MissingImages { count: usize, first: PathBuf, task: &'static str, id: String },
    #[error("{task}: duplicate sample id {id:?}")]
    DuplicateId { task: &'static str, id: String },
    #[error("bad shard {0:?}: expected i/n with i < n (e.g. 0/4), auto or auto/n")]
    BadShard(String),
    #[error("{0}")]
    ShardEnv(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Io { path: path.into(), source }
}

/// The model under evaluation.
pub trait Model {
    /// Identifies the weights and the settings that change answers (crops, dtype), so that
    /// predictions of different models never mix.
    fn key(&self) -> String;
    /// The raw response to `prompt`, greedy: the user text placed after the images, unless it
    /// places them itself with `<|image_1|>` … tags (MMMU's interleaved questions).
    fn answer(&mut self, images: &[PathBuf], prompt: &str, max_new_tokens: usize) -> Result<String, Box<dyn std::error::Error + Send + Sync>>;
}

/// One sample to ask: its task, the rendered prompt (and its template) and the answer length.
#[derive(Debug, Clone)]
pub struct Item {
    pub task: Task,
    pub sample: Sample,
    pub template: String,
    /// The user text; the images go before it unless it places them with `<|image_N|>` tags.
    pub prompt: String,
    /// The images sent, in order (the sample's, or those its question names: MMMU).
    pub images: Vec<PathBuf>,
    pub max_new_tokens: usize,
}

/// One task's samples and its prompt/length overrides.
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub task: Task,
    pub samples: Vec<Sample>,
    /// Prompt template (see [`crate::tasks`]); `None`: the harness's default.
    pub template: Option<String>,
    /// `None`: the harness's default for the task.
    pub max_new_tokens: Option<usize>,
}

/// Part `index` of `count` equal interleaved parts (sample `k` goes to part `k % count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self, EvalError> {
        Shard::parse(s, |name| std::env::var(name).ok())
    }
}

impl Shard {
    /// `i/n`, or `auto` / `auto/n`: the part the batch system that started this process gives
    /// it, read through `env`. A Slurm array job: `SLURM_ARRAY_TASK_ID` less
    /// `SLURM_ARRAY_TASK_MIN` (arrays may start at 1) of `SLURM_ARRAY_TASK_COUNT`. A Kubernetes
    /// Indexed Job: `JOB_COMPLETION_INDEX` of `n`, which must be given (`auto/n`: the pod does
    /// not see its job's completion count). A given `n` must agree with Slurm's count.
    pub fn parse(s: &str, env: impl Fn(&str) -> Option<String>) -> Result<Shard, EvalError> {
        let bad = || EvalError::BadShard(s.to_string());
        let (i, n) = match s.split_once('/') {
            Some((i, n)) => (i.trim(), Some(n.trim().parse::<usize>().map_err(|_| bad())?)),
            None => (s.trim(), None),
        };
        let number = |name: &str| -> Result<Option<usize>, EvalError> {
            env(name).map(|v| v.trim().parse().map_err(|_| EvalError::ShardEnv(format!("{name}={v:?} is not a number")))).transpose()
        };
        let shard = if i == "auto" {
            match (number("SLURM_ARRAY_TASK_ID")?, number("SLURM_ARRAY_TASK_COUNT")?, number("JOB_COMPLETION_INDEX")?) {
                (Some(id), Some(count), _) => {
                    let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
                    if n.is_some_and(|n| n != count) {
                        return Err(EvalError::ShardEnv(format!("--shard {s} but the Slurm array has {count} tasks")));
                    }
                    Shard { index: id.checked_sub(min).ok_or_else(bad)?, count }
                }
                (_, _, Some(index)) => {
                    let count = n.ok_or_else(|| EvalError::ShardEnv("a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) does not tell its completion count: give it, --shard auto/N".into()))?;
                    Shard { index, count }
                }
                _ => return Err(EvalError::ShardEnv("--shard auto: not started by a Slurm array job (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)".into())),
            }
        } else {
            Shard { index: i.parse().map_err(|_| bad())?, count: n.ok_or_else(bad)? }
        };
        if shard.index >= shard.count {
            return Err(EvalError::ShardEnv(format!("shard {} of {} does not exist (parts are 0..{})", shard.index, shard.count, shard.count)));
        }
        Ok(shard)
    }
}

/// Which samples of each task to take: `offset`, then at most `limit`, then this shard's part.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Selection {
    pub offset: usize,
    pub limit: Option<usize>,
    pub shard: Option<Shard>,
}

/// The items to ask, task by task, in file order.
pub fn plan(specs: &[TaskSpec], selection: Selection, harness: Harness) -> Result<Vec<Item>, EvalError> {
    let mut items = Vec::new();
    for spec in specs {
        let mut seen = std::collections::HashSet::new();
        for s in &spec.samples {
            if !seen.insert(&s.id) {
                return Err(EvalError::DuplicateId { task: spec.task.name(), id: s.id.clone() });
            }
        }
        let max_new_tokens = spec.max_new_tokens.unwrap_or_else(|| spec.task.max_new_tokens(harness));
        let window = spec.samples.iter().skip(selection.offset).take(selection.limit.unwrap_or(usize::MAX));
        for (k, sample) in window.enumerate() {
            if selection.shard.is_some_and(|sh| k % sh.count != sh.index) {
                continue;
            }
            let template = spec.template.clone().unwrap_or_else(|| spec.task.template_for(harness, sample));
            let (prompt, images) = spec.task.place_images(harness, sample, render(&template, sample));
            items.push(Item { task: spec.task, sample: sample.clone(), template, prompt, images, max_new_tokens });
        }
    }
    Ok(items)
}

/// One stored answer (a line of a predictions file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub task: String,
    pub id: String,
    pub prompt: String,
    pub model: String,
    pub max_new_tokens: usize,
    pub response: String,
    /// Why the model could not answer (an unreadable image, say); scored as a wrong answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time of this answer.
    pub seconds: f64,
}

type Key = (String, String, String, String, usize);

fn key(task: Task, id: &str, prompt: &str, model: &str, max_new_tokens: usize) -> Key {
    (task.name().into(), id.into(), prompt.into(), model.into(), max_new_tokens)
}

/// All predictions of an output folder, and the file this process appends to.
pub struct Store {
    by_key: HashMap<Key, Prediction>,
    /// (task, id, model) → the key of that sample's latest answer, whatever its prompt.
    by_sample: HashMap<(String, String, String), Key>,
    file: PathBuf,
}

impl Store {
    /// Reads every `predictions*.jsonl` in `dir` (created if missing); new predictions go to
    /// `dir/{file_name}`. A last line cut short by a killed run (even inside a multi-byte
    /// character) is ignored (and removed from `file_name`); any other bad line is an error
    /// naming it.
    pub fn open(dir: &Path, file_name: &str) -> Result<Self, EvalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("predictions") && n.ends_with(".jsonl")))
            .collect();
        files.sort();
        let mut store = Self { by_key: HashMap::new(), by_sample: HashMap::new(), file: dir.join(file_name) };
        let file = store.file.clone();
        for path in files {
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let complete = bytes.is_empty() || bytes.ends_with(b"\n");
            let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
            if path == file && !complete {
                // Ours, cut short by a killed run: drop the fragment before appending.
                let f = std::fs::OpenOptions::new().write(true).open(&path).map_err(io(&path))?;
                f.set_len(keep as u64).map_err(io(&path))?;
            }
            // Lines as `str::lines` numbers them (a final newline ends the last line).
            let lines: Vec<&[u8]> = if bytes.is_empty() { Vec::new() } else { bytes.strip_suffix(b"\n").unwrap_or(&bytes).split(|&b| b == b'\n').collect() };
            for (n, line) in lines.iter().enumerate() {
                let last_cut = n + 1 == lines.len() && !complete;
                let Ok(line) = std::str::from_utf8(line) else {
                    if last_cut {
                        continue;
                    }
                    return Err(EvalError::Predictions { path, line: n + 1, message: "not UTF-8 text".into() });
                };
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Prediction>(line) {
                    Ok(p) => {
                        let Some(task) = Task::from_name(&p.task) else {
                            let message = format!("unknown task {:?}", p.task);
                            return Err(EvalError::Predictions { path, line: n + 1, message });
                        };
                        store.insert(task, p);
                    }
                    Err(_) if last_cut => {}
                    Err(e) => return Err(EvalError::Predictions { path, line: n + 1, message: e.to_string() }),
                }
            }
        }
        Ok(store)
    }

    fn insert(&mut self, task: Task, p: Prediction) {
        let k = key(task, &p.id, &p.prompt, &p.model, p.max_new_tokens);
        self.by_sample.insert((k.0.clone(), k.1.clone(), k.3.clone()), k.clone());
        self.by_key.insert(k, p);
    }

    /// The stored answer to `item` by `model`, if any: asked with this prompt and length.
    pub fn get(&self, item: &Item, model: &str) -> Option<&Prediction> {
        self.by_key.get(&key(item.task, &item.sample.id, &item.prompt, model, item.max_new_tokens))
    }

    /// The answer to score for `item`: [`Self::get`], or else the latest answer `model` gave to
    /// the same sample with another prompt or length (another harness's), to re-score it.
    pub fn answer(&self, item: &Item, model: &str) -> Option<&Prediction> {
        self.get(item, model).or_else(|| {
            let k = self.by_sample.get(&(item.task.name().to_string(), item.sample.id.clone(), model.to_string()))?;
            self.by_key.get(k)
        })
    }

    /// The model keys that have predictions here.
    pub fn models(&self) -> std::collections::BTreeSet<&str> {
        self.by_key.values().map(|p| p.model.as_str()).collect()
    }

    /// Appends one prediction to this process's file (flushed at once).
    pub fn append(&mut self, p: Prediction) -> Result<(), EvalError> {
        let path = &self.file;
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(io(path))?;
        let mut line = serde_json::to_string(&p).expect("predictions serialise");
        line.push('\n');
        f.write_all(line.as_bytes()).and_then(|()| f.flush()).map_err(io(path))?;
        let task = Task::from_name(&p.task).expect("stored tasks are known");
        self.insert(task, p);
        Ok(())
    }
}

/// Where a run stands, for progress reporting.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Answers generated so far in this run.
    pub generated: usize,
    /// Answers this run has to generate (those not already stored).
    pub to_generate: usize,
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    pub generated: usize,
    pub reused: usize,
    pub failed: usize,
}

/// Asks `model` every item without a stored answer (or whose stored attempt failed: the cause
/// may have been fixed since), appending each answer as it comes. Fails before asking anything
/// when an image file is missing.
pub fn run(items: &[Item], model: &mut dyn Model, store: &mut Store, mut progress: impl FnMut(Progress)) -> Result<RunStats, EvalError> {
    let model_key = model.key();
    let todo: Vec<&Item> = items.iter().filter(|i| store.get(i, &model_key).is_none_or(|p| p.error.is_some())).collect();
    let missing: Vec<(&Item, &PathBuf)> =
        todo.iter().flat_map(|i| i.images.iter().filter(|p| !p.is_file()).map(move |p| (*i, p))).collect();
    if let Some((item, first)) = missing.first() {
        let (task, id) = (item.task.name(), item.sample.id.clone());
        return Err(EvalError::MissingImages { count: missing.len(), first: first.to_path_buf(), task, id });
    }
    let to_generate = todo.len();
    let mut stats = RunStats { reused: items.len() - to_generate, ..Default::default() };
    progress(Progress { generated: 0, to_generate });
    for item in todo {
        let start = Instant::now();
        let (response, error) = match model.answer(&item.images, &item.prompt, item.max_new_tokens) {
            Ok(r) => (r, None),
            Err(e) => (String::new(), Some(e.to_string())),
        };
        stats.failed += usize::from(error.is_some());
        store.append(Prediction {
            task: item.task.name().into(),
            id: item.sample.id.clone(),
            prompt: item.prompt.clone(),
            model: model_key.clone(),
            max_new_tokens: item.max_new_tokens,
            response,
            error,
            seconds: start.elapsed().as_secs_f64(),
        })?;
        stats.generated += 1;
        progress(Progress { generated: stats.generated, to_generate });
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers with the sample's first gold answer, or fails on a given prompt.
    struct Oracle {
        calls: usize,
        fail_on: Option<String>,
        items: Vec<Item>,
    }

    impl Model for Oracle {
        fn key(&self) -> String {
            "oracle".into()
        }
        fn answer(&mut self, _: &[PathBuf], prompt: &str, _: usize) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
            self.calls += 1;
            if self.fail_on.as_deref() == Some(prompt) {
                return Err("cannot read image".into());
            }
            Ok(self.items.iter().find(|i| i.prompt == prompt).map(|i| i.sample.answers[0].clone()).unwrap_or_default())
        }
    }

    fn specs(n: usize) -> Vec<TaskSpec> {
        let samples = (0..n)
            .map(|i| Sample {
                id: format!("s{i}"),
                images: Vec::new(),
                question: format!("Q{i}?"),
                answers: vec![i.to_string()],
                ..Default::default()
            })
            .collect();
        vec![TaskSpec { task: Task::ChartQa, samples, template: None, max_new_tokens: None }]
    }

    #[test]
    fn shards_come_from_the_batch_system() {
        let env = |vars: &'static [(&'static str, &'static str)]| move |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string());
        let none = env(&[]);
        assert_eq!(Shard::parse("2/4", none).unwrap(), Shard { index: 2, count: 4 });
        for bad in ["4/4", "x/4", "2", "2/", "auto"] {
            assert!(Shard::parse(bad, none).is_err(), "{bad}");
        }
        // Slurm: sbatch --array=0-7, and --array=1-8 (ids from the minimum).
        let slurm = env(&[("SLURM_ARRAY_TASK_ID", "5"), ("SLURM_ARRAY_TASK_COUNT", "8"), ("SLURM_ARRAY_TASK_MIN", "0")]);
        assert_eq!(Shard::parse("auto", slurm).unwrap(), Shard { index: 5, count: 8 });
        assert_eq!(Shard::parse("auto/8", slurm).unwrap(), Shard { index: 5, count: 8 });
        assert!(Shard::parse("auto/4", slurm).unwrap_err().to_string().contains("8 tasks"));
        let from_one = env(&[("SLURM_ARRAY_TASK_ID", "8"), ("SLURM_ARRAY_TASK_COUNT", "8"), ("SLURM_ARRAY_TASK_MIN", "1")]);
        assert_eq!(Shard::parse("auto", from_one).unwrap(), Shard { index: 7, count: 8 });
        // Kubernetes Indexed Job: the index from the pod, the count given.
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3")]);
        assert_eq!(Shard::parse("auto/4", k8s).unwrap(), Shard { index: 3, count: 4 });
        assert!(Shard::parse("auto", k8s).unwrap_err().to_string().contains("--shard auto/N"));
        assert!(Shard::parse("auto/3", k8s).unwrap_err().to_string().contains("does not exist"));
        assert!(Shard::parse("auto", none).unwrap_err().to_string().contains("not started by a Slurm array job"));
        assert!(Shard::parse("auto/2", env(&[("JOB_COMPLETION_INDEX", "one")])).unwrap_err().to_string().contains("JOB_COMPLETION_INDEX=\"one\""));
    }

    #[test]
    fn selection_offsets_limits_and_shards() {
        let ids = |sel| plan(&specs(10), sel, Harness::LmmsEval).unwrap().iter().map(|i| i.sample.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(Selection { offset: 2, limit: Some(3), shard: None }), ["s2", "s3", "s4"]);
        let shard = |s: &str| Some(s.parse::<Shard>().unwrap());
        assert_eq!(ids(Selection { offset: 0, limit: None, shard: shard("1/3") }), ["s1", "s4", "s7"]);
        let mut union: Vec<String> = (0..3).flat_map(|i| ids(Selection { shard: shard(&format!("{i}/3")), ..Default::default() })).collect();
        union.sort();
        let mut all = ids(Selection::default());
        all.sort();
        assert_eq!(union, all, "shards partition the set");
        for bad in ["3/3", "1", "a/2", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let mut dup = specs(2);
        dup[0].samples[1].id = "s0".into();
        assert!(plan(&dup, Selection::default(), Harness::LmmsEval).unwrap_err().to_string().contains("duplicate sample id \"s0\""));
    }

    #[test]
    fn resumes_without_asking_twice_and_survives_a_cut_line() {
        let dir = tempfile::tempdir().unwrap();
        let items = plan(&specs(6), Selection::default(), Harness::LmmsEval).unwrap();
        let mut model = Oracle { calls: 0, fail_on: Some(items[1].prompt.clone()), items: items.clone() };
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        let stats = run(&items[..3], &mut model, &mut store, |_| {}).unwrap();
        assert_eq!(stats, RunStats { generated: 3, reused: 0, failed: 1 });
        // A run killed mid-line: the fragment is ignored and the next line starts afresh.
        let path = dir.path().join("predictions.jsonl");
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"task\": \"chartqa\", \"id\": \"s3\", \"pro").unwrap();
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        let mut seen = Vec::new();
        let stats = run(&items, &mut model, &mut store, |p| seen.push((p.generated, p.to_generate))).unwrap();
        // The failed sample is asked again, with the three new ones.
        assert_eq!(stats, RunStats { generated: 4, reused: 2, failed: 1 });
        assert_eq!(seen, [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]);
        assert_eq!(model.calls, 7);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 7, "fragment dropped");
        let store = Store::open(dir.path(), "other.jsonl").unwrap();
        assert!(items.iter().all(|i| store.get(i, "oracle").is_some()));
        assert_eq!(store.get(&items[1], "oracle").unwrap().error.as_deref(), Some("cannot read image"));
        // Once the cause is fixed, the retry's answer replaces the failure.
        model.fail_on = None;
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        let stats = run(&items, &mut model, &mut store, |_| {}).unwrap();
        assert_eq!(stats, RunStats { generated: 1, reused: 5, failed: 0 });
        let store = Store::open(dir.path(), "other.jsonl").unwrap();
        assert_eq!(store.get(&items[1], "oracle").unwrap().error, None);
        // A line cut inside a multi-byte character (a killed run) is dropped like any fragment.
        let line = serde_json::to_string(&store.get(&items[0], "oracle").unwrap()).unwrap().replace("\"s0\"", "\"é\"");
        let cut = line.find('é').unwrap() + 1;
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(&line.as_bytes()[..cut]).unwrap();
        let lines = std::fs::read_to_string(&path).map(|t| t.lines().count()).unwrap_or(0);
        assert_eq!(lines, 0, "the file is not UTF-8 now");
        let store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().ends_with('\n'), "fragment dropped");
        assert!(store.get(&items[5], "oracle").is_some());
        assert!(store.get(&items[0], "another model").is_none());
        // A broken line that is not the last is an error naming it.
        std::fs::write(dir.path().join("predictions-x.jsonl"), "not json\n{}\n").unwrap();
        let err = Store::open(dir.path(), "p.jsonl").err().unwrap().to_string();
        assert!(err.contains("predictions-x.jsonl: line 1"), "{err}");
        // Blank lines count in the numbering.
        std::fs::write(dir.path().join("predictions-x.jsonl"), "\n\nnot json\n").unwrap();
        let err = Store::open(dir.path(), "p.jsonl").err().unwrap().to_string();
        assert!(err.contains("predictions-x.jsonl: line 3"), "{err}");
    }

    #[test]
    fn missing_images_stop_the_run_before_any_answer() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = specs(3);
        s[0].samples[2].images = vec![dir.path().join("png/gone.png")];
        let items = plan(&s, Selection::default(), Harness::LmmsEval).unwrap();
        let mut model = Oracle { calls: 0, fail_on: None, items: items.clone() };
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        let err = run(&items, &mut model, &mut store, |_| {}).unwrap_err().to_string();
        assert!(err.contains("gone.png") && err.contains("sample s2"), "{err}");
        assert_eq!(model.calls, 0);
    }
}
