//! CLIP features against transformers' `CLIPVisionModel` (`hidden_states[-2]`, CLS dropped),
//! for the global view and first tile of each model case's first image.
//!
//! Run with the matrices in f32 and as stored (bf16).
//!
//! Tolerance: max |Δ| ≤ 1e-4 in f32 on features of magnitude ~1 (different summation order in
//! the matmuls accounts for ~1e-6; a wrong layer, norm or activation is off by > 1e-1).

use candle_core::{DType, Device, Tensor};
use phi3v_checkpoint::Checkpoint;
use phi3v_linear::WeightFormat;
use phi3v_vision::{load_rgb, preprocess, ClipVisionTower, Normalization, CROP, CROP_LEN};

const TOL: f32 = 1e-4;

#[test]
fn clip_features_match_reference() {
    let mut checked = 0;
    for (name, format) in phi3v_fixtures::CHECKPOINTS.iter().flat_map(|n| [(n, WeightFormat::F32), (n, WeightFormat::Bf16)]) {
        let ckpt = Checkpoint::open(&phi3v_fixtures::path(name)).unwrap();
        let vb = ckpt.weights.var_builder(DType::F32, &Device::Cpu).unwrap();
        let tower = ClipVisionTower::load(&ckpt.vision, format, vb).unwrap();
        for (case, golden) in phi3v_fixtures::model_cases(name) {
            let Some(img) = golden.images.first() else { continue };
            let rgb = load_rgb(&phi3v_fixtures::path(&img.image)).unwrap();
            let pre = preprocess(&rgb, img.num_crops, &Normalization::CLIP).unwrap();
            let crops = Tensor::from_slice(&pre.crops[..2 * CROP_LEN], (2, 3, CROP, CROP), &Device::Cpu).unwrap();
            let ours = tower.forward(&crops).unwrap();
            let want = &phi3v_fixtures::tensors(&format!("golden/{name}/{case}.safetensors"))["clip_features"];
            assert_eq!(ours.dims(), want.dims(), "{name}/{case}");
            let d = (ours - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
            eprintln!("{name}/{case} ({format}): CLIP max |Δ| = {d:.2e}");
            assert!(d <= TOL, "{name}/{case}: CLIP features differ by {d}");
            checked += 1;
        }
    }
    assert_eq!(checked, 8);
}
