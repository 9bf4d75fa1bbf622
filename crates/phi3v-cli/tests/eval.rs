//! `phi3v eval` end to end on the tiny fixture checkpoint and the generated set in
//! `assets/evals/`: a run writes every output file, a wider run only asks the new samples,
//! answers equal what `phi3v ask` gives for the same prompt, shards merge to the unsharded
//! result, and bad arguments give one clear error. (The tiny model's scores are meaningless.)

use std::path::{Path, PathBuf};

mod common;
use common::{assert_clean_error, fixture, phi3v, run};

fn asset(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/evals").join(rel).to_string_lossy().into_owned()
}

/// `eval run` over both generated tasks into `out`, with extra flags.
fn eval_run(out: &Path, extra: &[&str]) -> (String, String) {
    let model = fixture("tiny-phi35v");
    let (chart, ocr) = (format!("chartqa={}", asset("chartqa/test_generated.json")), format!("ocrbench={}", asset("ocr.jsonl")));
    let mut args = vec!["eval", "run", "--model", &model, "--task", &chart, "--task", &ocr, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&mut phi3v(&args));
    let (stdout, stderr) = (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
    assert!(o.status.success(), "{stderr}");
    (stdout, stderr)
}

/// `eval run` of the tiny model on one `NAME=PATH` task into `out`, with extra flags; the test
/// fails on an error.
fn run_task(task: &str, out: &Path, extra: &[&str]) {
    let model = fixture("tiny-phi35v");
    let mut args = vec!["eval", "run", "--model", &model, "--task", task, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = run(&mut phi3v(&args));
    assert!(o.status.success(), "{task} {extra:?}: {}", String::from_utf8_lossy(&o.stderr));
}

/// The `results.json` of the run in `out`.
fn results(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap()
}

/// A copy of a generated TSV in `dir`, so that the images it unpacks land there.
fn copied(dir: &Path, rel: &str) -> PathBuf {
    let to = dir.join(Path::new(rel).file_name().unwrap());
    std::fs::copy(asset(rel), &to).unwrap();
    to
}

fn lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn task_scores(path: &PathBuf) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    v["tasks"].clone()
}

#[test]
fn runs_resumes_and_writes_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    let (table, stderr) = eval_run(out, &["--limit", "3"]);
    assert!(stderr.contains("6 answers generated, 0 reused"), "{stderr}");
    assert!(table.contains("chartqa") && table.contains("ocrbench") && table.contains("relaxed accuracy"), "{table}");
    for f in ["predictions.jsonl", "results.json", "results.csv", "results-samples.jsonl", "results.svg"] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    let first = lines(&out.join("predictions.jsonl"));
    assert_eq!(first.len(), 6);
    let samples = lines(&out.join("results-samples.jsonl"));
    assert_eq!(samples.len(), 6);
    assert!(samples.iter().all(|s| s["score"].is_number() && s["extracted"].is_string()));

    // Wider: only the new samples are asked; the earlier lines stay as they were.
    let (_, stderr) = eval_run(out, &["--limit", "5"]);
    assert!(stderr.contains("4 answers generated, 6 reused"), "{stderr}");
    let second = lines(&out.join("predictions.jsonl"));
    assert_eq!((second.len(), &second[..6]), (10, &first[..]));

    // The eval answer is what `phi3v ask` says to the same prompt (same length limit).
    let p = &second[0];
    let image = asset("chartqa/png/bar_0000.png");
    let prompt = p["prompt"].as_str().unwrap();
    let max = p["max_new_tokens"].to_string();
    let o = run(&mut phi3v(&["ask", "--model", &fixture("tiny-phi35v"), "--image", &image, "--max-tokens", &max, "--json", prompt]));
    let asked: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(asked["answer"], p["response"]);
    assert!(prompt.ends_with("\nAnswer the question with a single word."), "{prompt}");

    // Two shards in another folder, then a scoring-only pass, give the same scores.
    let sharded = tempfile::tempdir().unwrap();
    for (shard, answers) in [("0/2", "6 answers"), ("1/2", "4 answers")] {
        let (_, stderr) = eval_run(sharded.path(), &["--limit", "5", "--shard", shard]);
        assert!(stderr.contains(&format!("{answers} generated, 0 reused")), "{stderr}");
    }
    assert!(sharded.path().join("predictions.shard-1-of-2.jsonl").is_file());
    let (chart, ocr) = (format!("chartqa={}", asset("chartqa/test_generated.json")), format!("ocrbench={}", asset("ocr.jsonl")));
    let args = ["eval", "score", "--task", &chart, "--task", &ocr, "--limit", "5", "--out", sharded.path().to_str().unwrap()];
    let o = run(&mut phi3v(&args));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(task_scores(&sharded.path().join("results.json")), task_scores(&out.join("results.json")));
}

#[test]
fn generate_writes_a_set_the_runner_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let o = run(&mut phi3v(&["eval", "generate", "--out", out, "--seed", "3", "--charts", "3", "--ocr", "3", "--scenes", "2"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("9 chart questions, 3 OCR items, 12 POPE, "));
    let set = format!("chartqa={}", dir.path().join("chartqa.jsonl").display());
    let o = run(&mut phi3v(&["eval", "score", "--task", &set, "--out", out]));
    assert_clean_error(&o, "no predictions");
}

#[test]
fn generated_charts_are_scored_per_kind_and_per_question_family() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    let o = run(&mut phi3v(&["eval", "generate", "--out", set.to_str().unwrap(), "--seed", "7", "--charts", "3", "--quarterly", "2",
        "--questions-per-chart", "9", "--ocr", "0", "--scenes", "0"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let task = format!("chartqa={}", set.join("chartqa.jsonl").display());
    let out = dir.path().join("run");
    let model = fixture("tiny-phi35v");
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", &task, "--out", out.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let tasks = task_scores(&out.join("results.json"));
    let total = tasks[0]["n"].as_u64().unwrap();
    let n = |names: &[&str]| -> u64 {
        let categories = tasks[0]["categories"].as_array().unwrap();
        names.iter().map(|name| categories.iter().find(|c| c["name"] == *name).map_or(0, |c| c["n"].as_u64().unwrap())).sum()
    };
    // Every question counts once among the chart kinds and once among the families.
    assert_eq!(n(&["bar", "line", "pie", "quarterly"]), total);
    let families = ["value", "highest", "lowest", "difference", "sum", "comparison", "count", "colour", "average"];
    assert_eq!(n(&families), total);
    assert_eq!(n(&["quarterly"]), 2 * 9);
    let asked = std::fs::read_to_string(set.join("chartqa.jsonl")).unwrap();
    assert!(asked.contains(r#""category":"quarterly,highest""#) && asked.contains("Which quarter had the highest "));

    // Quarterly charts alone.
    let only = dir.path().join("only");
    let o = run(&mut phi3v(&["eval", "generate", "--out", only.to_str().unwrap(), "--charts", "0", "--quarterly", "1", "--ocr", "0", "--scenes", "0"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read_to_string(only.join("chartqa.jsonl")).unwrap().lines().count(), 3);
}

#[test]
fn bad_eval_arguments_give_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let model = fixture("tiny-phi35v");
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", "mmvet=x.json", "--out", out]));
    assert_clean_error(&o, "unknown task \"mmvet\"");
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", "chartqa=/nonexistent/test_human.json", "--out", out]));
    assert_clean_error(&o, "/nonexistent/test_human.json");
    let broken = dir.path().join("set.jsonl");
    std::fs::write(&broken, r#"{"id": 1, "images": ["missing.png"], "question": "q", "answers": ["a"]}"#).unwrap();
    let task = format!("ocrbench={}", broken.display());
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", &task, "--out", out]));
    assert_clean_error(&o, "missing.png");
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", &task, "--out", out, "--shard", "2/2"]));
    assert_eq!(o.status.code(), Some(2), "clap rejects the shard");
}

#[test]
fn ai2d_folder_with_a_prompt_override() {
    let dir = tempfile::tempdir().unwrap();
    let ai2d = dir.path().join("ai2d");
    std::fs::create_dir_all(ai2d.join("questions")).unwrap();
    std::fs::create_dir_all(ai2d.join("images")).unwrap();
    std::fs::copy(asset("chartqa/png/pie_0002.png"), ai2d.join("images/1.png")).unwrap();
    let q = r#"{"imageName": "1.png", "questions": {"Which slice is largest?": {"abcLabel": false, "answerTexts": ["Apples", "Mangoes"], "correctAnswer": 1, "questionId": "1.png-0"}}}"#;
    std::fs::write(ai2d.join("questions/1.png.json"), q).unwrap();
    let out = dir.path().join("out");
    let task = format!("ai2d={}", ai2d.display());
    let args = ["eval", "run", "--model", &fixture("tiny-phi3v"), "--task", &task, "--num-crops", "4", "--max-tokens", "3"];
    let o = run(phi3v(&args).args(["--prompt", "ai2d={question}\\n{options}\\nLetter:", "--out", out.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p = &lines(&out.join("predictions.jsonl"))[0];
    assert_eq!(p["prompt"], "Which slice is largest?\nA. Apples\nB. Mangoes\nLetter:");
    assert_eq!(p["max_new_tokens"], 3);
    assert!(p["model"].as_str().unwrap().starts_with("tiny-phi3v@") && p["model"].as_str().unwrap().contains("crops=4"));
    let results = results(&out);
    assert_eq!((results["tasks"][0]["task"].as_str(), results["tasks"][0]["n"].as_u64()), (Some("ai2d"), Some(1)));
}

#[test]
fn scoring_under_another_harness_rescores_the_same_answers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    eval_run(out, &["--limit", "2"]);
    let before = std::fs::read_to_string(out.join("results.json")).unwrap();
    let chart = format!("chartqa={}", asset("chartqa/test_generated.json"));
    let score = |extra: &[&str]| {
        let mut args = vec!["eval", "score", "--task", &chart, "--limit", "2", "--out", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        run(&mut phi3v(&args))
    };
    // VLMEvalKit asks ChartQA with another suffix: the lmms-eval answers are scored under its
    // metric, and said to be.
    let o = score(&["--harness", "vlmevalkit"]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(table.contains("2 asked with another harness's prompt") && !table.contains("without a prediction"), "{table}");
    let tasks = task_scores(&out.join("results.json"));
    assert_eq!((tasks[0]["n"].as_u64(), tasks[0]["other_prompts"].as_u64()), (Some(2), Some(2)));
    let samples = lines(&out.join("results-samples.jsonl"));
    assert!(samples.iter().all(|s| s["other_prompt"] == true && s["prompt"].as_str().unwrap().ends_with("Answer the question with a single word.")));
    // Nothing to score (another model's answers only): refused, and the results are kept.
    std::fs::write(out.join("results.json"), &before).unwrap();
    let o = score(&["--model-key", "someone-else"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(out.join("results.json")).unwrap(), before);
    let ocr = format!("ocrbench={}", asset("ocr.jsonl"));
    let o = run(&mut phi3v(&["eval", "score", "--task", &ocr, "--offset", "4", "--out", out.to_str().unwrap()]));
    assert_clean_error(&o, "no predictions by");
    assert_eq!(std::fs::read_to_string(out.join("results.json")).unwrap(), before);
}

#[test]
fn vqav2_runs_from_the_published_files() {
    // Questions and annotations in VQAv2's published shapes, images as COCO names them.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("val2014")).unwrap();
    std::fs::copy(fixture("images/photo.jpg"), d.join("val2014/COCO_val2014_000000262148.jpg")).unwrap();
    let q = d.join("v2_OpenEnded_mscoco_val2014_questions.json");
    std::fs::write(&q, r#"{"info": {}, "task_type": "Open-Ended", "data_type": "mscoco", "license": {}, "data_subtype": "val2014", "questions": [{"image_id": 262148, "question": "Where is he looking?", "question_id": 262148000}]}"#).unwrap();
    let answers: Vec<String> = (1..=10).map(|i| format!(r#"{{"answer": "down", "answer_confidence": "yes", "answer_id": {i}}}"#)).collect();
    let a = format!(r#"{{"info": {{}}, "license": {{}}, "data_subtype": "val2014", "annotations": [{{"question_type": "none of the above", "multiple_choice_answer": "down", "answers": [{}], "image_id": 262148, "answer_type": "other", "question_id": 262148000}}]}}"#, answers.join(", "));
    std::fs::write(d.join("v2_mscoco_val2014_annotations.json"), a).unwrap();
    let (model, task, out) = (fixture("tiny-phi35v"), format!("vqav2={}", q.display()), d.join("run"));
    let o = run(&mut phi3v(&["eval", "run", "--model", &model, "--task", &task, "--out", out.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("vqav2"));
    let samples = lines(&out.join("results-samples.jsonl"));
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0]["normalised"].as_array().unwrap().len(), 11, "{}", samples[0]);
    let prediction = &lines(&out.join("predictions.jsonl"))[0];
    assert_eq!(prediction["prompt"], "Where is he looking?\nAnswer the question using a single word or phrase.");
    assert_eq!(prediction["max_new_tokens"], 16);
}

#[test]
fn shard_auto_reads_the_batch_system() {
    let dir = tempfile::tempdir().unwrap();
    let (model, ocr, out) = (fixture("tiny-phi35v"), format!("ocrbench={}", asset("ocr.jsonl")), dir.path().to_str().unwrap().to_string());
    let args = ["eval", "run", "--model", &model, "--task", &ocr, "--limit", "4", "--shard", "auto", "--out", &out];
    let o = run(phi3v(&args).env("SLURM_ARRAY_TASK_ID", "2").env("SLURM_ARRAY_TASK_COUNT", "2").env("SLURM_ARRAY_TASK_MIN", "1"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&dir.path().join("predictions.shard-1-of-2.jsonl")).len(), 2);
    let o = run(phi3v(&["eval", "run", "--model", &model, "--task", &ocr, "--shard", "auto", "--out", &out]).env("JOB_COMPLETION_INDEX", "0"));
    // A usage error, as for any bad flag value.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.starts_with("error: ") && stderr.contains("give it, --shard auto/N") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn report_sets_runs_beside_the_model_cards() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    eval_run(&a, &["--limit", "2"]);
    let chart = format!("chartqa={}", asset("chartqa/test_generated.json"));
    let o = run(&mut phi3v(&["eval", "score", "--task", &chart, "--limit", "2", "--harness", "vlmevalkit", "--out", a.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(a.join("results.json"), b.join("results.json")).unwrap();
    eval_run(&a, &["--limit", "2"]);
    let out = dir.path().join("report");
    let o = run(&mut phi3v(&["eval", "report", a.to_str().unwrap(), b.to_str().unwrap(), "--out", out.to_str().unwrap()]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = String::from_utf8_lossy(&o.stdout).into_owned();
    let chart_score = results(&a)["tasks"][0]["score"].as_f64().unwrap();
    let row = md.lines().find(|l| l.starts_with("| ChartQA (test)")).unwrap_or_else(|| panic!("{md}"));
    assert!(row.starts_with(&format!("| ChartQA (test) | relaxed accuracy | 81.4 | 81.8 | {chart_score:.1} (n=2) |")), "{row}");
    let ocr = md.lines().find(|l| l.starts_with("| OCRBench")).unwrap();
    assert!(ocr.ends_with(" — |"), "b has no OCRBench: {ocr}");
    assert!(md.contains("scored under vlmevalkit") && md.contains("scored under lmms-eval"), "{md}");
    assert_eq!(std::fs::read_to_string(out.join("report.md")).unwrap(), md);
    assert!(std::fs::read_to_string(out.join("report.csv")).unwrap().starts_with("task,benchmark,metric,"));
    let o = run(&mut phi3v(&["eval", "report", dir.path().to_str().unwrap()]));
    assert_clean_error(&o, "results.json: no such file");
}

#[test]
fn pope_runs_on_the_generated_splits_and_reports_each() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path();
    run_task(&format!("pope={}", asset("pope")), out, &["--limit", "40", "--max-tokens", "2"]);
    let p = &lines(&out.join("predictions.jsonl"))[0];
    assert_eq!(p["prompt"], "Is there a green circle in the image?\nAnswer the question using a single word or phrase.");
    let results = results(out);
    let t = &results["tasks"][0];
    assert_eq!((t["task"].as_str(), t["metric"].as_str(), t["n"].as_u64()), (Some("pope"), Some("F1"), Some(36)));
    let splits: Vec<&str> = t["categories"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(splits, ["adversarial", "popular", "random"]);
    for key in ["accuracy", "precision", "recall", "f1", "yes_ratio"] {
        assert!(t["metrics"][key].is_number() && t["categories"][0]["metrics"][key].is_number(), "{key}: {t}");
    }
    assert_eq!(t["metrics"]["yes_ratio"].as_f64(), Some(50.0), "lmms-eval's yes-ratio is the gold answers'");
}

#[test]
fn mmbench_rotates_the_options_and_scores_whole_questions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_task(&format!("mmbench={}", copied(dir.path(), "mmbench/synth_mmbench.tsv").display()), &out, &["--limit", "8", "--max-tokens", "2"]);
    let predictions = lines(&out.join("predictions.jsonl"));
    let prompts: Vec<&str> = predictions.iter().map(|p| p["prompt"].as_str().unwrap()).collect();
    assert_eq!(prompts.len(), 8);
    assert!(prompts[0].starts_with("Count every shape, whatever its colour. How many shapes are there in the image? There are several options:\nA. 2\nB. 3"), "{}", prompts[0]);
    assert!(prompts[1].contains("\nA. 3\nB. 4\nC. 5\nD. 2\n"), "the first rotation: {}", prompts[1]);
    let results = results(&out);
    let t = &results["tasks"][0];
    assert_eq!((t["metric"].as_str(), t["n"].as_u64()), (Some("circular accuracy"), Some(2)), "8 rows are 2 questions of 4 rotations");
    assert!(t["metrics"]["vanilla_accuracy"].is_number(), "{t}");
    let log = lines(&out.join("results-samples.jsonl"));
    assert_eq!((log[1]["group"].as_str(), log[1]["id"].as_str()), (Some("0"), Some("1000000")));
}

#[test]
fn scienceqa_runs_on_the_generated_problems() {
    let dir = tempfile::tempdir().unwrap();
    run_task(&format!("scienceqa={}", asset("scienceqa")), dir.path(), &["--harness", "vlmevalkit", "--max-tokens", "2"]);
    let p = lines(&dir.path().join("predictions.jsonl"));
    assert_eq!(p.len(), 5, "the text-only and the train question are left out");
    assert!(p[0]["prompt"].as_str().unwrap().starts_with("Hint: The picture shows a few coloured shapes.\nQuestion: Which shape is"), "{}", p[0]["prompt"]);
    let results = results(dir.path());
    let names: Vec<&str> = results["tasks"][0]["categories"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["G1-6", "NAT", "TXT"]);
}

#[test]
fn blink_asks_about_two_images_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_task(&format!("blink={}", copied(dir.path(), "blink/synth_blink.tsv").display()), &out, &["--max-tokens", "2"]);
    let p = &lines(&out.join("predictions.jsonl"))[0];
    assert!(p["prompt"].as_str().unwrap().starts_with("Note: You only need to respond with A, B without"), "{}", p["prompt"]);
    // The answer is the one `phi3v ask` gives with both images.
    let images: Vec<String> = ["0_0", "0_1"].iter().map(|n| dir.path().join(format!("synth_blink_images/{n}.png")).display().to_string()).collect();
    let o = run(&mut phi3v(&["ask", "--model", &fixture("tiny-phi35v"), "--image", &images[0], "--image", &images[1], "--max-tokens", "2", "--json", p["prompt"].as_str().unwrap()]));
    let asked: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(asked["answer"], p["response"]);
    assert_eq!(results(&out)["tasks"][0]["categories"][0]["name"].as_str(), Some("Counting"));
}

#[test]
fn mmmu_interleaves_images_under_the_official_rules() {
    let dir = tempfile::tempdir().unwrap();
    let task = format!("mmmu={}", copied(dir.path(), "mmmu/synth_mmmu.tsv").display());
    for (harness, first_prompt) in [
        ("official", "Which picture shows more shapes, <|image_1|> or <|image_2|>?\nA. <image 1>\nB. <image 2>\nAnswer with the option's letter from the given choices directly."),
        ("lmms-eval", "Which picture shows more shapes, <image 1> or <image 2>?\nA. <image 1>\nB. <image 2>\n\n"),
    ] {
        let out = dir.path().join(harness);
        run_task(&task, &out, &["--harness", harness, "--max-tokens", "2"]);
        let p = lines(&out.join("predictions.jsonl"));
        assert_eq!(p[0]["prompt"], first_prompt, "{harness}");
        assert_eq!(p.len(), 4, "{harness}: the dev row is left out");
        assert_eq!(results(&out)["tasks"][0]["n"].as_u64(), Some(4));
    }
}

#[test]
fn mathvista_runs_on_the_generated_problems() {
    let dir = tempfile::tempdir().unwrap();
    let task = format!("mathvista={}", asset("mathvista/testmini.json"));
    for (harness, starts) in [("lmms-eval", "How many shapes are there in the image?\nAnswer the question using a single integer number."), ("official", "Hint: Please answer the question requiring an integer answer")] {
        let out = dir.path().join(harness);
        run_task(&task, &out, &["--harness", harness, "--limit", "4", "--max-tokens", "2"]);
        let p = lines(&out.join("predictions.jsonl"));
        assert!(p[0]["prompt"].as_str().unwrap().starts_with(starts), "{harness}: {}", p[0]["prompt"]);
        let log = lines(&out.join("results-samples.jsonl"));
        assert!(log[1]["normalised"][0].is_string(), "a multiple-choice answer always normalises to a choice: {}", log[1]);
    }
}

/// MathVista's judge step through an OpenAI-compatible server on 127.0.0.1 (`phi3v serve` with
/// the tiny model: its extractions are noise, the traffic and the bookkeeping are real).
#[test]
fn mathvista_asks_a_judge_and_keeps_its_replies() {
    let server = common::server::Server::start(&[]);
    let (_, models) = server.get("/v1/models");
    let models: serde_json::Value = serde_json::from_str(&models).unwrap();
    let judge_model = models["data"][0]["id"].as_str().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let task = format!("mathvista={}", asset("mathvista/testmini.json"));
    let url = format!("{}/v1", server.base);
    let judged = |args: &[&str]| {
        let o = run(&mut phi3v(args));
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let log = lines(&dir.path().join("results-samples.jsonl"));
        assert!(log.iter().all(|s| s["judge_error"].is_null()), "{log:?}");
        log.iter().filter(|s| s["judge"].is_string()).map(|s| (s["id"].to_string(), s["judge"].to_string())).collect::<Vec<_>>()
    };
    let run_args = ["eval", "run", "--model", &fixture("tiny-phi35v"), "--task", &task, "--limit", "3", "--max-tokens", "3", "--judge-url", &url, "--judge-model", &judge_model, "--out", out];
    let first = judged(&run_args);
    assert!(!first.is_empty(), "responses the rules cannot read go to the judge");
    let kept = lines(&dir.path().join("judge.jsonl"));
    assert!(!kept.is_empty() && kept.len() <= first.len(), "one reply per distinct prompt: {kept:?}");
    assert!(kept[0]["prompt"].as_str().unwrap().starts_with("Please read the following example."));
    let served = server.metric("phi3v_prompt_tokens_total");
    // Scored again with the server gone: every reply comes from judge.jsonl.
    server.terminate(std::time::Duration::from_secs(10));
    let score_args = ["eval", "score", "--task", &task, "--limit", "3", "--judge-url", &url, "--judge-model", &judge_model, "--out", out];
    assert_eq!(judged(&score_args), first);
    assert!(served > 0.0, "the server read the judge prompts");
}
