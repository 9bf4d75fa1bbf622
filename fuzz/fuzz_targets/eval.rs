#![no_main]
#[path = "../../crates/phi3v-cli/tests/fuzzing/mod.rs"]
mod fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzzing::eval(data));
