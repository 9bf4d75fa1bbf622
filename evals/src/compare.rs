//! Several runs side by side with the published numbers (`phi3v eval report runs/A runs/B`):
//! one row per task that any run scored, one column per model card, one per run; printed as
//! Markdown and written as `report.md` and `report.csv`.
//!
//! A run is the `--out` folder of `phi3v eval run` / `eval score`: its `results.json` is read
//! (sharded runs are merged into it by one `eval score`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::runner::EvalError;

/// A benchmark's numbers in the model cards (the Hugging Face READMEs of
/// `microsoft/Phi-3-vision-128k-instruct`, "Benchmarks", the same as the Phi-3 technical report's
/// §6.2 table, and `microsoft/Phi-3.5-vision-instruct`): Microsoft's internal harness, 0–100.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Published {
    /// Our task name.
    pub task: &'static str,
    /// What the cards call it, with the split they report.
    pub benchmark: &'static str,
    pub phi3_vision: Option<f64>,
    pub phi35_vision: Option<f64>,
}

/// Every benchmark either card reports that the suite has, or will have, a task for. DocVQA,
/// InfoVQA, OCRBench and VQAv2 are in neither card (third-party numbers are not listed); the
/// Phi-3.5 card's BLINK table is left out until its numbers are checked against the card.
pub const PUBLISHED: [Published; 13] = [
    Published { task: "mmmu", benchmark: "MMMU (val)", phi3_vision: Some(40.4), phi35_vision: Some(43.0) },
    Published { task: "mmbench", benchmark: "MMBench (dev-en)", phi3_vision: Some(80.5), phi35_vision: Some(81.9) },
    Published { task: "scienceqa", benchmark: "ScienceQA (img-test)", phi3_vision: Some(90.8), phi35_vision: Some(91.3) },
    Published { task: "mathvista", benchmark: "MathVista (testmini)", phi3_vision: Some(44.5), phi35_vision: Some(43.9) },
    Published { task: "ai2d", benchmark: "AI2D (test)", phi3_vision: Some(76.7), phi35_vision: Some(78.1) },
    Published { task: "chartqa", benchmark: "ChartQA (test)", phi3_vision: Some(81.4), phi35_vision: Some(81.8) },
    Published { task: "textvqa", benchmark: "TextVQA (val)", phi3_vision: Some(70.9), phi35_vision: Some(72.0) },
    Published { task: "pope", benchmark: "POPE (test)", phi3_vision: Some(85.8), phi35_vision: Some(86.1) },
    Published { task: "docvqa", benchmark: "DocVQA", phi3_vision: None, phi35_vision: None },
    Published { task: "infovqa", benchmark: "InfoVQA", phi3_vision: None, phi35_vision: None },
    Published { task: "ocrbench", benchmark: "OCRBench", phi3_vision: None, phi35_vision: None },
    Published { task: "vqav2", benchmark: "VQAv2 (val)", phi3_vision: None, phi35_vision: None },
    Published { task: "blink", benchmark: "BLINK (val)", phi3_vision: None, phi35_vision: None },
];

/// What the comparison needs of a run's `results.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct Run {
    /// The folder as given on the command line (the column's name).
    #[serde(skip)]
    pub label: String,
    pub model: String,
    pub harness: String,
    pub selection: RunSelection,
    pub tasks: Vec<RunTask>,
}

/// Whether the run scored a part of each set (then its cells give the sample count).
#[derive(Debug, Clone, Deserialize)]
pub struct RunSelection {
    pub offset: usize,
    pub limit: Option<usize>,
    pub shard: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RunTask {
    pub task: String,
    pub metric: String,
    pub n: usize,
    pub missing: usize,
    /// 0–100.
    pub score: f64,
}

impl Run {
    /// Reads `{dir}/results.json`; `label` names the column.
    pub fn read(dir: &Path, label: &str) -> Result<Run, EvalError> {
        let path = dir.join("results.json");
        let bad = |message: String| EvalError::Results { path: path.clone(), message };
        if !path.is_file() {
            let shards = shard_results(dir);
            return Err(bad(match shards.first() {
                Some(first) => format!(
                    "not there, but {} shard result(s) are (e.g. {}): merge them with `phi3v eval score --task … --out {}`",
                    shards.len(),
                    first.display(),
                    dir.display()
                ),
                None => "no such file (give the --out folder of a `phi3v eval run` or `eval score`)".into(),
            }));
        }
        let text = std::fs::read_to_string(&path).map_err(|source| EvalError::Io { path: path.clone(), source })?;
        let mut run: Run = serde_json::from_str(&text).map_err(|e| bad(format!("not a phi3v results file: {e}")))?;
        run.label = label.to_string();
        Ok(run)
    }

    fn task(&self, name: &str) -> Option<&RunTask> {
        self.tasks.iter().find(|t| t.task == name)
    }

    /// Scored only part of each set: an offset, limit or shard, or samples without answers.
    fn partial(&self, t: &RunTask) -> bool {
        self.selection.offset > 0 || self.selection.limit.is_some() || self.selection.shard.is_some() || t.missing > 0
    }
}

fn shard_results(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("results.shard-") && n.to_string_lossy().ends_with(".json")))
        .collect();
    found.sort();
    found
}

/// The table: tasks in the cards' order, then any others by name.
pub struct Comparison {
    pub runs: Vec<Run>,
    rows: Vec<Row>,
}

struct Row {
    task: String,
    benchmark: String,
    metric: String,
    published: [Option<f64>; 2],
}

const CARDS: [&str; 2] = ["Phi-3-vision-128k-instruct (card)", "Phi-3.5-vision-instruct (card)"];

impl Comparison {
    pub fn new(runs: Vec<Run>) -> Comparison {
        let mut names: Vec<&str> = Vec::new();
        for t in runs.iter().flat_map(|r| &r.tasks) {
            if !names.contains(&t.task.as_str()) {
                names.push(&t.task);
            }
        }
        let rank = |name: &str| PUBLISHED.iter().position(|p| p.task == name).unwrap_or(PUBLISHED.len());
        names.sort_by(|a, b| rank(a).cmp(&rank(b)).then(a.cmp(b)));
        let rows = names
            .into_iter()
            .map(|name| {
                let card = PUBLISHED.iter().find(|p| p.task == name);
                let metric = runs.iter().find_map(|r| r.task(name)).map(|t| t.metric.clone()).unwrap_or_default();
                Row {
                    task: name.to_string(),
                    benchmark: card.map_or_else(|| name.to_string(), |c| c.benchmark.to_string()),
                    metric,
                    published: [card.and_then(|c| c.phi3_vision), card.and_then(|c| c.phi35_vision)],
                }
            })
            .collect();
        Comparison { runs, rows }
    }

    /// A Markdown table, then one line per run naming its model and harness.
    pub fn markdown(&self) -> String {
        let cell = |v: Option<f64>| v.map_or_else(|| "—".to_string(), |v| format!("{v:.1}"));
        let mut out = format!("| benchmark | metric | {} | {} |", CARDS[0], CARDS[1]);
        for r in &self.runs {
            let _ = write!(out, " {} |", r.label.replace('|', "\\|"));
        }
        out.push_str("\n|---|---|---:|---:|");
        out.push_str(&"---:|".repeat(self.runs.len()));
        out.push('\n');
        for row in &self.rows {
            let _ = write!(out, "| {} | {} | {} | {} |", row.benchmark, row.metric, cell(row.published[0]), cell(row.published[1]));
            for run in &self.runs {
                let text = match run.task(&row.task) {
                    Some(t) if run.partial(t) => format!("{:.1} (n={})", t.score, t.n),
                    Some(t) => format!("{:.1}", t.score),
                    None => "—".into(),
                };
                let _ = write!(out, " {text} |");
            }
            out.push('\n');
        }
        out.push('\n');
        for r in &self.runs {
            let _ = writeln!(out, "- `{}`: {}, scored under {}", r.label, r.model, r.harness);
        }
        out.push_str("- (n=…): the run scored only part of the set; —: not reported or not run\n");
        out
    }

    /// `task,benchmark,metric`, the two cards, then `{run}` and `{run} n` per run; empty where
    /// there is no number.
    pub fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = ["task", "benchmark", "metric", CARDS[0], CARDS[1]].map(String::from).to_vec();
        for r in &self.runs {
            header.extend([r.label.clone(), format!("{} n", r.label)]);
        }
        w.write_record(&header).expect("writing to memory");
        let number = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v:.4}"));
        for row in &self.rows {
            let mut record = vec![row.task.clone(), row.benchmark.clone(), row.metric.clone(), number(row.published[0]), number(row.published[1])];
            for run in &self.runs {
                let t = run.task(&row.task);
                record.extend([number(t.map(|t| t.score)), t.map_or_else(String::new, |t| t.n.to_string())]);
            }
            w.write_record(&record).expect("writing to memory");
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
    }

    /// Writes `report.md` and `report.csv` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Io { path: dir.into(), source })?;
        let mut written = Vec::new();
        for (name, text) in [("report.md", self.markdown()), ("report.csv", self.csv())] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| EvalError::Io { path: path.clone(), source })?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(dir: &Path, model: &str, limit: Option<usize>, tasks: &[(&str, usize, f64)]) {
        let tasks: Vec<serde_json::Value> = tasks
            .iter()
            .map(|(t, n, s)| serde_json::json!({"task": t, "metric": "accuracy", "n": n, "missing": 0, "errors": 0, "score": s, "categories": []}))
            .collect();
        let json = serde_json::json!({"model": model, "harness": "lmms-eval", "selection": {"offset": 0, "limit": limit, "shard": null}, "phi3v_version": "0", "tasks": tasks});
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("results.json"), json.to_string()).unwrap();
    }

    #[test]
    fn runs_side_by_side_with_the_cards() {
        let d = tempfile::tempdir().unwrap();
        results(&d.path().join("a"), "m@1", None, &[("textvqa", 5000, 71.234), ("chartqa", 2500, 80.0), ("mine", 3, 33.3)]);
        results(&d.path().join("b"), "m@2", Some(10), &[("chartqa", 10, 90.0)]);
        let runs = ["a", "b"].map(|l| Run::read(&d.path().join(l), l).unwrap()).to_vec();
        let c = Comparison::new(runs);
        let md = c.markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[2], "| ChartQA (test) | accuracy | 81.4 | 81.8 | 80.0 | 90.0 (n=10) |", "{md}");
        assert_eq!(lines[3], "| TextVQA (val) | accuracy | 70.9 | 72.0 | 71.2 | — |", "{md}");
        assert_eq!(lines[4], "| mine | accuracy | — | — | 33.3 | — |", "{md}");
        assert!(md.contains("- `b`: m@2, scored under lmms-eval"), "{md}");
        let csv = c.csv();
        let rows: Vec<&str> = csv.lines().collect();
        assert_eq!(rows[0], "task,benchmark,metric,Phi-3-vision-128k-instruct (card),Phi-3.5-vision-instruct (card),a,a n,b,b n");
        assert_eq!(rows[2], "textvqa,TextVQA (val),accuracy,70.9000,72.0000,71.2340,5000,,");
        let files = c.write(&d.path().join("out")).unwrap();
        assert_eq!(std::fs::read_to_string(&files[0]).unwrap(), md);
    }

    #[test]
    fn a_folder_without_merged_results_is_named() {
        let d = tempfile::tempdir().unwrap();
        let err = Run::read(d.path(), "x").unwrap_err().to_string();
        assert!(err.contains("results.json: no such file"), "{err}");
        std::fs::write(d.path().join("results.shard-0-of-2.json"), "{}").unwrap();
        let err = Run::read(d.path(), "x").unwrap_err().to_string();
        assert!(err.contains("1 shard result(s)") && err.contains("phi3v eval score"), "{err}");
        std::fs::write(d.path().join("results.json"), "[1]").unwrap();
        assert!(Run::read(d.path(), "x").unwrap_err().to_string().contains("not a phi3v results file"));
    }
}
