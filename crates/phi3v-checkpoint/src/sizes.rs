//! The sizes in `config.json` checked against the tensors the weight files hold, before anything
//! is allocated from them: a size of 10⁹ in a config must be a clear error naming the key, not
//! an allocation that aborts the process.

use phi3v_linear::WeightFormat;

use crate::{Phi3VConfig, VisionConfig, Weights};

const CLIP: &str = "model.vision_embed_tokens.img_processor.vision_model";

/// Checks every size the networks are built from against the stored shapes. Tensors that are
/// missing are left to the loaders, which name them.
pub(crate) fn check(c: &Phi3VConfig, v: &VisionConfig, w: &Weights) -> Result<(), String> {
    let (h, hd) = (c.hidden_size, c.head_dim());
    shape(w, "model.embed_tokens.weight", &[c.vocab_size, h], "vocab_size × hidden_size")?;
    shape(w, "model.norm.weight", &[h], "hidden_size")?;
    let qkv = (c.num_attention_heads + 2 * c.kv_heads()).saturating_mul(hd);
    shape(w, "model.layers.0.self_attn.qkv_proj.weight", &[qkv, h], "(num_attention_heads + 2 · num_key_value_heads) · head_dim × hidden_size")?;
    shape(w, "model.layers.0.mlp.down_proj.weight", &[h, c.intermediate_size], "hidden_size × intermediate_size")?;
    layers(w, "model.layers", "self_attn.qkv_proj.weight", c.num_hidden_layers, "num_hidden_layers")?;

    let (vh, grid) = (v.hidden_size, v.grid());
    shape(w, &format!("{CLIP}.embeddings.patch_embedding.weight"), &[vh, 3, v.patch_size, v.patch_size], "img_processor.hidden_size × 3 × patch × patch")?;
    shape(w, &format!("{CLIP}.embeddings.position_embedding.weight"), &[grid * grid + 1, vh], "positions × img_processor.hidden_size")?;
    shape(w, &format!("{CLIP}.encoder.layers.0.mlp.fc1.weight"), &[v.intermediate_size, vh], "img_processor.intermediate_size × hidden_size")?;
    layers(w, &format!("{CLIP}.encoder.layers"), "mlp.fc1.weight", v.feature_layers, "img_processor.num_hidden_layers (the layers run)")?;
    shape(w, "model.vision_embed_tokens.img_projection.0.weight", &[h, 4 * c.img_processor.image_dim_out], "hidden_size × 4 · img_processor.image_dim_out")?;
    Ok(())
}

/// `name`'s stored shape must be `expected` (when it is stored); a matrix stored packed (see
/// [`crate::quantized`]) must have `expected`'s rows, each of the bytes its columns take.
fn shape(w: &Weights, name: &str, expected: &[usize], what: &str) -> Result<(), String> {
    let packed = packed_names(name).find_map(|(format, packed)| Some((format, w.tensors().get(&packed)?, packed)));
    match (w.tensors().get(name), packed) {
        (Some(t), _) if t.shape != expected => Err(format!("{what} is {expected:?} but {name} is stored as {:?}", t.shape)),
        (None, Some((format, t, packed))) if expected.len() == 2 => {
            let bytes = [expected[0], format.matrix_bytes(1, expected[1])];
            if t.shape != bytes {
                return Err(format!("{what} is {expected:?} but {packed} is stored as {:?} ({format} rows of {} bytes expected)", t.shape, bytes[1]));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The names a matrix `name` (`….weight`) has when stored packed, with their formats.
fn packed_names(name: &str) -> impl Iterator<Item = (WeightFormat, String)> + '_ {
    let stem = name.strip_suffix(".weight");
    phi3v_linear::packed_names().filter_map(move |(f, packed)| Some((f, format!("{}.{packed}", stem?))))
}

/// Whether `name` is stored, as is or packed.
fn stored(w: &Weights, name: &str) -> bool {
    w.tensors().contains_key(name) || packed_names(name).any(|(_, p)| w.tensors().contains_key(&p))
}

/// At least `needed` layers `{prefix}.{i}` must be stored (each with `{suffix}`).
fn layers(w: &Weights, prefix: &str, suffix: &str, needed: usize, key: &str) -> Result<(), String> {
    let stored = (0..).take_while(|i| stored(w, &format!("{prefix}.{i}.{suffix}"))).count();
    if stored < needed {
        let held = match stored {
            0 => "none".to_string(),
            n => format!("{n} ({prefix}.0 … {prefix}.{})", n - 1),
        };
        return Err(format!("{key} is {needed} but the weights hold {held}"));
    }
    Ok(())
}
