//! ChartQA, DocVQA / InfoVQA, TextVQA, VQAv2 and OCRBench as their authors publish them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{id_text, read, sample, DataFile, DatasetError, Sample};

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

#[cfg(test)]
mod tests {
    use super::super::write;
    use super::*;

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
}
