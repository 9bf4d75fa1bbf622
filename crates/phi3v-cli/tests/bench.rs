//! `phi3v bench` on the tiny checkpoint: every stage is measured, the JSON has the keys the
//! PyTorch script writes, and `--compare` prints ours/theirs for each. (No timing is asserted.)

use std::path::Path;

mod common;
use common::{assert_clean_error, fixture, phi3v, run};

const KEYS: [&str; 16] = [
    "preprocess_640x480", "preprocess_1344x1008", "clip_per_crop", "projector", "load", "image_embedding_4_crops",
    "prefill_4_crops", "ttft_4_crops", "decode", "peak_rss_4_crops", "prefill_16_crops", "ttft_16_crops", "peak_rss",
    "read_bandwidth", "decode_bytes_per_token", "decode_bandwidth_share",
];

#[test]
fn bench_writes_every_stage_and_compares() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.json");
    let image = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/chart.png");
    let model = fixture("tiny-phi35v");
    let args = ["bench", "--model", &model, "--image", image.to_str().unwrap(), "--decode-tokens", "4", "--repeats", "1"];
    // From a folder without `assets/`: the built-in chart.
    let builtin = ["bench", "--model", &model, "--decode-tokens", "4", "--repeats", "1"];
    let o = run(phi3v(&builtin).args(["--json", ours.to_str().unwrap()]).current_dir(dir.path()));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    for key in KEYS {
        assert!(v["metrics"][key]["value"].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert_eq!(v["prompt_tokens"], serde_json::json!([777, 1941]), "640×480 at 4 and 16 crops plus the question");
    // The work of each stage in multiply-adds and, where the products have SIMD, its rate as a
    // share of the int8 peak measured in the run. 4 crops: 5 crops of 577 rows through 2 CLIP
    // layers of width 64 and more; the 16-crop image is more work than the 4-crop one.
    let work = |key: &str| v["metrics"][format!("{key}_gmac")]["value"].as_f64().unwrap_or(0.0);
    for stage in ["image_embedding", "prefill", "ttft"] {
        assert!(work(&format!("{stage}_16_crops")) > work(&format!("{stage}_4_crops")) && work(&format!("{stage}_4_crops")) > 0.0, "{stage}: {v}");
    }
    let ttft = work("ttft_4_crops");
    assert!((work("image_embedding_4_crops") + work("prefill_4_crops") - ttft).abs() <= 1e-9 * ttft, "{v}");
    if let Some(peak) = v["metrics"]["int8_peak"]["value"].as_f64() {
        assert!(peak > 1.0, "GOP/s: {peak}");
        for key in ["image_embedding_4_crops_share", "prefill_4_crops_share", "ttft_16_crops_share"] {
            assert!(v["metrics"][key]["value"].as_f64().is_some_and(|x| x > 0.0 && x < 100.0), "{key}: {v}");
        }
    }
    assert_eq!(v["decode_steps"], 4, "each of the 4 tokens is fed back (the cache stays complete)");

    // A reference run with the keys the PyTorch script writes, every value a million times
    // larger, reads as 0.00× on each of those lines (and "—" on the others).
    let mut reference = v.clone();
    reference["implementation"] = "huge".into();
    reference["metrics"] = KEYS.iter().map(|&k| (k.to_string(), serde_json::json!({"value": 1e6 * v["metrics"][k]["value"].as_f64().unwrap()}))).collect();
    let theirs = dir.path().join("theirs.json");
    std::fs::write(&theirs, reference.to_string()).unwrap();
    let o = run(phi3v(&args).args(["--skip-16", "--compare", theirs.to_str().unwrap()]));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && table.contains("huge"), "{table}");
    let ratios: Vec<&str> = table.lines().filter(|l| l.contains('×')).collect();
    assert_eq!(ratios.len(), KEYS.len() - 2, "{table}");
    assert!(ratios.iter().all(|l| l.contains(" 0.00×")), "{table}");

    let o = run(phi3v(&args).args(["--compare", "/nonexistent/torch.json"]));
    assert_clean_error(&o, "/nonexistent/torch.json");
}

#[test]
fn cold_questions_run_whole_processes_against_a_reference_command() {
    // The reference command here is phi3v itself on the original checkpoint (any program that
    // takes `--image --num-crops --max-tokens` and prints JSON with `tokens` will do).
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("cold.json");
    let model = fixture("tiny-phi35v");
    let reference = format!("{} ask --model {model} --json Hello", env!("CARGO_BIN_EXE_phi3v"));
    let args = ["bench", "--model", &model, "--quant", "q4", "--cold", "1", "--only-cold", "--skip-16", "--cold-reference", &reference];
    let o = run(phi3v(&args).args(["--json", ours.to_str().unwrap()]));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("cold, 4 crops: phi3v ") && stderr.contains("(32 tokens or more each)"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    for key in ["cold_ask_4_crops", "cold_ask_4_crops_reference", "cold_ask_4_crops_ratio"] {
        assert!(v["metrics"][key]["value"].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert!(v["metrics"].get("load").is_none(), "--only-cold measures no stage: {v}");
    let o = run(&mut phi3v(&["bench", "--model", &model, "--cold", "1", "--only-cold", "--cold-reference", "/nonexistent/python x.py"]));
    assert_clean_error(&o, "/nonexistent/python");
}
