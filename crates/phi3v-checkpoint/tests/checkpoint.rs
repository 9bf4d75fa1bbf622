//! Opening the fixture checkpoints (single file and sharded), the official config form, and the
//! errors for broken directories.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use phi3v_checkpoint::{Checkpoint, CheckpointError, Phi3VConfig, VisionConfig};

/// config.json of microsoft/Phi-3-vision-128k-instruct as published, with placeholder values in
/// the two 48-entry factor lists.
fn official_config() -> String {
    let factors = vec![1.0f64; 48];
    serde_json::json!({
        "_name_or_path": "Phi-3-vision-128k-instruct",
        "architectures": ["Phi3VForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": 1,
        "embd_layer": {"embedding_cls": "image", "hd_transform_order": "sub_glb", "projection_cls": "mlp",
                        "use_hd_transform": true, "with_learnable_separator": true},
        "embd_pdrop": 0.0,
        "eos_token_id": 2,
        "hidden_act": "silu",
        "hidden_size": 3072,
        "img_processor": {"image_dim_out": 1024, "model_name": "openai/clip-vit-large-patch14-336",
                           "name": "clip_vision_model", "num_img_tokens": 144},
        "initializer_range": 0.02,
        "intermediate_size": 8192,
        "max_position_embeddings": 131072,
        "model_type": "phi3_v",
        "num_attention_heads": 32,
        "num_hidden_layers": 32,
        "num_key_value_heads": 32,
        "original_max_position_embeddings": 4096,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {"long_factor": factors, "short_factor": factors, "type": "su"},
        "rope_theta": 10000.0,
        "sliding_window": 131072,
        "tie_word_embeddings": false,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.38.1",
        "use_cache": true,
        "vocab_size": 32064,
        "_attn_implementation": "flash_attention_2"
    })
    .to_string()
}

#[test]
fn official_config_resolves_to_vit_l_14_336() {
    let cfg: Phi3VConfig = serde_json::from_str(&official_config()).unwrap();
    cfg.validate().unwrap();
    assert_eq!(cfg.vision().unwrap(), VisionConfig::VIT_L_14_336);
    assert_eq!(VisionConfig::VIT_L_14_336.feature_layers, 23, "hidden_states[-2] of 24 layers");
    assert_eq!(cfg.head_dim(), 96);
    assert_eq!(cfg.kv_heads(), 32);
}

#[test]
fn longrope_spelling_is_accepted_and_unknown_types_are_not() {
    let mut v: serde_json::Value = serde_json::from_str(&official_config()).unwrap();
    v["rope_scaling"]["type"] = "longrope".into();
    let cfg: Phi3VConfig = serde_json::from_value(v.clone()).unwrap();
    cfg.validate().unwrap();
    v["rope_scaling"]["type"] = "yarn".into();
    let cfg: Phi3VConfig = serde_json::from_value(v).unwrap();
    assert!(cfg.validate().unwrap_err().contains("rope_scaling.type"));
}

#[test]
fn tiny_checkpoints_open_with_small_tower_keys() {
    for name in phi3v_fixtures::CHECKPOINTS {
        let ckpt = Checkpoint::open(&phi3v_fixtures::path(name)).unwrap();
        let v = &ckpt.vision;
        assert_eq!((v.hidden_size, v.num_hidden_layers, v.feature_layers), (64, 3, 2), "{name}");
        assert_eq!((v.image_size, v.patch_size, v.grid()), (336, 14, 24));
        assert_eq!(ckpt.config.vocab_size, 32064);
        assert_eq!(ckpt.preprocessor.num_img_tokens, 144);
        assert!(ckpt.tokenizer_path().is_file());
    }
    let p3 = Checkpoint::open(&phi3v_fixtures::path("tiny-phi3v")).unwrap();
    let p35 = Checkpoint::open(&phi3v_fixtures::path("tiny-phi35v")).unwrap();
    assert_eq!((p3.preprocessor.num_crops, p35.preprocessor.num_crops), (16, 4));
    assert_eq!(p3.weights.files().len(), 1);
    assert_eq!(p35.weights.files().len(), 2);
}

#[test]
fn tensors_carry_official_names_shapes_and_bf16() {
    for name in phi3v_fixtures::CHECKPOINTS {
        let ckpt = Checkpoint::open(&phi3v_fixtures::path(name)).unwrap();
        let t = ckpt.weights.tensors();
        let shape = |n: &str| t.get(n).unwrap_or_else(|| panic!("{name}: {n} missing")).shape.clone();
        assert_eq!(shape("model.layers.1.self_attn.qkv_proj.weight"), [96, 32]);
        assert_eq!(shape("model.layers.0.mlp.gate_up_proj.weight"), [128, 32]);
        assert_eq!(shape("lm_head.weight"), [32064, 32]);
        assert_eq!(shape("model.vision_embed_tokens.sub_GN"), [1, 1, 1, 256]);
        assert_eq!(shape("model.vision_embed_tokens.glb_GN"), [1, 1, 256]);
        assert_eq!(shape("model.vision_embed_tokens.img_projection.0.weight"), [32, 256]);
        let clip = "model.vision_embed_tokens.img_processor.vision_model.";
        assert_eq!(shape(&format!("{clip}embeddings.position_embedding.weight")), [577, 64]);
        assert_eq!(shape(&format!("{clip}embeddings.patch_embedding.weight")), [64, 3, 14, 14]);
        assert!(t.contains_key(&format!("{clip}post_layernorm.weight")));
        assert!(t.values().all(|i| i.dtype == "BF16"), "{name}: stored as bf16");
        let elements: usize = t.values().map(|i| i.shape.iter().product::<usize>()).sum();
        assert_eq!(ckpt.weights.total_bytes(), 2 * elements);
    }
}

#[test]
fn var_builder_reads_across_shards_and_names_bad_shapes() {
    let ckpt = Checkpoint::open(&phi3v_fixtures::path("tiny-phi35v")).unwrap();
    let vb = ckpt.weights.var_builder(DType::F32, &Device::Cpu).unwrap();
    // One tensor from each shard.
    let emb = vb.get((32064, 32), "model.embed_tokens.weight").unwrap();
    let head = vb.get((32064, 32), "lm_head.weight").unwrap();
    assert_eq!(emb.dtype(), DType::F32);
    assert_ne!(emb.sum_all().unwrap().to_scalar::<f32>().unwrap(), head.sum_all().unwrap().to_scalar::<f32>().unwrap());
    let err = vb.get((32064, 33), "lm_head.weight").unwrap_err().to_string();
    assert!(err.contains("lm_head.weight"), "{err}");
}

#[test]
fn each_stored_dtype_reads_back_exactly() {
    // A single-file checkpoint holding one tensor per dtype: each must come back with its
    // stored values, in its own dtype and widened to f32.
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi35v");
    for f in std::fs::read_dir(&dir).unwrap() {
        let f = f.unwrap().path();
        if f.to_string_lossy().contains(".safetensors") {
            std::fs::remove_file(f).unwrap();
        }
    }
    let values = Tensor::arange(-6f32, 6.0, &Device::Cpu).unwrap().affine(0.375, 0.0).unwrap().reshape((3, 4)).unwrap();
    let dtypes = [DType::BF16, DType::F16, DType::F32];
    let tensors: HashMap<String, Tensor> = dtypes.iter().map(|&d| (format!("{d:?}"), values.to_dtype(d).unwrap())).collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let weights = phi3v_checkpoint::Weights::open(&dir).unwrap();
    for d in dtypes {
        for want in [d, DType::F32] {
            let t = weights.var_builder(want, &Device::Cpu).unwrap().get((3, 4), &format!("{d:?}")).unwrap();
            assert_eq!(t.dtype(), want);
            assert_eq!(t.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap(), values.to_vec2::<f32>().unwrap(), "{d:?} as {want:?}");
        }
    }
}

fn broken(name: &str, edit: impl FnOnce(&Path)) -> CheckpointError {
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy(name);
    edit(&dir);
    Checkpoint::open(&dir).unwrap_err()
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, v.to_string()).unwrap();
}

#[test]
fn broken_checkpoints_give_errors_naming_the_file() {
    let err = Checkpoint::open(Path::new("/nonexistent/phi3v")).unwrap_err();
    assert!(matches!(err, CheckpointError::MissingDir(_)));

    let err = broken("tiny-phi3v", |d| std::fs::remove_file(d.join("config.json")).unwrap());
    assert!(err.to_string().contains("config.json"), "{err}");

    let err = broken("tiny-phi3v", |d| std::fs::write(d.join("config.json"), "{ not json").unwrap());
    assert!(matches!(err, CheckpointError::Json { .. }) && err.to_string().contains("config.json"), "{err}");

    let err = broken("tiny-phi3v", |d| edit_json(&d.join("config.json"), |v| v["model_type"] = "phi3".into()));
    assert!(err.to_string().contains("model_type"), "{err}");

    let err = broken("tiny-phi3v", |d| {
        edit_json(&d.join("config.json"), |v| v["rope_scaling"]["short_factor"] = serde_json::json!([1.0]))
    });
    assert!(err.to_string().contains("short_factor has 1 values, expected head_dim/2 = 8"), "{err}");

    let err = broken("tiny-phi3v", |d| {
        edit_json(&d.join("preprocessor_config.json"), |v| v["num_crops"] = 0.into())
    });
    assert!(err.to_string().contains("num_crops"), "{err}");

    let err = broken("tiny-phi3v", |d| std::fs::remove_file(d.join("model.safetensors")).unwrap());
    assert!(matches!(err, CheckpointError::NoWeights(_)), "{err}");

    let err = broken("tiny-phi3v", |d| std::fs::write(d.join("model.safetensors"), b"garbage").unwrap());
    assert!(matches!(err, CheckpointError::Safetensors { .. }) && err.to_string().contains("model.safetensors"));

    let err = broken("tiny-phi35v", |d| std::fs::remove_file(d.join("model-00002-of-00002.safetensors")).unwrap());
    assert!(err.to_string().contains("model-00002-of-00002.safetensors"), "{err}");

    let err = broken("tiny-phi35v", |d| {
        edit_json(&d.join("model.safetensors.index.json"), |v| {
            v["weight_map"]["lm_head.weight"] = "model-00001-of-00002.safetensors".into()
        })
    });
    assert!(err.to_string().contains("lm_head.weight is mapped to model-00001-of-00002.safetensors"), "{err}");
}
