//! Pillow's antialiased BILINEAR resize on 8-bit RGB, bit for bit.
//!
//! Two separable passes, horizontal (width) first, each skipped when its size does not change.
//! Weights are computed in f64 (triangle filter stretched by the downscale factor, normalised
//! per output sample), turned into 22-bit fixed point, and applied with an i32 accumulator;
//! the intermediate image is rounded to u8, so the pass order matters. The integer sums are
//! exact in any order, so each pass runs rows in parallel and vectorised.

use image::RgbImage;
use phi3v_linear::with_avx2;
use rayon::prelude::*;

const PRECISION_BITS: u32 = 22;

/// Fixed-point taps of one axis: for output `i`, `count[i]` weights starting at source `start[i]`.
struct Taps {
    ksize: usize,
    start: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<i32>, // out_len × ksize
}

impl Taps {
    fn new(in_len: usize, out_len: usize) -> Self {
        let scale = in_len as f64 / out_len as f64;
        let filterscale = scale.max(1.0);
        let support = filterscale; // bilinear support 1.0 × filterscale
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;
        let mut start = Vec::with_capacity(out_len);
        let mut count = Vec::with_capacity(out_len);
        let mut weights = vec![0i32; out_len * ksize];
        let mut w = vec![0f64; ksize];
        for xx in 0..out_len {
            let center = (xx as f64 + 0.5) * scale;
            // C truncation toward zero, then clamping, as Pillow does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_len as i64) as usize;
            let n = xmax - xmin;
            let mut sum = 0.0;
            for (x, wx) in w.iter_mut().enumerate().take(n) {
                let d = (((x + xmin) as f64 - center) + 0.5) * ss;
                *wx = if d.abs() < 1.0 { 1.0 - d.abs() } else { 0.0 };
                sum += *wx;
            }
            for (x, wx) in w.iter().enumerate().take(n) {
                let v = if sum != 0.0 { wx / sum } else { *wx };
                let fixed = v * (1u32 << PRECISION_BITS) as f64;
                weights[xx * ksize + x] = if v < 0.0 { (fixed - 0.5) as i32 } else { (fixed + 0.5) as i32 };
            }
            start.push(xmin);
            count.push(n);
        }
        Self { ksize, start, count, weights }
    }

    /// The first source sample and the weights of output sample `out`.
    fn of(&self, out: usize) -> (usize, &[i32]) {
        (self.start[out], &self.weights[out * self.ksize..][..self.count[out]])
    }
}

/// An accumulated sample back to 8 bits.
#[inline(always)]
fn to_u8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Where every accumulator starts: a half, so that the shift rounds.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// The width pass: each row on its own (rows in parallel), the three channels of a pixel together.
fn horizontal(img: &RgbImage, width: u32) -> RgbImage {
    let (w0, h0) = img.dimensions();
    let taps = Taps::new(w0 as usize, width as usize);
    let mut out = vec![0u8; width as usize * h0 as usize * 3];
    let rows = img.as_raw().par_chunks_exact(w0 as usize * 3);
    out.par_chunks_exact_mut(width as usize * 3).zip(rows).for_each(|(out_row, line)| {
        with_avx2(#[inline(always)] || {
            for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
                let (start, weights) = taps.of(x);
                let src = &line[start * 3..][..weights.len() * 3];
                let (mut r, mut g, mut b) = (HALF, HALF, HALF);
                for (p, &wk) in src.chunks_exact(3).zip(weights) {
                    r += p[0] as i32 * wk;
                    g += p[1] as i32 * wk;
                    b += p[2] as i32 * wk;
                }
                px.copy_from_slice(&[to_u8(r), to_u8(g), to_u8(b)]);
            }
        })
    });
    RgbImage::from_raw(width, h0, out).expect("buffer sized for the image")
}

/// The height pass: each output row as a sum of whole source rows (rows in parallel).
fn vertical(img: &RgbImage, height: u32) -> RgbImage {
    let (w, h0) = img.dimensions();
    let taps = Taps::new(h0 as usize, height as usize);
    let (src, row) = (img.as_raw(), w as usize * 3);
    let mut out = vec![0u8; row * height as usize];
    out.par_chunks_exact_mut(row).enumerate().for_each_init(Vec::new, |acc, (y, out_row)| {
        with_avx2(#[inline(always)] || {
            let (start, weights) = taps.of(y);
            acc.clear();
            acc.resize(row, HALF);
            for (k, &wk) in weights.iter().enumerate() {
                for (a, &v) in acc.iter_mut().zip(&src[(start + k) * row..][..row]) {
                    *a += v as i32 * wk;
                }
            }
            for (o, &a) in out_row.iter_mut().zip(acc.iter()) {
                *o = to_u8(a);
            }
        })
    });
    RgbImage::from_raw(w, height, out).expect("buffer sized for the image")
}

/// Resizes `img` to `width`×`height` as `PIL.Image.resize(size, Image.BILINEAR)` does.
pub fn resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w0, h0) = img.dimensions();
    let across = if width != w0 { horizontal(img, width) } else { img.clone() };
    if height != h0 {
        vertical(&across, height)
    } else {
        across
    }
}
