//! Safetensors weights: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`, memory-mapped.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use memmap2::Mmap;
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::CheckpointError;

pub(crate) const SINGLE_FILE: &str = "model.safetensors";
pub(crate) const INDEX_FILE: &str = "model.safetensors.index.json";

/// Dtype and shape of one stored tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    pub dtype: String,
    pub shape: Vec<usize>,
    /// Stored size in bytes.
    pub bytes: usize,
    /// The file holding it.
    pub file: PathBuf,
}

/// The weight files of a checkpoint and what each tensor is.
#[derive(Debug, Clone)]
pub struct Weights {
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, TensorInfo>,
}

#[derive(Deserialize)]
struct Index {
    weight_map: HashMap<String, String>,
}

impl Weights {
    /// Finds the weight files in `dir` and reads every tensor header. With an index, every
    /// tensor it lists must be in the named shard, and no shard may hold unlisted tensors.
    pub fn open(dir: &Path) -> Result<Self, CheckpointError> {
        let index_path = dir.join(INDEX_FILE);
        let single = dir.join(SINGLE_FILE);
        let (files, weight_map) = if index_path.is_file() {
            let index: Index = crate::read_json(&index_path)?;
            let mut files: Vec<PathBuf> = index.weight_map.values().map(|f| dir.join(f)).collect();
            files.sort();
            files.dedup();
            (files, Some(index.weight_map))
        } else if single.is_file() {
            (vec![single], None)
        } else {
            return Err(CheckpointError::NoWeights(dir.to_path_buf()));
        };

        let mut tensors = BTreeMap::new();
        for file in &files {
            let mmap = mmap(file)?;
            let (_, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| CheckpointError::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            })?;
            for (name, info) in meta.tensors() {
                let entry = TensorInfo {
                    dtype: format!("{:?}", info.dtype),
                    shape: info.shape.clone(),
                    bytes: info.data_offsets.1 - info.data_offsets.0,
                    file: file.clone(),
                };
                if tensors.insert(name.clone(), entry).is_some() {
                    return Err(CheckpointError::invalid(file, format!("tensor {name} is stored in more than one file")));
                }
            }
        }
        if let Some(map) = weight_map {
            for (name, shard) in &map {
                match tensors.get(name) {
                    Some(t) if t.file == dir.join(shard) => {}
                    Some(t) => {
                        return Err(CheckpointError::invalid(
                            &index_path,
                            format!("tensor {name} is mapped to {shard} but stored in {}", t.file.display()),
                        ))
                    }
                    None => {
                        return Err(CheckpointError::invalid(
                            &index_path,
                            format!("tensor {name} is mapped to {shard}, which does not contain it"),
                        ))
                    }
                }
            }
            if let Some(name) = tensors.keys().find(|n| !map.contains_key(*n)) {
                return Err(CheckpointError::invalid(&index_path, format!("tensor {name} is stored but not listed")));
            }
        }
        Ok(Self { files, tensors })
    }

    /// The weight files, sorted.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Every stored tensor by name.
    pub fn tensors(&self) -> &BTreeMap<String, TensorInfo> {
        &self.tensors
    }

    /// Total stored size of all tensors in bytes.
    pub fn total_bytes(&self) -> usize {
        self.tensors.values().map(|t| t.bytes).sum()
    }

    /// A candle `VarBuilder` over the memory-mapped files; tensors are converted to `dtype` as
    /// they are fetched. Shape checks happen at fetch time and name the tensor.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>, CheckpointError> {
        // SAFETY: the files are mapped read-only; modifying a checkpoint while it is loaded is
        // outside what this library supports (as for every mmap-based loader).
        unsafe { VarBuilder::from_mmaped_safetensors(&self.files, dtype, device) }.map_err(|e| {
            CheckpointError::Safetensors { path: self.files[0].clone(), message: e.to_string() }
        })
    }
}

fn mmap(path: &Path) -> Result<Mmap, CheckpointError> {
    let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    // SAFETY: read-only mapping, see `var_builder`.
    unsafe { Mmap::map(&file) }.map_err(|e| CheckpointError::io(path, e))
}
