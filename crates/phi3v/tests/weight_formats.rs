//! The accuracy cost of each weight format, through the public API, on every fixture case:
//! first-step logits against the reference (max |Δ| and relative L2 error) and how many of the
//! 24 reference greedy tokens are reproduced before the first difference. Run with
//! `--nocapture` for the table (it is in docs/PERFORMANCE.md).
//!
//! The fixtures store bf16, so `f32` and `bf16` (the default, `auto`) are the reference's
//! arithmetic up to summation order and must match exactly (relative logits error ≤ 1e-5, every
//! token). f16 holds every bf16 value of these small-magnitude weights exactly. The quantised
//! formats are bounded by their relative L2 logits error (about twice what they show here), which
//! a wrong block layout or scale (errors of the order of the logits themselves, ≥ 1) exceeds. The tiny models'
//! widths (32, 64) are shorter than a block of 256, so each row has one scale here; q8 and q4
//! are the same formats at every size.
//! The KV cache is the default one for each format (f32 with f32 weights, int8 with int4
//! weights, f16 otherwise, which rounds every cached value: bound 1e-3 and every token for
//! 16-bit weights), plus 16-bit weights with an f32 cache (exact), 16-bit weights with an int8
//! cache (its own cost, bound 1e-2) and int4 weights with an f16 cache.

use phi3v::{GenerationParams, ImageInput, KvDtype, Pipeline, PipelineOptions, WeightFormat};

struct Bound {
    decoder: WeightFormat,
    vision: WeightFormat,
    kv_cache: Option<KvDtype>,
    max_rel_err: f32,
    exact_tokens: bool,
}

const fn bound(decoder: WeightFormat, vision: WeightFormat, max_rel_err: f32, exact_tokens: bool) -> Bound {
    Bound { decoder, vision, kv_cache: None, max_rel_err, exact_tokens }
}

#[test]
fn each_weight_format_stays_within_its_accuracy_bound() {
    use WeightFormat::*;
    let bounds = [
        bound(F32, F32, 1e-5, true),
        Bound { kv_cache: Some(KvDtype::F32), ..bound(Auto, Auto, 1e-5, true) },
        Bound { kv_cache: Some(KvDtype::F32), ..bound(F16, F16, 1e-5, true) },
        bound(Auto, Auto, 1e-3, true),
        Bound { kv_cache: Some(KvDtype::Q8), ..bound(Auto, Auto, 1e-2, false) },
        bound(Q8, Q8, 0.05, false),
        bound(Q4, Auto, 0.25, false),
        bound(Q4, Q4, 0.3, false),
        Bound { kv_cache: Some(KvDtype::F16), ..bound(Q4, Q4, 0.3, false) },
    ];
    eprintln!("| decoder | vision | KV cache | logits max abs err | logits rel. L2 err | greedy tokens kept |");
    eprintln!("|---|---|---|---|---|---|");
    for b in bounds {
        let options = PipelineOptions { weights: b.decoder, vision_weights: b.vision, kv_cache: b.kv_cache, ..Default::default() };
        let (mut worst, mut worst_rel, mut kept, mut total) = (0f32, 0f32, 0, 0);
        for name in phi3v_fixtures::CHECKPOINTS {
            let p = Pipeline::load(&phi3v_fixtures::path(name), &options).unwrap();
            for (case, golden) in phi3v_fixtures::model_cases(name) {
                let images: Vec<ImageInput> = golden
                    .images
                    .iter()
                    .map(|i| ImageInput::open(&phi3v_fixtures::path(&i.image)).unwrap().with_num_crops(i.num_crops))
                    .collect();
                let logits = p.next_token_logits(&golden.prompt, &images).unwrap();
                let want = phi3v_fixtures::tensors(&format!("golden/{name}/{case}.safetensors"))["logits"].get(0).unwrap();
                let diff = (&logits - &want).unwrap();
                let d = diff.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                let norm = |t: &candle_core::Tensor| t.sqr().unwrap().sum_all().unwrap().sqrt().unwrap().to_scalar::<f32>().unwrap();
                worst = worst.max(d);
                worst_rel = worst_rel.max(norm(&diff) / norm(&want));
                let params = GenerationParams { max_new_tokens: golden.greedy_tokens.len(), ..Default::default() };
                let g = p.generate(&golden.prompt, &images, &params, |_| {}).unwrap();
                let same = g.tokens.iter().zip(&golden.greedy_tokens).take_while(|(a, b)| a == b).count();
                if b.exact_tokens {
                    assert_eq!(g.tokens, golden.greedy_tokens, "{}/{}: {name}/{case}", b.decoder, b.vision);
                }
                kept += same;
                total += golden.greedy_tokens.len();
            }
        }
        let kv = b.kv_cache.map_or("default", |kv| kv.name());
        eprintln!("| {} | {} | {kv} | {worst:.2e} | {worst_rel:.2e} | {kept}/{total} |", b.decoder, b.vision);
        assert!(worst_rel <= b.max_rel_err, "{}/{}: logits differ by {worst_rel} > {} (relative L2)", b.decoder, b.vision, b.max_rel_err);
    }
}
