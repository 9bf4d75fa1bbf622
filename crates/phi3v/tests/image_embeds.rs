//! Image rows (CLIP → 2×2 merge → separators → projector) against the reference
//! `hd_feature_transform` + `img_projection`, for every fixture image at 4 crops and for the
//! model cases (4 and 16 crops).
//!
//! The fixture images run with the matrices as stored (bf16), the model cases in f32.
//!
//! Tolerance: max |Δ| ≤ 1e-4 in f32 (rows have magnitude ~1; summation order accounts for ~1e-5;
//! a misplaced separator or a wrong merge order is off by > 1e-1).

use candle_core::{Device, Tensor};
use phi3v::checkpoint::Checkpoint;
use phi3v::image::ImageEncoder;
use phi3v::vision::load_rgb;
use phi3v::WeightFormat;

const TOL: f32 = 1e-4;

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
}

fn encoder(name: &str, format: WeightFormat) -> ImageEncoder {
    let ckpt = Checkpoint::open(&phi3v_fixtures::path(name)).unwrap();
    ImageEncoder::load(&ckpt, format.resolve(ckpt.weights.stored_dtype()), &Device::Cpu).unwrap()
}

/// The image as a user would pass it (JPEGs included: our decoder matches PIL's exactly).
fn reference_rgb(rel: &str) -> image::RgbImage {
    load_rgb(&phi3v_fixtures::path(rel)).unwrap()
}

#[test]
fn every_fixture_image_matches_at_4_crops() {
    let enc = encoder("tiny-phi35v", WeightFormat::Auto);
    assert_eq!(enc.default_crops(), 4);
    let golden = phi3v_fixtures::tensors("golden/image-embeds-c4.safetensors");
    let entries = phi3v_fixtures::preprocess().entries;
    let mut checked = 0;
    for e in entries.iter().filter(|e| e.num_crops == 4 && e.reference_error.is_none()) {
        let stem = e.key.trim_end_matches("-c4");
        let pre = enc.preprocess(&reference_rgb(&e.image), 4).unwrap();
        let rows = enc.encode(&pre).unwrap();
        assert_eq!(rows.dims()[0], e.num_img_tokens.unwrap(), "{stem}");
        let d = max_diff(&rows, &golden[stem]);
        assert!(d <= TOL, "{stem}: image rows differ by {d}");
        checked += 1;
    }
    assert_eq!(checked, golden.len());
    assert_eq!(checked, 13);
}

#[test]
fn model_case_images_match_at_their_crop_setting() {
    for name in phi3v_fixtures::CHECKPOINTS {
        let enc = encoder(name, WeightFormat::F32);
        for (case, golden) in phi3v_fixtures::model_cases(name) {
            if golden.images.is_empty() {
                continue;
            }
            let rows: Vec<Tensor> = golden
                .images
                .iter()
                .map(|img| enc.encode(&enc.preprocess(&reference_rgb(&img.image), img.num_crops).unwrap()).unwrap())
                .collect();
            let ours = Tensor::cat(&rows, 0).unwrap();
            let want = &phi3v_fixtures::tensors(&format!("golden/{name}/{case}.safetensors"))["image_embeds"];
            let d = max_diff(&ours, want);
            eprintln!("{name}/{case}: image rows max |Δ| = {d:.2e}");
            assert!(d <= TOL, "{name}/{case}: image rows differ by {d}");
        }
    }
}
