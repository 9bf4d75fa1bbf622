//! The `phi3v` binary on the tiny fixture checkpoints: answers against the reference's greedy
//! tokens, model resolution through a (local, fake) Hugging Face cache, chat over a pipe, and
//! one clear error line with a non-zero exit for each kind of bad input.
//! No test reaches outside this machine: "no network" is a closed loopback port.


mod common;
use common::{assert_clean_error, fixture, phi3v, run};

#[test]
fn raw_json_greedy_answers_match_reference_tokens() {
    for name in phi3v_fixtures::CHECKPOINTS {
        for (case, golden) in phi3v_fixtures::model_cases(name) {
            let max = golden.greedy_tokens.len().to_string();
            let model = fixture(name);
            let mut args = vec!["ask", "--model", &model, "--raw", "--json", "--temperature", "0", "--max-tokens", &max];
            let images: Vec<String> = golden.images.iter().map(|i| fixture(&i.image)).collect();
            for img in &images {
                args.extend(["--image", img]);
            }
            args.push(&golden.prompt);
            let out = run(&mut phi3v(&args));
            assert!(out.status.success(), "{name}/{case}: {}", String::from_utf8_lossy(&out.stderr));
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let tokens: Vec<u32> = serde_json::from_value(v["tokens"].clone()).unwrap();
            assert_eq!(tokens, golden.greedy_tokens, "{name}/{case}");
            assert_eq!(v["prompt_tokens"], golden.prompt_len);
            let counts: Vec<usize> = golden.images.iter().map(|i| i.num_img_tokens).collect();
            assert_eq!(v["image_tokens"], serde_json::json!(counts));
            assert_eq!(v["stop"], "max_tokens");
            assert!(v["timings"]["decode_tokens_per_s"].as_f64().unwrap() > 0.0);
        }
    }
}

#[test]
fn ask_streams_the_same_answer_as_json() {
    let model = fixture("tiny-phi35v");
    let chart = fixture("../../assets/chart.png");
    let base = ["ask", "--model", &model, "--image", &chart, "--max-tokens", "6", "What is the highest bar?"];
    let text = run(&mut phi3v(&base));
    assert!(text.status.success(), "{}", String::from_utf8_lossy(&text.stderr));
    assert!(text.stderr.is_empty(), "quiet when not on a terminal");
    let mut with_json = base.to_vec();
    with_json.insert(1, "--json");
    let json = run(&mut phi3v(&with_json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(String::from_utf8(text.stdout).unwrap(), format!("{}\n", v["answer"].as_str().unwrap()));
    assert_eq!(v["image_tokens"], serde_json::json!([757]));
    let default_answer = v["answer"].clone();
    // --num-crops and --system change the prompt as expected.
    let mut more = with_json.clone();
    more.extend(["--num-crops", "1", "--system", "Be brief."]);
    let v: serde_json::Value = serde_json::from_slice(&run(&mut phi3v(&more)).stdout).unwrap();
    assert_eq!(v["image_tokens"], serde_json::json!([313]));
    // Other weight formats and the int8 KV cache run end to end; f32 and f16 hold the bf16
    // weights exactly, so they give the default's answer.
    let formats = [&["--dtype", "f32"][..], &["--dtype", "f16", "--threads", "1"], &["--quant", "q8"], &["--quant", "q4", "--vision-quant", "none"], &["--kv-cache", "q8"]];
    for flags in formats {
        let mut args = with_json.clone();
        args.extend(flags);
        let out = run(&mut phi3v(&args));
        assert!(out.status.success(), "{flags:?}: {}", String::from_utf8_lossy(&out.stderr));
        let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        if flags[0] == "--dtype" {
            assert_eq!(w["answer"], default_answer, "{flags:?}");
        }
    }
}

#[test]
fn a_quantised_checkpoint_answers_as_quantising_at_load_does() {
    // `phi3v quantize` from a model id in the HF cache; `phi3v ask --model DIR` then gives the
    // tokens `--quant q4 --vision-quant q8` gives on the original, and refuses other formats.
    let hf = tempfile::tempdir().unwrap();
    phi3v_fixtures::fake_hf_home(hf.path(), "microsoft/Phi-3.5-vision-instruct", "tiny-phi35v");
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tmp.path().join("q4");
    let dir = out_dir.to_string_lossy().into_owned();
    let out = run(phi3v(&["quantize", "--quant", "q4", "--vision-quant", "q8", "--out", &dir]).env("HF_HOME", hf.path()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with(&format!("wrote {dir} (q4 decoder, q8 vision tower;")), "{stdout}");
    for file in ["config.json", "preprocessor_config.json", "tokenizer.json", "model.safetensors"] {
        assert!(out_dir.join(file).is_file(), "{file} missing");
    }
    let chart = fixture("../../assets/chart.png");
    let ask = |model: &str, flags: &[&str]| {
        let mut args = vec!["ask", "--model", model, "--json", "--max-tokens", "8", "-i", &chart];
        args.extend(flags);
        args.push("Which quarter had the highest revenue?");
        run(&mut phi3v(&args))
    };
    let tokens = |out: &std::process::Output| {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tokens"].clone()
    };
    let want = tokens(&ask(&fixture("tiny-phi35v"), &["--quant", "q4", "--vision-quant", "q8"]));
    assert_eq!(tokens(&ask(&dir, &[])), want);
    assert_eq!(tokens(&ask(&dir, &["--quant", "q4"])), want, "--quant naming the stored format");
    assert_clean_error(&ask(&dir, &["--quant", "q8"]), "decoder was quantised to q4 by `phi3v quantize` and cannot load as q8");
    // Writing over it is refused.
    let out = run(&mut phi3v(&["quantize", "--model", &fixture("tiny-phi35v"), "--quant", "q8", "--out", &dir]));
    assert_clean_error(&out, "already holds a checkpoint's weights");
}

#[test]
fn model_ids_resolve_through_the_hf_cache() {
    let tmp = tempfile::tempdir().unwrap();
    phi3v_fixtures::fake_hf_home(tmp.path(), "microsoft/Phi-3.5-vision-instruct", "tiny-phi35v");
    // The default model id, from the cache, offline.
    let out = run(phi3v(&["ask", "--json", "--max-tokens", "2", "Hello"]).env("HF_HOME", tmp.path()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // An id that is not cached, offline.
    let out = run(phi3v(&["ask", "--model", "someone/missing", "Hello"]).env("HF_HOME", tmp.path()));
    assert_clean_error(&out, "HF_HUB_OFFLINE");
    // Online but no network (a closed port on this machine).
    let out = run(
        phi3v(&["ask", "--model", "someone/missing", "Hello"])
            .env("HF_HOME", tmp.path())
            .env_remove("HF_HUB_OFFLINE")
            .env("HF_ENDPOINT", "http://127.0.0.1:9"),
    );
    assert_clean_error(&out, "cannot download config.json of someone/missing");
}

#[test]
fn chat_keeps_the_conversation_and_handles_commands() {
    let chart = fixture("../../assets/chart.png");
    let script = format!("/image {chart}\nWhat is this?\nAnd then?\n/image /nonexistent.png\n/reset\nHi\n/exit\n");
    let out = common::chat("3", script.as_bytes(), false).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3, "three answers");
    assert!(stderr.contains("image 1 attached") && stderr.contains("conversation cleared"), "{stderr}");
    assert!(stderr.contains("error: ") && stderr.contains("/nonexistent.png"), "{stderr}");
}

#[test]
fn bad_input_gives_one_clear_line_and_a_failure_code() {
    let model = fixture("tiny-phi35v");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", "/nonexistent/x.png", "Hi"]));
    assert_clean_error(&out, "/nonexistent/x.png");
    let tmp = tempfile::tempdir().unwrap();
    let garbage = tmp.path().join("garbage.png");
    std::fs::write(&garbage, b"not an image").unwrap();
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", garbage.to_str().unwrap(), "Hi"]));
    assert_clean_error(&out, "garbage.png");
    let out = run(&mut phi3v(&["ask", "--model", "./no/such/dir", "Hi"]));
    assert_clean_error(&out, "does not exist");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--raw", "<|image_1|> two images?"]));
    assert_clean_error(&out, "image tags");
    let thin = fixture("images/thin.png");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", &thin, "Hi"]));
    assert_clean_error(&out, "too elongated");
    let out = run(&mut phi3v(&["ask", "--model", &model, ""]));
    assert_clean_error(&out, "empty");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--temperature", "hot", "Hi"]));
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}
