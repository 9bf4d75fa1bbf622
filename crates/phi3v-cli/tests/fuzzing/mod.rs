//! What each fuzz target checks, shared by the libFuzzer targets (`fuzz/`) and the regression
//! test that replays their reproducers and seeds (`tests/fuzz_regressions.rs`). Each function
//! takes any bytes and must return without a panic, a hang or an unbounded allocation; the
//! asserts are the properties that must hold on top.
#![allow(dead_code)] // each user calls its own subset

use phi3v::checkpoint::Checkpoint;
use phi3v::decoder::Decoder;
use phi3v::image::ImageEncoder;
use phi3v::prompt::{chat_prompt, PromptTokenizer};
use phi3v::vision::{preprocess, Normalization};
use phi3v::{Device, ImageInput, ImageLimits, Message, TextStream, WeightFormat};
use phi3v_evals::runner::Store;
use phi3v_evals::template::{check_template, render};
use phi3v_evals::{Harness, Task};

/// The fuzz targets, by the name of their folders under `fuzz/`.
pub const TARGETS: [&str; 4] = ["image", "prompt", "checkpoint", "eval"];

/// Image decoding and the reference preprocessing. Input: a crop-count byte, then the file.
pub fn image(data: &[u8]) {
    let Some((&crops, bytes)) = data.split_first() else { return };
    let limits = ImageLimits { max_pixels: 1 << 20, max_bytes: 1 << 20 };
    let Ok(input) = ImageInput::from_bytes_within(bytes, &limits) else { return };
    let Ok(rgb) = input.rgb() else { return };
    assert_eq!(rgb.dimensions(), input.dimensions(), "the header's size is the decoded size");
    if let Ok(pre) = preprocess(&rgb, 1 + crops as usize % 4, &Normalization::CLIP) {
        assert!(pre.crops.iter().all(|v| v.is_finite()));
    }
}

/// Prompt building, tag parsing, tokenisation and streaming detokenisation. Input: a byte that
/// picks the images (count, first number, continuation), then the text (also read as token ids).
pub fn prompt(tok: &PromptTokenizer, data: &[u8]) {
    let Some((&n, rest)) = data.split_first() else { return };
    let mut stream = TextStream::new(tok.tokenizer());
    for pair in rest.chunks_exact(2).take(64) {
        let id = u16::from_le_bytes([pair[0], pair[1]]) as u32 % 32064;
        stream.push(id).expect("decoding any id of the vocabulary works");
    }
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let counts: Vec<usize> = (0..n % 4).map(|k| 1 + k as usize * 7).collect();
    let first = 1 + (n as usize >> 2) % 3;
    let chat = chat_prompt(&[Message::new("system", text), Message::new("user", text)], true);
    for (prompt, first, continuation) in [(chat.as_str(), 1, false), (text, first, n & 0x80 != 0)] {
        match tok.encode_from(prompt, &counts, first, continuation) {
            Ok(ids) => {
                for (k, &count) in counts.iter().enumerate() {
                    let placeholder = -((first + k) as i64);
                    assert_eq!(ids.iter().filter(|&&i| i == placeholder).count(), count);
                }
                let (lo, hi) = (first as i64, (first + counts.len()) as i64);
                assert!(ids.iter().all(|&i| (0..32064).contains(&i) || (lo..hi).contains(&-i)));
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
}

const PREPROCESSOR: &str = include_str!("../../../../tests/fixtures/tiny-phi35v/preprocessor_config.json");

/// `config.json` and `model.safetensors` as a checkpoint: opened, checked against each other
/// and loaded (decoder, vision tower, projector) or refused. Input: the config, a NUL, the
/// weights file.
pub fn checkpoint(data: &[u8]) {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, weights) = (&data[..split], data.get(split + 1..).unwrap_or_default());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("config.json"), config).expect("write");
    std::fs::write(dir.path().join("preprocessor_config.json"), PREPROCESSOR).expect("write");
    std::fs::write(dir.path().join("model.safetensors"), weights).expect("write");
    let ckpt = match Checkpoint::open(dir.path()) {
        Ok(c) => c,
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    for format in [WeightFormat::F32, WeightFormat::Q4] {
        let Ok(vb) = ckpt.weights.var_builder(format.table_dtype(ckpt.weights.stored_dtype()), &Device::Cpu) else { return };
        let _ = Decoder::load(&ckpt.config, format, vb);
        let _ = ImageEncoder::load(&ckpt, format, &Device::Cpu);
    }
}

const FILES: [(&str, Task); 6] = [
    ("test_human.json", Task::ChartQa),
    ("val_v1.0.json", Task::DocVqa),
    ("TextVQA_0.5.1_val.json", Task::TextVqa),
    ("OCRBench.json", Task::OcrBench),
    ("AI2D_TEST.tsv", Task::Ai2d),
    ("samples.jsonl", Task::ChartQa),
];

/// The evaluation readers, the predictions store, the templates and the scorers. Input: a byte
/// that picks the format (six readers, then the predictions file), then the file.
pub fn eval(data: &[u8]) {
    let Some((&which, bytes)) = data.split_first() else { return };
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(&(name, task)) = FILES.get(which as usize % 7) else {
        std::fs::write(dir.path().join("predictions.jsonl"), bytes).expect("write");
        if let Err(e) = Store::open(dir.path(), "predictions.jsonl") {
            assert!(!e.to_string().is_empty());
        }
        return;
    };
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write");
    let samples = match task.load(&path, None) {
        Ok(s) => s,
        Err(e) => return assert!(!e.to_string().is_empty()),
    };
    for s in samples.iter().take(8) {
        for response in s.answers.iter().chain([&s.question]).chain(&s.options).take(4) {
            for harness in [Harness::LmmsEval, Harness::VlmEvalKit, Harness::Official] {
                let score = task.score(s, response, harness).score;
                assert!((0.0..=1.0).contains(&score), "{task:?} {harness:?} {response:?}: {score}");
            }
        }
        if check_template(&s.question).is_ok() {
            render(&s.question, s);
        }
    }
}
