#![no_main]
#[path = "../../crates/phi3v-cli/tests/fuzzing/mod.rs"]
mod fuzzing;

use std::sync::OnceLock;

use phi3v::prompt::PromptTokenizer;

fn tokenizer() -> &'static PromptTokenizer {
    static TOKENIZER: OnceLock<PromptTokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-phi3v/tokenizer.json");
        PromptTokenizer::from_file(&path).expect("fixture tokenizer")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::prompt(tokenizer(), data));
