//! The reference image processor: HD resize and padding, float32 normalisation, bicubic global
//! view, row-major 336×336 crops.

use image::{Rgb, RgbImage};

use crate::hd::{HdLayout, CROP};
use crate::resize::resize_bilinear;
use crate::VisionError;

/// One image ready for the CLIP tower.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    pub layout: HdLayout,
    /// `[1 + rows·cols, 3, 336, 336]` f32, channel-major: the bicubic global view first, then
    /// the tiles row by row. The reference's all-zero padding crops are not included.
    pub crops: Vec<f32>,
}

impl Preprocessed {
    /// Number of crops held (global view included).
    pub fn num_crops(&self) -> usize {
        self.crops.len() / CROP_LEN
    }
}

/// Values in one crop.
pub const CROP_LEN: usize = 3 * CROP * CROP;

/// Mean and standard deviation per RGB channel (from `preprocessor_config.json`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The OpenAI CLIP values used by both official checkpoints, written as the config does.
    #[allow(clippy::excessive_precision)]
    pub const CLIP: Normalization = Normalization {
        mean: [0.481_454_66, 0.457_827_5, 0.408_210_73],
        std: [0.268_629_54, 0.261_302_58, 0.275_777_1],
    };
}

/// PIL `Image.TRANSPOSE`: pixel (x, y) moves to (y, x).
fn transpose(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    RgbImage::from_fn(h, w, |x, y| *img.get_pixel(y, x))
}

/// The uint8 HD image: resized and white-padded to the layout, in the original orientation.
pub fn hd_image(rgb: &RgbImage, layout: &HdLayout) -> RgbImage {
    let work = if layout.transposed { transpose(rgb) } else { rgb.clone() };
    let (rw, rh) = layout.resized_wh;
    let resized = resize_bilinear(&work, rw as u32, rh as u32);
    let padded_h = (rh + layout.pad_top + layout.pad_bottom) as u32;
    let mut padded = RgbImage::from_pixel(rw as u32, padded_h, Rgb([255, 255, 255]));
    image::imageops::replace(&mut padded, &resized, 0, layout.pad_top as i64);
    if layout.transposed {
        transpose(&padded)
    } else {
        padded
    }
}

/// `ToTensor` + `Normalize`: `[3, H, W]` f32 with `(v/255 − mean)/std`, each step rounded to f32.
fn normalize(img: &RgbImage, norm: &Normalization) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0f32; 3 * plane];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (px[c] as f32 / 255.0 - norm.mean[c]) / norm.std[c];
        }
    }
    out
}

/// Taps and weights of torch's bicubic interpolation (A = −0.75, align_corners = False, border
/// clamp) from `in_len` to `out_len` samples along one axis.
fn cubic_taps(in_len: usize, out_len: usize) -> Vec<([usize; 4], [f32; 4])> {
    const A: f32 = -0.75;
    let cc1 = |x: f32| ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    let cc2 = |x: f32| ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    let scale = in_len as f32 / out_len as f32;
    (0..out_len)
        .map(|d| {
            let real = scale * (d as f32 + 0.5) - 0.5;
            let base = real.floor();
            let t = real - base;
            let idx = |o: i64| (base as i64 + o).clamp(0, in_len as i64 - 1) as usize;
            ([idx(-1), idx(0), idx(1), idx(2)], [cc2(t + 1.0), cc1(t), cc1(1.0 - t), cc2(2.0 - t)])
        })
        .collect()
}

/// Four taps combined in the order PyTorch's CPU kernel uses (verified bit-exact):
/// the centre tap first, then fused multiply-adds of the others.
#[inline]
fn cubic_combine(x: [f32; 4], w: [f32; 4]) -> f32 {
    let t = x[1] * w[1];
    let t = x[0].mul_add(w[0], t);
    let t = x[2].mul_add(w[2], t);
    x[3].mul_add(w[3], t)
}

/// `F.interpolate(hd, size=(336, 336), mode="bicubic")` of a normalised `[3, h, w]` image.
fn global_view(hd: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let ys = cubic_taps(h, CROP);
    let xs = cubic_taps(w, CROP);
    for c in 0..3 {
        let plane = &hd[c * h * w..(c + 1) * h * w];
        for (oy, (yi, yw)) in ys.iter().enumerate() {
            for (ox, (xi, xw)) in xs.iter().enumerate() {
                let rows = yi.map(|y| cubic_combine(xi.map(|x| plane[y * w + x]), *xw));
                out[c * CROP * CROP + oy * CROP + ox] = cubic_combine(rows, *yw);
            }
        }
    }
}

/// The full processor for one RGB image.
pub fn preprocess(rgb: &RgbImage, num_crops: usize, norm: &Normalization) -> Result<Preprocessed, VisionError> {
    let (w, h) = rgb.dimensions();
    let layout = HdLayout::new(w as usize, h as usize, num_crops)?;
    let hd = normalize(&hd_image(rgb, &layout), norm);
    let (hh, hw) = layout.size_hw;
    let (rows, cols) = (layout.rows(), layout.cols());
    let mut crops = vec![0f32; (1 + rows * cols) * CROP_LEN];
    global_view(&hd, hh, hw, &mut crops[..CROP_LEN]);
    for r in 0..rows {
        for col in 0..cols {
            let tile = &mut crops[(1 + r * cols + col) * CROP_LEN..][..CROP_LEN];
            for c in 0..3 {
                for y in 0..CROP {
                    let src = c * hh * hw + (r * CROP + y) * hw + col * CROP;
                    tile[c * CROP * CROP + y * CROP..][..CROP].copy_from_slice(&hd[src..src + CROP]);
                }
            }
        }
    }
    Ok(Preprocessed { layout, crops })
}
