//! Readers for the benchmark files as users download them, all into [`Sample`]s.
//!
//! | reader | file | images |
//! |---|---|---|
//! | [`chartqa`] | `test_human.json` / `test_augmented.json`: `[{imgname, query, label}]` | `png/{imgname}` |
//! | [`docvqa`] | DocVQA / InfoVQA: `{data: [{questionId, question, image, answers}]}` | `{image}` under a root |
//! | [`textvqa`] | `TextVQA_0.5.1_val.json`: `{data: [{question_id, question, image_id, answers}]}` | `{image_id}.jpg` |
//! | [`ocrbench`] | `OCRBench.json`: `[{id, dataset_name, image_path, question, answers (string or list), type}]` | `{image_path}` |
//! | [`jsonl`] | ours, one object per line: `{id, images, question, answers, category?, options?}` | paths relative to the file |

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One question of any benchmark.
#[derive(Debug, Clone, PartialEq)]
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
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    serde_json::from_str(&text).map_err(|e| DatasetError::Format { path: path.into(), message: e.to_string() })
}

fn sample(id: impl ToString, images: Vec<PathBuf>, question: String, answers: Vec<String>, category: Option<String>) -> Sample {
    Sample { id: id.to_string(), images, question, answers, category, options: Vec::new() }
}

/// ChartQA test file; `category` is the split name to report it under (e.g. "human").
pub fn chartqa(json: &Path, png_dir: &Path, category: &str) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    struct Row {
        imgname: String,
        query: String,
        label: String,
    }
    let rows: Vec<Row> = read(json)?;
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, r)| sample(format!("{category}-{i}"), vec![png_dir.join(&r.imgname)], r.query, vec![r.label], Some(category.into())))
        .collect())
}

/// DocVQA or InfographicVQA annotations (RRC JSON); image paths are relative to `image_root`.
pub fn docvqa(json: &Path, image_root: &Path) -> Result<Vec<Sample>, DatasetError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Row {
        question_id: serde_json::Value,
        question: String,
        image: String,
        #[serde(default)]
        answers: Vec<String>,
    }
    let file: DataFile<Row> = read(json)?;
    Ok(file.data.into_iter().map(|r| sample(id_text(&r.question_id), vec![image_root.join(r.image)], r.question, r.answers, None)).collect())
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
            sample(id_text(&r.id), vec![image_root.join(r.image_path)], r.question, answers, Some(r.kind))
        })
        .collect())
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
    let text = std::fs::read_to_string(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
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
