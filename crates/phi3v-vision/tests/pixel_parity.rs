//! Pixel values against the reference image processor, for every fixture image at 4 and 16 crops.
//!
//! Tolerances: the uint8 HD image (resize + padding) must be identical; the float32 tiles must be
//! bit-identical (SHA-256 of their bytes, zero crops appended as the reference pads); the bicubic
//! global view must be within 1e-6 (checked on a strided sample, in full for landscape-c16) and
//! is in fact expected bit-identical (its SHA-256 is compared too).

use image::RgbImage;
use phi3v_vision::{hd_image, load_rgb, preprocess, Normalization, CROP, CROP_LEN};
use sha2::{Digest, Sha256};

const GLOBAL_TOL: f32 = 1e-6;

/// The image file through our own loader (JPEGs included).
fn reference_input(rel: &str) -> RgbImage {
    load_rgb(&phi3v_fixtures::path(rel)).unwrap()
}

fn sha256_f32(values: &[f32], zero_values: usize) -> String {
    let mut h = Sha256::new();
    for v in values {
        h.update(v.to_le_bytes());
    }
    h.update(vec![0u8; zero_values * 4]);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn pixel_values_match_reference() {
    let golden = phi3v_fixtures::preprocess();
    let tensors = phi3v_fixtures::tensors("golden/preprocess.safetensors");
    let norm = Normalization { mean: golden.image_mean, std: golden.image_std };
    assert_eq!(norm, Normalization::CLIP);
    let mut checked = 0;
    for e in golden.entries.iter().filter(|e| e.reference_error.is_none()) {
        let rgb = reference_input(&e.image);
        let pre = preprocess(&rgb, e.num_crops, &norm).unwrap();
        let n = pre.num_crops();

        if let Some(png) = &e.hd_png {
            let ours = hd_image(&rgb, &pre.layout);
            let theirs = load_rgb(&phi3v_fixtures::path(png)).unwrap();
            assert_eq!(ours.dimensions(), theirs.dimensions(), "{}", e.key);
            let diff = ours.as_raw().iter().zip(theirs.as_raw()).filter(|(a, b)| a != b).count();
            assert_eq!(diff, 0, "{}: {diff} HD samples differ from the reference", e.key);
        }

        let padding = (e.num_crops + 1 - n) * CROP_LEN;
        assert_eq!(sha256_f32(&pre.crops[CROP_LEN..], padding), *e.sha256_tiles.as_ref().unwrap(), "{}: tiles", e.key);

        let global = &pre.crops[..CROP_LEN];
        let sample: Vec<f32> = (0..3)
            .flat_map(|c| (0..CROP).step_by(7).flat_map(move |y| (0..CROP).step_by(7).map(move |x| (c, y, x))))
            .map(|(c, y, x)| global[c * CROP * CROP + y * CROP + x])
            .collect();
        let want = tensors[&format!("{}.global_sample", e.key)].flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = max_abs_diff(&sample, &want);
        assert!(d <= GLOBAL_TOL, "{}: global view differs by {d}", e.key);
        if let Some(full) = tensors.get(&format!("{}.global", e.key)) {
            let d = max_abs_diff(global, &full.flatten_all().unwrap().to_vec1::<f32>().unwrap());
            assert!(d <= GLOBAL_TOL, "{}: full global view differs by {d}", e.key);
        }
        assert_eq!(sha256_f32(global, 0), *e.sha256_global.as_ref().unwrap(), "{}: global view bits", e.key);
        checked += 1;
    }
    assert_eq!(checked, golden.entries.len() - 2, "all but the two thin-image entries");
}

#[test]
fn white_padding_normalises_to_the_reference_constants() {
    // Spec constants: a white pad pixel normalises to exactly these float32 values.
    let white = RgbImage::from_pixel(1, 1, image::Rgb([255, 255, 255]));
    let pre = preprocess(&white, 1, &Normalization::CLIP).unwrap();
    let at = |c: usize| pre.crops[CROP_LEN + c * CROP * CROP];
    assert_eq!([at(0), at(1), at(2)], [1.930_336_1, 2.074_883_7, 2.145_897]);
}
