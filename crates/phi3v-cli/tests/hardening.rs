//! The `phi3v` binary against hostile input and faults: every case ends in a kept answer or one
//! clear error line with the right exit code, never a panic, an abort, a hang or a lost answer.
//! (Issue list: context overflow, closed stdout, oversized config values, image caps, sampling
//! values, threads, shard paths, chat, eval, and the smaller ones.)

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

mod common;
use common::{assert_clean_error, chat, fixture, phi3v, run};

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Edits `config.json` of a checkpoint copy.
fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(path, cfg.to_string()).unwrap();
}

/// Rewrites the single weights file of a `tiny-phi3v` copy through `edit` (tensors by name).
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut std::collections::HashMap<String, candle_core::Tensor>)) {
    let path = dir.join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    edit(&mut tensors);
    candle_core::safetensors::save(&tensors, &path).unwrap();
}

#[test]
fn context_overflow_keeps_the_answer() {
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    edit_config(&dir, |c| c["max_position_embeddings"] = 64.into());
    let model = dir.to_str().unwrap();
    let out = run(&mut phi3v(&["ask", "--model", model, "--json", "--max-tokens", "500", "Hi"]));
    let v = json(&out);
    let (prompt, tokens) = (v["prompt_tokens"].as_u64().unwrap(), v["tokens"].as_array().unwrap().len() as u64);
    if v["stop"] == "context_full" {
        assert_eq!(prompt + tokens, 64, "prompt and answer fill the context exactly");
        assert_eq!(v["finish_reason"], "length");
    } else {
        // The random model may end the answer itself first; then it must have fitted.
        assert!(v["stop"].as_str().unwrap().starts_with("token"), "{v}");
        assert!(prompt + tokens < 64);
    }
    // The same answer without --json, whole.
    let text = run(&mut phi3v(&["ask", "--model", model, "--max-tokens", "500", "Hi"]));
    assert!(text.status.success());
    assert_eq!(String::from_utf8_lossy(&text.stdout), format!("{}\n", v["answer"].as_str().unwrap()));
    // A prompt that alone does not fit is refused up front, with the numbers.
    let long = "word ".repeat(80);
    let out = run(&mut phi3v(&["ask", "--model", model, &long]));
    assert_clean_error(&out, "and the answer at least one more; the model has 64");
    let out = run(&mut phi3v(&["inspect", "--model", model, &long]));
    assert_clean_error(&out, "the model has 64");
}

#[test]
fn context_overflow_forced_by_greedy_length() {
    // With a context this small every answer of the random model runs into it: a check that
    // the `length` path is taken, not only allowed.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    let prompt_len = {
        let model = fixture("tiny-phi35v");
        json(&run(&mut phi3v(&["ask", "--model", &model, "--json", "--max-tokens", "1", "Hi"])))["prompt_tokens"].as_u64().unwrap()
    };
    edit_config(&dir, |c| c["max_position_embeddings"] = (prompt_len + 1).into());
    let v = json(&run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "--json", "--max-tokens", "50", "Hi"])));
    assert_eq!(v["tokens"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["stop"] == "context_full" || v["stop"].as_str().unwrap().starts_with("token"), "{v}");
}

#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let model = fixture("tiny-phi35v");
    for args in [
        vec!["ask", "--model", &model, "--max-tokens", "20000", "Tell me a long story."],
        vec!["ask", "--model", &model, "--json", "--max-tokens", "5", "Hi"],
        vec!["inspect", "--model", &model, "Hi"],
    ] {
        let mut child = phi3v(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        drop(child.stdout.take()); // the reader went away, like `| head -c0`
        let start = Instant::now();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert!(start.elapsed() < Duration::from_secs(120));
    }
    // A reader that stops after a few bytes.
    let mut child = phi3v(&["ask", "--model", &model, "--max-tokens", "20000", "Tell me a long story."])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 8];
    child.stdout.as_mut().unwrap().read_exact(&mut first).unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn oversized_config_values_are_named_before_anything_is_allocated() {
    for (key, value, expected) in [
        ("num_hidden_layers", 1_000_000_000u64, "num_hidden_layers is 1000000000 but the weights hold 2"),
        ("hidden_size", (1 << 40) + 1, "does not split into 2 heads"),
        ("hidden_size", 1 << 40, "rope_scaling.short_factor has 8 values, expected head_dim/2 = 274877906944"),
        ("vocab_size", 1_000_000_000_000, "vocab_size × hidden_size is [1000000000000, 32]"),
        ("intermediate_size", 1 << 50, "hidden_size × intermediate_size"),
        ("max_position_embeddings", 1, "must be at least 2"),
    ] {
        let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
        edit_config(&dir, |c| c[key] = value.into());
        let out = run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"]));
        assert_clean_error(&out, expected);
        assert_clean_error(&out, "config.json");
    }
    for (key, value, expected) in [
        ("num_hidden_layers", 1_000_000_000u64, "img_processor.num_hidden_layers (the layers run) is 999999999 but the weights hold 3"),
        ("intermediate_size", 1 << 40, "img_processor.intermediate_size × hidden_size"),
        ("hidden_size", 1 << 40, "img_processor.image_dim_out"),
    ] {
        let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
        edit_config(&dir, |c| c["img_processor"][key] = value.into());
        let out = run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"]));
        assert_clean_error(&out, expected);
    }
    // Values that would make the arithmetic non-finite.
    for (key, value, expected) in [("rope_theta", 0.0, "rope_theta must be a positive number"), ("rms_norm_eps", -1.0, "rms_norm_eps")] {
        let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
        edit_config(&dir, |c| c[key] = value.into());
        assert_clean_error(&run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"])), expected);
    }
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    edit_config(&dir, |c| c["rope_scaling"]["long_factor"][3] = (-2.0).into());
    assert_clean_error(&run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"])), "rope_scaling.long_factor holds -2");
}

#[test]
fn nan_weights_are_reported_not_answered() {
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    edit_weights(&dir, |t| {
        let w = &t["model.norm.weight"];
        let nan = (w.ones_like().unwrap() * f64::NAN).unwrap().to_dtype(w.dtype()).unwrap();
        t.insert("model.norm.weight".into(), nan);
    });
    let out = run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "--json", "Hi"]));
    assert_clean_error(&out, "non-finite logit");
    assert!(out.stdout.is_empty());
}

#[test]
fn image_files_are_capped_before_they_are_read() {
    let model = fixture("tiny-phi35v");
    let chart = fixture("../../assets/chart.png");
    // A device, which would never end.
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", "/dev/zero", "Hi"]));
    assert_clean_error(&out, "/dev/zero: cannot read image: not a regular file");
    // A FIFO, which would block forever.
    let tmp = tempfile::tempdir().unwrap();
    let fifo = tmp.path().join("pipe.png");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", fifo.to_str().unwrap(), "Hi"]));
    assert_clean_error(&out, "not a regular file");
    // A file over the byte limit: refused from its size (a sparse 64 GiB file is never read).
    let huge = tmp.path().join("huge.png");
    std::fs::File::create(&huge).unwrap().set_len(64 << 30).unwrap();
    let out = run(&mut phi3v(&["ask", "--model", &model, "--image", huge.to_str().unwrap(), "Hi"]));
    assert_clean_error(&out, "huge.png: image data is 68719476736 bytes, more than the limit of 268435456");
    let out = run(&mut phi3v(&["ask", "--model", &model, "--max-image-bytes", "1000", "--image", &chart, "Hi"]));
    assert_clean_error(&out, "more than the limit of 1000");
    // Over the pixel limit (640×480 = 307 200), from the header; inspect refuses it the same way.
    for cmd in ["ask", "inspect"] {
        let out = run(&mut phi3v(&[cmd, "--model", &model, "--max-image-pixels", "300000", "--image", &chart, "Hi"]));
        assert_clean_error(&out, "chart.png: image 640×480 has more than 300000 pixels");
    }
    let out = run(&mut phi3v(&["ask", "--model", &model, "--max-image-pixels", "307200", "--max-tokens", "1", "--image", &chart, "Hi"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A truncated JPEG: `inspect` refuses what `ask` refuses.
    let jpg = std::fs::read(fixture("images/hopper.jpg")).unwrap();
    let cut = tmp.path().join("cut.jpg");
    std::fs::write(&cut, &jpg[..jpg.len() / 2]).unwrap();
    for cmd in ["ask", "inspect"] {
        assert_clean_error(&run(&mut phi3v(&[cmd, "--model", &model, "--image", cut.to_str().unwrap(), "Hi"])), "truncated");
    }
}

#[test]
fn bad_sampling_values_and_threads_are_usage_errors() {
    let model = fixture("tiny-phi35v");
    for (flag, value, expected) in [
        ("--temperature", "NaN", "--temperature must be a finite number"),
        ("--temperature", "inf", "--temperature"),
        ("--temperature", "-0.5", "--temperature"),
        ("--top-p", "0", "--top-p must be in (0, 1]"),
        ("--top-p", "1.5", "--top-p"),
        ("--repetition-penalty", "0", "--repetition-penalty must be a finite number > 0"),
        ("--repetition-penalty", "NaN", "--repetition-penalty"),
        ("--max-tokens", "0", "--max-tokens must be at least 1"),
    ] {
        let arg = format!("{flag}={value}");
        for args in [vec!["ask", "--model", &model, &arg, "Hi"], vec!["chat", "--model", &model, &arg]] {
            let cmd = args[0];
            let out = run(phi3v(&args).stdin(Stdio::null()));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} {arg}: {stderr}");
            assert!(stderr.starts_with("error: ") && stderr.contains(expected) && stderr.lines().count() == 1, "{arg}: {stderr}");
        }
    }
    for crops in ["0", "1025", "-3"] {
        let arg = format!("--num-crops={crops}");
        let out = run(&mut phi3v(&["ask", "--model", &model, &arg, "Hi"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{crops}: {stderr}");
        assert!(stderr.contains("expected a number of crops from 1 to 1024"), "{stderr}");
    }
    // Far more threads than cores: capped, with a warning, and the answer comes.
    let out = run(&mut phi3v(&["ask", "--model", &model, "--threads", "100000", "--max-tokens", "2", "Hi"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.contains("warning: --threads 100000 is more than the"), "{stderr}");
}

#[test]
fn shard_paths_must_stay_in_the_checkpoint() {
    let (tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    let index = dir.join("model.safetensors.index.json");
    let text = std::fs::read_to_string(&index).unwrap();
    std::fs::copy(dir.join("model-00002-of-00002.safetensors"), tmp.path().join("outside.safetensors")).unwrap();
    for shard in ["../outside.safetensors", "/etc/passwd", "sub/../../outside.safetensors"] {
        std::fs::write(&index, text.replace("model-00002-of-00002.safetensors", shard)).unwrap();
        let out = run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"]));
        assert_clean_error(&out, &format!("shard {shard:?} is not a file inside the checkpoint directory"));
    }
}

#[test]
fn chat_survives_bad_lines_commands_and_ctrl_c() {
    let script = b"caf\xe9 au lait?\n/frobnicate now\n/image\n//etc/hosts is a path\nStill there?\n/exit\n";
    let out = chat("3", script, false).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
    assert!(stderr.contains("unknown command /frobnicate") && stderr.contains("/reset"), "{stderr}");
    assert!(stderr.contains("/image needs a path"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2, "only the two real messages were answered");
}

#[test]
fn ctrl_c_stops_the_answer_and_not_the_chat() {
    let mut child = chat("30000", b"Tell me a very long story.\n", true);
    let mut stdin = child.stdin.take().unwrap();
    // Once the answer is streaming, interrupt it.
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 16];
    stdout.read_exact(&mut first).unwrap();
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    stdin.write_all(b"/reset\n/exit\n").unwrap();
    drop(stdin);
    let reader = std::thread::spawn(move || {
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).map(|_| rest)
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(120), "the chat did not stop its answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = reader.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?} {stderr}", out.status);
    assert!(stderr.contains("(stopped)") && stderr.contains("(conversation cleared)"), "{stderr}");
    // The stopped answer, ended by a newline.
    assert_eq!(String::from_utf8_lossy(&stdout).matches('\n').count(), 1);
}

#[test]
fn eval_retries_failures_and_refuses_bad_templates() {
    let model = fixture("tiny-phi35v");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("set.jsonl");
    let good = std::fs::read(fixture("../../assets/chart.png")).unwrap();
    std::fs::write(tmp.path().join("a.png"), &good).unwrap();
    std::fs::write(tmp.path().join("b.png"), b"not a png").unwrap();
    let rows = [r#"{"id": "a", "images": ["a.png"], "question": "Which?", "answers": ["Q4"]}"#, r#"{"id": "b", "images": ["b.png"], "question": "Which?", "answers": ["Q4"]}"#];
    std::fs::write(&data, rows.join("\n")).unwrap();
    let out_dir = tmp.path().join("run");
    let task = format!("chartqa={}", data.display());
    let args = ["eval", "run", "--model", &model, "--max-tokens", "2", "--task", &task, "--out", out_dir.to_str().unwrap()];
    let out = run(&mut phi3v(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: 1 sample(s) could not be answered") && stderr.contains("b.png"), "{stderr}");
    assert!(out_dir.join("results.json").is_file(), "results are written all the same");
    // The image is fixed: the next run asks that sample again, and only that one.
    std::fs::write(tmp.path().join("b.png"), &good).unwrap();
    let out = run(&mut phi3v(&args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("1 answers generated, 1 reused"), "{stderr}");
    // Malformed prompt templates are usage errors.
    for template in ["chartqa={question", "chartqa=no question here", "chartqa={question} {nope}"] {
        let mut bad = args.to_vec();
        bad.extend(["--prompt", template]);
        let out = run(&mut phi3v(&bad));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{template}: {stderr}");
        assert!(stderr.contains("--prompt chartqa: template"), "{stderr}");
    }
}

#[test]
fn errors_are_one_line_each_cause_once() {
    let model = fixture("tiny-phi35v");
    // A missing file: the OS's words once.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    let out = run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"]));
    assert_clean_error(&out, "tokenizer.json");
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("No such file or directory").count(), 1);
    // A missing tensor: named once, and no backtrace even when one is asked for.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    edit_weights(&dir, |t| {
        t.remove("model.layers.1.mlp.down_proj.weight");
    });
    let out = run(phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"]).env("RUST_BACKTRACE", "1"));
    assert_clean_error(&out, "model.layers.1.mlp.down_proj.weight");
    assert_eq!(String::from_utf8_lossy(&out.stderr).matches("cannot find tensor").count(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    // config.json as a FIFO: refused, not waited on.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    std::fs::remove_file(dir.join("config.json")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(dir.join("config.json")).status().unwrap().success());
    assert_clean_error(&run(&mut phi3v(&["ask", "--model", dir.to_str().unwrap(), "Hi"])), "config.json: not a regular file");
    // Tags with no images, quoted as written.
    let out = run(&mut phi3v(&["ask", "--model", &model, "--raw", "<|image_1|> and <|image_99999999999999999999|>"]));
    assert_clean_error(&out, "the prompt has image tags (<|image_1|>, <|image_99999999999999999999|>) but no images were given");
}
