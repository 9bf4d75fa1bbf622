//! What a checkpoint needs in memory in each weight format, from its tensor shapes alone (no
//! weight is read): how to choose a format before loading, and what `phi3v inspect` prints.

use phi3v_checkpoint::Checkpoint;
use phi3v_decoder::KvDtype;
use phi3v_linear::WeightFormat;

/// Bytes a loaded model holds, by part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    /// The decoder's matrices (layers and `lm_head`): what every generated token reads.
    pub decoder_matrices: u64,
    /// The vision tower's and projector's matrices, the token embeddings, norms and biases.
    pub other_weights: u64,
    /// The KV cache at the given number of positions.
    pub kv_cache: u64,
}

impl MemoryEstimate {
    pub fn total(&self) -> u64 {
        self.decoder_matrices + self.other_weights + self.kv_cache
    }
}

const CLIP_LAYERS: &str = "model.vision_embed_tokens.img_processor.vision_model.encoder.layers.";

/// The memory of `ckpt` loaded with these formats (as [`crate::PipelineOptions`] takes them;
/// `kv: None` is the pipeline's default for the decoder's format), with `positions` in the KV
/// cache. Tensors the model never reads (CLIP's layers past the feature layer) are left out.
///
/// For a checkpoint written by `phi3v quantize`, `Auto` is the format it was written in and
/// its matrices count as stored.
pub fn estimate(ckpt: &Checkpoint, decoder: WeightFormat, vision: WeightFormat, kv: Option<KvDtype>, positions: usize) -> MemoryEstimate {
    let stored = ckpt.weights.stored_dtype();
    let (decoder, vision) = crate::resolve_formats(ckpt, decoder, vision).unwrap_or((decoder.resolve(stored), vision.resolve(stored)));
    let table = decoder.table_dtype(stored).size_in_bytes() as u64;
    let mut e = MemoryEstimate { decoder_matrices: 0, other_weights: 0, kv_cache: 0 };
    for (name, t) in ckpt.weights.tensors() {
        let elements: u64 = t.shape.iter().map(|&d| d as u64).product();
        let matrix = t.shape.len() == 2 && name.ends_with(".weight");
        let packed = t.dtype == "U8";
        if let Some(rest) = name.strip_prefix(CLIP_LAYERS) {
            let layer: usize = rest.split('.').next().and_then(|i| i.parse().ok()).unwrap_or(0);
            if layer >= ckpt.vision.feature_layers {
                continue;
            }
        }
        let decoder_matrix = name.starts_with("model.layers.") || name.starts_with("lm_head.");
        if packed && decoder_matrix {
            e.decoder_matrices += t.bytes as u64;
        } else if packed {
            e.other_weights += t.bytes as u64;
        } else if matrix && decoder_matrix {
            e.decoder_matrices += decoder.matrix_bytes(t.shape[0], t.shape[1]) as u64;
        } else if matrix && (name.starts_with(CLIP_LAYERS) || name.contains("img_projection.")) {
            e.other_weights += vision.matrix_bytes(t.shape[0], t.shape[1]) as u64;
        } else if name == "model.embed_tokens.weight" {
            e.other_weights += elements * table;
        } else {
            e.other_weights += elements * 4;
        }
    }
    let c = &ckpt.config;
    let kv = kv.unwrap_or(crate::pipeline::default_kv(decoder));
    e.kv_cache = (c.num_hidden_layers * 2 * c.kv_heads() * kv.row_bytes(c.head_dim()) * positions) as u64;
    e
}
