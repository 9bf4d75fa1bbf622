//! Where a model is: a local checkpoint directory, or a Hugging Face model id resolved through
//! the standard HF cache (`HF_HOME`, default `~/.cache/huggingface`), downloading what is
//! missing unless `HF_HUB_OFFLINE` is set.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo};

use crate::{Error, Result};

fn fail(message: String) -> Error {
    Error::Hub(message)
}

/// Files every checkpoint needs besides its weights.
const FILES: [&str; 3] = ["config.json", "preprocessor_config.json", "tokenizer.json"];

fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Shard names listed in a `model.safetensors.index.json`.
fn shards(index: &Path) -> Result<Vec<String>> {
    let bytes = phi3v_checkpoint::read_regular(index, phi3v_checkpoint::MAX_JSON_BYTES)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| fail(format!("{}: {e}", index.display())))?;
    let map = v["weight_map"].as_object().ok_or_else(|| fail(format!("{}: no weight_map", index.display())))?;
    let mut files: Vec<String> = map.values().filter_map(|f| f.as_str().map(str::to_string)).collect();
    if let Some(bad) = files.iter().find(|f| !phi3v_checkpoint::confined(f)) {
        return Err(fail(format!("{}: shard {bad:?} is not a file inside the checkpoint directory", index.display())));
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// The directory holding the checkpoint named by `spec`: `spec` itself when it is a
/// directory, else the snapshot of the Hugging Face model id `spec` in the HF cache, with what
/// is missing downloaded first (with progress bars on stderr when `progress`).
pub fn resolve(spec: &str, progress: bool) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let looks_like_id = spec.split('/').count() == 2 && !spec.starts_with('.') && !spec.starts_with('/');
    if !looks_like_id {
        return Err(fail(format!("model directory {spec} does not exist")));
    }
    let repo = Repo::model(spec.to_string());
    let cached = Cache::from_env().repo(repo.clone());
    let get = |file: &str| -> Result<PathBuf> {
        if let Some(p) = cached.get(file) {
            return Ok(p);
        }
        if offline() {
            return Err(fail(format!("{spec}: {file} is not in the Hugging Face cache and HF_HUB_OFFLINE is set")));
        }
        let api = ApiBuilder::from_env().with_progress(progress).build().map_err(|e| fail(format!("Hugging Face client: {e}")))?;
        api.repo(repo.clone())
            .get(file)
            .map_err(|e| fail(format!("cannot download {file} of {spec} (unknown model id, or no network?): {e}")))
    };
    let config = get(FILES[0])?;
    for f in &FILES[1..] {
        get(f)?;
    }
    // Optional tokenizer companions, then the weights (index first when there is one).
    for f in ["tokenizer_config.json", "special_tokens_map.json"] {
        let _ = get(f);
    }
    match get("model.safetensors.index.json") {
        Ok(index) => {
            for shard in shards(&index)? {
                get(&shard)?;
            }
        }
        Err(_) => {
            get("model.safetensors")?;
        }
    }
    Ok(config.parent().unwrap_or(Path::new(".")).to_path_buf())
}

/// The models in the Hugging Face cache (`HF_HOME`): each id with the directory of its current
/// snapshot (`refs/main`), sorted by id. Whether each is a Phi-3-vision checkpoint is for the
/// caller to check.
pub fn cached() -> Vec<(String, PathBuf)> {
    let cache = Cache::from_env();
    let Ok(entries) = std::fs::read_dir(cache.path()) else { return Vec::new() };
    let mut models: Vec<(String, PathBuf)> = entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let id = name.strip_prefix("models--")?.replacen("--", "/", 1);
            let config = cache.repo(Repo::model(id.clone())).get("config.json")?;
            Some((id, config.parent()?.to_path_buf()))
        })
        .collect();
    models.sort();
    models
}
