//! The README's Rust block as a newcomer runs it: it is `examples/readme.rs` word for word, and
//! that example runs from a folder laid out like the repository, with
//! `microsoft/Phi-3.5-vision-instruct` served from a local Hugging Face cache holding the tiny
//! checkpoint. (Compiling the block itself is a doctest of this crate.)

use std::path::Path;

#[test]
fn the_readme_library_example_is_the_example_and_runs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let start = readme.find("```rust no_run\n").expect("a Rust block in the README") + "```rust no_run\n".len();
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let example = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/readme.rs")).unwrap();
    let code: String = example.lines().skip_while(|l| l.starts_with("//!") || l.is_empty()).map(|l| format!("{l}\n")).collect();
    assert_eq!(code, block, "examples/readme.rs differs from the README's block");

    // `cargo test` builds the examples next to the test binaries.
    let exe = std::env::current_exe().unwrap();
    let binary = exe.parent().unwrap().parent().unwrap().join("examples/readme");
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(root.join("assets").canonicalize().unwrap(), work.path().join("assets")).unwrap();
    let hf = tempfile::tempdir().unwrap();
    phi3v_fixtures::fake_hf_home(hf.path(), "microsoft/Phi-3.5-vision-instruct", "tiny-phi35v");
    let out = std::process::Command::new(&binary)
        .current_dir(work.path())
        .env("HF_HOME", hf.path())
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("\n777 prompt tokens"), "{stdout}");
}
