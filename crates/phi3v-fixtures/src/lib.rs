//! Test-only access to the reference fixtures committed in `tests/fixtures/`.
//!
//! The fixtures are written by `tests/reference/regenerate.sh` from the PyTorch reference
//! (transformers' `CLIPVisionModel` and `Phi3ForCausalLM` plus the official processor logic).
//! This crate only locates and parses them; it computes nothing.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;

/// `tests/fixtures/` of this repository.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A path inside the fixtures directory.
pub fn path(rel: &str) -> PathBuf {
    dir().join(rel)
}

/// The command line of a bench: `[MODEL_DIR] [--name value]...` (cargo adds `--bench`).
pub struct BenchArgs(Vec<String>);

impl BenchArgs {
    /// This process's arguments.
    pub fn from_env() -> Self {
        Self(std::env::args().skip(1).collect())
    }

    /// The checkpoint to run on: the first argument that is neither a flag nor a flag's value;
    /// without one, the tiny Phi-3.5-vision fixture.
    pub fn model(&self) -> PathBuf {
        let a = &self.0;
        a.iter()
            .enumerate()
            .find(|&(i, arg)| !arg.starts_with('-') && (i == 0 || !a[i - 1].starts_with("--")))
            .map_or_else(|| path("tiny-phi35v"), |(_, arg)| PathBuf::from(arg))
    }

    /// The value after `--name`.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.0.iter().position(|a| a == name).and_then(|i| self.0.get(i + 1)).map(String::as_str)
    }

    /// The value after `--name` parsed, or `default` without one.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, T::Err> {
        self.flag(name).map_or(Ok(default), str::parse)
    }
}

/// The two tiny checkpoints: Phi-3-vision layout (one file, 16 crops) and Phi-3.5-vision layout
/// (two shards, 4 crops).
pub const CHECKPOINTS: [&str; 2] = ["tiny-phi3v", "tiny-phi35v"];

fn read_json<T: for<'de> Deserialize<'de>>(rel: &str) -> T {
    let p = path(rel);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A writable copy of a fixture checkpoint (for tests that break it on purpose); the copy is
/// deleted when the returned guard drops.
pub fn checkpoint_copy(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("temporary directory");
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).expect("create checkpoint copy");
    for e in std::fs::read_dir(path(name)).expect("fixture checkpoint") {
        let e = e.expect("directory entry");
        std::fs::copy(e.path(), dir.join(e.file_name())).expect("copy fixture file");
    }
    (tmp, dir)
}

/// Reads all tensors of a golden safetensors file (relative to the fixtures dir) as f32/i64 on CPU.
pub fn tensors(rel: &str) -> HashMap<String, Tensor> {
    let p = path(rel);
    candle_core::safetensors::load(&p, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `golden/preprocess.json`: the reference image processor on every fixture image, at 4 and 16
/// crops.
#[derive(Debug, Deserialize)]
pub struct Preprocess {
    pub image_mean: [f32; 3],
    pub image_std: [f32; 3],
    pub entries: Vec<PreprocessEntry>,
}

#[derive(Debug, Deserialize)]
pub struct PreprocessEntry {
    /// `{image stem}-c{num_crops}`; also the prefix of its tensors in `preprocess.safetensors`.
    pub key: String,
    pub image: String,
    pub num_crops: usize,
    /// PIL's mode of the file as opened (RGB, RGBA, L, P).
    pub mode: String,
    pub source_size_wh: [usize; 2],
    /// Set when the reference itself fails on this input (then nothing else is).
    pub reference_error: Option<String>,
    pub image_size_hw: Option<[usize; 2]>,
    pub num_img_tokens: Option<usize>,
    /// The uint8 RGB image after resize and padding, where stored.
    pub hd_png: Option<String>,
    pub pixel_values_shape: Option<[usize; 4]>,
    /// SHA-256 of `pixel_values[1:]` (tiles then zero crops) as little-endian f32 bytes.
    pub sha256_tiles: Option<String>,
    /// SHA-256 of `pixel_values[0]` (the bicubic global view) as little-endian f32 bytes.
    pub sha256_global: Option<String>,
}

pub fn preprocess() -> Preprocess {
    read_json("golden/preprocess.json")
}

/// `golden/prompts.json`: processor tokenisation of assorted prompts.
#[derive(Debug, Deserialize)]
pub struct Prompts {
    pub entries: Vec<PromptEntry>,
}

#[derive(Debug, Deserialize)]
pub struct PromptEntry {
    pub prompt: String,
    pub num_img_tokens: Vec<usize>,
    pub input_ids: Vec<i64>,
}

pub fn prompts() -> Prompts {
    read_json("golden/prompts.json")
}

/// One end-to-end case: `golden/{checkpoint}/{case}.json` plus its `.safetensors`
/// (`logits` [len(logits_steps), vocab], and with images `image_embeds` [tokens, hidden] and
/// `clip_features` [2, 576, vision hidden] for the first image's global view and first tile).
#[derive(Debug, Deserialize)]
pub struct ModelCase {
    pub checkpoint: String,
    pub messages: Vec<Message>,
    pub prompt: String,
    pub images: Vec<CaseImage>,
    pub prompt_len: usize,
    pub input_ids: Vec<i64>,
    pub greedy_tokens: Vec<u32>,
    /// Which forward passes' last-position logits are stored (0 = prefill).
    pub logits_steps: Vec<usize>,
    /// Forward passes at which the reference dropped its cache and re-prefilled (LongRoPE switch).
    pub reprefill_steps: Vec<usize>,
    /// Smallest gap between the two best logits over all steps (how robust greedy parity is).
    pub min_top2_margin: f64,
}

#[derive(Debug, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Deserialize)]
pub struct CaseImage {
    pub image: String,
    pub num_crops: usize,
    pub image_size_hw: [usize; 2],
    pub num_img_tokens: usize,
}

/// All cases of a checkpoint, by name.
pub fn model_cases(checkpoint: &str) -> Vec<(String, ModelCase)> {
    let dir = path(&format!("golden/{checkpoint}"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok()?.file_name().into_string().ok()?.strip_suffix(".json").map(str::to_string))
        .collect();
    names.sort();
    names.into_iter().map(|n| (n.clone(), read_json(&format!("golden/{checkpoint}/{n}.json")))).collect()
}

/// `assets/phi3v-demo/`: the trained demo checkpoint (`tests/reference/train_demo.sh`).
pub fn demo_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/phi3v-demo")
}

/// The reference's greedy answers of the demo checkpoint (`golden/phi3v-demo.json`, written by
/// `tests/reference/demo_goldens.py`).
#[derive(Debug, Deserialize)]
pub struct DemoGoldens {
    /// Tokens generated at most per question.
    pub max_tokens: usize,
    pub cases: Vec<DemoCase>,
}

/// One question of `assets/evals/chartqa.jsonl` and the reference's answer to it.
#[derive(Debug, Deserialize)]
pub struct DemoCase {
    pub id: String,
    pub question: String,
    /// Relative to `assets/evals/`.
    pub image: String,
    /// Greedy tokens, the stop token excluded.
    pub tokens: Vec<u32>,
    pub answer: String,
    /// Smallest gap between the two best logits over the answer's steps.
    pub min_gap: f64,
}

/// The demo checkpoint's reference answers.
pub fn demo_goldens() -> DemoGoldens {
    read_json("golden/phi3v-demo.json")
}

/// A Hugging Face cache holding `owner/name` at one snapshot, as hf-hub and transformers lay it out.
pub fn fake_hf_home(root: &Path, id: &str, from: &str) {
    let repo = root.join("hub").join(format!("models--{}", id.replace('/', "--")));
    let snapshot = repo.join("snapshots").join("0123456789abcdef");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123456789abcdef").unwrap();
    for e in std::fs::read_dir(path(from)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), snapshot.join(e.file_name())).unwrap();
    }
}
