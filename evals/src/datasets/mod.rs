//! Readers for the benchmark files as users download them, all into [`Sample`]s: documents and
//! open questions (`qa`), multiple choice and yes/no (`choice`), VLMEvalKit's TSVs (`tsv`), our
//! JSONL (here); the Hub's parquet forms are in [`crate::hf`].
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

mod choice;
mod qa;
mod tsv;

pub(crate) use choice::{scienceqa_category, MathVistaProblem};
pub use choice::{ai2d, mathvista, pope, scienceqa};
pub use qa::{chartqa, docvqa, docvqa_images, ocrbench, ocrbench_images, textvqa, vqav2};
pub(crate) use tsv::python_list;
pub use tsv::{circular, vlmevalkit_tsv};

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
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[cfg(test)]
mod tests {
    use super::*;

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

