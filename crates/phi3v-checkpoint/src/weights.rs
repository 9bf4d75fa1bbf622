//! Safetensors weights: one `model.safetensors`, or shards listed by
//! `model.safetensors.index.json`. Headers are read once; tensors are read from the files one at
//! a time as the model asks for them, so nothing stays mapped or resident after loading.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::io::{Read, Seek, SeekFrom};

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::SafeTensors;
use serde::Deserialize;

use crate::quantized::{self, Checksums, Quantized};
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
    /// Where its bytes start in that file.
    pub offset: u64,
}

/// The weight files of a checkpoint and what each tensor is.
#[derive(Debug, Clone)]
pub struct Weights {
    files: Vec<PathBuf>,
    tensors: BTreeMap<String, TensorInfo>,
    /// For a checkpoint written by `phi3v quantize`: how, and each tensor's CRC-32.
    quantized: Option<(Quantized, Arc<Checksums>)>,
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
            if let Some(shard) = index.weight_map.values().find(|f| !crate::confined(f)) {
                return Err(CheckpointError::invalid(
                    &index_path,
                    format!("shard {shard:?} is not a file inside the checkpoint directory"),
                ));
            }
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
        let mut quantized: Option<Option<(Quantized, Checksums)>> = None;
        for file in &files {
            let mmap = mmap(file)?;
            let (header, meta) = SafeTensors::read_metadata(&mmap).map_err(|e| CheckpointError::Safetensors {
                path: file.clone(),
                message: e.to_string(),
            })?;
            let stored = meta.tensors();
            let names: Vec<&str> = stored.keys().map(String::as_str).collect();
            let this = quantized::read_metadata(file, meta.metadata().as_ref(), &names)?;
            quantized = match (quantized, this) {
                (None, this) => Some(this),
                (Some(Some((q, mut crc))), Some((q2, crc2))) if q == q2 => {
                    crc.extend(crc2);
                    Some(Some((q, crc)))
                }
                (Some(None), None) => Some(None),
                _ => return Err(CheckpointError::invalid(file, "the weight files disagree on how they were quantised")),
            };
            for (name, info) in stored {
                let entry = TensorInfo {
                    dtype: format!("{:?}", info.dtype),
                    shape: info.shape.clone(),
                    bytes: info.data_offsets.1 - info.data_offsets.0,
                    file: file.clone(),
                    offset: (8 + header + info.data_offsets.0) as u64,
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
        let quantized = quantized.flatten().map(|(q, crc)| (q, Arc::new(crc)));
        Ok(Self { files, tensors, quantized })
    }

    /// How `phi3v quantize` stored the matrices, for a checkpoint it wrote.
    pub fn quantized(&self) -> Option<Quantized> {
        self.quantized.as_ref().map(|(q, _)| *q)
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

    /// The dtype most of the weight bytes are stored in (bf16 for the official checkpoints),
    /// quantised matrices left out.
    pub fn stored_dtype(&self) -> DType {
        let mut bytes: BTreeMap<&str, usize> = BTreeMap::new();
        for t in self.tensors.values().filter(|t| t.dtype != "U8") {
            *bytes.entry(t.dtype.as_str()).or_default() += t.bytes;
        }
        match bytes.into_iter().max_by_key(|&(_, b)| b).map(|(d, _)| d) {
            Some("BF16") => DType::BF16,
            Some("F16") => DType::F16,
            _ => DType::F32,
        }
    }

    /// A candle `VarBuilder` over the files; tensors are read when fetched and converted to
    /// the dtype asked for (`dtype` unless the caller names another). Shape checks happen at
    /// fetch time and name the tensor.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>, CheckpointError> {
        self.var_builder_observed(dtype, device, Arc::new(|_| {}))
    }

    /// [`Self::var_builder`], calling `read(bytes)` with each tensor's stored size once it is
    /// read (from the loading threads), for progress out of [`Self::total_bytes`].
    pub fn var_builder_observed(&self, dtype: DType, device: &Device, read: ReadObserver) -> Result<VarBuilder<'static>, CheckpointError> {
        let checksums = self.quantized.as_ref().map(|(_, crc)| crc.clone());
        Ok(VarBuilder::from_backend(Box::new(Reader { tensors: self.tensors.clone(), checksums, read }), dtype, device.clone()))
    }
}

/// Called with the stored size of each tensor read.
pub type ReadObserver = Arc<dyn Fn(u64) + Send + Sync>;

/// Reads single tensors from the safetensors files.
struct Reader {
    tensors: BTreeMap<String, TensorInfo>,
    /// Each tensor's CRC-32, for a pre-quantised checkpoint: checked as it is read.
    checksums: Option<Arc<Checksums>>,
    read: ReadObserver,
}

impl Reader {
    fn read(&self, name: &str, dev: &Device) -> candle_core::Result<Tensor> {
        let info = self.tensors.get(name).ok_or_else(|| candle_core::Error::CannotFindTensor { path: name.to_string() })?;
        let tensor = match info.dtype.as_str() {
            "BF16" => self.tensor::<bf16>(name, info, dev),
            "F16" => self.tensor::<f16>(name, info, dev),
            "F32" => self.tensor::<f32>(name, info, dev),
            "U8" if quantized::is_packed(name) => self.tensor::<u8>(name, info, dev),
            other => candle_core::bail!("{name}: stored as {other}, expected BF16, F16 or F32"),
        };
        (self.read)(info.bytes as u64);
        tensor
    }

    /// Tensor `name` (described by `info`) read from its file as values of `T`, which must match
    /// its checksum when the checkpoint has them.
    fn tensor<T: bytemuck::Pod + candle_core::WithDType>(&self, name: &str, info: &TensorInfo, dev: &Device) -> candle_core::Result<Tensor> {
        let io = |e: std::io::Error| candle_core::Error::Msg(format!("{}: reading {name}: {e}", info.file.display()));
        let mut file = File::open(&info.file).map_err(io)?;
        file.seek(SeekFrom::Start(info.offset)).map_err(io)?;
        let values = read_values::<T>(&mut file, info.bytes).map_err(io)?;
        if let Some(crc) = self.checksums.as_ref().and_then(|c| c.get(name)) {
            if crc32fast::hash(bytemuck::cast_slice(&values)) != *crc {
                candle_core::bail!(
                    "{}: tensor {name} does not match its checksum: the file was altered or damaged after `phi3v quantize` wrote it; quantise again",
                    info.file.display()
                );
            }
        }
        Tensor::from_vec(values, info.shape.as_slice(), dev)
    }
}

/// The next `bytes` bytes of `file` as values of `T`, read straight into their buffer (the
/// sizes were checked against the shapes when the header was read), on huge pages: a matrix
/// kept as stored (16-bit weights) multiplies from this very buffer. Safetensors stores
/// little-endian values, which is what this reads on the little-endian hosts it serves.
fn read_values<T: bytemuck::Pod>(file: &mut File, bytes: usize) -> std::io::Result<Vec<T>> {
    let mut values = phi3v_linear::huge::filled(bytes / size_of::<T>(), T::zeroed());
    file.read_exact(bytemuck::cast_slice_mut(&mut values))?;
    Ok(values)
}

impl SimpleBackend for Reader {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self.read(name, dev)?;
        if t.shape() != &s {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!("shape mismatch for {name}"),
                expected: s,
                got: t.shape().clone(),
            }
            .bt());
        }
        t.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.read(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }
}

fn mmap(path: &Path) -> Result<Mmap, CheckpointError> {
    // Looked at before it is opened: opening a FIFO blocks until someone writes to it.
    if !std::fs::metadata(path).map_err(|e| CheckpointError::io(path, e))?.is_file() {
        return Err(CheckpointError::invalid(path, "not a regular file"));
    }
    let file = File::open(path).map_err(|e| CheckpointError::io(path, e))?;
    phi3v_linear::unsafe_io::map_readonly(&file).map_err(|e| CheckpointError::io(path, e))
}
