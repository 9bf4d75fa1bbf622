//! Offline evaluation data: a deterministic, seeded generator of chart QA items (bar, line and
//! pie charts) and OCR items (rendered words, numbers, short lines), in pure Rust with the
//! bundled DejaVu Sans. The same seed and counts give byte-identical files.
//!
//! Layout written under the output folder:
//!
//! | path | format | run it as |
//! |---|---|---|
//! | `chartqa/test_generated.json` + `chartqa/png/` | ChartQA (`imgname, query, label, type`) | task `chartqa` |
//! | `chartqa.jsonl` | our JSONL, the same questions | task `chartqa` |
//! | `ocr.jsonl` + `ocr/` | our JSONL, OCRBench's questions | task `ocrbench` |
//! | `pope/synth_pope_{adversarial,popular,random}.json` + `pope/scene_*.png` | POPE (`question_id, image, image_id, text, label`, one per line) | task `pope` |
//! | `scienceqa/problems.json` + `scienceqa/images/test/{pid}/image.png` | ScienceQA (`{pid: {question, choices, answer, hint, image, …, split}}`), the same scenes, and a text-only and a train question the reader skips | task `scienceqa` |
//! | `blink/synth_blink.tsv` | VLMEvalKit's BLINK TSV: two images per row as a Python list literal of base64 strings; which of two scenes has more shapes | task `blink` |
//! | `mmmu/synth_mmmu.tsv` | VLMEvalKit's MMMU TSV: `<image N>` in the question and options, a multiple-choice and an open question per pair of scenes, one `dev` row the reader leaves out | task `mmmu` |
//! | `mathvista/testmini.json` + `mathvista/images/{pid}.png` | MathVista (`{pid: {question, image, choices, unit, precision, answer, question_type, answer_type, query, metadata}}`): the MMBench questions as a free-form count (integer) and a multiple-choice colour | task `mathvista` |
//! | `mmbench/synth_mmbench.tsv` | VLMEvalKit's MMBench TSV without circular copies (`index, question, hint, A–D, answer, category, l2-category, image` as base64), the same scenes | task `mmbench` |

pub mod canvas;
pub mod charts;
pub mod ocr;
pub mod scenes;

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;

use crate::runner::EvalError;

/// How much to generate.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub seed: u64,
    /// Charts, cycling bar, line, pie.
    pub charts: usize,
    /// Bar charts of the quarters Q1–Q4 (after the others; 0 leaves every other item as it was).
    pub quarterly: usize,
    pub questions_per_chart: usize,
    /// OCR items, cycling word, number, line.
    pub ocr: usize,
    /// POPE scenes (each asked about twice per split).
    pub scenes: usize,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub chart_questions: usize,
    pub ocr_items: usize,
    pub pope_questions: usize,
    pub mmbench_questions: usize,
    pub scienceqa_questions: usize,
    pub blink_questions: usize,
    pub mmmu_questions: usize,
    pub mathvista_questions: usize,
    pub files: Vec<PathBuf>,
}

fn save_png(image: &image::RgbImage, path: &Path) -> Result<(), EvalError> {
    let io = |source| EvalError::Io { path: path.into(), source };
    std::fs::create_dir_all(path.parent().expect("files have a folder")).map_err(io)?;
    image.save_with_format(path, image::ImageFormat::Png).map_err(|e| io(std::io::Error::other(e)))
}

/// Where scene `i`'s picture is written (the POPE set's images; the other scene sets copy or
/// inline it).
fn scene_path(out: &Path, i: usize) -> PathBuf {
    out.join(format!("pope/scene_{i:04}.png"))
}

/// Scene `i`'s picture copied to `out/{rel}`.
fn copy_scene(out: &Path, i: usize, rel: &str) -> Result<PathBuf, EvalError> {
    let (src, dst) = (scene_path(out, i), out.join(rel));
    std::fs::create_dir_all(dst.parent().expect("files have a folder")).map_err(|source| EvalError::Io { path: dst.clone(), source })?;
    std::fs::copy(&src, &dst).map_err(|source| EvalError::Io { path: src, source })?;
    Ok(dst)
}

fn write_text(path: &Path, text: String) -> Result<(), EvalError> {
    let io = |source| EvalError::Io { path: path.into(), source };
    std::fs::create_dir_all(path.parent().expect("files have a folder")).map_err(io)?;
    std::fs::write(path, text).map_err(io)
}

/// Generates the data set described by `spec` into `out`.
pub fn generate(out: &Path, spec: Spec) -> Result<Written, EvalError> {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let mut files = Vec::new();
    let (mut chartqa, mut chart_lines) = (Vec::new(), String::new());
    let kinds = (0..spec.charts).map(|i| charts::Kind::ALL[i % 3]).chain(std::iter::repeat_n(charts::Kind::Quarterly, spec.quarterly));
    for (i, kind) in kinds.enumerate() {
        let chart = charts::random_chart(&mut rng, kind);
        let name = format!("{}_{i:04}.png", kind.name());
        let path = out.join("chartqa/png").join(&name);
        save_png(&charts::render(&chart), &path)?;
        files.push(path);
        for q in charts::questions(&chart, &mut rng, spec.questions_per_chart) {
            let id = format!("{}-{}", kind.name(), chartqa.len());
            // Scored per chart kind and per question family (`bar,highest`).
            let category = format!("{},{}", kind.name(), q.family);
            let row = json!({"id": id, "images": [format!("chartqa/png/{name}")], "question": q.query, "answers": [q.label], "category": category});
            chart_lines += &(row.to_string() + "\n");
            chartqa.push(json!({"imgname": name, "query": q.query, "label": q.label, "type": category}));
        }
    }
    let mut ocr_lines = String::new();
    for i in 0..spec.ocr {
        let kind = ocr::Kind::ALL[i % 3];
        let item = ocr::random_item(&mut rng, kind);
        let rel = format!("ocr/{}_{i:04}.png", kind.name());
        save_png(&item.image, &out.join(&rel))?;
        files.push(out.join(&rel));
        let row = json!({"id": format!("ocr-{i}"), "images": [rel], "question": item.question, "answers": [item.answer], "category": kind.name()});
        ocr_lines += &(row.to_string() + "\n");
    }
    // Drawn after the charts and OCR items, so that their files do not depend on `scenes`.
    let scenes: Vec<scenes::Scene> = (0..spec.scenes).map(|_| scenes::random_scene(&mut rng)).collect();
    for (i, scene) in scenes.iter().enumerate() {
        let path = scene_path(out, i);
        save_png(&scenes::render(scene, &mut rng), &path)?;
        files.push(path);
    }
    let questions = scenes::questions(&scenes, &mut rng);
    for split in scenes::SPLITS.into_iter().filter(|_| spec.scenes > 0) {
        let lines: String = questions
            .iter()
            .filter(|q| q.split == split)
            .enumerate()
            .map(|(id, q)| {
                let row = json!({"question_id": id, "image": format!("scene_{:04}.png", q.scene), "image_id": q.scene, "text": q.text, "label": q.label});
                row.to_string() + "\n"
            })
            .collect();
        let path = out.join(format!("pope/synth_pope_{split}.json"));
        write_text(&path, lines)?;
        files.push(path);
    }
    let choices = scenes::choices(&scenes, &mut rng);
    if spec.scenes > 0 {
        let path = out.join("mmbench/synth_mmbench.tsv");
        write_text(&path, mmbench_tsv(out, &choices)?)?;
        files.push(path);
    }
    let science = scenes::shape_of_colour(&scenes, &mut rng);
    if spec.scenes > 0 {
        files.extend(scienceqa(out, &science)?);
    }
    let pairs = scenes::more_shapes(&scenes);
    if spec.scenes > 0 {
        let path = out.join("blink/synth_blink.tsv");
        write_text(&path, blink_tsv(out, &pairs)?)?;
        files.push(path);
    }
    if spec.scenes > 0 {
        let path = out.join("mmmu/synth_mmmu.tsv");
        write_text(&path, mmmu_tsv(out, &scenes, &pairs)?)?;
        files.push(path);
    }
    if spec.scenes > 0 {
        files.extend(mathvista(out, &choices)?);
    }
    if spec.charts + spec.quarterly > 0 {
        let path = out.join("chartqa/test_generated.json");
        write_text(&path, serde_json::to_string_pretty(&chartqa).expect("json") + "\n")?;
        files.push(path);
        write_text(&out.join("chartqa.jsonl"), chart_lines)?;
        files.push(out.join("chartqa.jsonl"));
    }
    if spec.ocr > 0 {
        write_text(&out.join("ocr.jsonl"), ocr_lines)?;
        files.push(out.join("ocr.jsonl"));
    }
    Ok(Written { chart_questions: chartqa.len(), ocr_items: spec.ocr, pope_questions: questions.len(), mmbench_questions: choices.len(), scienceqa_questions: science.len(), blink_questions: pairs.len(), mmmu_questions: 2 * pairs.len(), mathvista_questions: choices.len(), files })
}

/// MathVista's layout: `testmini.json` keyed by pid (from 1) and `images/{pid}.png`; count
/// questions free-form with an integer answer, colour questions multiple-choice (the answer is
/// the choice's text), each with the `query` MathVista writes (its hint, the question, choices).
fn mathvista(out: &Path, questions: &[scenes::Choice]) -> Result<Vec<PathBuf>, EvalError> {
    let mut files = Vec::new();
    let mut problems = serde_json::Map::new();
    for (k, c) in questions.iter().enumerate() {
        let pid = (k + 1).to_string();
        files.push(copy_scene(out, c.scene, &format!("mathvista/images/{pid}.png"))?);
        let metadata = json!({"split": "testmini", "language": "english", "img_width": 448, "img_height": 336, "source": "phi3v-synth",
                              "category": "general-vqa", "task": if c.category == "count" { "visual question answering" } else { "figure question answering" },
                              "context": "synthetic scene", "grade": "elementary school", "skills": [if c.category == "count" { "arithmetic reasoning" } else { "logical reasoning" }]});
        let record = if c.category == "count" {
            let query = format!("Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.\nQuestion: {}", c.question);
            json!({"question": c.question, "image": format!("images/{pid}.png"), "choices": null, "unit": null, "precision": null, "answer": c.options[c.answer],
                   "question_type": "free_form", "answer_type": "integer", "pid": pid, "metadata": metadata, "query": query})
        } else {
            let listed: Vec<String> = c.options.iter().enumerate().map(|(i, o)| format!("({}) {o}", (b'A' + i as u8) as char)).collect();
            let query = format!("Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\nQuestion: {}\nChoices:\n{}", c.question, listed.join("\n"));
            json!({"question": c.question, "image": format!("images/{pid}.png"), "choices": c.options, "unit": null, "precision": null, "answer": c.options[c.answer],
                   "question_type": "multi_choice", "answer_type": "text", "pid": pid, "metadata": metadata, "query": query})
        };
        problems.insert(pid, record);
    }
    let path = out.join("mathvista/testmini.json");
    write_text(&path, serde_json::to_string_pretty(&problems).expect("json") + "\n")?;
    files.push(path);
    Ok(files)
}

/// ScienceQA's layout: `problems.json` (pids from 1; the scene questions in the test split with
/// their image copied to `images/test/{pid}/image.png`, every other one with a hint, then one
/// text-only test question and one train question, which the image-test reader leaves out).
fn scienceqa(out: &Path, questions: &[(usize, &str, usize)]) -> Result<Vec<PathBuf>, EvalError> {
    let mut files = Vec::new();
    let mut problems = serde_json::Map::new();
    let problem = |question: String, hint: &str, image: Option<&str>, answer: usize, split: &str| {
        json!({"question": question, "choices": scenes::shape_names(), "answer": answer, "hint": hint, "image": image, "task": "closed choice",
               "grade": "grade2", "subject": "natural science", "topic": "shapes", "category": "Identify shapes", "skill": "Identify shapes by colour",
               "lecture": "", "solution": "", "split": split})
    };
    for (k, &(scene, colour, shape)) in questions.iter().enumerate() {
        let pid = (k + 1).to_string();
        files.push(copy_scene(out, scene, &format!("scienceqa/images/test/{pid}/image.png"))?);
        let hint = if k % 2 == 0 { "The picture shows a few coloured shapes." } else { "" };
        problems.insert(pid, problem(format!("Which shape is {colour}?"), hint, Some("image.png"), shape, "test"));
    }
    let n = questions.len();
    problems.insert((n + 1).to_string(), problem("Which shape has three sides?".into(), "", None, 2, "test"));
    problems.insert((n + 2).to_string(), problem("Which shape has no corners?".into(), "", Some("image.png"), 0, "train"));
    let path = out.join("scienceqa/problems.json");
    write_text(&path, serde_json::to_string_pretty(&problems).expect("json") + "\n")?;
    files.push(path);
    Ok(files)
}

fn scene_base64(out: &Path, scene: usize) -> Result<String, EvalError> {
    use base64::Engine;
    let png = scene_path(out, scene);
    let bytes = std::fs::read(&png).map_err(|source| EvalError::Io { path: png.clone(), source })?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// The two-scene questions as a BLINK TSV (`index, question, A, B, answer, category, image`,
/// the image a Python list literal of both scenes' base64).
fn blink_tsv(out: &Path, pairs: &[(usize, usize, usize)]) -> Result<String, EvalError> {
    let mut w = csv::WriterBuilder::new().delimiter(b'\t').from_writer(Vec::new());
    w.write_record(["index", "question", "A", "B", "answer", "category", "image"]).expect("writing to memory");
    for (index, &(a, b, answer)) in pairs.iter().enumerate() {
        let image = format!("['{}', '{}']", scene_base64(out, a)?, scene_base64(out, b)?);
        let letter = if answer == 0 { "A" } else { "B" };
        let row = [&index.to_string(), "Which image has more shapes?", "the first image", "the second image", letter, "Counting", &image];
        w.write_record(row).expect("writing to memory");
    }
    Ok(String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out"))
}

/// MMMU-style rows (`index, question, A, B, answer, category, split, image`): per pair of scenes
/// "which has more shapes" with both images named in the question and the options, and "how
/// many shapes" about the first (open: no options); then one `dev` copy of the first row.
fn mmmu_tsv(out: &Path, scenes: &[scenes::Scene], pairs: &[(usize, usize, usize)]) -> Result<String, EvalError> {
    let mut w = csv::WriterBuilder::new().delimiter(b'\t').from_writer(Vec::new());
    w.write_record(["index", "question", "A", "B", "answer", "category", "split", "image"]).expect("writing to memory");
    let mut rows: Vec<[String; 8]> = Vec::new();
    for &(a, b, answer) in pairs {
        let both = format!("['{}', '{}']", scene_base64(out, a)?, scene_base64(out, b)?);
        let letter = if answer == 0 { "A" } else { "B" };
        let question = "Which picture shows more shapes, <image 1> or <image 2>?";
        rows.push([rows.len().to_string(), question.into(), "<image 1>".into(), "<image 2>".into(), letter.into(), "Counting".into(), "validation".into(), both]);
        let count = scenes[a].objects.len().to_string();
        let one = format!("['{}']", scene_base64(out, a)?);
        rows.push([rows.len().to_string(), "How many shapes are there in <image 1>?".into(), String::new(), String::new(), count, "Counting".into(), "validation".into(), one]);
    }
    if let Some(first) = rows.first().cloned() {
        rows.push([rows.len().to_string(), first[1].clone(), first[2].clone(), first[3].clone(), first[4].clone(), first[5].clone(), "dev".into(), first[7].clone()]);
    }
    for row in rows {
        w.write_record(&row).expect("writing to memory");
    }
    Ok(String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out"))
}

/// The multiple-choice questions as an MMBench TSV, each scene's PNG (already written under
/// `out/pope/`) inlined as base64 in its first row; later rows give that row's index instead, as
/// VLMEvalKit's files do.
fn mmbench_tsv(out: &Path, choices: &[scenes::Choice]) -> Result<String, EvalError> {
    let mut w = csv::WriterBuilder::new().delimiter(b'\t').from_writer(Vec::new());
    let record = |w: &mut csv::Writer<Vec<u8>>, row: &[&str]| w.write_record(row).expect("writing to memory");
    record(&mut w, &["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "l2-category", "image"]);
    let mut first_row: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for (index, c) in choices.iter().enumerate() {
        let image = match first_row.get(&c.scene) {
            Some(row) => row.to_string(),
            None => {
                first_row.insert(c.scene, index);
                scene_base64(out, c.scene)?
            }
        };
        let answer = ((b'A' + c.answer as u8) as char).to_string();
        let [a, b, cc, d] = &c.options;
        let (index, hint) = (index.to_string(), c.hint.clone().unwrap_or_default());
        record(&mut w, &[&index, &c.question, &hint, a, b, cc, d, &answer, c.category, "perception", &image]);
    }
    Ok(String::from_utf8(w.into_inner().expect("in memory")).expect("utf-8 in, utf-8 out"))
}

/// The set committed in `assets/evals/` (README: "Offline data").
pub const ASSETS_SPEC: Spec = Spec { seed: 2026, charts: 6, quarterly: 0, questions_per_chart: 3, ocr: 6, scenes: 6 };

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::Task;

    #[test]
    fn the_committed_assets_are_what_the_generator_writes() {
        let assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/evals");
        let dir = tempfile::tempdir().unwrap();
        let written = generate(dir.path(), ASSETS_SPEC).unwrap();
        for f in &written.files {
            let rel = f.strip_prefix(dir.path()).unwrap();
            let committed = std::fs::read(assets.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
            assert!(committed == std::fs::read(f).unwrap(), "{} differs: run `phi3v eval generate --out assets/evals --seed 2026 --charts 6 --ocr 6 --scenes 6`", rel.display());
        }
    }

    #[test]
    fn same_seed_same_bytes_and_the_readers_take_the_files() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let spec = Spec { seed: 5, charts: 4, quarterly: 0, questions_per_chart: 2, ocr: 3, scenes: 2 };
        let wa = generate(a.path(), spec).unwrap();
        let wb = generate(b.path(), spec).unwrap();
        assert_eq!((wa.chart_questions, wa.pope_questions, wa.files.len()), (8, 12, 4 + 3 + 2 + 3 + 1 + wa.scienceqa_questions + 1 + 1 + 1 + wa.mathvista_questions + 1 + 3));
        let mmbench = Task::MmBench.load(&a.path().join("mmbench/synth_mmbench.tsv"), None).unwrap();
        assert_eq!(mmbench.iter().filter(|s| s.group.as_ref() == Some(&s.id)).count(), wa.mmbench_questions);
        assert_eq!(mmbench.len(), 4 * wa.mmbench_questions, "three rotated copies of each four-option question");
        assert!(mmbench[0].hint.is_some() && mmbench[0].images[0].is_file());
        let science = Task::ScienceQa.load(&a.path().join("scienceqa"), None).unwrap();
        assert_eq!(science.len(), wa.scienceqa_questions, "test questions with an image only");
        assert!(science.iter().all(|s| s.images[0].is_file() && s.options.len() == 3));
        let blink = Task::Blink.load(&a.path().join("blink/synth_blink.tsv"), None).unwrap();
        assert_eq!(blink.len(), wa.blink_questions);
        assert!(blink.iter().all(|s| s.images.len() == 2 && s.images.iter().all(|i| i.is_file())));
        let mmmu = Task::Mmmu.load(&a.path().join("mmmu/synth_mmmu.tsv"), None).unwrap();
        assert_eq!(mmmu.len(), wa.mmmu_questions, "validation rows only");
        assert!(mmmu[1].options.is_empty() && mmmu[1].images.len() == 1);
        let mathvista = Task::MathVista.load(&a.path().join("mathvista/testmini.json"), None).unwrap();
        assert_eq!(mathvista.len(), wa.mathvista_questions);
        assert!(mathvista.iter().all(|s| s.images[0].is_file() && s.extra.contains_key("query")));
        for (fa, fb) in wa.files.iter().zip(&wb.files) {
            assert_eq!(std::fs::read(fa).unwrap(), std::fs::read(fb).unwrap(), "{}", fa.display());
        }
        let other = tempfile::tempdir().unwrap();
        let wc = generate(other.path(), Spec { seed: 6, ..spec }).unwrap();
        assert_ne!(std::fs::read(&wa.files[0]).unwrap(), std::fs::read(&wc.files[0]).unwrap());

        let from_json = Task::ChartQa.load(&a.path().join("chartqa/test_generated.json"), None).unwrap();
        let from_jsonl = Task::ChartQa.load(&a.path().join("chartqa.jsonl"), None).unwrap();
        assert_eq!(from_json.len(), 8);
        for (x, y) in from_json.iter().zip(&from_jsonl) {
            assert_eq!((&x.images, &x.question, &x.answers, &x.category), (&y.images, &y.question, &y.answers, &y.category));
            assert!(x.images[0].is_file());
        }
        let ocr = Task::OcrBench.load(&a.path().join("ocr.jsonl"), None).unwrap();
        assert_eq!(ocr.iter().map(|s| s.category.clone().unwrap()).collect::<Vec<_>>(), ["word", "number", "line"]);
        assert!(ocr[1].answers[0].chars().all(|c| c.is_ascii_digit()));
    }
}
