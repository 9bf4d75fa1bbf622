//! Replays every input committed under `fuzz/regressions/<target>/` (what the fuzzers found,
//! and inputs that reach deep into each target) through the same checks the fuzz targets make
//! (`tests/fuzzing/mod.rs`): a fixed bug that comes back fails here, without a fuzzer.

mod fuzzing;

use phi3v::prompt::PromptTokenizer;

#[test]
fn fuzz_reproducers_stay_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let tokenizer = PromptTokenizer::from_file(&phi3v_fixtures::path("tiny-phi3v/tokenizer.json")).unwrap();
    let mut replayed = 0;
    for target in fuzzing::TARGETS {
        let dir = root.join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            eprintln!("{}", file.display());
            match target {
                "image" => fuzzing::image(&data),
                "prompt" => fuzzing::prompt(&tokenizer, &data),
                "checkpoint" => fuzzing::checkpoint(&data),
                _ => fuzzing::eval(&data),
            }
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs under {}", root.display());
}
