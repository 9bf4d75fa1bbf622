//! Decoder parity with transformers' `Phi3ForCausalLM` through the fixtures: the reference's
//! prompt rows (text embeddings with its image rows written over the placeholders) go in
//! ([`Decoder::forward`]), each greedy token is fed back ([`Decoder::step`]), and the stored
//! logits (prefill, first cached step, the steps around a LongRoPE re-prefill, the last step)
//! and all 24 greedy tokens must match.
//!
//! The weights run both as f32 and as stored (bf16, through the 16-bit mat-vec kernel): the
//! fixtures are bf16, so both are the reference's arithmetic up to summation order. The KV
//! cache runs in f32 and, with bf16 weights, in f16 (rounding every cached value).
//!
//! Tolerance: logits max |Δ| ≤ 1e-3 with an f32 cache (logits have magnitude ~10; different
//! summation orders give ~1e-5; a wrong RoPE factor or cache handling is off by > 1e-1), 1e-2
//! with an f16 cache. Greedy tokens must be identical (each case's smallest top-2 margin is
//! stored and is ≥ 7e-3).

use candle_core::{DType, Device, Tensor};
use phi3v_checkpoint::Checkpoint;
use phi3v_decoder::{argmax, Decoder, DecoderError, KvCache, KvDtype};
use phi3v_linear::WeightFormat;

fn decoder(name: &str, format: WeightFormat) -> (Checkpoint, Decoder) {
    let ckpt = Checkpoint::open(&phi3v_fixtures::path(name)).unwrap();
    let stored = ckpt.weights.stored_dtype();
    let vb = ckpt.weights.var_builder(format.table_dtype(stored), &Device::Cpu).unwrap();
    let dec = Decoder::load(&ckpt.config, format, vb).unwrap();
    (ckpt, dec)
}

/// The reference's prompt rows: embeddings of the ids (placeholders as id 0), image rows from
/// the golden `image_embeds` written over the placeholder positions in order.
fn prompt_rows(dec: &Decoder, ids: &[i64], image_rows: Option<&Tensor>) -> Tensor {
    let clamped: Vec<u32> = ids.iter().map(|&i| i.max(0) as u32).collect();
    let mut rows = dec.embed(&clamped).unwrap();
    if let Some(img) = image_rows {
        let mut pieces = Vec::new();
        let (mut i, mut next_img) = (0, 0);
        while i < ids.len() {
            let neg = ids[i] < 0;
            let run = ids[i..].iter().take_while(|&&x| (x < 0) == neg).count();
            pieces.push(if neg { img.narrow(0, next_img, run).unwrap() } else { rows.narrow(0, i, run).unwrap() });
            if neg {
                next_img += run;
            }
            i += run;
        }
        assert_eq!(next_img, img.dim(0).unwrap());
        rows = Tensor::cat(&pieces, 0).unwrap();
    }
    rows
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn logits_and_greedy_tokens_match_reference() {
    let mut cases = 0;
    let runs = [(WeightFormat::F32, KvDtype::F32, 1e-3), (WeightFormat::Bf16, KvDtype::F32, 1e-3), (WeightFormat::Bf16, KvDtype::F16, 1e-2)];
    for (name, (format, kv, tol)) in phi3v_fixtures::CHECKPOINTS.iter().flat_map(|n| runs.map(|r| (n, r))) {
        let (_, dec) = decoder(name, format);
        let dec = dec.with_kv_dtype(kv);
        for (case, golden) in phi3v_fixtures::model_cases(name) {
            let tensors = phi3v_fixtures::tensors(&format!("golden/{name}/{case}.safetensors"));
            let rows = prompt_rows(&dec, &golden.input_ids, tensors.get("image_embeds"));
            let want_logits = &tensors["logits"];
            let mut cache = KvCache::default();
            let mut logits = dec.forward(&rows, &mut cache).unwrap();
            let mut tokens = Vec::new();
            let mut worst: f32 = 0.0;
            for step in 0..golden.greedy_tokens.len() {
                if step > 0 {
                    let token = *tokens.last().unwrap();
                    let next = dec.step(token, &mut cache).unwrap();
                    logits = Tensor::from_slice(next, next.len(), &Device::Cpu).unwrap();
                }
                if let Some(k) = golden.logits_steps.iter().position(|&s| s == step) {
                    let d = max_diff(&logits, &want_logits.get(k).unwrap());
                    worst = worst.max(d);
                    assert!(d <= tol, "{name}/{case} ({format}, {kv:?} cache): logits of forward {step} differ by {d}");
                }
                tokens.push(argmax(&logits).unwrap());
            }
            eprintln!(
                "{name}/{case} ({format}, {kv:?} cache): {} prompt rows, re-prefill at {:?}, logits max |Δ| {worst:.2e}",
                golden.prompt_len, golden.reprefill_steps
            );
            assert_eq!(tokens, golden.greedy_tokens, "{name}/{case}: greedy tokens");
            assert_eq!(cache.len(), golden.prompt_len + golden.greedy_tokens.len() - 1);
            cases += 1;
        }
    }
    assert_eq!(cases, 18);
}

#[test]
fn rope_switch_happens_exactly_past_original_max() {
    // tiny-phi35v: original_max 1024. A 1024-row prompt stays short; the next row switches the
    // whole cache to long factors (rebuilt, same length).
    let (ckpt, dec) = decoder("tiny-phi35v", WeightFormat::Bf16);
    assert_eq!(ckpt.config.original_max_position_embeddings, 1024);
    assert!(!dec.rope().is_long(1024) && dec.rope().is_long(1025));
    let rows = dec.embed(&vec![100u32; 1024]).unwrap();
    let mut cache = KvCache::default();
    dec.forward(&rows, &mut cache).unwrap();
    assert!(!cache.is_long());
    dec.step(7, &mut cache).unwrap();
    assert!(cache.is_long());
    assert_eq!(cache.len(), 1025);
    // The attention factor is applied for both factor sets: √(1 + ln 32 / ln 1024) = √1.5.
    assert!((dec.rope().attention_factor() - 1.5f32.sqrt()).abs() < 1e-6);
}

#[test]
fn chunked_prefill_equals_token_by_token() {
    // The same 600-row prompt fed whole (three prefill chunks), one row at a time, and one
    // token at a time through `step` (whose cache grows a block past 512).
    let (_, dec) = decoder("tiny-phi3v", WeightFormat::Bf16);
    let ids: Vec<u32> = (0..600).map(|i| (i * 97 % 32000) as u32).collect();
    let rows = dec.embed(&ids).unwrap();
    let mut whole = KvCache::default();
    let a = dec.forward(&rows, &mut whole).unwrap();
    let mut rowwise = KvCache::default();
    let mut b = None;
    for i in 0..ids.len() {
        b = Some(dec.forward(&rows.narrow(0, i, 1).unwrap(), &mut rowwise).unwrap());
    }
    let mut steps = KvCache::default();
    let mut c = Vec::new();
    for &id in &ids {
        c = dec.step(id, &mut steps).unwrap().to_vec();
    }
    let c = Tensor::from_vec(c, a.dims(), &Device::Cpu).unwrap();
    for (name, other) in [("row by row", b.unwrap()), ("step by step", c)] {
        let d = max_diff(&a, &other);
        assert!(d <= 1e-4, "chunked vs {name} differ by {d}");
    }
    assert_eq!((whole.len(), rowwise.len(), steps.len()), (600, 600, 600));
}

#[test]
fn bad_inputs_are_errors() {
    let (ckpt, dec) = decoder("tiny-phi35v", WeightFormat::Bf16);
    let max = ckpt.config.max_position_embeddings;
    let mut cache = KvCache::default();
    let too_long = Tensor::zeros((max + 1, ckpt.config.hidden_size), DType::F32, &Device::Cpu).unwrap();
    let err = dec.forward(&too_long, &mut cache).unwrap_err();
    assert!(matches!(err, DecoderError::TooLong { len, max: m } if len == max + 1 && m == max), "{err}");
    assert!(err.to_string().contains("max_position_embeddings"), "{err}");
    let wrong_width = Tensor::zeros((3, 7), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(dec.forward(&wrong_width, &mut cache), Err(DecoderError::Width { got: 7, expected: 32 })));
    assert!(matches!(dec.embed(&[32064]), Err(DecoderError::TokenId { id: 32064, vocab: 32064 })));
    assert!(matches!(dec.step(32064, &mut cache), Err(DecoderError::TokenId { id: 32064, vocab: 32064 })));
    let no_rows = Tensor::zeros((0, ckpt.config.hidden_size), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(dec.forward(&no_rows, &mut cache), Err(DecoderError::NoRows)));
    assert!(cache.is_empty());
}

#[test]
fn missing_or_misshaped_tensors_are_named() {
    let (_tmp, dir) = phi3v_fixtures::checkpoint_copy("tiny-phi3v");
    // The loader names the tensor that does not fit the config (a wider MLP than stored) ...
    let mut ckpt = Checkpoint::open(&dir).unwrap();
    ckpt.config.intermediate_size = 80;
    let vb = ckpt.weights.var_builder(DType::F32, &Device::Cpu).unwrap();
    let err = Decoder::load(&ckpt.config, WeightFormat::F32, vb).err().unwrap().to_string();
    assert!(err.contains("model.layers.0.mlp.gate_up_proj.weight") && err.contains("160"), "{err}");
    // ... and the layer that is missing.
    ckpt.config.intermediate_size = 64;
    ckpt.config.num_hidden_layers = 3;
    let vb = ckpt.weights.var_builder(DType::F32, &Device::Cpu).unwrap();
    let err = Decoder::load(&ckpt.config, WeightFormat::F32, vb).err().unwrap().to_string();
    assert!(err.contains("model.layers.2."), "{err}");
    // Opening the checkpoint already refuses both, naming the config key, before any weight is
    // read (a size of 10⁹ must not reach an allocation).
    let cfg_path = dir.join("config.json");
    let cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    for (key, value, expected) in [
        ("intermediate_size", 80, "hidden_size × intermediate_size is [32, 80] but model.layers.0.mlp.down_proj.weight is stored as [32, 64]"),
        ("num_hidden_layers", 3, "num_hidden_layers is 3 but the weights hold 2 (model.layers.0 … model.layers.1)"),
        ("num_hidden_layers", 1_000_000_000, "num_hidden_layers is 1000000000 but the weights hold 2"),
    ] {
        let mut bad = cfg.clone();
        bad[key] = value.into();
        std::fs::write(&cfg_path, bad.to_string()).unwrap();
        let err = Checkpoint::open(&dir).err().unwrap().to_string();
        assert!(err.contains("config.json") && err.contains(expected), "{key}: {err}");
    }
}

#[test]
fn bytes_per_token_counts_every_matrix_and_cached_row() {
    let (ckpt, dec) = decoder("tiny-phi35v", WeightFormat::Bf16);
    let c = &ckpt.config;
    let (h, hd, inter, layers) = (c.hidden_size, c.head_dim(), c.intermediate_size, c.num_hidden_layers);
    let (heads, kvh) = (c.num_attention_heads, c.kv_heads());
    // qkv, o, gate_up, down per layer, then lm_head; two bytes per bf16 weight.
    let per_layer = h * (heads + 2 * kvh) * hd + heads * hd * h + h * 2 * inter + inter * h;
    let matrices = 2 * (layers * per_layer + h * c.vocab_size);
    let dec = dec.with_kv_dtype(KvDtype::F16);
    assert_eq!(dec.bytes_per_token(0), matrices);
    assert_eq!(dec.bytes_per_token(10), matrices + 10 * layers * 2 * kvh * 2 * hd);
    let dec = dec.with_kv_dtype(KvDtype::Q8);
    assert_eq!(dec.bytes_per_token(10), matrices + 10 * layers * 2 * kvh * (hd + 4));
}

/// Greedy index of a logits row.
fn greedy(row: &[f32]) -> u32 {
    (0..row.len()).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32
}

#[test]
fn batched_steps_give_the_tokens_of_single_steps() {
    // Four sequences of different lengths decoded together, one joining late and one crossing
    // to the long rotary factors (past 1 024 positions) inside the batch, against each decoded
    // alone with `step`: the same greedy tokens (f32 KV cache), logits within 1e-4 (f32) or
    // 1e-3 (int4, whose multi-row kernels sum in another order).
    use phi3v_decoder::BatchBuffers;
    for format in [WeightFormat::F32, WeightFormat::Q4] {
        let (_, dec) = decoder("tiny-phi35v", format);
        let prompts: Vec<Vec<u32>> =
            [5usize, 40, 1020, 300].iter().enumerate().map(|(k, &n)| (0..n).map(|i| ((i * 31 + k * 7) % 32000 + 1) as u32).collect()).collect();
        let steps = 12;
        // Alone.
        let alone: Vec<(Vec<u32>, Vec<Vec<f32>>)> = prompts
            .iter()
            .map(|p| {
                let mut cache = KvCache::default();
                let mut next = argmax(&dec.forward(&dec.embed(p).unwrap(), &mut cache).unwrap()).unwrap();
                let (mut tokens, mut logits) = (vec![next], Vec::new());
                for _ in 0..steps {
                    let row = dec.step(next, &mut cache).unwrap().to_vec();
                    next = greedy(&row);
                    tokens.push(next);
                    logits.push(row);
                }
                (tokens, logits)
            })
            .collect();
        // Together: the last sequence joins after three batched steps of the others.
        let mut caches: Vec<KvCache> = prompts.iter().map(|_| KvCache::default()).collect();
        let mut next: Vec<u32> = Vec::new();
        for (p, cache) in prompts.iter().zip(&mut caches) {
            next.push(argmax(&dec.forward(&dec.embed(p).unwrap(), cache).unwrap()).unwrap());
        }
        let mut done = vec![0usize; prompts.len()];
        let mut buffers = BatchBuffers::default();
        let tol = if format == WeightFormat::F32 { 1e-4 } else { 1e-3 };
        while done.iter().any(|&d| d < steps) {
            let active: Vec<usize> = (0..prompts.len()).filter(|&i| done[i] < steps && (i != 3 || done[0] >= 3)).collect();
            let ids: Vec<u32> = active.iter().map(|&i| next[i]).collect();
            let mut refs: Vec<&mut KvCache> = caches.iter_mut().enumerate().filter(|(i, _)| active.contains(i)).map(|(_, c)| c).collect();
            let logits = dec.step_batch(&ids, &mut refs, &mut buffers).unwrap().to_vec();
            let vocab = logits.len() / active.len();
            for (row, &i) in logits.chunks_exact(vocab).zip(&active) {
                let expected = &alone[i].1[done[i]];
                let d = row.iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(d <= tol, "{format}: sequence {i} step {} differs by {d}", done[i]);
                next[i] = greedy(row);
                assert_eq!(next[i], alone[i].0[done[i] + 1], "{format}: sequence {i} step {}", done[i]);
                done[i] += 1;
            }
        }
        assert!(caches[2].is_long(), "the 1 020-token prompt crossed to the long factors");
        assert_eq!(caches.iter().map(KvCache::len).collect::<Vec<_>>(), prompts.iter().map(|p| p.len() + steps).collect::<Vec<_>>());
    }
}
