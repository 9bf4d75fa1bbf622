//! What a new user meets first: defaults that suit a CPU and sampling that can be reproduced.

mod common;
use common::{fixture, phi3v, run};

fn ask_json(args: &[&str]) -> serde_json::Value {
    let model = fixture("tiny-phi35v");
    let mut all = vec!["ask", "--model", &model, "--json", "--max-tokens", "6"];
    all.extend_from_slice(args);
    let out = run(&mut phi3v(&all));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sampling_without_a_seed_is_random_and_the_seed_it_used_reproduces_it() {
    let a = ask_json(&["--temperature", "1.5", "Tell me something"]);
    let b = ask_json(&["--temperature", "1.5", "Tell me something"]);
    assert_ne!(a["seed"], b["seed"], "a fresh seed each run");
    let seed = a["seed"].as_u64().unwrap().to_string();
    let again = ask_json(&["--temperature", "1.5", "--seed", &seed, "Tell me something"]);
    assert_eq!(again["tokens"], a["tokens"]);
    assert_eq!(again["seed"], a["seed"]);
}

#[test]
fn a_terminal_run_of_16_bit_weights_suggests_q4() {
    let model = fixture("tiny-phi35v");
    // `script` gives the command a terminal.
    let cmd = |flags: &str| format!("{} ask --model {model} --max-tokens 1 {flags} Hi", env!("CARGO_BIN_EXE_phi3v"));
    let tty = |flags: &str| {
        let out = run(std::process::Command::new("script").args(["-qec", &cmd(flags), "/dev/null"]).env("HF_HUB_OFFLINE", "1"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = tty("");
    assert!(shown.contains("note: running the bf16 weights as stored; --quant q4 is ~3× faster"), "{shown}");
    assert!(!tty("--quant q4").contains("--quant q4 is"));
    // Not on a terminal: nothing on stderr.
    let out = run(&mut phi3v(&["ask", "--model", &model, "--max-tokens", "1", "Hi"]));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
