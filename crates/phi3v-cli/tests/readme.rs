//! The README as a newcomer runs it: every command in its `sh` blocks, top to bottom, from a
//! folder laid out like the repository, with `phi3v` (or `cargo run --release -p phi3v-cli --`)
//! as this build's binary and `microsoft/Phi-3.5-vision-instruct` served from a local Hugging
//! Face cache holding the tiny checkpoint. `phi3v serve … &` starts the server in the background
//! (on a free port) and the `curl` commands after it are run by `sh` against it. (`text` blocks
//! need the real downloads; the Rust blocks are compiled as doctests of the `phi3v` crate; the
//! Python block is run by `tests/openai/client_test.py`.)

use std::path::Path;

mod common;
use common::run;
use phi3v_fixtures::fake_hf_home;

/// The commands of the README's `sh` blocks, continuation lines joined, comments dropped.
fn commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line.trim() == "```sh";
            continue;
        }
        if !in_sh || line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(part) => pending.push_str(part),
            None => commands.push(format!("{pending}{line}").trim().to_string()),
        }
        if !line.trim_end().ends_with('\\') {
            pending.clear();
        }
    }
    commands
}

/// Splits a command line as a POSIX shell would for these commands: words, and "…" quoted.
fn words(command: &str) -> Vec<String> {
    let (mut words, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in command.chars() {
        match c {
            '"' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            _ => word.push(c),
        }
    }
    if any || !word.is_empty() {
        words.push(word);
    }
    words
}

#[test]
fn every_readme_command_runs_as_written() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands = commands(&readme);
    // A folder like a fresh checkout: what the commands read, nothing they might write over.
    let work = tempfile::tempdir().unwrap();
    for entry in ["assets", "tests", "crates"] {
        std::os::unix::fs::symlink(root.join(entry).canonicalize().unwrap(), work.path().join(entry)).unwrap();
    }
    let hf = tempfile::tempdir().unwrap();
    fake_hf_home(hf.path(), "microsoft/Phi-3.5-vision-instruct", "tiny-phi35v");
    let mut ran = 0;
    let mut server: Option<common::server::Server> = None;
    for command in &commands {
        let words = words(command);
        let args: Vec<&str> = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            // What the test run itself is, and installing (the binary under test stands in).
            ["cargo", "test", ..] | ["cargo", "install", ..] => continue,
            ["phi3v", "serve", rest @ .., "&"] => {
                // The README's port may be taken here: the helper picks a free one.
                let mut args = rest.to_vec();
                if let Some(at) = args.iter().position(|a| *a == "--port") {
                    args.drain(at..at + 2);
                }
                server = Some(common::server::Server::start_in(&args, work.path(), hf.path()));
                continue;
            }
            ["curl", ..] => {
                let base = &server.as_ref().expect("a curl command before `phi3v serve`").base;
                let out = run(std::process::Command::new("sh").arg("-c").arg(command.replace("http://127.0.0.1:8000", base)));
                assert!(out.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&out.stderr));
                let reply: serde_json::Value = serde_json::from_slice(&out.stdout).expect("curl printed JSON");
                assert_eq!(reply["object"], "chat.completion", "{reply}");
                ran += 1;
                continue;
            }
            ["cargo", "run", "--release", "-p", "phi3v-cli", "--", rest @ ..] => rest.to_vec(),
            ["phi3v", rest @ ..] => rest.to_vec(),
            other => panic!("README command not understood by this test: {other:?}"),
        };
        let out = run(std::process::Command::new(env!("CARGO_BIN_EXE_phi3v"))
            .args(&args)
            .current_dir(work.path())
            .env("HF_HOME", hf.path())
            .env("HF_HUB_OFFLINE", "1"));
        assert!(out.status.success(), "`{command}` failed: {}", String::from_utf8_lossy(&out.stderr));
        assert!(!out.stdout.is_empty(), "`{command}` printed nothing");
        ran += 1;
    }
    assert!(ran >= 5, "only {ran} README commands ran: {commands:?}");
    assert!(server.is_some(), "the README starts the server");
}

#[test]
fn commands_are_read_like_a_shell_reads_them() {
    let text = "```sh\n# comment\nphi3v ask \\\n   --x \"a b\" \"\"\n```\n```text\nphi3v never\n```\n";
    assert_eq!(commands(text), ["phi3v ask    --x \"a b\" \"\""]);
    assert_eq!(words(&commands(text)[0]), ["phi3v", "ask", "--x", "a b", ""]);
}
