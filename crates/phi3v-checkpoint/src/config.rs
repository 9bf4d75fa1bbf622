//! `config.json` of a `phi3_v` checkpoint, parsed and validated.
//!
//! The official files describe the vision tower only by name (CLIP ViT-L/14-336); small test
//! checkpoints add optional size keys inside `img_processor` (see `docs/REFERENCE-NOTES.md`).
//! [`VisionConfig`] resolves both forms to concrete sizes.

use serde::Deserialize;

/// The parsed `config.json`. Field names follow the file.
#[derive(Debug, Clone, Deserialize)]
pub struct Phi3VConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    /// Absent in some configs; defaults to `num_attention_heads` (no GQA).
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub original_max_position_embeddings: usize,
    pub rope_theta: f64,
    #[serde(default)]
    pub rope_scaling: Option<RopeScaling>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    pub embd_layer: EmbdLayer,
    pub img_processor: ImgProcessor,
}

/// `rope_scaling`: LongRoPE factors per frequency pair. `type` is `su` in the official files;
/// the later spelling `longrope` means the same.
#[derive(Debug, Clone, Deserialize)]
pub struct RopeScaling {
    #[serde(rename = "type", alias = "rope_type")]
    pub kind: String,
    pub short_factor: Vec<f64>,
    pub long_factor: Vec<f64>,
}

/// `embd_layer`: how image features are turned into token embeddings.
#[derive(Debug, Clone, Deserialize)]
pub struct EmbdLayer {
    pub embedding_cls: String,
    pub hd_transform_order: String,
    pub projection_cls: String,
    pub use_hd_transform: bool,
    pub with_learnable_separator: bool,
}

/// `img_processor` as stored: the official keys plus the optional small-tower keys.
#[derive(Debug, Clone, Deserialize)]
pub struct ImgProcessor {
    pub image_dim_out: usize,
    #[serde(default)]
    pub model_name: Option<String>,
    pub name: String,
    pub num_img_tokens: usize,
    #[serde(default = "default_layer_idx")]
    pub layer_idx: i64,
    #[serde(default = "default_type_feature")]
    pub type_feature: String,
    pub hidden_size: Option<usize>,
    pub intermediate_size: Option<usize>,
    pub num_hidden_layers: Option<usize>,
    pub num_attention_heads: Option<usize>,
    pub image_size: Option<usize>,
    pub patch_size: Option<usize>,
    pub layer_norm_eps: Option<f64>,
    pub hidden_act: Option<String>,
}

fn default_layer_idx() -> i64 {
    -2
}

fn default_type_feature() -> String {
    "patch".to_string()
}

/// The CLIP vision tower's sizes, resolved from `img_processor` (ViT-L/14-336 when no size keys
/// are given).
#[derive(Debug, Clone, PartialEq)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    /// Layers stored in the checkpoint.
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
    /// Layers actually run: features are the output of this many encoder layers
    /// (`hidden_states[layer_idx]` of the reference, with `layer_idx` = −2 → all but the last).
    pub feature_layers: usize,
}

impl VisionConfig {
    /// CLIP ViT-L/14-336, the tower of both official checkpoints.
    pub const VIT_L_14_336: VisionConfig = VisionConfig {
        hidden_size: 1024,
        intermediate_size: 4096,
        num_hidden_layers: 24,
        num_attention_heads: 16,
        image_size: 336,
        patch_size: 14,
        layer_norm_eps: 1e-5,
        feature_layers: 23,
    };

    /// Patches per side (24 for 336/14).
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

impl Phi3VConfig {
    /// Key/value heads (equal to the attention heads when the key is absent).
    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    /// Per-head width of the decoder.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// Checks everything this implementation relies on; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        if self.model_type != "phi3_v" {
            return Err(format!("model_type is {:?}, expected \"phi3_v\"", self.model_type));
        }
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("num_key_value_heads", self.kv_heads()),
            ("original_max_position_embeddings", self.original_max_position_embeddings),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{key} must be positive"));
        }
        if self.original_max_position_embeddings < 2 || self.max_position_embeddings < 2 {
            return Err(format!(
                "max_position_embeddings {} and original_max_position_embeddings {} must be at least 2",
                self.max_position_embeddings, self.original_max_position_embeddings
            ));
        }
        // The rotary tables are f32: theta must be a positive f32.
        if !(self.rope_theta > 0.0 && self.rope_theta <= f32::MAX as f64) {
            return Err(format!("rope_theta must be a positive number, got {}", self.rope_theta));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(format!("rms_norm_eps must be a positive number, got {}", self.rms_norm_eps));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) || !self.head_dim().is_multiple_of(2) {
            return Err(format!(
                "hidden_size {} does not split into {} heads of even width",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !self.num_attention_heads.is_multiple_of(self.kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.kv_heads()
            ));
        }
        if let Some(rs) = &self.rope_scaling {
            if rs.kind != "su" && rs.kind != "longrope" {
                return Err(format!("rope_scaling.type {:?} is not supported (expected \"su\" or \"longrope\")", rs.kind));
            }
            let pairs = self.head_dim() / 2;
            for (key, list) in [("short_factor", &rs.short_factor), ("long_factor", &rs.long_factor)] {
                if list.len() != pairs {
                    return Err(format!("rope_scaling.{key} has {} values, expected head_dim/2 = {pairs}", list.len()));
                }
                if let Some(v) = list.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
                    return Err(format!("rope_scaling.{key} holds {v}; every factor must be a positive number"));
                }
            }
        }
        let e = &self.embd_layer;
        let expected = [
            ("embd_layer.embedding_cls", e.embedding_cls.as_str(), "image"),
            ("embd_layer.hd_transform_order", e.hd_transform_order.as_str(), "sub_glb"),
            ("embd_layer.projection_cls", e.projection_cls.as_str(), "mlp"),
            ("img_processor.name", self.img_processor.name.as_str(), "clip_vision_model"),
            ("img_processor.type_feature", self.img_processor.type_feature.as_str(), "patch"),
        ];
        if let Some((key, got, want)) = expected.iter().find(|(_, got, want)| got != want) {
            return Err(format!("{key} is {got:?}; only {want:?} is supported"));
        }
        if !e.use_hd_transform || !e.with_learnable_separator {
            return Err("embd_layer: only use_hd_transform = with_learnable_separator = true is supported".into());
        }
        let v = self.vision()?;
        if v.hidden_size != self.img_processor.image_dim_out {
            return Err(format!(
                "img_processor.image_dim_out {} differs from the tower width {}",
                self.img_processor.image_dim_out, v.hidden_size
            ));
        }
        Ok(())
    }

    /// The vision tower's sizes: the small-tower keys where given, ViT-L/14-336 otherwise.
    pub fn vision(&self) -> Result<VisionConfig, String> {
        let ip = &self.img_processor;
        let d = VisionConfig::VIT_L_14_336;
        if let Some(act) = &ip.hidden_act {
            if act != "quick_gelu" {
                return Err(format!("img_processor.hidden_act {act:?} is not supported (expected \"quick_gelu\")"));
            }
        }
        let layers = ip.num_hidden_layers.unwrap_or(d.num_hidden_layers);
        let feature_layers = if ip.layer_idx < 0 {
            layers as i64 + 1 + ip.layer_idx
        } else {
            ip.layer_idx
        };
        if feature_layers < 1 || feature_layers > layers as i64 {
            return Err(format!("img_processor.layer_idx {} is out of range for {layers} layers", ip.layer_idx));
        }
        let v = VisionConfig {
            hidden_size: ip.hidden_size.unwrap_or(d.hidden_size),
            intermediate_size: ip.intermediate_size.unwrap_or(d.intermediate_size),
            num_hidden_layers: layers,
            num_attention_heads: ip.num_attention_heads.unwrap_or(d.num_attention_heads),
            image_size: ip.image_size.unwrap_or(d.image_size),
            patch_size: ip.patch_size.unwrap_or(d.patch_size),
            layer_norm_eps: ip.layer_norm_eps.unwrap_or(d.layer_norm_eps),
            feature_layers: feature_layers as usize,
        };
        if v.image_size != 336 || v.patch_size != 14 {
            return Err(format!(
                "img_processor image_size/patch_size {}/{} unsupported: the HD transform needs 336/14",
                v.image_size, v.patch_size
            ));
        }
        if !(v.layer_norm_eps.is_finite() && v.layer_norm_eps > 0.0) {
            return Err(format!("img_processor.layer_norm_eps must be a positive number, got {}", v.layer_norm_eps));
        }
        if v.hidden_size == 0 || v.intermediate_size == 0 {
            return Err("img_processor.hidden_size and intermediate_size must be positive".into());
        }
        if v.num_attention_heads == 0 || !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(format!(
                "img_processor.hidden_size {} does not split into {} heads",
                v.hidden_size, v.num_attention_heads
            ));
        }
        Ok(v)
    }
}
