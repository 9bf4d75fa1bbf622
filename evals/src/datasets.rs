//! Readers for the benchmark files as users download them, all into [`Sample`]s.
//!
//! | reader | file | images |
//! |---|---|---|
//! | [`chartqa`] | `test_human.json` / `test_augmented.json`: `[{imgname, query, label}]` | `png/{imgname}` |
//! | [`docvqa`] | DocVQA / InfoVQA: `{data: [{questionId, question, image or image_local_name, answers}]}` | `spdocvqa_images/` or `infographicsvqa_images/` beside the annotations, or `{image}` under their folder |
//! | [`textvqa`] | `TextVQA_0.5.1_val.json`: `{data: [{question_id, question, image_id, answers}]}` | `{image_id}.jpg` |
//! | [`vqav2`] | `v2_OpenEnded_mscoco_val2014_questions.json` + `v2_mscoco_val2014_annotations.json` beside it | `val2014/COCO_val2014_{image_id:012}.jpg` |
//! | [`ocrbench`] | `OCRBench.json`: `[{id, dataset_name, image_path, question, answers (string or list), type}]` | `OCRBench_Images/{image_path}` beside `OCRBench/` |
//! | [`scienceqa`] | `problems.json`: `{pid: {question, choices, answer, hint, image, grade, subject, split, …}}`, test questions with an image | `images/test/{pid}/image.png` |
//! | [`mathvista`] | `annot_testmini.json`: `{pid: {question, image, choices, unit, precision, answer, answer_type, query, metadata}}` | `images/{pid}.jpg` beside it |
//! | [`ai2d`] | AI2D as released: `questions/*.json` (+ `ai2d_test_ids.csv`, `categories.json`) | `images/{imageName}` |
//! | [`pope`] | `coco_pope_{adversarial,popular,random}.json`: `{question_id, image, text, label}` per line | COCO `val2014/` beside the files |
//! | [`vlmevalkit_tsv`] | VLMEvalKit's TSVs (`AI2D_TEST.tsv`, `POPE.tsv`, …): `index, question, [A, B, …,] answer, [category,] image (base64)` | written out once to a folder |
//! | [`jsonl`] | ours, one object per line: `{id, images, question, answers, category?, options?}` | paths relative to the file |

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One question of any benchmark.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Unique within its task.
    pub id: String,
    pub images: Vec<PathBuf>,
    pub question: String,
    /// Gold answers (one for ChartQA, ten for TextVQA, several for DocVQA/OCRBench).
    pub answers: Vec<String>,
    /// Reporting category (ChartQA split, OCRBench type, JSONL `category`).
    pub category: Option<String>,
    /// Option texts for multiple-choice questions (A, B, …); empty otherwise.
    pub options: Vec<String>,
    /// Context given before the question (MMBench's `hint`).
    pub hint: Option<String>,
    /// The question this one is a copy of with its options rotated (MMBench's circular
    /// evaluation: a question counts only when every copy is answered right).
    pub group: Option<String>,
    /// The split a file mixing several names (VLMEvalKit's `split` column: MMMU's `dev`,
    /// `validation`).
    pub split: Option<String>,
    /// Fields a task's prompt or metric needs beyond these (MathVista: `query`, `unit`,
    /// `answer_type`, `precision`).
    pub extra: std::collections::BTreeMap<String, String>,
}

/// A dataset file that cannot be read; names the file and, where known, the record.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
}

/// The `{"data": [...]}` wrapper of the DocVQA and TextVQA files.
#[derive(Deserialize)]
struct DataFile<T> {
    data: Vec<T>,
}

fn read<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, DatasetError> {
    let text = read_text(path)?;
    serde_json::from_str(&text).map_err(|e| DatasetError::Format { path: path.into(), message: e.to_string() })
}

/// A regular file's text. A FIFO or device (which would block or never end) is refused before
/// it is read.
fn read_text(path: &Path) -> Result<String, DatasetError> {
    regular(path)?;
    std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.into(), source })
}

fn regular(path: &Path) -> Result<(), DatasetError> {
    let meta = std::fs::metadata(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    if !meta.is_file() {
        return Err(DatasetError::Format { path: path.into(), message: "not a regular file".into() });
    }
    Ok(())
}

fn sample(id: impl ToString, images: Vec<PathBuf>, question: String, answers: Vec<String>, category: Option<String>) -> Sample {
    Sample { id: id.to_string(), images, question, answers, category, ..Default::default() }
}

/// ChartQA test file; `category` is the split name to report it under (e.g. "human") unless
/// the records carry a `type` (as the HF export and our generated set do).
pub fn chartqa(json: &Path, png_dir: &Path, category: &str) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Row {
        imgname: String,
        query: String,
        label: String,
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    let rows: Vec<Row> = read(json)?;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let category = r.kind.unwrap_or_else(|| category.to_string());
            sample(format!("{category}-{i}"), vec![png_dir.join(&r.imgname)], r.query, vec![r.label], Some(category))
        })
        .collect())
}

/// DocVQA or InfographicVQA annotations (RRC JSON, `{data: [...]}`). A record names its image
/// by `image` (DocVQA: `documents/xxxx.png`) or `image_local_name` (InfographicVQA:
/// `20471.jpeg`); the `_withQT` files' extra fields are ignored. Images are looked up under
/// `image_root` by that path, or by its file name alone (the current DocVQA download keeps
/// `spdocvqa_images/xxxx.png` with no `documents/` level).
pub fn docvqa(json: &Path, image_root: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        question_id: serde_json::Value,
        question: String,
        image: Option<String>,
        #[serde(rename = "image_local_name")]
        image_local_name: Option<String>,
        #[serde(default)]
        answers: Vec<String>,
    }
    let file: DataFile<Row> = read(json)?;
    file.data
        .into_iter()
        .map(|r| {
            let id = id_text(&r.question_id);
            let Some(name) = r.image.or(r.image_local_name) else {
                return Err(DatasetError::Format { path: json.into(), message: format!("question {id}: no `image` or `image_local_name`") });
            };
            let nested = image_root.join(&name);
            let flat = Path::new(&name).file_name().map(|f| image_root.join(f));
            let image = match flat {
                Some(flat) if !nested.exists() && flat.exists() => flat,
                _ => nested,
            };
            Ok(sample(id, vec![image], r.question, r.answers, None))
        })
        .collect()
}

/// Where DocVQA's or InfographicVQA's images are when not given: the current downloads' `folder`
/// (`spdocvqa_images/`, `infographicsvqa_images/`) beside the folder of the annotation file
/// (`spdocvqa_qas/`, `infographicsvqa_qas/`), unless that folder has a `documents/` of its own
/// (the older `val/` layout), else that folder itself.
pub fn docvqa_images(json_dir: &Path, folder: &str) -> PathBuf {
    let beside = json_dir.parent().unwrap_or(Path::new(".")).join(folder);
    if beside.is_dir() && !json_dir.join("documents").is_dir() {
        beside
    } else {
        json_dir.to_path_buf()
    }
}

/// TextVQA 0.5.1; images are `{image_dir}/{image_id}.jpg`.
pub fn textvqa(json: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Row {
        question_id: serde_json::Value,
        question: String,
        image_id: String,
        #[serde(default)]
        answers: Vec<String>,
    }
    let file: DataFile<Row> = read(json)?;
    Ok(file
        .data
        .into_iter()
        .map(|r| sample(id_text(&r.question_id), vec![image_dir.join(format!("{}.jpg", r.image_id))], r.question, r.answers, None))
        .collect())
}

/// VQAv2 as released: the questions file (`v2_OpenEnded_mscoco_val2014_questions.json`,
/// `{questions: [{image_id, question, question_id}]}`) with its annotations beside it
/// (`v2_mscoco_val2014_annotations.json`, `{annotations: [{question_id, answers: [{answer,
/// answer_confidence, answer_id}], …}]}`; the ten answers in order); images are
/// `{image_dir}/COCO_{subtype}_{image_id:012}.jpg`, the subtype (`val2014`) from the file name.
pub fn vqav2(questions: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Question {
        image_id: u64,
        question: String,
        question_id: serde_json::Value,
    }
    #[derive(Deserialize)]
    struct Questions {
        questions: Vec<Question>,
    }
    #[derive(Deserialize)]
    struct Answer {
        answer: String,
    }
    #[derive(Deserialize)]
    struct Annotation {
        question_id: serde_json::Value,
        answers: Vec<Answer>,
    }
    #[derive(Deserialize)]
    struct Annotations {
        annotations: Vec<Annotation>,
    }
    let name = questions.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let format = |message: String| DatasetError::Format { path: questions.into(), message };
    let subtype = name
        .split('_')
        .find(|p| p.starts_with("train") || p.starts_with("val") || p.starts_with("test"))
        .ok_or_else(|| format("expected a VQAv2 questions file such as v2_OpenEnded_mscoco_val2014_questions.json".into()))?
        .to_string();
    let qs: Questions = read(questions)?;
    let annotations_path = questions.with_file_name(name.replace("OpenEnded_", "").replace("_questions", "_annotations"));
    let answers: std::collections::HashMap<String, Vec<String>> = if annotations_path.exists() {
        let a: Annotations = read(&annotations_path)?;
        a.annotations.into_iter().map(|a| (id_text(&a.question_id), a.answers.into_iter().map(|x| x.answer).collect())).collect()
    } else {
        Default::default() // the test split: no answers published
    };
    Ok(qs
        .questions
        .into_iter()
        .map(|q| {
            let id = id_text(&q.question_id);
            let image = image_dir.join(format!("COCO_{subtype}_{:012}.jpg", q.image_id));
            let gold = answers.get(&id).cloned().unwrap_or_default();
            sample(id, vec![image], q.question, gold, None)
        })
        .collect())
}

/// OCRBench.json; images are `{image_root}/{image_path}`; the category is the scoring `type`.
pub fn ocrbench(json: &Path, image_root: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answers {
        One(String),
        Many(Vec<String>),
    }
    #[derive(Deserialize)]
    struct Row {
        dataset_name: String,
        id: serde_json::Value,
        image_path: String,
        question: String,
        answers: Answers,
        #[serde(rename = "type")]
        kind: String,
    }
    let rows: Vec<Row> = read(json)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let answers = match r.answers {
                Answers::One(a) => vec![a],
                Answers::Many(a) => a,
            };
            // `id` numbers a record within its source dataset (IIIT5K 211 and IC13_857 211 are
            // both in the file): the pair is the key.
            let id = format!("{}-{}", r.dataset_name, id_text(&r.id));
            sample(id, vec![image_root.join(r.image_path)], r.question, answers, Some(r.kind))
        })
        .collect())
}

/// Where OCRBench's images are when not given: `OCRBench_Images/` beside the folder holding
/// `OCRBench.json` (the official scripts' `./OCRBench_Images` next to `./OCRBench/OCRBench.json`),
/// or inside that folder.
pub fn ocrbench_images(json_dir: &Path) -> PathBuf {
    let beside = json_dir.parent().map(|p| p.join("OCRBench_Images"));
    match beside {
        Some(b) if b.is_dir() || !json_dir.join("OCRBench_Images").is_dir() => b,
        _ => json_dir.join("OCRBench_Images"),
    }
}

/// POPE as its authors publish it: `{dataset}_pope_{split}.json` (`coco_pope_random.json`, …),
/// one `{question_id, image, image_id?, text, label}` per line; or a folder of such files (every
/// split, in name order). The category is the split; ids are `{split}-{question_id}` (each file
/// numbers its own questions). Images are `{image_dir}/{image}`.
pub fn pope(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Row {
        question_id: serde_json::Value,
        image: String,
        text: String,
        label: String,
    }
    let files = if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("_pope_") && n.ends_with(".json")))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(DatasetError::Format { path: path.into(), message: "no *_pope_*.json files (e.g. coco_pope_random.json)".into() });
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut samples = Vec::new();
    for file in files {
        let stem = file.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let split = stem.rsplit('_').next().unwrap_or(&stem).to_string();
        let text = read_text(&file)?;
        for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = |message: String| DatasetError::Format { path: file.clone(), message: format!("line {}: {message}", n + 1) };
            let r: Row = serde_json::from_str(line).map_err(|e| bad(e.to_string()))?;
            if !matches!(r.label.trim().to_lowercase().as_str(), "yes" | "no") {
                return Err(bad(format!("label {:?} is not yes or no", r.label)));
            }
            let id = format!("{split}-{}", id_text(&r.question_id));
            samples.push(sample(id, vec![image_dir.join(&r.image)], r.text, vec![r.label], Some(split.clone())));
        }
    }
    Ok(samples)
}

/// ScienceQA as its authors publish it: `data/scienceqa/problems.json`, `{pid: {question, choices,
/// answer (index), hint, image ("image.png" or null), grade, subject, split, …}}` (the file or its
/// folder), the test questions with an image, in pid order. Images are
/// `{image_root}/test/{pid}/{image}`, `image_root` defaulting to `images/` beside the file (where
/// `tools/download.sh` unpacks `test.zip`). Categories are those of the authors' `evaluate_acc.py`:
/// the subject (NAT, SOC, LAN), TXT when there is a hint, the grade band (G1-6, G7-12).
pub fn scienceqa(path: &Path, image_root: Option<&Path>) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Problem {
        question: String,
        choices: Vec<String>,
        answer: usize,
        #[serde(default)]
        hint: String,
        image: Option<String>,
        grade: String,
        subject: String,
        split: String,
    }
    let file = if path.is_dir() { path.join("problems.json") } else { path.to_path_buf() };
    let root = image_root.map_or_else(|| file.parent().unwrap_or(Path::new(".")).join("images"), Path::to_path_buf);
    let problems: std::collections::HashMap<String, Problem> = read(&file)?;
    let mut test: Vec<(u64, String, Problem)> = problems
        .into_iter()
        .filter(|(_, p)| p.split == "test" && p.image.is_some())
        .map(|(pid, p)| (pid.parse().unwrap_or(u64::MAX), pid, p))
        .collect();
    test.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    test.into_iter()
        .map(|(_, pid, p)| {
            if p.answer >= p.choices.len() {
                let message = format!("problem {pid}: answer {} but {} choices", p.answer, p.choices.len());
                return Err(DatasetError::Format { path: file.clone(), message });
            }
            let category = scienceqa_category(&p.subject, !p.hint.is_empty(), &p.grade);
            let image = root.join("test").join(&pid).join(p.image.as_deref().unwrap_or("image.png"));
            let mut s = sample(&pid, vec![image], p.question, vec![((b'A' + p.answer as u8) as char).to_string()], Some(category));
            (s.options, s.hint) = (p.choices, Some(p.hint).filter(|h| !h.is_empty()));
            Ok(s)
        })
        .collect()
}

/// MathVista as published (`annot_testmini.json` / `testmini.json`: `{pid: {question, image,
/// choices, unit, precision, answer, question_type, answer_type, query, metadata: {task,
/// skills, …}}}`, or a list of such records); images are `{folder}/{image}` (`images/1.jpg`,
/// `images.zip` unpacked beside the file). Categories: the task and the skills.
pub fn mathvista(json: &Path, image_root: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Metadata {
        #[serde(default)]
        task: Option<String>,
        #[serde(default)]
        skills: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Problem {
        pid: serde_json::Value,
        question: String,
        image: String,
        #[serde(default)]
        choices: Option<Vec<String>>,
        #[serde(default)]
        unit: Option<String>,
        #[serde(default)]
        precision: Option<f64>,
        #[serde(default)]
        answer: Option<String>,
        answer_type: String,
        #[serde(default)]
        query: Option<String>,
        metadata: Option<Metadata>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum File {
        ByPid(std::collections::HashMap<String, Problem>),
        List(Vec<Problem>),
    }
    let mut problems: Vec<Problem> = match read(json)? {
        File::ByPid(map) => map.into_values().collect(),
        File::List(list) => list,
    };
    problems.sort_by_key(|p| {
        let id = id_text(&p.pid);
        (id.parse::<u64>().unwrap_or(u64::MAX), id)
    });
    Ok(problems
        .into_iter()
        .map(|p| {
            let meta = p.metadata.unwrap_or(Metadata { task: None, skills: Vec::new() });
            MathVistaProblem {
                pid: id_text(&p.pid),
                image: image_root.join(&p.image),
                question: p.question,
                choices: p.choices.unwrap_or_default(),
                unit: p.unit,
                precision: p.precision,
                answer: p.answer,
                answer_type: p.answer_type,
                query: p.query,
                task: meta.task,
                skills: meta.skills,
            }
            .into_sample()
        })
        .collect())
}

/// ScienceQA's categories as its authors' `evaluate_acc.py` groups them: the subject (NAT, SOC,
/// LAN), TXT when there is a hint, the grade band (G1-6, G7-12).
pub(crate) fn scienceqa_category(subject: &str, has_hint: bool, grade: &str) -> String {
    let subject = match subject {
        "natural science" => "NAT",
        "social science" => "SOC",
        "language science" => "LAN",
        other => other,
    };
    let grade: u32 = grade.trim_start_matches("grade").parse().unwrap_or(0);
    let band = if (1..=6).contains(&grade) { "G1-6" } else { "G7-12" };
    if has_hint { format!("{subject},TXT,{band}") } else { format!("{subject},{band}") }
}

/// One MathVista problem, as its JSON file or the Hub's parquet gives it.
pub(crate) struct MathVistaProblem {
    pub pid: String,
    pub question: String,
    pub image: PathBuf,
    pub choices: Vec<String>,
    pub unit: Option<String>,
    pub precision: Option<f64>,
    pub answer: Option<String>,
    pub answer_type: String,
    pub query: Option<String>,
    pub task: Option<String>,
    pub skills: Vec<String>,
}

impl MathVistaProblem {
    /// The sample: categories the task and the skills; `query`, `unit`, `answer_type` and
    /// `precision` kept for the prompt and the metric.
    pub fn into_sample(self) -> Sample {
        let category = self.task.into_iter().chain(self.skills).collect::<Vec<_>>().join(",");
        let mut s = sample(self.pid, vec![self.image], self.question, self.answer.into_iter().collect(), Some(category).filter(|c| !c.is_empty()));
        s.options = self.choices;
        s.extra.insert("answer_type".into(), self.answer_type);
        for (key, value) in [("query", self.query), ("unit", self.unit.filter(|u| !u.is_empty())), ("precision", self.precision.map(|x| (x as u32).to_string()))] {
            if let Some(v) = value {
                s.extra.insert(key.into(), v);
            }
        }
        s
    }
}

/// AI2D as released by AllenAI: `{root}/questions/{image}.json` holding
/// `{imageName, questions: {text: {answerTexts, correctAnswer, questionId}}}`, images in
/// `{root}/images/`. When `{root}/ai2d_test_ids.csv` is there, only those images (the test split)
/// are read; `{root}/categories.json` (image → category) gives the categories.
pub fn ai2d(root: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Question {
        answer_texts: Vec<String>,
        correct_answer: usize,
        question_id: String,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct File {
        image_name: String,
        questions: std::collections::BTreeMap<String, Question>,
    }
    let ids_path = root.join("ai2d_test_ids.csv");
    let test_ids: Option<std::collections::HashSet<String>> = match read_text(&ids_path) {
        Ok(text) => Some(text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()),
        Err(_) => None,
    };
    let categories: std::collections::HashMap<String, String> =
        if root.join("categories.json").exists() { read(&root.join("categories.json"))? } else { Default::default() };
    let dir = root.join("questions");
    let entries = std::fs::read_dir(&dir).map_err(|source| DatasetError::Io { path: dir.clone(), source })?;
    let mut files: Vec<(u64, String, PathBuf)> = Vec::new();
    for entry in entries {
        let path = entry.map_err(|source| DatasetError::Io { path: dir.clone(), source })?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".png.json")) else { continue };
        if test_ids.as_ref().is_some_and(|ids| !ids.contains(name)) {
            continue;
        }
        files.push((name.parse().unwrap_or(u64::MAX), name.to_string(), path));
    }
    files.sort();
    let mut samples = Vec::new();
    for (_, _, path) in files {
        let file: File = read(&path)?;
        for (question, q) in file.questions {
            if q.correct_answer >= q.answer_texts.len() {
                let message = format!("{}: correctAnswer {} but {} answers", q.question_id, q.correct_answer, q.answer_texts.len());
                return Err(DatasetError::Format { path, message });
            }
            let letter = ((b'A' + q.correct_answer as u8) as char).to_string();
            let category = categories.get(&file.image_name).cloned();
            let mut s = sample(q.question_id, vec![root.join("images").join(&file.image_name)], question, vec![letter], category);
            s.options = q.answer_texts;
            samples.push(s);
        }
    }
    Ok(samples)
}

/// A VLMEvalKit TSV (`AI2D_TEST.tsv`, `POPE.tsv`, `MMBench_DEV_EN.tsv`, …): columns `index`,
/// `question`, `answer` (an option letter, or the answer), `image` (base64), and where the
/// benchmark has them the option columns `A`, `B`, …, `category`, `l2-category` (the category is
/// then `{l2-category},{category}`: the sample counts in both), `hint` and `g_index` (the question
/// a circular copy copies; without it, the index modulo 10^6). An `image` may hold several images
/// as a Python list literal of base64 strings (BLINK, MMMU). The images are decoded
/// once into `image_dir` as `{index}.png` / `{index}.jpg` and read from there afterwards.
pub fn vlmevalkit_tsv(tsv: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    use base64::Engine;
    let format = |message: String| DatasetError::Format { path: tsv.into(), message };
    regular(tsv)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_path(tsv)
        .map_err(|e| format(e.to_string()))?;
    let headers = reader.headers().map_err(|e| format(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| column(name).ok_or_else(|| format(format!("no `{name}` column")));
    let (index, question, answer, image) = (need("index")?, need("question")?, need("answer")?, need("image")?);
    let (category, l2, hint, g_index, split) =
        (column("category"), column("l2-category").or(column("L2-category")), column("hint"), column("g_index"), column("split"));
    let letters: Vec<usize> = ["A", "B", "C", "D", "E", "F", "G", "H"].iter().map_while(|l| column(l)).collect();
    std::fs::create_dir_all(image_dir).map_err(|source| DatasetError::Io { path: image_dir.into(), source })?;
    let records = reader.records().collect::<Result<Vec<_>, _>>().map_err(|e| format(e.to_string()))?;
    // VLMEvalKit saves space by giving, in `image`, the index of another row whose image is the
    // same: any value of at most 64 characters is such an index, and that row must hold the
    // image itself.
    let by_index: std::collections::HashMap<&str, &str> = records.iter().map(|r| (&r[index], &r[image])).collect();
    let mut samples = Vec::new();
    for (n, r) in records.iter().enumerate() {
        let row = format!("row {}", n + 2);
        let id = r[index].to_string();
        let (source, data) = match r[image].trim() {
            field if field.chars().count() <= 64 => match by_index.get(field) {
                Some(data) if data.chars().count() > 64 => (field.to_string(), *data),
                _ => return Err(format(format!("{row}: image {field:?} is neither an image nor the index of a row with one"))),
            },
            field => (id.clone(), field),
        };
        // The id names the image file written below: a plain name, never a path.
        for name in [&id, &source] {
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
                return Err(format(format!("{row}: index {name:?} is not a plain name (letters, digits, - _ .)")));
            }
        }
        let options: Vec<String> = letters.iter().map(|&c| r[c].to_string()).take_while(|o| !o.is_empty() && o != "nan").collect();
        // Several images are a Python list literal of base64 strings (`str(list)`), written
        // out as `{index}_{k}`.
        let parts = match python_list(data) {
            Some(list) => list.into_iter().enumerate().map(|(k, d)| (format!("{source}_{k}"), d)).collect(),
            None => vec![(source.clone(), data.to_string())],
        };
        let mut paths = Vec::new();
        for (name, data) in parts {
            let (png, jpg) = (image_dir.join(format!("{name}.png")), image_dir.join(format!("{name}.jpg")));
            paths.push(if png.exists() {
                png
            } else if jpg.exists() {
                jpg
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| format(format!("{row}: image is not base64: {e}")))?;
                let out = if bytes.starts_with(&[0xFF, 0xD8]) { jpg } else { png };
                std::fs::write(&out, bytes).map_err(|source| DatasetError::Io { path: out.clone(), source })?;
                out
            });
        }
        let text = |c: Option<usize>| c.map(|c| r[c].to_string()).filter(|t| !t.is_empty() && t != "nan");
        let cat = match (text(l2), text(category)) {
            (Some(l2), Some(c)) => Some(format!("{l2},{c}")),
            (l2, c) => c.or(l2),
        };
        // Circular copies: `g_index` names the question copied, else index mod 10^6 does.
        let group = text(g_index).or_else(|| id.parse::<u64>().ok().map(|i| (i % 1_000_000).to_string()));
        let mut s = sample(id, paths, r[question].to_string(), vec![r[answer].trim().to_string()], cat);
        (s.options, s.hint, s.group, s.split) = (options, text(hint), group, text(split));
        samples.push(s);
    }
    Ok(samples)
}

/// The strings of a Python list literal as `str(list)` writes it (`['a', "b'c"]`, backslash
/// escapes kept as they are: base64 and file names have none); `None` when `text` is not one.
pub(crate) fn python_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let end = rest[1..].find(quote)? + 1;
        items.push(rest[1..end].to_string());
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').map_or(rest, str::trim_start);
    }
    Some(items)
}

/// VLMEvalKit's circular copies (`vlmeval/tools.py`, `CIRCULAR`) of questions read without
/// them: a question of k options gets k − 1 copies, copy i with the options rotated right by i
/// (`deque.rotate(1)` i times: option m of the copy is option (m + i) mod k of the original) and
/// the answer moved with them, index `index + OFFSET·i` (OFFSET = 10^6, ×10 while an index
/// reaches it). Left as they are: questions with fewer than two options, an answer that is not one
/// of their letters, or an option that is a run of the alphabet in capitals ("B", "CD") or names
/// two option letters as words (after everything but ASCII letters and spaces becomes a space).
pub fn circular(samples: Vec<Sample>) -> Vec<Sample> {
    let mut offset = 1_000_000u64;
    while samples.iter().filter_map(|s| s.id.parse::<u64>().ok()).any(|i| i >= offset) {
        offset *= 10;
    }
    let letter = |i: usize| ((b'A' + i as u8) as char).to_string();
    let abnormal = |s: &Sample| {
        let letters: Vec<String> = (0..s.options.len()).map(letter).collect();
        s.options.iter().any(|o| {
            let spaced: String = o.chars().map(|c| if c.is_ascii_alphabetic() || c == ' ' { c } else { ' ' }).collect();
            let named: std::collections::HashSet<&str> = spaced.split_whitespace().filter(|w| letters.iter().any(|l| l == w)).collect();
            // `choices[k] in string.ascii_uppercase` is a substring test: "B", "CD", …
            named.len() > 1 || "ABCDEFGHIJKLMNOPQRSTUVWXYZ".contains(o.as_str())
        })
    };
    let mut out = Vec::new();
    for s in samples {
        let k = s.options.len();
        let answer = s.answers.first().and_then(|a| (0..k).find(|&i| *a == letter(i)));
        let index = s.id.parse::<u64>().ok();
        let mut main = Sample { group: Some(s.id.clone()), ..s };
        let (Some(answer), Some(index), false) = (answer, index, k < 2 || abnormal(&main)) else {
            out.push(main);
            continue;
        };
        let copies: Vec<Sample> = (1..k as u64)
            .map(|i| {
                let shift = i as usize;
                Sample {
                    id: (index + offset * i).to_string(),
                    options: (0..k).map(|m| main.options[(m + shift) % k].clone()).collect(),
                    answers: vec![letter((answer + k - shift % k) % k)],
                    ..main.clone()
                }
            })
            .collect();
        main.group = Some(index.to_string());
        out.push(main);
        out.extend(copies);
    }
    out
}

/// Our own JSONL format; image paths are relative to the file's directory. Blank lines are
/// skipped; a bad line is an error naming its line number.
pub fn jsonl(path: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Row {
        id: serde_json::Value,
        images: Vec<String>,
        question: String,
        answers: Vec<String>,
        #[serde(default)]
        category: Option<String>,
        #[serde(default)]
        options: Vec<String>,
    }
    let text = read_text(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let r: Row = serde_json::from_str(line)
                .map_err(|e| DatasetError::Format { path: path.into(), message: format!("line {}: {e}", n + 1) })?;
            let mut s = sample(id_text(&r.id), r.images.iter().map(|i| base.join(i)).collect(), r.question, r.answers, r.category);
            s.options = r.options;
            Ok(s)
        })
        .collect()
}

/// Ids are numbers in some files and strings in others.
fn id_text(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn reads_each_public_format() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        let c = chartqa(&write(root, "test_human.json", r#"[{"imgname": "8127.png", "query": "What is the value \ufffd?", "label": "0.57"}]"#), &root.join("png"), "human").unwrap();
        assert_eq!(c[0].images, [root.join("png/8127.png")]);
        assert_eq!((c[0].answers.clone(), c[0].category.as_deref()), (vec!["0.57".to_string()], Some("human")));
        assert!(c[0].question.contains('\u{FFFD}'), "kept verbatim");

        let v = docvqa(&write(root, "val_v1.0.json", r#"{"dataset_name": "docvqa", "data": [{"questionId": 337, "question": "What is the date?", "question_types": ["form"], "image": "documents/xnbl0037_1.png", "docId": 279, "answers": ["1/8/93", "January 8, 1993"], "data_split": "val"}]}"#), root).unwrap();
        assert_eq!((v[0].id.as_str(), v[0].answers.len()), ("337", 2));

        let t = textvqa(&write(root, "TextVQA_0.5.1_val.json", r#"{"dataset_type": "val", "data": [{"question": "what brand?", "image_id": "003a8ae2ef43b901", "question_id": 34602, "answers": ["nokia","nokia","nokia","nokia","toshiba","nokia","nokia","nokia","nokia","nokia"]}]}"#), &root.join("train_images")).unwrap();
        assert_eq!(t[0].images, [root.join("train_images/003a8ae2ef43b901.jpg")]);
        assert_eq!(t[0].answers.len(), 10);

        let o = ocrbench(&write(root, "OCRBench.json", r#"[{"dataset_name": "IIIT5K", "id": 0, "image_path": "IIIT5K/test/918_1.png", "question": "what is written in the image?", "answers": "RAILWAY", "type": "Regular Text Recognition"}, {"dataset_name": "HME100k", "id": 1, "image_path": "HME100k/a.jpg", "question": "LaTeX?", "answers": ["x ^ { 2 }\n", "x^2"], "type": "Handwritten Mathematical Expression Recognition"}]"#), root).unwrap();
        assert_eq!(o[0].answers, ["RAILWAY"]);
        assert_eq!(o[1].answers.len(), 2);
        assert_eq!(o[1].category.as_deref(), Some(crate::metrics::ocrbench::HME));
        assert_eq!((o[0].id.as_str(), o[1].id.as_str()), ("IIIT5K-0", "HME100k-1"));
    }

    #[test]
    fn docvqa_and_infovqa_in_their_current_and_older_layouts() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for dir in ["spdocvqa_qas", "spdocvqa_images", "infographicsvqa_qas", "infographicsvqa_images", "val/documents"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("spdocvqa_images/xnbl0037_1.png"), b"").unwrap();
        let record = r#"{"questionId": 337, "question": "what is the date mentioned in this letter?", "question_types": ["handwritten", "form"], "image": "documents/xnbl0037_1.png", "docId": 279, "ucsf_document_id": "xnbl0037", "ucsf_document_page_no": "1", "answers": ["1/8/93"], "data_split": "val"}"#;
        let json = write(&root.join("spdocvqa_qas"), "val_v1.0_withQT.json", &format!(r#"{{"dataset_name": "SP-DocVQA", "dataset_split": "val", "dataset_version": "1.0", "data": [{record}]}}"#));
        let s = crate::tasks::Task::DocVqa.load(&json, None).unwrap();
        assert_eq!(s[0].images, [root.join("spdocvqa_images/xnbl0037_1.png")]);
        // The older download: val/val_v1.0.json with val/documents/.
        let old = write(&root.join("val"), "val_v1.0.json", &format!(r#"{{"data": [{record}]}}"#));
        std::fs::write(root.join("val/documents/xnbl0037_1.png"), b"").unwrap();
        assert_eq!(crate::tasks::Task::DocVqa.load(&old, None).unwrap()[0].images, [root.join("val/documents/xnbl0037_1.png")]);

        let info = r#"{"questionId": 65718, "question": "Which social platform has heavy female audience?", "image_local_name": "37313.jpeg", "image_url": "https://example.org/37313.jpg", "ocr_output_file": "37313.json", "answers": ["pinterest"], "data_split": "val", "answer_type": ["single span"], "evidence": ["text"], "operation/reasoning": [""]}"#;
        let json = write(&root.join("infographicsvqa_qas"), "infographicsVQA_val_v1.0_withQT.json", &format!(r#"{{"dataset_name": "infographicVQA", "dataset_version": "1.0", "dataset_split": "val", "data": [{info}]}}"#));
        let s = crate::tasks::Task::InfoVqa.load(&json, None).unwrap();
        assert_eq!((s[0].id.as_str(), s[0].images.clone()), ("65718", vec![root.join("infographicsvqa_images/37313.jpeg")]));
        let bad = write(root, "bad.json", r#"{"data": [{"questionId": 1, "question": "q", "answers": []}]}"#);
        assert!(docvqa(&bad, root).unwrap_err().to_string().contains("question 1: no `image`"));
    }

    #[test]
    fn reads_vqav2_questions_with_their_annotations() {
        let d = tempfile::tempdir().unwrap();
        let q = write(d.path(), "v2_OpenEnded_mscoco_val2014_questions.json", r#"{"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "val2014", "questions": [{"image_id": 262148, "question": "Where is he looking?", "question_id": 262148000}]}"#);
        let answers: Vec<String> = ["down", "down", "at table", "skateboard", "down", "table", "down", "down", "down", "down"]
            .iter()
            .enumerate()
            .map(|(i, a)| format!(r#"{{"answer": "{a}", "answer_confidence": "yes", "answer_id": {}}}"#, i + 1))
            .collect();
        write(d.path(), "v2_mscoco_val2014_annotations.json", &format!(r#"{{"info": {{}}, "license": {{}}, "data_subtype": "val2014", "annotations": [{{"question_type": "none of the above", "multiple_choice_answer": "down", "answers": [{}], "image_id": 262148, "answer_type": "other", "question_id": 262148000}}]}}"#, answers.join(", ")));
        let s = crate::tasks::Task::VqaV2.load(&q, None).unwrap();
        assert_eq!((s[0].id.as_str(), s[0].answers.len(), s[0].answers[2].as_str()), ("262148000", 10, "at table"));
        assert_eq!(s[0].images, [d.path().join("val2014/COCO_val2014_000000262148.jpg")]);
        let other = write(d.path(), "questions.json", "{}");
        assert!(vqav2(&other, d.path()).unwrap_err().to_string().contains("v2_OpenEnded_mscoco_val2014_questions.json"));
    }

    /// Records as the published `OCRBench.json` has them (verbatim, from the benchmark's
    /// repository): ids repeat across source datasets.
    const OCRBENCH_RECORDS: &str = r#"[
    {"dataset_name": "IIIT5K", "id": 211, "image_path": "IIIT5K/test/137_3.png", "question": "what is written in the image?", "answers": "TIMES", "type": "Regular Text Recognition"},
    {"dataset_name": "svt", "id": 155, "image_path": "svt/image/img_0156.jpg", "question": "what is written in the image?", "answers": "western", "type": "Regular Text Recognition"},
    {"dataset_name": "IC13_857", "id": 211, "image_path": "IC13_857/imgs/000000212.jpg", "question": "what is written in the image?", "answers": "richtungsangabe", "type": "Regular Text Recognition"},
    {"dataset_name": "IC13_857", "id": 228, "image_path": "IC13_857/imgs/000000229.jpg", "question": "what is written in the image?", "answers": "students", "type": "Regular Text Recognition"},
    {"dataset_name": "IC15_1811", "id": 228, "image_path": "IC15_1811/imgs/000000229.jpg", "question": "what is written in the image?", "answers": "COFFEE", "type": "Irregular Text Recognition"},
    {"dataset_name": "svtp", "id": 155, "image_path": "svtp/image/156.jpg", "question": "what is written in the image?", "answers": "FITNESS", "type": "Irregular Text Recognition"}
]"#;

    #[test]
    fn ocrbench_keys_records_by_dataset_and_finds_images_beside_its_folder() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("OCRBench")).unwrap();
        std::fs::create_dir_all(d.path().join("OCRBench_Images")).unwrap();
        let json = write(&d.path().join("OCRBench"), "OCRBench.json", OCRBENCH_RECORDS);
        let samples = crate::tasks::Task::OcrBench.load(&json, None).unwrap();
        let ids: std::collections::HashSet<&str> = samples.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), 6, "{ids:?}");
        assert!(ids.contains("IC13_857-211") && ids.contains("IIIT5K-211"));
        assert_eq!(samples[5].images, [d.path().join("OCRBench_Images/svtp/image/156.jpg")]);
        // The older layout, images inside the annotation folder, still works.
        std::fs::remove_dir(d.path().join("OCRBench_Images")).unwrap();
        std::fs::create_dir_all(d.path().join("OCRBench/OCRBench_Images")).unwrap();
        let samples = crate::tasks::Task::OcrBench.load(&json, None).unwrap();
        assert_eq!(samples[0].images, [d.path().join("OCRBench/OCRBench_Images/IIIT5K/test/137_3.png")]);
    }

    #[test]
    fn reads_ai2d_as_released_and_as_vlmevalkit_tsv() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("questions")).unwrap();
        let q = |name: &str, answer: usize| format!(r#"{{"imageName": "{name}", "questions": {{"What is A?": {{"abcLabel": true, "answerTexts": ["ears", "nose", "face"], "correctAnswer": {answer}, "questionId": "{name}-0"}}}}}}"#);
        write(&root.join("questions"), "10.png.json", &q("10.png", 2));
        write(&root.join("questions"), "2.png.json", &q("2.png", 0));
        write(root, "categories.json", r#"{"2.png": "partsOfA", "10.png": "lifeCycles"}"#);
        let all = ai2d(root).unwrap();
        assert_eq!(all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["2.png-0", "10.png-0"], "numeric image order");
        assert_eq!((all[1].answers[0].as_str(), all[1].options.len()), ("C", 3));
        assert_eq!((all[1].images[0].clone(), all[1].category.as_deref()), (root.join("images/10.png"), Some("lifeCycles")));
        write(root, "ai2d_test_ids.csv", "10\n");
        assert_eq!(ai2d(root).unwrap().len(), 1, "test split only");
        write(&root.join("questions"), "3.png.json", &q("3.png", 7));
        write(root, "ai2d_test_ids.csv", "3\n");
        assert!(ai2d(root).unwrap_err().to_string().contains("3.png-0: correctAnswer 7"));

        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let tsv = write(root, "AI2D_TEST.tsv", &format!("index\tquestion\tA\tB\tC\tD\tanswer\tcategory\timage\n7\t\"Which is \"\"it\"\"?\"\tleaf\troot\tstem\t\tB\tparts\t{png}\n"));
        let s = vlmevalkit_tsv(&tsv, &root.join("imgs")).unwrap();
        assert_eq!((s[0].question.as_str(), s[0].options.len(), s[0].answers[0].as_str()), ("Which is \"it\"?", 3, "B"));
        assert_eq!(std::fs::read(&s[0].images[0]).unwrap()[..4], [0x89, b'P', b'N', b'G']);
        // A row whose `image` is another row's index shares that row's image (either order).
        let shared = write(root, "shared.tsv", &format!("index\tquestion\tA\tB\tanswer\timage\n1\tq1\tx\ty\tA\t2\n2\tq2\tx\ty\tB\t{png}\n"));
        let s = vlmevalkit_tsv(&shared, &root.join("shared")).unwrap();
        assert_eq!((s[0].images.clone(), s[1].images.clone()), (vec![root.join("shared/2.png")], vec![root.join("shared/2.png")]));
        let dangling = write(root, "dangling.tsv", "index\tquestion\tanswer\timage\n1\tq\tA\t7\n");
        assert!(vlmevalkit_tsv(&dangling, &root.join("d")).unwrap_err().to_string().contains("row 2: image \"7\" is neither"));
        let bad = write(root, "bad.tsv", "index\tquestion\tanswer\n1\tq\tA\n");
        assert!(vlmevalkit_tsv(&bad, root).unwrap_err().to_string().contains("no `image` column"));
    }

    /// Lines as the POPE repository's `output/coco/coco_pope_*.json` has them (verbatim): each
    /// file numbers its questions from 0.
    const POPE_ADVERSARIAL: &str = "{\"question_id\": 0, \"image\": \"COCO_val2014_000000548882.jpg\", \"image_id\": 548882, \"text\": \"Is there a dining table in the image?\", \"label\": \"yes\"}\n{\"question_id\": 1, \"image\": \"COCO_val2014_000000548882.jpg\", \"image_id\": 548882, \"text\": \"Is there a chair in the image?\", \"label\": \"no\"}\n";

    #[test]
    fn reads_pope_files_a_folder_of_them_and_the_vlmevalkit_tsv() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("coco");
        std::fs::create_dir_all(&dir).unwrap();
        write(&dir, "coco_pope_adversarial.json", POPE_ADVERSARIAL);
        write(&dir, "coco_pope_random.json", &POPE_ADVERSARIAL.replace("chair", "sink"));
        let one = crate::tasks::Task::Pope.load(&dir.join("coco_pope_random.json"), None).unwrap();
        assert_eq!((one.len(), one[1].id.as_str(), one[1].category.as_deref()), (2, "random-1", Some("random")));
        assert_eq!((one[1].question.as_str(), one[1].answers[0].as_str()), ("Is there a sink in the image?", "no"));
        assert_eq!(one[0].images, [dir.join("COCO_val2014_000000548882.jpg")]);
        // COCO's val2014/ beside the files is where the images are, when it is there.
        std::fs::create_dir_all(dir.join("val2014")).unwrap();
        let all = crate::tasks::Task::Pope.load(&dir, None).unwrap();
        assert_eq!(all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["adversarial-0", "adversarial-1", "random-0", "random-1"]);
        assert_eq!(all[0].images, [dir.join("val2014/COCO_val2014_000000548882.jpg")]);
        write(&dir, "coco_pope_popular.json", &POPE_ADVERSARIAL.replace("\"no\"", "\"maybe\""));
        let err = crate::tasks::Task::Pope.load(&dir, None).unwrap_err().to_string();
        assert!(err.contains("coco_pope_popular.json: line 2: label \"maybe\""), "{err}");
        assert!(pope(d.path(), d.path()).unwrap_err().to_string().contains("no *_pope_*.json"));

        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        let tsv = write(d.path(), "POPE.tsv", &format!("index\tquestion\tanswer\tcategory\timage\n0\tIs there a car in the image?\tYes\tadversarial,popular\t{png}\n1\tIs there a dog in the image?\tNo\trandom\t0\n"));
        let s = crate::tasks::Task::Pope.load(&tsv, None).unwrap();
        assert_eq!((s[0].answers[0].as_str(), s[0].category.as_deref(), s[0].options.len()), ("Yes", Some("adversarial,popular"), 0));
        assert_eq!(s[1].images, s[0].images, "the second row reuses the first's image");
    }

    #[test]
    fn mmbench_rows_keep_their_circular_copies_or_get_them() {
        let d = tempfile::tempdir().unwrap();
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        // As VLMEvalKit's MMBench_DEV_EN.tsv: copies at index + k·10^6 reuse the image by index.
        let head = "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\tl2-category\tcomment\tsplit";
        let rows = [
            format!("241\tWhich is the main topic?\tThe text is a poster.\tcar\tdog\tcat\t\tA\timage_topic\t{png}\tMMBench\tcoarse_perception\tnan\tdev"),
            "1000241\tWhich is the main topic?\tThe text is a poster.\tdog\tcat\tcar\t\tC\timage_topic\t241\tMMBench\tcoarse_perception\tnan\tdev".to_string(),
        ];
        let tsv = write(d.path(), "MMBench_DEV_EN.tsv", &format!("{head}\n{}\n", rows.join("\n")));
        let s = crate::tasks::Task::MmBench.load(&tsv, None).unwrap();
        assert_eq!(s.len(), 2, "the file's own copies, no more");
        assert_eq!((s[1].group.as_deref(), s[1].options.len(), s[1].images.clone()), (Some("241"), 3, s[0].images.clone()));
        assert_eq!((s[0].hint.as_deref(), s[0].category.as_deref()), (Some("The text is a poster."), Some("coarse_perception,image_topic")));

        // Without copies: VLMEvalKit's CIRCULAR rotations, worked through its deque code.
        let q = |id: &str, options: &[&str], answer: &str| Sample {
            id: id.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            answers: vec![answer.into()],
            ..Default::default()
        };
        let out = circular(vec![q("7", &["w", "x", "y", "z"], "B"), q("8", &["yes", "no"], "A"), q("9", &["A and B", "neither"], "A"), q("10", &["B", "C"], "A"), q("11", &["p", "q"], "C")]);
        let view: Vec<(&str, String, &str, &str)> =
            out.iter().map(|s| (s.id.as_str(), s.options.join(""), s.answers[0].as_str(), s.group.as_deref().unwrap())).collect();
        assert_eq!(
            view,
            [
                ("7", "wxyz".into(), "B", "7"),
                ("1000007", "xyzw".into(), "A", "7"),
                ("2000007", "yzwx".into(), "D", "7"),
                ("3000007", "zwxy".into(), "C", "7"),
                ("8", "yesno".into(), "A", "8"),
                ("1000008", "noyes".into(), "B", "8"),
                ("9", "A and Bneither".into(), "A", "9"), // names two option letters: left alone
                ("10", "BC".into(), "A", "10"),          // an option is a letter: left alone
                ("11", "pq".into(), "C", "11"),          // the answer is no option: left alone
            ]
        );
        // An index at or past 10^6 moves the copies to 10^7 steps.
        let big = circular(vec![q("1500000", &["a", "b"], "A")]);
        assert_eq!(big[1].id, "11500000");
    }

    #[test]
    fn scienceqa_takes_the_test_questions_with_an_image() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("data/scienceqa");
        std::fs::create_dir_all(&dir).unwrap();
        // Every field of a problems.json record; pids are strings, in no particular key order.
        let record = |question: &str, image: &str, hint: &str, grade: &str, subject: &str, split: &str| {
            format!(r#"{{"question": "{question}", "choices": ["Florida", "Ohio", "Maine"], "answer": 2, "hint": "{hint}", "image": {image}, "task": "closed choice", "grade": "{grade}", "subject": "{subject}", "topic": "geography", "category": "Geography", "skill": "Read a map: cardinal directions", "lecture": "Maps have four cardinal directions.", "solution": "Maine is farthest north.", "split": "{split}"}}"#)
        };
        let text = format!(
            r#"{{"12": {}, "3": {}, "7": {}, "40": {}}}"#,
            record("Which of these states is farthest north?", r#""image.png""#, "", "grade7", "social science", "test"),
            record("Which is farthest north?", r#""image.png""#, "Look at the map.", "grade4", "social science", "test"),
            record("Which word is a noun?", "null", "", "grade2", "language science", "test"),
            record("Which is farthest south?", r#""image.png""#, "", "grade5", "social science", "train"),
        );
        write(&dir, "problems.json", &text);
        let s = crate::tasks::Task::ScienceQa.load(&dir, None).unwrap();
        assert_eq!(s.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["3", "12"], "test split, with an image, pid order");
        assert_eq!(s[0].images, [dir.join("images/test/3/image.png")]);
        assert_eq!((s[0].answers[0].as_str(), s[0].options.len(), s[0].hint.as_deref()), ("C", 3, Some("Look at the map.")));
        assert_eq!((s[0].category.as_deref(), s[1].category.as_deref(), s[1].hint.as_deref()), (Some("SOC,TXT,G1-6"), Some("SOC,G7-12"), None));
        let lmms = crate::tasks::render(&crate::tasks::Task::ScienceQa.default_template(crate::Harness::LmmsEval), &s[0]);
        assert_eq!(lmms, "Context: Look at the map.\nWhich is farthest north?\nA. Florida\nB. Ohio\nC. Maine\nAnswer with the option's letter from the given choices directly.");
        write(&dir, "problems.json", &format!(r#"{{"1": {}}}"#, record("q", r#""image.png""#, "", "grade1", "natural science", "test").replace(r#""answer": 2"#, r#""answer": 3"#)));
        assert!(scienceqa(&dir, None).unwrap_err().to_string().contains("problem 1: answer 3 but 3 choices"));
    }

    #[test]
    fn vlmevalkit_rows_with_several_images() {
        assert_eq!(python_list(r#"['ab', "c'd" ,'e']"#), Some(vec!["ab".into(), "c'd".into(), "e".into()]));
        assert_eq!(python_list("[]"), Some(vec![]));
        assert_eq!((python_list("iVBOR"), python_list("['open")), (None, None));
        let d = tempfile::tempdir().unwrap();
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        // As VLMEvalKit's BLINK.tsv: `str(list)` of base64 strings; a later row may point at it.
        let tsv = write(d.path(), "BLINK.tsv", &format!("index\tquestion\tA\tB\tanswer\tcategory\timage\n7\tWhich image is brighter?\tthe first image\tthe second image\tB\tRelative_Reflectance\t['{png}', '{png}']\n8\tSame?\tyes\tno\tA\tVisual_Similarity\t7\n"));
        let s = crate::tasks::Task::Blink.load(&tsv, None).unwrap();
        let dir = d.path().join("BLINK_images");
        assert_eq!(s[0].images, [dir.join("7_0.png"), dir.join("7_1.png")]);
        assert_eq!((s[1].images.clone(), s[1].category.as_deref()), (s[0].images.clone(), Some("Visual_Similarity")));
        let lmms = crate::tasks::render(&crate::tasks::Task::Blink.default_template(crate::Harness::LmmsEval), &s[0]);
        assert_eq!(lmms, "Note: You only need to respond with A, B without providing any additional information.\nWhich image is brighter?\nSelect from the following choices.\n(A) the first image\n(B) the second image");
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "(B) the second image", crate::Harness::LmmsEval).score, 1.0);
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "The second image", crate::Harness::LmmsEval).score, 0.0, "read as T");
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "The second image", crate::Harness::VlmEvalKit).score, 1.0, "the option's text");
    }

    #[test]
    fn mathvista_as_published() {
        let d = tempfile::tempdir().unwrap();
        // Records in annot_testmini.json's shape (every field), keyed by pid.
        let json = r#"{
  "1": {"question": "When a spring does work on an object, we cannot find the work by simply multiplying the spring force by the object's displacement. By what distance $d$ is the spring compressed?", "image": "images/1.jpg", "choices": null, "unit": null, "precision": 1.0, "answer": "1.2", "question_type": "free_form", "answer_type": "float", "pid": "1",
        "metadata": {"split": "testmini", "language": "english", "img_width": 1514, "img_height": 720, "source": "SciBench", "category": "math-targeted-vqa", "task": "textbook question answering", "context": "scientific figure", "grade": "college", "skills": ["scientific reasoning"]},
        "query": "Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.\nQuestion: When a spring does work on an object, we cannot find the work by simply multiplying the spring force by the object's displacement. By what distance $d$ is the spring compressed?"},
  "2": {"question": "what is the total volume of the measuring cup?", "image": "images/2.jpg", "choices": null, "unit": "g", "precision": null, "answer": "1000", "question_type": "free_form", "answer_type": "integer", "pid": "2",
        "metadata": {"split": "testmini", "language": "english", "img_width": 1024, "img_height": 768, "source": "TextVQA", "category": "general-vqa", "task": "textbook question answering", "context": "natural image", "grade": "daily life", "skills": ["numeric commonsense", "arithmetic reasoning"]},
        "query": "Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: what is the total volume of the measuring cup? (Unit: g)"},
  "10": {"question": "Which object comes next?", "image": "images/10.jpg", "choices": ["A", "B", "C", "D", "E"], "unit": null, "precision": null, "answer": "E", "question_type": "multi_choice", "answer_type": "text", "pid": "10",
        "metadata": {"split": "testmini", "language": "english", "img_width": 418, "img_height": 376, "source": "IQTest", "category": "math-targeted-vqa", "task": "figure question answering", "context": "puzzle test", "grade": "elementary school", "skills": ["logical reasoning"]},
        "query": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: Which object comes next?\nChoices:\n(A) A\n(B) B\n(C) C\n(D) D\n(E) E"}
}"#;
        let path = write(d.path(), "annot_testmini.json", json);
        let s = crate::tasks::Task::MathVista.load(&path, None).unwrap();
        assert_eq!(s.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["1", "2", "10"]);
        assert_eq!((s[0].images.clone(), s[0].extra["precision"].as_str()), (vec![d.path().join("images/1.jpg")], "1"));
        assert_eq!(s[1].category.as_deref(), Some("textbook question answering,numeric commonsense,arithmetic reasoning"));
        let h = crate::Harness::LmmsEval;
        let prompt = |x: &Sample| crate::tasks::render(&crate::tasks::Task::MathVista.template_for(h, x), x);
        assert_eq!(prompt(&s[1]), "what is the total volume of the measuring cup? (Unit: g)\nAnswer the question using a single integer number.");
        assert!(prompt(&s[2]).ends_with("\nA. A\nB. B\nC. C\nD. D\nE. E\nAnswer with the option's letter from the given choices directly."));
        assert_eq!(crate::tasks::render(&crate::tasks::Task::MathVista.template_for(crate::Harness::Official, &s[1]), &s[1]), s[1].extra["query"]);
        let score = |x: &Sample, r: &str| crate::tasks::Task::MathVista.score(x, r, h).score;
        assert_eq!((score(&s[0], "1.20"), score(&s[0], "1.25"), score(&s[0], "1.26"), score(&s[0], "d = 1.2 m")), (1.0, 1.0, 0.0, 0.0), "round(1.25, 1) is 1.2");
        assert_eq!((score(&s[1], "1000"), score(&s[2], "E"), score(&s[2], "(E)")), (1.0, 1.0, 0.0), "\"(E)\" is no choice's text: only the judge extracts it");
    }

    #[test]
    fn reads_jsonl_and_names_bad_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = write(d.path(), "set.jsonl", "{\"id\": \"a\", \"images\": [\"img/1.png\"], \"question\": \"Q?\", \"answers\": [\"4\"], \"category\": \"bar\"}\n\n{\"id\": 2, \"images\": [], \"question\": \"Pick\", \"answers\": [\"B\"], \"options\": [\"x\", \"y\"]}\n");
        let s = jsonl(&p).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].images, [d.path().join("img/1.png")]);
        assert_eq!((s[1].id.as_str(), s[1].options.len()), ("2", 2));
        let bad = write(d.path(), "bad.jsonl", "{\"id\": 1, \"images\": [], \"question\": \"q\", \"answers\": []}\n{\"id\": 2, \"question\": \"no images\"}\n");
        let err = jsonl(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.jsonl") && err.contains("line 2"), "{err}");
        let err = chartqa(&d.path().join("missing.json"), d.path(), "human").unwrap_err().to_string();
        assert!(err.contains("missing.json"), "{err}");
    }
}
