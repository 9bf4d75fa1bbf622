//! The reference image processor: HD resize and padding, float32 normalisation, bicubic global
//! view, row-major 336×336 crops.

use image::RgbImage;
use phi3v_linear::with_avx2;
use rayon::prelude::*;

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
    let (rw, rh) = layout.resized_wh;
    let resized = if layout.transposed { resize_bilinear(&transpose(rgb), rw as u32, rh as u32) } else { resize_bilinear(rgb, rw as u32, rh as u32) };
    // White rows above and below, the resized rows copied in between.
    let row = rw * 3;
    let mut padded = vec![255u8; row * (rh + layout.pad_top + layout.pad_bottom)];
    padded[layout.pad_top * row..][..row * rh].copy_from_slice(resized.as_raw());
    let padded = RgbImage::from_raw(rw as u32, (rh + layout.pad_top + layout.pad_bottom) as u32, padded).expect("buffer sized for the image");
    if layout.transposed {
        transpose(&padded)
    } else {
        padded
    }
}

/// `ToTensor` + `Normalize`: `[3, H, W]` f32 with `(v/255 − mean)/std`, each step rounded to f32
/// (from a table of the 256 values per channel, the same arithmetic), rows in parallel.
fn normalize(img: &RgbImage, norm: &Normalization) -> Vec<f32> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let table: [[f32; 256]; 3] = std::array::from_fn(|c| std::array::from_fn(|v| (v as f32 / 255.0 - norm.mean[c]) / norm.std[c]));
    let mut out = vec![0f32; 3 * w * h];
    let src = img.as_raw();
    out.par_chunks_exact_mut(w).enumerate().for_each(|(j, row)| {
        let (c, y) = (j / h, j % h);
        for (o, px) in row.iter_mut().zip(src[y * w * 3..][..w * 3].chunks_exact(3)) {
            *o = table[c][px[c] as usize];
        }
    });
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
#[inline(always)]
fn cubic_combine(x: [f32; 4], w: [f32; 4]) -> f32 {
    let t = x[1] * w[1];
    let t = x[0].mul_add(w[0], t);
    let t = x[2].mul_add(w[2], t);
    x[3].mul_add(w[3], t)
}

/// `F.interpolate(hd, size=(336, 336), mode="bicubic")` of a normalised `[3, h, w]` image.
/// Each output is the vertical combination of four horizontal ones, and a horizontal one
/// depends only on its source row and output column, so they are computed once per row
/// (`[3, h, 336]`), then combined: the same operations on the same values as output by output.
fn global_view(hd: &[f32], h: usize, w: usize, out: &mut [f32]) {
    let ys = cubic_taps(h, CROP);
    let xs = cubic_taps(w, CROP);
    let mut across = vec![0f32; 3 * h * CROP];
    across.par_chunks_exact_mut(CROP).enumerate().for_each(|(j, row)| {
        let src = &hd[j * w..][..w];
        with_avx2(#[inline(always)] || {
            for (o, (xi, xw)) in row.iter_mut().zip(&xs) {
                *o = cubic_combine(xi.map(|x| src[x]), *xw);
            }
        })
    });
    out.par_chunks_exact_mut(CROP).enumerate().for_each(|(j, row)| {
        let (c, (yi, yw)) = (j / CROP, &ys[j % CROP]);
        let rows = yi.map(|y| &across[(c * h + y) * CROP..][..CROP]);
        with_avx2(#[inline(always)] || {
            for (ox, o) in row.iter_mut().enumerate() {
                *o = cubic_combine(rows.map(|r| r[ox]), *yw);
            }
        })
    });
}

/// The full processor for one RGB image.
pub fn preprocess(rgb: &RgbImage, num_crops: usize, norm: &Normalization) -> Result<Preprocessed, VisionError> {
    let (w, h) = rgb.dimensions();
    let layout = HdLayout::new(w as usize, h as usize, num_crops)?;
    let hd = normalize(&hd_image(rgb, &layout), norm);
    let (hh, hw) = layout.size_hw;
    let (rows, cols) = (layout.rows(), layout.cols());
    let mut crops = vec![0f32; (1 + rows * cols) * CROP_LEN];
    let (global, tiles) = crops.split_at_mut(CROP_LEN);
    global_view(&hd, hh, hw, global);
    // Each tile row by row, channel by channel: rows of 336 values in parallel.
    tiles.par_chunks_exact_mut(CROP).enumerate().for_each(|(j, out)| {
        let (tile, c, y) = (j / (3 * CROP), j / CROP % 3, j % CROP);
        let (r, col) = (tile / cols, tile % cols);
        out.copy_from_slice(&hd[c * hh * hw + (r * CROP + y) * hw + col * CROP..][..CROP]);
    });
    Ok(Preprocessed { layout, crops })
}
