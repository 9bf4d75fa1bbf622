//! Helpers shared by the CLI test files: the binary with the network and HF cache out of
//! reach, fixture paths, and the shape of a clean error.
#![allow(dead_code)] // each test file uses its own subset

pub mod server;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};

pub fn phi3v(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_phi3v"));
    cmd.args(args).env("HF_HUB_OFFLINE", "1").env("HF_HOME", "/nonexistent-hf-home").env_remove("PHI3V_MODEL");
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run phi3v")
}

pub fn fixture(rel: &str) -> String {
    phi3v_fixtures::path(rel).to_string_lossy().into_owned()
}

/// One `error: …` line on stderr, exit code 1, no panic.
pub fn assert_clean_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1, "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// `phi3v chat` on the tiny checkpoint with every stream piped, `script` already written to its
/// stdin (which stays open when `keep_stdin`).
pub fn chat(max_tokens: &str, script: &[u8], keep_stdin: bool) -> Child {
    chat_env(max_tokens, script, keep_stdin, &[])
}

/// [`chat`] with stdin closed after `script`, and extra environment variables.
pub fn chat_with_env(max_tokens: &str, script: &[u8], env: &[(&str, &str)]) -> Child {
    chat_env(max_tokens, script, false, env)
}

fn chat_env(max_tokens: &str, script: &[u8], keep_stdin: bool, env: &[(&str, &str)]) -> Child {
    let model = fixture("tiny-phi35v");
    let mut child = phi3v(&["chat", "--model", &model, "--max-tokens", max_tokens])
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start phi3v chat");
    let stdin = child.stdin.as_mut().expect("piped stdin");
    stdin.write_all(script).and_then(|()| stdin.flush()).expect("write to chat");
    if !keep_stdin {
        drop(child.stdin.take());
    }
    child
}

