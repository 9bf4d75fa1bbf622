//! Scoring stored predictions and writing the results: a terminal table, `{stem}.json`,
//! `{stem}.csv`, a per-sample log `{stem}-samples.jsonl` and a bar chart `{stem}.svg`.
//!
//! Scores are means over the scored samples, ×100 (OCRBench also as its count of correct
//! answers, the 1 000-point convention on the full set). Samples without a prediction are
//! counted as missing and left out of the means; failed answers score 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::metrics::{ocrbench, pope};
use crate::runner::{EvalError, Item, Selection, Store};
use crate::tasks::Task;
use crate::Harness;

/// One sample's line of the per-sample log.
#[derive(Debug, Clone, Serialize)]
pub struct SampleLog {
    pub task: &'static str,
    pub id: String,
    pub category: Option<String>,
    /// The prompt the answer was asked with.
    pub prompt: String,
    /// Not the prompt or length of the harness it is scored under.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub other_prompt: bool,
    pub response: String,
    pub extracted: String,
    /// The metric's normalised prediction, then gold answers (where it normalises).
    pub normalised: Vec<String>,
    pub answers: Vec<String>,
    pub score: f64,
    /// MMBench: the question this row is a rotated copy of (its own id for the original).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What the judge model extracted, where it was asked (MathVista).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
    /// Why the judge could not be asked (the sample keeps the rules' result).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub judge_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A score over some samples.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Group {
    pub name: String,
    pub n: usize,
    /// The task's metric ×100 (a mean over samples, or POPE's F1).
    pub score: f64,
    /// Further metrics of the task, ×100 (POPE: accuracy, precision, recall, F1, yes-ratio).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
}

/// One task's results.
#[derive(Debug, Clone, Serialize)]
pub struct TaskReport {
    pub task: &'static str,
    pub metric: &'static str,
    /// Samples scored (MMBench: questions, each over its rotated copies).
    pub n: usize,
    /// Samples selected but without a prediction (not scored).
    pub missing: usize,
    /// Samples the model failed on (scored 0).
    pub errors: usize,
    /// Answers asked with another prompt or length than this harness's (re-scored under its
    /// metric; the per-sample log has the prompt that was asked).
    pub other_prompts: usize,
    /// The metric ×100 (a mean over samples, or POPE's F1).
    pub score: f64,
    /// Further metrics, ×100 (POPE: accuracy, precision, recall, F1, yes-ratio).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metrics: BTreeMap<String, f64>,
    pub categories: Vec<Group>,
    /// The prompt template and answer length used (of the first sample; the same for all).
    pub template: String,
    pub max_new_tokens: usize,
    /// Answers the judge model read (MathVista), and those it could not be asked about.
    #[serde(skip_serializing_if = "is_zero")]
    pub judged: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub judge_errors: usize,
    /// OCRBench: correct answers (the final score, out of 1 000 on the full set).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocrbench_final_score: Option<usize>,
}

/// Everything a scoring pass produces.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub model: String,
    pub harness: &'static str,
    pub selection: Selection,
    pub phi3v_version: &'static str,
    pub tasks: Vec<TaskReport>,
    #[serde(skip)]
    pub samples: Vec<SampleLog>,
}

/// A model that reads the answer out of a response where the rules cannot (MathVista's
/// extraction step): any OpenAI-compatible endpoint, behind this trait so that the crate needs
/// no HTTP client.
pub trait Judge {
    /// The judge's reply to `prompt`.
    fn ask(&mut self, prompt: &str) -> Result<String, String>;
}

/// Scores `model`'s stored answers to `items` under `harness`, asking `judge` where the harness
/// would ask its judge model.
pub fn score(items: &[Item], store: &Store, model: &str, harness: Harness, selection: Selection, mut judge: Option<&mut dyn Judge>) -> Report {
    let mut samples = Vec::new();
    let mut missing: BTreeMap<Task, usize> = BTreeMap::new();
    let mut order: Vec<Task> = Vec::new();
    for item in items {
        if !order.contains(&item.task) {
            order.push(item.task);
        }
        let Some(p) = store.answer(item, model) else {
            *missing.entry(item.task).or_default() += 1;
            continue;
        };
        let mut scored = item.task.score(&item.sample, &p.response, harness);
        let (mut judged, mut judge_error) = (None, None);
        if let (Some(j), Some(prompt)) = (judge.as_deref_mut(), item.task.judge_prompt(&item.sample, &p.response, &scored, harness)) {
            match j.ask(&prompt) {
                Ok(answer) => {
                    scored = item.task.score_extraction(&item.sample, answer.trim());
                    judged = Some(answer);
                }
                Err(e) => judge_error = Some(e),
            }
        }
        samples.push(SampleLog {
            task: item.task.name(),
            id: item.sample.id.clone(),
            category: item.sample.category.clone(),
            prompt: p.prompt.clone(),
            other_prompt: p.prompt != item.prompt || p.max_new_tokens != item.max_new_tokens,
            response: p.response.clone(),
            extracted: scored.extracted,
            normalised: scored.normalised,
            answers: item.sample.answers.clone(),
            score: if p.error.is_some() { 0.0 } else { scored.score },
            group: item.sample.group.clone().filter(|_| item.task == Task::MmBench),
            judge: judged,
            judge_error,
            error: p.error.clone(),
        });
    }
    let tasks = order
        .into_iter()
        .map(|t| {
            let first = items.iter().find(|i| i.task == t).expect("tasks come from items");
            let mut report = task_report(t, &samples, missing.get(&t).copied().unwrap_or(0), harness);
            (report.template, report.max_new_tokens) = (first.template.clone(), first.max_new_tokens);
            report
        })
        .collect();
    let phi3v_version = env!("CARGO_PKG_VERSION");
    Report { model: model.to_string(), harness: harness.name(), selection, phi3v_version, tasks, samples }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn mean(scores: &[f64]) -> f64 {
    if scores.is_empty() {
        0.0
    } else {
        100.0 * scores.iter().sum::<f64>() / scores.len() as f64
    }
}

/// A group's size, score and further metrics: the mean over its samples; for POPE the F1 of
/// its confusion matrix; for MMBench the share of questions whose every copy is right, counted
/// over the questions whose original row is there (as VLMEvalKit does), with the plain
/// per-row accuracy beside it.
fn group_score(task: Task, samples: &[&SampleLog], harness: Harness) -> (usize, f64, BTreeMap<String, f64>) {
    let per_row = || mean(&samples.iter().map(|s| s.score).collect::<Vec<_>>());
    match task {
        Task::Pope => {
            let pairs = samples.iter().map(|s| (s.answers.first().map_or("", String::as_str), s.extracted.as_str()));
            let summary = pope::Summary::new(pairs, harness);
            (samples.len(), 100.0 * summary.f1, summary.named().into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        }
        Task::MmBench => {
            let mut questions: BTreeMap<&str, bool> = BTreeMap::new();
            for s in samples.iter().filter(|s| s.group.as_deref() == Some(s.id.as_str())) {
                questions.insert(&s.id, true);
            }
            for s in samples {
                if let Some(hit) = s.group.as_deref().and_then(|g| questions.get_mut(g)) {
                    *hit &= s.score > 0.0;
                }
            }
            let hits: Vec<f64> = questions.values().map(|&h| f64::from(u8::from(h))).collect();
            (hits.len(), mean(&hits), BTreeMap::from([("vanilla_accuracy".to_string(), per_row())]))
        }
        _ => (samples.len(), per_row(), BTreeMap::new()),
    }
}

fn task_report(task: Task, samples: &[SampleLog], missing: usize, harness: Harness) -> TaskReport {
    let mine: Vec<&SampleLog> = samples.iter().filter(|s| s.task == task.name()).collect();
    let mut by_category: BTreeMap<&str, Vec<&SampleLog>> = BTreeMap::new();
    for s in &mine {
        let names: Vec<&str> = match &s.category {
            Some(c) if task.several_categories() => c.split(',').map(str::trim).collect(),
            Some(c) => vec![c.as_str()],
            None => Vec::new(),
        };
        for name in names {
            by_category.entry(name).or_default().push(s);
        }
    }
    let categories = by_category
        .into_iter()
        .map(|(name, v)| {
            let (n, score, metrics) = group_score(task, &v, harness);
            Group { name: name.to_string(), n, score, metrics }
        })
        .collect();
    let ocrbench_final_score = (task == Task::OcrBench)
        .then(|| ocrbench::Summary::new(mine.iter().map(|s| (s.category.as_deref().unwrap_or(""), s.score > 0.0))).final_score);
    let (n, score, metrics) = group_score(task, &mine, harness);
    TaskReport {
        task: task.name(),
        metric: task.metric().name(),
        n,
        missing,
        errors: mine.iter().filter(|s| s.error.is_some()).count(),
        other_prompts: mine.iter().filter(|s| s.other_prompt).count(),
        judged: mine.iter().filter(|s| s.judge.is_some()).count(),
        judge_errors: mine.iter().filter(|s| s.judge_error.is_some()).count(),
        score,
        metrics,
        categories,
        template: String::new(),
        max_new_tokens: 0,
        ocrbench_final_score,
    }
}

impl Report {
    /// The results as a table for the terminal: one line per task, then its categories.
    pub fn table(&self) -> String {
        let mut out = format!("{:<10} {:<34} {:>6} {:>7}  metric\n", "task", "category", "n", "score");
        for t in &self.tasks {
            let mut notes = Vec::new();
            if let Some(f) = t.ocrbench_final_score {
                notes.push(format!("{f} correct"));
            }
            if t.missing > 0 {
                notes.push(format!("{} without a prediction", t.missing));
            }
            if t.errors > 0 {
                notes.push(format!("{} failed", t.errors));
            }
            if t.judged > 0 {
                notes.push(format!("{} read by the judge", t.judged));
            }
            if t.judge_errors > 0 {
                notes.push(format!("{} the judge could not be asked about", t.judge_errors));
            }
            if t.other_prompts > 0 {
                notes.push(format!("{} asked with another harness's prompt", t.other_prompts));
            }
            let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join(", ")) };
            let _ = writeln!(out, "{:<10} {:<34} {:>6} {:>7.2}  {}{notes}{}", t.task, "all", t.n, t.score, t.metric, others(&t.metrics));
            for c in &t.categories {
                let _ = writeln!(out, "{:<10} {:<34} {:>6} {:>7.2}{}", "", c.name, c.n, c.score, others(&c.metrics));
            }
        }
        out
    }

    /// Writes `{stem}.json`, `{stem}.csv`, `{stem}-samples.jsonl` and `{stem}.svg` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, EvalError> {
        let json = serde_json::to_string_pretty(self).expect("reports serialise") + "\n";
        let samples: String = self.samples.iter().map(|s| serde_json::to_string(s).expect("logs serialise") + "\n").collect();
        let files = [
            (format!("{stem}.json"), json),
            (format!("{stem}.csv"), self.csv()),
            (format!("{stem}-samples.jsonl"), samples),
            (format!("{stem}.svg"), self.svg()),
        ];
        let mut written = Vec::new();
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| EvalError::Io { path: path.clone(), source })?;
            written.push(path);
        }
        Ok(written)
    }

    /// `task,category,metric,n,score` with a `category` of `all` for the task's total; further
    /// metrics (POPE's) on rows of their own.
    fn csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let write = |w: &mut csv::Writer<Vec<u8>>, row: [&str; 5]| w.write_record(row).expect("writing to memory");
        write(&mut w, ["task", "category", "metric", "n", "score"]);
        for t in &self.tasks {
            let groups = std::iter::once(("all", t.n, t.score, &t.metrics)).chain(t.categories.iter().map(|c| (c.name.as_str(), c.n, c.score, &c.metrics)));
            for (name, n, score, metrics) in groups {
                write(&mut w, [t.task, name, t.metric, &n.to_string(), &format!("{score:.4}")]);
                for (metric, value) in metrics {
                    write(&mut w, [t.task, name, metric, &n.to_string(), &format!("{value:.4}")]);
                }
            }
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out")
    }

    /// Horizontal bars, 0–100, one per task and per category.
    fn svg(&self) -> String {
        let rows: Vec<(&str, f64, bool)> = self
            .tasks
            .iter()
            .flat_map(|t| std::iter::once((t.task, t.score, true)).chain(t.categories.iter().map(|c| (c.name.as_str(), c.score, false))))
            .collect();
        let (label_w, bar_w, row_h) = (260.0, 360.0, 22.0);
        let height = 40.0 + row_h * rows.len() as f64;
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"DejaVu Sans, sans-serif\" font-size=\"12\">\n\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
             <text x=\"8\" y=\"18\" font-weight=\"bold\">{} ({})</text>\n",
            escape(&self.model),
            self.harness,
            w = label_w + bar_w + 70.0
        );
        for (i, (label, score, total)) in rows.iter().enumerate() {
            let y = 30.0 + row_h * i as f64;
            let fill = if *total { "#1f77b4" } else { "#9ecae1" };
            let _ = writeln!(
                s,
                "<text x=\"{lx}\" y=\"{ty}\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{bw:.1}\" height=\"{h}\" fill=\"{fill}\"/><text x=\"{tx:.1}\" y=\"{ty}\">{score:.1}</text>",
                escape(label),
                lx = if *total { 8 } else { 24 },
                ty = y + 14.0,
                bw = bar_w * score.clamp(0.0, 100.0) / 100.0,
                h = row_h - 6.0,
                tx = label_w + bar_w * score.clamp(0.0, 100.0) / 100.0 + 6.0,
            );
        }
        s + "</svg>\n"
    }
}

/// `  accuracy 85.00, f1 …` for a table line; empty without further metrics.
fn others(metrics: &BTreeMap<String, f64>) -> String {
    if metrics.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = metrics.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
    format!("  ({})", parts.join(", "))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datasets::Sample;
    use crate::runner::{plan, Prediction, Selection, TaskSpec};

    fn sample(id: &str, answer: &str, category: &str) -> Sample {
        Sample {
            id: id.into(),
            images: Vec::new(),
            question: format!("{id}?"),
            answers: vec![answer.into()],
            category: Some(category.into()),
            ..Default::default()
        }
    }

    /// `samples` of `task` planned under `harness`, and model "m"'s `responses` to them in order,
    /// stored in a temporary folder (kept alive by the returned guard).
    fn answered(task: Task, samples: Vec<Sample>, responses: &[&str], harness: Harness) -> (Vec<Item>, Store, tempfile::TempDir) {
        let items = plan(&[TaskSpec { task, samples, template: None, max_new_tokens: None }], Selection::default(), harness).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        for (item, response) in items.iter().zip(responses) {
            let p = Prediction {
                task: task.name().into(),
                id: item.sample.id.clone(),
                prompt: item.prompt.clone(),
                model: "m".into(),
                max_new_tokens: item.max_new_tokens,
                response: response.to_string(),
                error: None,
                seconds: 0.1,
            };
            store.append(p).unwrap();
        }
        (items, store, dir)
    }

    #[test]
    fn pope_reports_f1_per_split_with_the_other_metrics() {
        let s = sample;
        let samples = vec![s("1", "Yes", "adversarial,popular"), s("2", "No", "adversarial"), s("3", "Yes", "random"), s("4", "No", "random")];
        let (items, store, _dir) = answered(Task::Pope, samples, &["Yes, there is.", "Yes", "I cannot tell", "No"], Harness::VlmEvalKit);
        let r = score(&items, &store, "m", Harness::VlmEvalKit, Selection::default(), None);
        let t = &r.tasks[0];
        // Overall: TP 1 (1), FP 1 (2), FN 1 (3, Unknown), TN 1 (4): precision = recall = F1 = 1/2.
        assert_eq!((t.metric, t.score, t.metrics["accuracy"], t.metrics["yes_ratio"]), ("F1", 50.0, 50.0, 50.0));
        let names: Vec<(&str, usize, String)> = t.categories.iter().map(|c| (c.name.as_str(), c.n, format!("{:.6}", c.score))).collect();
        // adversarial: 1 (TP) and 2 (FP): F1 = 2/3; popular: 1 alone: F1 = 1; random: FN and TN: 0.
        assert_eq!(names, [("adversarial", 2, "66.666667".into()), ("popular", 1, "100.000000".into()), ("random", 2, "0.000000".into())]);
        assert!(r.table().contains("accuracy 50.00, f1 50.00, precision 50.00, recall 50.00, yes_ratio 50.00"), "{}", r.table());
        assert!(r.csv().contains("pope,random,recall,2,0.0000\n"), "{}", r.csv());
    }

    #[test]
    fn mmbench_counts_a_question_only_when_every_copy_is_right() {
        let mc = |id: &str, group: &str, answer: &str| Sample {
            group: Some(group.into()),
            options: vec!["x".into(), "y".into()],
            ..sample(id, answer, "perception,count")
        };
        // Question 1 right twice; question 2 right then wrong; a copy of 3 without its original.
        let samples = vec![mc("1", "1", "A"), mc("1000001", "1", "B"), mc("2", "2", "B"), mc("1000002", "2", "A"), mc("1000003", "3", "A")];
        let (items, store, _dir) = answered(Task::MmBench, samples, &["A", "B", "B", "B", "A"], Harness::VlmEvalKit);
        let r = score(&items, &store, "m", Harness::VlmEvalKit, Selection::default(), None);
        let t = &r.tasks[0];
        assert_eq!((t.metric, t.n, t.score, t.metrics["vanilla_accuracy"]), ("circular accuracy", 2, 50.0, 80.0));
        let groups: Vec<(&str, usize, f64)> = t.categories.iter().map(|c| (c.name.as_str(), c.n, c.score)).collect();
        assert_eq!(groups, [("count", 2, 50.0), ("perception", 2, 50.0)]);
        assert_eq!(r.samples[1].group.as_deref(), Some("1"));
    }

    #[test]
    fn a_judge_reads_what_the_rules_cannot() {
        struct Fake(Vec<String>);
        impl Judge for Fake {
            fn ask(&mut self, prompt: &str) -> Result<String, String> {
                self.0.push(prompt.to_string());
                if prompt.contains("fails") { Err("offline".into()) } else { Ok(" 14 ".into()) }
            }
        }
        let q = |id: &str| Sample {
            id: id.into(),
            question: "How many?".into(),
            answers: vec!["14".into()],
            extra: [("answer_type".to_string(), "integer".to_string()), ("query".to_string(), "Question: How many?".to_string())].into(),
            ..Default::default()
        };
        let (items, store, _dir) = answered(Task::MathVista, vec![q("1"), q("2"), q("3")], &["14", "There are fourteen.", "this one fails"], Harness::LmmsEval);
        let mut judge = Fake(Vec::new());
        let r = score(&items, &store, "m", Harness::LmmsEval, Selection::default(), Some(&mut judge));
        assert_eq!(judge.0.len(), 2, "the rules read \"14\" themselves");
        assert!(judge.0[0].ends_with("Question: How many?\n\nThere are fourteen.\n\nExtracted answer: "));
        let view: Vec<(f64, Option<&str>, Option<&str>)> = r.samples.iter().map(|s| (s.score, s.judge.as_deref(), s.judge_error.as_deref())).collect();
        assert_eq!(view, [(1.0, None, None), (1.0, Some(" 14 "), None), (0.0, None, Some("offline"))]);
        assert_eq!((r.tasks[0].judged, r.tasks[0].judge_errors), (1, 1));
        assert!(r.table().contains("1 read by the judge, 1 the judge could not be asked about"), "{}", r.table());
    }

    #[test]
    fn scores_per_task_and_category_and_writes_every_file() {
        let dir = tempfile::tempdir().unwrap();
        let chart = vec![sample("a", "12", "human"), sample("b", "Yes", "human"), sample("c", "3", "augmented"), sample("d", "4", "augmented")];
        let ocr = vec![sample("w", "STOP", ocrbench::TEXT_RECOGNITION[0]), sample("x", "x^{2}", ocrbench::HME)];
        let specs = [
            TaskSpec { task: Task::ChartQa, samples: chart, template: None, max_new_tokens: None },
            TaskSpec { task: Task::OcrBench, samples: ocr, template: None, max_new_tokens: None },
        ];
        let items = plan(&specs, Selection::default(), Harness::LmmsEval).unwrap();
        let mut store = Store::open(dir.path(), "predictions.jsonl").unwrap();
        let answers = [("a", "12.4", None), ("b", "no", None), ("c", "", Some("bad image")), ("w", "it says stop", None), ("x", "X^{2}", None)];
        for (id, response, error) in answers {
            let item = items.iter().find(|i| i.sample.id == id).unwrap();
            let p = Prediction {
                task: item.task.name().into(),
                id: id.into(),
                prompt: item.prompt.clone(),
                model: "m".into(),
                max_new_tokens: item.max_new_tokens,
                response: response.into(),
                error: error.map(String::from),
                seconds: 0.1,
            };
            store.append(p).unwrap();
        }
        let r = score(&items, &store, "m", Harness::LmmsEval, Selection::default(), None);
        let chartqa = &r.tasks[0];
        assert_eq!((chartqa.n, chartqa.missing, chartqa.errors, chartqa.score), (3, 1, 1, 100.0 / 3.0));
        assert_eq!(chartqa.categories, [Group { name: "augmented".into(), n: 1, score: 0.0, metrics: BTreeMap::new() }, Group { name: "human".into(), n: 2, score: 50.0, metrics: BTreeMap::new() }]);
        assert_eq!((r.tasks[1].score, r.tasks[1].ocrbench_final_score), (50.0, Some(1)), "HME is case-sensitive");
        let table = r.table();
        assert!(table.contains("1 without a prediction, 1 failed") && table.contains("1 correct"), "{table}");

        let files = r.write(dir.path(), "results").unwrap();
        assert_eq!(files.len(), 4);
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&files[0]).unwrap()).unwrap();
        assert_eq!((json["harness"].as_str(), json["tasks"][1]["task"].as_str()), (Some("lmms-eval"), Some("ocrbench")));
        assert_eq!((json["tasks"][0]["max_new_tokens"].as_u64(), json["tasks"][1]["template"].as_str()), (Some(16), Some("{question_stripped}")));
        let csv = std::fs::read_to_string(&files[1]).unwrap();
        assert!(csv.starts_with("task,category,metric,n,score\nchartqa,all,relaxed accuracy,3,33.3333\n"), "{csv}");
        let log: Vec<serde_json::Value> =
            std::fs::read_to_string(&files[2]).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(log.len(), 5);
        assert_eq!((log[0]["extracted"].as_str(), log[0]["score"].as_f64()), (Some("12.4"), Some(1.0)));
        assert_eq!(log[2]["error"].as_str(), Some("bad image"));
        let svg = std::fs::read_to_string(&files[3]).unwrap();
        assert_eq!(svg.matches("<rect").count(), 1 + 2 + 2 + 2, "background + a bar per task and category");
    }
}
