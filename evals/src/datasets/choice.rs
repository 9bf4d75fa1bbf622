//! POPE, ScienceQA, MathVista and AI2D as their authors publish them.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{id_text, read, read_text, sample, DatasetError, Sample};

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

#[cfg(test)]
mod tests {
    use super::super::write;
    use super::*;
    use crate::datasets::*;

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
        let lmms = crate::template::render(&crate::tasks::Task::ScienceQa.default_template(crate::Harness::LmmsEval), &s[0]);
        assert_eq!(lmms, "Context: Look at the map.\nWhich is farthest north?\nA. Florida\nB. Ohio\nC. Maine\nAnswer with the option's letter from the given choices directly.");
        write(&dir, "problems.json", &format!(r#"{{"1": {}}}"#, record("q", r#""image.png""#, "", "grade1", "natural science", "test").replace(r#""answer": 2"#, r#""answer": 3"#)));
        assert!(scienceqa(&dir, None).unwrap_err().to_string().contains("problem 1: answer 3 but 3 choices"));
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
        let prompt = |x: &Sample| crate::template::render(&crate::tasks::Task::MathVista.template_for(h, x), x);
        assert_eq!(prompt(&s[1]), "what is the total volume of the measuring cup? (Unit: g)\nAnswer the question using a single integer number.");
        assert!(prompt(&s[2]).ends_with("\nA. A\nB. B\nC. C\nD. D\nE. E\nAnswer with the option's letter from the given choices directly."));
        assert_eq!(crate::template::render(&crate::tasks::Task::MathVista.template_for(crate::Harness::Official, &s[1]), &s[1]), s[1].extra["query"]);
        let score = |x: &Sample, r: &str| crate::tasks::Task::MathVista.score(x, r, h).score;
        assert_eq!((score(&s[0], "1.20"), score(&s[0], "1.25"), score(&s[0], "1.26"), score(&s[0], "d = 1.2 m")), (1.0, 1.0, 0.0, 0.0), "round(1.25, 1) is 1.2");
        assert_eq!((score(&s[1], "1000"), score(&s[2], "E"), score(&s[2], "(E)")), (1.0, 1.0, 0.0), "\"(E)\" is no choice's text: only the judge extracts it");
    }
}
