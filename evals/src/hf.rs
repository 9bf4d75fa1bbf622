//! Benchmarks as the Hugging Face Hub publishes them: parquet files of rows whose images are
//! `{bytes, path}` structs (the `datasets` library's `Image` feature).
//!
//! | reader | files | images |
//! |---|---|---|
//! | [`mmmu`] | `MMMU/MMMU`: `{Subject}/validation-00000-of-00001.parquet` (or `lmms-lab/MMMU`'s single file): `id, question, options (a Python list literal), image_1 … image_7, answer, question_type, …` | written once to a folder |
//! | [`blink`] | `BLINK-Benchmark/BLINK`: `{Sub_task}/val-00000-of-00001.parquet`: `idx, question, sub_task, image_1 … image_4, choices, answer ("(A)"), prompt, explanation` | written once to a folder |

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

/// Writes a row's `image_1`, `image_2`, … (up to the first empty one) as `{dir}/{id}_{k}.png`
/// or `.jpg` (by the bytes' signature), once.
fn write_images(row: &Row, id: &str, dir: &Path, file: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if id.is_empty() || !id.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) || id.starts_with('.') {
        return Err(DatasetError::Format { path: file.into(), message: format!("id {id:?} is not a plain name (letters, digits, - _ .)") });
    }
    std::fs::create_dir_all(dir).map_err(|source| DatasetError::Io { path: dir.into(), source })?;
    let mut paths = Vec::new();
    for k in 1.. {
        let Some(bytes) = row.get(&format!("image_{k}")).and_then(Cell::image_bytes) else { break };
        let ext = if bytes.starts_with(&[0xFF, 0xD8]) { "jpg" } else { "png" };
        let out = dir.join(format!("{id}_{k}.{ext}"));
        if !out.exists() {
            std::fs::write(&out, bytes).map_err(|source| DatasetError::Io { path: out.clone(), source })?;
        }
        paths.push(out);
    }
    Ok(paths)
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
    let mut samples = Vec::new();
    for file in files(path, "validation")? {
        for row in rows(&file)? {
            let id = text(&row, "id", &file)?;
            let options = row.get("options").and_then(Cell::text).and_then(python_list).unwrap_or_default();
            let subject = id.split_once('_').and_then(|(_, rest)| rest.rsplit_once('_')).map(|(s, _)| s.to_string());
            let discipline = subject.as_deref().and_then(|s| DISCIPLINES.iter().find(|(_, subs)| subs.contains(&s)).map(|(d, _)| *d));
            let category = match (discipline, &subject) {
                (Some(d), Some(s)) => Some(format!("{d},{s}")),
                (None, s) => s.clone(),
                (Some(d), None) => Some(d.to_string()),
            };
            let images = write_images(&row, &id, image_dir, &file)?;
            samples.push(Sample {
                id,
                images,
                question: text(&row, "question", &file)?,
                answers: vec![text(&row, "answer", &file)?],
                category,
                options,
                ..Default::default()
            });
        }
    }
    Ok(samples)
}

/// BLINK from the Hub (`BLINK-Benchmark/BLINK`'s val files, or one file): choices, the answer
/// letter out of `(X)`, BLINK's own `prompt` kept as the sample's `query`, images `image_1…`;
/// the category is the sub-task.
pub fn blink(path: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    let mut samples = Vec::new();
    for file in files(path, "val")? {
        for row in rows(&file)? {
            let id = text(&row, "idx", &file)?;
            let options: Vec<String> = match row.get("choices") {
                Some(Cell::List(items)) => items.iter().filter_map(Cell::text).map(str::to_string).collect(),
                _ => return Err(DatasetError::Format { path: file.clone(), message: format!("{id}: no `choices` list") }),
            };
            let images = write_images(&row, &id, image_dir, &file)?;
            let mut s = Sample {
                id,
                images,
                question: text(&row, "question", &file)?,
                answers: vec![text(&row, "answer", &file)?.trim_matches(['(', ')']).to_string()],
                category: row.get("sub_task").and_then(Cell::text).map(str::to_string),
                options,
                ..Default::default()
            };
            if let Some(prompt) = row.get("prompt").and_then(Cell::text) {
                s.extra.insert("query".into(), prompt.to_string());
            }
            samples.push(s);
        }
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::{render, Task};
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
}
