//! Benchmarks as the Hugging Face Hub publishes them: parquet files of rows whose images are
//! `{bytes, path}` structs (the `datasets` library's `Image` feature).
//!
//! | reader | files | images |
//! |---|---|---|
//! | [`mmmu`] | `MMMU/MMMU`: `{Subject}/validation-00000-of-00001.parquet` (or `lmms-lab/MMMU`'s single file): `id, question, options (a Python list literal), image_1 … image_7, answer, question_type, …` | written once to a folder |
//! | [`blink`] | `BLINK-Benchmark/BLINK`: `{Sub_task}/val-00000-of-00001.parquet`: `idx, question, sub_task, image_1 … image_4, choices, answer ("(A)"), prompt, explanation` | written once to a folder |
//! | [`pope`] | `lmms-lab/POPE`: `data/test-*.parquet`: `id, question_id, question, answer, image_source, image, category` | written once to a folder |
//! | [`scienceqa`] | `lmms-lab/ScienceQA`: `ScienceQA-IMG/test-*.parquet`: `question, choices, answer (index), hint, image, task, grade, subject, …` | written once to a folder |
//! | [`mathvista`] | `AI4Math/MathVista`: `data/testmini-*.parquet`: `pid, question, image (its path), decoded_image, choices, unit, precision, answer, question_type, answer_type, metadata, query` | written once to a folder |
//! | [`mmbench`] | `lmms-lab/MMBench`: `en/dev-*.parquet`: `index, question, hint, answer, A–D, category, image, source, L2-category, comment, split` (with the rotated copies) | written once to a folder |

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;

use crate::datasets::{python_list, DatasetError, Sample};

/// One value of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Text(String),
    Bytes(Vec<u8>),
    Number(f64),
    List(Vec<Cell>),
    Struct(BTreeMap<String, Cell>),
}

impl Cell {
    fn from_field(field: &Field) -> Cell {
        match field {
            Field::Null => Cell::Null,
            Field::Str(s) => Cell::Text(s.clone()),
            Field::Bytes(b) => Cell::Bytes(b.data().to_vec()),
            Field::Bool(b) => Cell::Number(f64::from(u8::from(*b))),
            Field::Byte(x) => Cell::Number(f64::from(*x)),
            Field::Short(x) => Cell::Number(f64::from(*x)),
            Field::Int(x) => Cell::Number(f64::from(*x)),
            Field::Long(x) => Cell::Number(*x as f64),
            Field::UByte(x) => Cell::Number(f64::from(*x)),
            Field::UShort(x) => Cell::Number(f64::from(*x)),
            Field::UInt(x) => Cell::Number(f64::from(*x)),
            Field::ULong(x) => Cell::Number(*x as f64),
            Field::Float(x) => Cell::Number(f64::from(*x)),
            Field::Double(x) => Cell::Number(*x),
            Field::Group(row) => Cell::Struct(row.get_column_iter().map(|(k, v)| (k.clone(), Cell::from_field(v))).collect()),
            Field::ListInternal(list) => Cell::List(list.elements().iter().map(Cell::from_field).collect()),
            other => Cell::Text(other.to_string()),
        }
    }

    /// The text of a string cell.
    pub fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The strings of a list cell (`Sequence(string)`).
    pub fn texts(&self) -> Option<Vec<String>> {
        match self {
            Cell::List(items) => Some(items.iter().filter_map(Cell::text).map(str::to_string).collect()),
            _ => None,
        }
    }

    /// The encoded image of an `Image` cell (`{bytes, path}`).
    pub fn image_bytes(&self) -> Option<&[u8]> {
        match self {
            Cell::Struct(fields) => match fields.get("bytes") {
                Some(Cell::Bytes(b)) if !b.is_empty() => Some(b),
                _ => None,
            },
            _ => None,
        }
    }
}

/// A row: column name → value.
pub type Row = BTreeMap<String, Cell>;

/// Every row of a parquet file.
pub fn rows(path: &Path) -> Result<Vec<Row>, DatasetError> {
    let bad = |message: String| DatasetError::Format { path: path.into(), message };
    let file = std::fs::File::open(path).map_err(|source| DatasetError::Io { path: path.into(), source })?;
    let reader = SerializedFileReader::new(file).map_err(|e| bad(format!("not a parquet file: {e}")))?;
    let iter = reader.get_row_iter(None).map_err(|e| bad(e.to_string()))?;
    iter.map(|row| {
        let row = row.map_err(|e| bad(e.to_string()))?;
        Ok(row.get_column_iter().map(|(k, v)| (k.clone(), Cell::from_field(v))).collect())
    })
    .collect()
}

/// The parquet files to read: `path` itself, or those under the folder `path` (one level of
/// per-subject folders, as the Hub lays them out) whose names start with `split`, in name order.
fn files(path: &Path, split: &str) -> Result<Vec<PathBuf>, DatasetError> {
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let list = |dir: &Path| -> Result<Vec<PathBuf>, DatasetError> {
        let entries = std::fs::read_dir(dir).map_err(|source| DatasetError::Io { path: dir.into(), source })?;
        Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
    };
    let mut found = Vec::new();
    for entry in list(path)? {
        let candidates = if entry.is_dir() { list(&entry)? } else { vec![entry] };
        found.extend(candidates.into_iter().filter(|f| {
            let name = f.file_name().map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            name.starts_with(split) && name.ends_with(".parquet")
        }));
    }
    found.sort();
    if found.is_empty() {
        return Err(DatasetError::Format { path: path.into(), message: format!("no {split}-*.parquet files in it or its subject folders") });
    }
    Ok(found)
}

fn plain_name(id: &str, file: &Path) -> Result<(), DatasetError> {
    if id.is_empty() || !id.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) || id.starts_with('.') {
        return Err(DatasetError::Format { path: file.into(), message: format!("id {id:?} is not a plain name (letters, digits, - _ .)") });
    }
    Ok(())
}

/// Every row of the `split` files under `path` (see [`files`]) made into a sample by `make`,
/// which gets the row's position among all of them and its file.
fn samples(path: &Path, split: &str, mut make: impl FnMut(usize, Row, &Path) -> Result<Sample, DatasetError>) -> Result<Vec<Sample>, DatasetError> {
    let mut out = Vec::new();
    for file in files(path, split)? {
        for row in rows(&file)? {
            out.push(make(out.len(), row, &file)?);
        }
    }
    Ok(out)
}

/// Writes encoded image bytes as `{dir}/{name}.png` or `.jpg` (by the bytes' signature), once.
fn save(bytes: &[u8], dir: &Path, name: &str) -> Result<PathBuf, DatasetError> {
    std::fs::create_dir_all(dir).map_err(|source| DatasetError::Io { path: dir.into(), source })?;
    let ext = if bytes.starts_with(&[0xFF, 0xD8]) { "jpg" } else { "png" };
    let out = dir.join(format!("{name}.{ext}"));
    if !out.exists() {
        std::fs::write(&out, bytes).map_err(|source| DatasetError::Io { path: out.clone(), source })?;
    }
    Ok(out)
}

/// Writes a row's `image_1`, `image_2`, … (up to the first empty one) as `{id}_{k}`.
fn write_images(row: &Row, id: &str, dir: &Path, file: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    plain_name(id, file)?;
    let mut paths = Vec::new();
    for k in 1.. {
        let Some(bytes) = row.get(&format!("image_{k}")).and_then(Cell::image_bytes) else { break };
        paths.push(save(bytes, dir, &format!("{id}_{k}"))?);
    }
    Ok(paths)
}

/// Writes a row's one image column as `{name}`; an image the row lacks is an error.
fn write_image(row: &Row, column: &str, name: &str, dir: &Path, file: &Path) -> Result<PathBuf, DatasetError> {
    plain_name(name, file)?;
    let bytes = row.get(column).and_then(Cell::image_bytes).ok_or_else(|| DatasetError::Format { path: file.into(), message: format!("{name}: no image in `{column}`") })?;
    save(bytes, dir, name)
}

fn optional_text(row: &Row, column: &str) -> Option<String> {
    row.get(column).and_then(Cell::text).map(str::to_string).filter(|t| !t.is_empty() && t != "nan")
}

fn number(row: &Row, column: &str) -> Option<f64> {
    match row.get(column) {
        Some(Cell::Number(x)) => Some(*x),
        _ => None,
    }
}

fn text(row: &Row, column: &str, file: &Path) -> Result<String, DatasetError> {
    row.get(column).and_then(Cell::text).map(str::to_string).ok_or_else(|| DatasetError::Format { path: file.into(), message: format!("no text column `{column}`") })
}

/// MMMU's subjects by discipline (the benchmark's `DOMAIN_CAT2SUB_CAT`).
const DISCIPLINES: [(&str, &[&str]); 6] = [
    ("Art and Design", &["Art", "Art_Theory", "Design", "Music"]),
    ("Business", &["Accounting", "Economics", "Finance", "Manage", "Marketing"]),
    ("Science", &["Biology", "Chemistry", "Geography", "Math", "Physics"]),
    ("Health and Medicine", &["Basic_Medical_Science", "Clinical_Medicine", "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"]),
    ("Humanities and Social Science", &["History", "Literature", "Sociology", "Psychology"]),
    ("Tech and Engineering", &["Agriculture", "Architecture_and_Engineering", "Computer_Science", "Electronics", "Energy_and_Power", "Materials", "Mechanical_Engineering"]),
];

/// MMMU from the Hub (`MMMU/MMMU`'s validation files, or one file such as `lmms-lab/MMMU`'s):
/// options from the `options` list literal (none: an open question), images `image_1…` in
/// order, so that `<image N>` is image N. Categories: the discipline and the subject (from the
/// id, `validation_Art_Theory_12` → Art_Theory, as lmms-eval's `extract_subset_name`).
pub fn mmmu(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "validation", |_, row, file| {
        let id = text(&row, "id", file)?;
        let options = row.get("options").and_then(Cell::text).and_then(python_list).unwrap_or_default();
        let subject = id.split_once('_').and_then(|(_, rest)| rest.rsplit_once('_')).map(|(s, _)| s.to_string());
        let discipline = subject.as_deref().and_then(|s| DISCIPLINES.iter().find(|(_, subs)| subs.contains(&s)).map(|(d, _)| *d));
        let category = match (discipline, &subject) {
            (Some(d), Some(s)) => Some(format!("{d},{s}")),
            (None, s) => s.clone(),
            (Some(d), None) => Some(d.to_string()),
        };
        let images = write_images(&row, &id, image_dir, file)?;
        Ok(Sample {
            id,
            images,
            question: text(&row, "question", file)?,
            answers: vec![text(&row, "answer", file)?],
            category,
            options,
            ..Default::default()
        })
    })
}

/// BLINK from the Hub (`BLINK-Benchmark/BLINK`'s val files, or one file): choices, the answer
/// letter out of `(X)`, BLINK's own `prompt` kept as the sample's `query`, images `image_1…`;
/// the category is the sub-task.
pub fn blink(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "val", |_, row, file| {
        let id = text(&row, "idx", file)?;
        let options = row.get("choices").and_then(Cell::texts).ok_or_else(|| DatasetError::Format { path: file.to_path_buf(), message: format!("{id}: no `choices` list") })?;
        let images = write_images(&row, &id, image_dir, file)?;
        let mut s = Sample {
            id,
            images,
            question: text(&row, "question", file)?,
            answers: vec![text(&row, "answer", file)?.trim_matches(['(', ')']).to_string()],
            category: row.get("sub_task").and_then(Cell::text).map(str::to_string),
            options,
            ..Default::default()
        };
        if let Some(prompt) = row.get("prompt").and_then(Cell::text) {
            s.extra.insert("query".into(), prompt.to_string());
        }
        Ok(s)
    })
}

/// POPE as lmms-eval reads it (`lmms-lab/POPE`, the three COCO files in one table): ids
/// `{category}-{question_id}` as the authors' files give them.
pub fn pope(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "test", |_, row, file| {
        let category = text(&row, "category", file)?;
        let id = format!("{category}-{}", text(&row, "question_id", file)?);
        let image = write_image(&row, "image", &id, image_dir, file)?;
        Ok(Sample {
            images: vec![image],
            question: text(&row, "question", file)?,
            answers: vec![text(&row, "answer", file)?],
            category: Some(category),
            id,
            ..Default::default()
        })
    })
}

/// ScienceQA as lmms-eval reads it (`lmms-lab/ScienceQA`, `ScienceQA-IMG` test): rows carry no
/// pid, so the id is the row's position; categories as [`crate::datasets::scienceqa`].
pub fn scienceqa(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "test", |k, row, file| {
        let id = k.to_string();
        let options = row.get("choices").and_then(Cell::texts).unwrap_or_default();
        let answer = number(&row, "answer").map(|a| a as usize).filter(|&a| a < options.len());
        let Some(answer) = answer else {
            return Err(DatasetError::Format { path: file.to_path_buf(), message: format!("row {id}: the answer is not one of {} choices", options.len()) });
        };
        let hint = optional_text(&row, "hint");
        let category = crate::datasets::scienceqa_category(&text(&row, "subject", file)?, hint.is_some(), &text(&row, "grade", file)?);
        let image = write_image(&row, "image", &id, image_dir, file)?;
        Ok(Sample {
            images: vec![image],
            question: text(&row, "question", file)?,
            answers: vec![((b'A' + answer as u8) as char).to_string()],
            category: Some(category),
            options,
            hint,
            id,
            ..Default::default()
        })
    })
}

/// MathVista as the Hub serves it (`AI4Math/MathVista` testmini): the image from
/// `decoded_image`, the rest as [`crate::datasets::mathvista`] reads the JSON.
pub fn mathvista(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "testmini", |_, row, file| {
        let pid = text(&row, "pid", file)?;
        let image = write_image(&row, "decoded_image", &pid, image_dir, file)?;
        let (task, skills) = match row.get("metadata") {
            Some(Cell::Struct(m)) => {
                let skills = m.get("skills").and_then(Cell::texts).unwrap_or_default();
                (m.get("task").and_then(Cell::text).map(str::to_string), skills)
            }
            _ => (None, Vec::new()),
        };
        let choices = row.get("choices").and_then(Cell::texts).unwrap_or_default();
        let problem = crate::datasets::MathVistaProblem {
            pid,
            question: text(&row, "question", file)?,
            image,
            choices,
            unit: optional_text(&row, "unit"),
            precision: number(&row, "precision"),
            answer: optional_text(&row, "answer"),
            answer_type: text(&row, "answer_type", file)?,
            query: optional_text(&row, "query"),
            task,
            skills,
        };
        Ok(problem.into_sample())
    })
}

/// MMBench as lmms-eval reads it (`lmms-lab/MMBench`, `en` dev, the rotated copies included):
/// options A–D without the empty ones ("nan"), the hint likewise, category
/// `{L2-category},{category}`, the circular group the index modulo 10^6.
pub fn mmbench(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    samples(path, "dev", |_, row, file| {
        let index = number(&row, "index").map(|i| i as u64).ok_or_else(|| DatasetError::Format { path: file.to_path_buf(), message: "no numeric `index`".into() })?;
        let id = index.to_string();
        let image = write_image(&row, "image", &id, image_dir, file)?;
        let options: Vec<String> = ["A", "B", "C", "D"].iter().map_while(|c| optional_text(&row, c)).collect();
        let category = match (optional_text(&row, "L2-category"), optional_text(&row, "category")) {
            (Some(l2), Some(c)) => Some(format!("{l2},{c}")),
            (l2, c) => c.or(l2),
        };
        Ok(Sample {
            images: vec![image],
            question: text(&row, "question", file)?,
            answers: vec![text(&row, "answer", file)?],
            category,
            options,
            hint: optional_text(&row, "hint"),
            group: Some((index % 1_000_000).to_string()),
            id,
            ..Default::default()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Task;
    use crate::template::render;
    use crate::Harness;

    /// Files written by the `datasets` library with the datasets' declared features
    /// (`tests/hub/make_fixtures.py`).
    fn hub(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hub").join(rel)
    }

    #[test]
    fn reads_mmmu_as_the_hub_serves_it() {
        let d = tempfile::tempdir().unwrap();
        let s = mmmu(&hub("MMMU"), d.path()).unwrap();
        assert_eq!(s.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["validation_Art_Theory_1", "validation_Art_Theory_2"], "dev left out");
        assert_eq!((s[0].options.len(), s[0].answers[0].as_str(), s[0].category.as_deref()), (3, "A", Some("Art and Design,Art_Theory")));
        assert_eq!(s[0].images, [d.path().join("validation_Art_Theory_1_1.png"), d.path().join("validation_Art_Theory_1_2.png")]);
        assert_eq!(std::fs::read(&s[1].images[0]).unwrap()[..2], [0xFF, 0xD8], "a JPEG stays a JPEG");
        assert!(s[1].options.is_empty(), "the open question");
        // The Phi-3 setting: images where the question and the options name them.
        let (text, images) = Task::Mmmu.place_images(Harness::Official, &s[0], render(&Task::Mmmu.template_for(Harness::Official, &s[0]), &s[0]));
        assert!(text.starts_with("<|image_1|> Which painting in the options shares its palette?\nA. <|image_2|>\nB. a grey sketch"), "{text}");
        assert_eq!(images, s[0].images);
        let err = rows(&hub("../../../README.md")).unwrap_err().to_string();
        assert!(err.contains("not a parquet file"), "{err}");
    }

    #[test]
    fn reads_blink_as_the_hub_serves_it() {
        let d = tempfile::tempdir().unwrap();
        let s = Task::Blink.load(&hub("BLINK"), Some(d.path())).unwrap();
        assert_eq!((s.len(), s[0].images.len(), s[0].answers[0].as_str(), s[0].category.as_deref()), (1, 3, "A", Some("Art Style")));
        let prompt = render(&Task::Blink.default_template(Harness::LmmsEval), &s[0]);
        assert_eq!(prompt, "Note: You only need to respond with A, B without providing any additional information.\nWhich image shares the style of the first one?\nSelect from the following choices.\n(A) the second image\n(B) the third image");
        assert!(files(&hub("BLINK"), "test").unwrap_err().to_string().contains("no test-*.parquet files"));
    }

    #[test]
    fn reads_lmms_evals_hub_copies_of_pope_scienceqa_and_mmbench() {
        let d = tempfile::tempdir().unwrap();
        let pope = Task::Pope.load(&hub("POPE"), Some(d.path())).unwrap();
        assert_eq!(pope.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["adversarial-1", "random-1"]);
        assert_eq!((pope[1].answers[0].as_str(), pope[1].category.as_deref()), ("no", Some("random")));
        assert!(pope[0].images[0].ends_with("adversarial-1.jpg"));

        let sqa = Task::ScienceQa.load(&hub("ScienceQA"), Some(d.path())).unwrap();
        assert_eq!((sqa[0].answers[0].as_str(), sqa[0].options.len(), sqa[0].hint.clone(), sqa[0].category.as_deref()), ("A", 4, None, Some("SOC,G1-6")));

        let mm = Task::MmBench.load(&hub("MMBench"), Some(d.path())).unwrap();
        assert_eq!(mm.len(), 2, "the file's own rotated copy, no more");
        assert_eq!((mm[0].options.len(), mm[0].hint.clone(), mm[1].group.as_deref()), (3, None, Some("241")), "\"nan\" is no option and no hint");
        assert_eq!(mm[0].category.as_deref(), Some("coarse_perception,image_topic"));
    }

    #[test]
    fn reads_mathvista_as_the_hub_serves_it() {
        let d = tempfile::tempdir().unwrap();
        let s = Task::MathVista.load(&hub("MathVista"), Some(d.path())).unwrap();
        assert_eq!((s.len(), s[0].images[0].clone()), (2, d.path().join("1.jpg")));
        assert_eq!((s[0].extra["answer_type"].as_str(), s[0].options.len(), s[1].options.len()), ("integer", 0, 2));
        assert_eq!(s[0].category.as_deref(), Some("figure question answering,arithmetic reasoning,statistical reasoning"));
        assert!(s[1].extra["query"].ends_with("Choices:\n(A) red\n(B) blue"));
        assert_eq!(Task::MathVista.score(&s[1], "blue", Harness::LmmsEval).score, 1.0);
        assert_eq!(Task::MathVista.score(&s[0], "4", Harness::LmmsEval).score, 1.0);
    }
}
