//! Pre-quantised checkpoints, as `phi3v quantize` writes them: the official directory layout
//! (configs and tokenizer copied) with one `model.safetensors` in which each q8 or q4 matrix is
//! stored as the products read it, so loading reads it into its buffer without quantising.
//!
//! A layer's `weight` `[out, in]` becomes `weight.q8` or `weight.q4`, a u8 tensor `[out, bytes
//! per row]` holding the rows' bytes in the layout of [`phi3v_linear::q8`] or
//! [`phi3v_linear::q4`]; every other tensor is copied as stored. The header's metadata says
//! what the file is, and every tensor's CRC-32, checked as it is read:
//!
//! | key | value |
//! |---|---|
//! | `format` | `phi3v-quantized` |
//! | `phi3v.format_version` | [`VERSION`] (a file of another version is refused) |
//! | `phi3v.decoder` | the decoder's matrices: `q8` or `q4` |
//! | `phi3v.vision` | the vision tower's and projector's: `q8`, `q4`, or the stored `bf16`, `f16`, `f32` |
//! | `phi3v.crc32` | a JSON object: tensor name → CRC-32 of its bytes |
//!
//! The byte layouts are little-endian as this project's hosts store them (f32 scales in native
//! order); a change to either layout must come with a new [`VERSION`].

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use phi3v_linear::{PackedPart, WeightFormat};
use safetensors::{Dtype, View};

use crate::weights::{INDEX_FILE, SINGLE_FILE};
use crate::{CheckpointError, TensorInfo, Weights};

/// The `format` of a pre-quantised checkpoint's metadata.
pub const FORMAT: &str = "phi3v-quantized";
/// The version of the stored layouts this build reads and writes.
pub const VERSION: u32 = 1;

const KEY_FORMAT: &str = "format";
const KEY_VERSION: &str = "phi3v.format_version";
const KEY_DECODER: &str = "phi3v.decoder";
const KEY_VISION: &str = "phi3v.vision";
const KEY_CRC: &str = "phi3v.crc32";

/// How `phi3v quantize` stored a checkpoint's matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantized {
    /// The decoder's: q8 or q4.
    pub decoder: WeightFormat,
    /// The vision tower's and projector's: q8, q4, or the stored 16-bit or f32 dtype.
    pub vision: WeightFormat,
}

/// Each tensor's CRC-32 by name.
pub(crate) type Checksums = HashMap<String, u32>;

/// One weight file's metadata read: `None` for an ordinary checkpoint file, otherwise how it
/// was quantised and each tensor's CRC-32. `names` are the tensors the file holds, each of
/// which must have a checksum.
pub(crate) fn read_metadata(
    file: &Path,
    meta: Option<&HashMap<String, String>>,
    names: &[&str],
) -> Result<Option<(Quantized, Checksums)>, CheckpointError> {
    let invalid = |m: String| CheckpointError::invalid(file, m);
    let get = |key: &str| meta.and_then(|m| m.get(key));
    if get(KEY_FORMAT).map(String::as_str) != Some(FORMAT) {
        if let Some(name) = names.iter().find(|n| is_packed(n)) {
            return Err(invalid(format!("{name} is a quantised matrix but the file's metadata does not say format {FORMAT:?}")));
        }
        return Ok(None);
    }
    let version = get(KEY_VERSION).ok_or_else(|| invalid(format!("{FORMAT} file without {KEY_VERSION}")))?;
    if version.parse::<u32>().ok() != Some(VERSION) {
        return Err(invalid(format!(
            "written by `phi3v quantize` in format version {version}; this phi3v reads version {VERSION}: quantise the original checkpoint again"
        )));
    }
    let format = |key: &str| -> Result<WeightFormat, CheckpointError> {
        let name = get(key).ok_or_else(|| invalid(format!("{FORMAT} file without {key}")))?;
        name.parse().ok().filter(|f| *f != WeightFormat::Auto).ok_or_else(|| invalid(format!("{key} is {name:?}, not a weight format")))
    };
    let quantized = Quantized { decoder: format(KEY_DECODER)?, vision: format(KEY_VISION)? };
    if !matches!(quantized.decoder, WeightFormat::Q8 | WeightFormat::Q4) {
        return Err(invalid(format!("{KEY_DECODER} is {}, expected q8 or q4", quantized.decoder)));
    }
    let crc = get(KEY_CRC).ok_or_else(|| invalid(format!("{FORMAT} file without {KEY_CRC}")))?;
    let crc: Checksums = serde_json::from_str(crc).map_err(|e| invalid(format!("{KEY_CRC}: {e}")))?;
    if let Some(name) = names.iter().find(|n| !crc.contains_key(**n)) {
        return Err(invalid(format!("tensor {name} has no checksum in {KEY_CRC}")));
    }
    Ok(Some((quantized, crc)))
}

/// Whether a tensor name is a packed matrix (`….weight.q8` or `….weight.q4`).
pub(crate) fn is_packed(name: &str) -> bool {
    phi3v_linear::packed_names().any(|(_, suffix)| name.ends_with(&format!(".{suffix}")))
}

/// What a tensor of the written file holds.
enum Data<'a> {
    /// Packed rows from a loaded layer.
    Packed(&'a PackedPart),
    /// A tensor of the source checkpoint, copied as stored.
    Stored(&'a TensorInfo, Dtype),
}

impl View for &Data<'_> {
    fn dtype(&self) -> Dtype {
        match self {
            Data::Packed(_) => Dtype::U8,
            Data::Stored(_, dtype) => *dtype,
        }
    }

    fn shape(&self) -> &[usize] {
        match self {
            Data::Packed(p) => &p.shape,
            Data::Stored(info, _) => &info.shape,
        }
    }

    fn data(&self) -> Cow<'_, [u8]> {
        match self {
            Data::Packed(p) => Cow::Borrowed(&p.bytes),
            // A read error leaves the bytes short; the writer's length check reports it.
            Data::Stored(info, _) => Cow::Owned(read_stored(info).unwrap_or_default()),
        }
    }

    fn data_len(&self) -> usize {
        match self {
            Data::Packed(p) => p.bytes.len(),
            Data::Stored(info, _) => info.bytes,
        }
    }
}

fn read_stored(info: &TensorInfo) -> std::io::Result<Vec<u8>> {
    let mut file = File::open(&info.file)?;
    file.seek(SeekFrom::Start(info.offset))?;
    let mut bytes = vec![0; info.bytes];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// The safetensors dtype of a stored tensor, as [`TensorInfo::dtype`] names it.
fn dtype(info: &TensorInfo, name: &str) -> Result<Dtype, CheckpointError> {
    Ok(match info.dtype.as_str() {
        "BF16" => Dtype::BF16,
        "F16" => Dtype::F16,
        "F32" => Dtype::F32,
        "F64" => Dtype::F64,
        "I64" => Dtype::I64,
        "I32" => Dtype::I32,
        "U8" => Dtype::U8,
        "BOOL" => Dtype::BOOL,
        other => return Err(CheckpointError::invalid(&info.file, format!("{name}: cannot copy a tensor stored as {other}"))),
    })
}

/// Writes a pre-quantised checkpoint into `out` (created if need be; it must not hold weights
/// already): every regular file of `source_dir` but the weights copied, and `model.safetensors`
/// holding `packed` in place of the `weight` tensors they came from and every other tensor of
/// `source` as stored. The weights are written to a temporary name and renamed when complete.
pub(crate) fn write(source_dir: &Path, source: &Weights, packed: &[PackedPart], quantized: Quantized, out: &Path) -> Result<(), CheckpointError> {
    fn io(path: &Path) -> impl Fn(std::io::Error) -> CheckpointError + '_ {
        move |e| CheckpointError::io(path, e)
    }
    if out.join(SINGLE_FILE).exists() || out.join(INDEX_FILE).exists() {
        return Err(CheckpointError::invalid(out, "already holds a checkpoint's weights: remove them or choose another directory"));
    }
    if out.canonicalize().ok().is_some_and(|o| source_dir.canonicalize().is_ok_and(|s| s == o)) {
        return Err(CheckpointError::invalid(out, "is the source checkpoint: choose another directory"));
    }
    let mut tensors: BTreeMap<String, Data> = BTreeMap::new();
    // The tensors the packed parts replace: `x.weight` for `x.weight.q4`.
    let mut replaced = std::collections::HashSet::new();
    for part in packed {
        let stem = part.name.rsplit_once('.').map(|(stem, _)| stem).filter(|stem| source.tensors().contains_key(*stem));
        let Some(stem) = stem else {
            return Err(CheckpointError::invalid(source_dir, format!("{}: not a packed form of a tensor in the checkpoint", part.name)));
        };
        replaced.insert(stem);
        tensors.insert(part.name.clone(), Data::Packed(part));
    }
    for (name, info) in source.tensors() {
        if !replaced.contains(name.as_str()) {
            tensors.insert(name.clone(), Data::Stored(info, dtype(info, name)?));
        }
    }
    // Checksums first: they go in the header, which is written before the data.
    let mut crc = BTreeMap::new();
    for (name, data) in &tensors {
        let bytes = (&data).data();
        if bytes.len() != (&data).data_len() {
            return Err(CheckpointError::invalid(source_dir, format!("{name}: could not be read")));
        }
        crc.insert(name.clone(), crc32fast::hash(&bytes));
    }
    let metadata = HashMap::from([
        (KEY_FORMAT.to_string(), FORMAT.to_string()),
        (KEY_VERSION.to_string(), VERSION.to_string()),
        (KEY_DECODER.to_string(), quantized.decoder.to_string()),
        (KEY_VISION.to_string(), quantized.vision.to_string()),
        (KEY_CRC.to_string(), serde_json::to_string(&crc).expect("a map of numbers")),
    ]);

    std::fs::create_dir_all(out).map_err(io(out))?;
    for entry in std::fs::read_dir(source_dir).map_err(io(source_dir))? {
        let path = entry.map_err(io(source_dir))?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let weights = name == INDEX_FILE || name.ends_with(".safetensors");
        if !weights && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            std::fs::copy(&path, out.join(name)).map_err(io(&path))?;
        }
    }
    let partial = out.join(format!("{SINGLE_FILE}.partial"));
    safetensors::serialize_to_file(tensors.iter().map(|(n, d)| (n.as_str(), d)), Some(metadata), &partial)
        .map_err(|e| CheckpointError::Safetensors { path: partial.clone(), message: e.to_string() })?;
    // The writer creates the file for its owner alone; it gets the source weights' permissions.
    if let Some(permissions) = source.files().first().and_then(|f| std::fs::metadata(f).ok()).map(|m| m.permissions()) {
        std::fs::set_permissions(&partial, permissions).map_err(io(&partial))?;
    }
    let file = out.join(SINGLE_FILE);
    std::fs::rename(&partial, &file).map_err(io(&file))
}
