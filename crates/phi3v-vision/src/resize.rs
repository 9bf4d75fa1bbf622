//! Pillow's antialiased BILINEAR resize on 8-bit RGB, bit for bit.
//!
//! Two separable passes, horizontal (width) first, each skipped when its size does not change.
//! Weights are computed in f64 (triangle filter stretched by the downscale factor, normalised
//! per output sample), turned into 22-bit fixed point, and applied with an i32 accumulator;
//! the intermediate image is rounded to u8, so the pass order matters.

use image::RgbImage;

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

    /// One output sample from `n` source samples `src(k)`.
    #[inline]
    fn apply(&self, out: usize, src: impl Fn(usize) -> u8) -> u8 {
        let w = &self.weights[out * self.ksize..out * self.ksize + self.count[out]];
        let mut acc: i32 = 1 << (PRECISION_BITS - 1);
        for (k, wk) in w.iter().enumerate() {
            acc += src(self.start[out] + k) as i32 * wk;
        }
        (acc >> PRECISION_BITS).clamp(0, 255) as u8
    }
}

/// Resizes `img` to `width`×`height` as `PIL.Image.resize(size, Image.BILINEAR)` does.
pub fn resize_bilinear(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w0, h0) = img.dimensions();
    let mut cur = img.clone();
    if width != w0 {
        let taps = Taps::new(w0 as usize, width as usize);
        let src = cur.as_raw();
        let row = w0 as usize * 3;
        let mut out = vec![0u8; width as usize * h0 as usize * 3];
        for (y, out_row) in out.chunks_exact_mut(width as usize * 3).enumerate() {
            let line = &src[y * row..(y + 1) * row];
            for x in 0..width as usize {
                for c in 0..3 {
                    out_row[x * 3 + c] = taps.apply(x, |k| line[k * 3 + c]);
                }
            }
        }
        cur = RgbImage::from_raw(width, h0, out).expect("buffer sized for the image");
    }
    if height != h0 {
        let taps = Taps::new(h0 as usize, height as usize);
        let src = cur.as_raw();
        let row = width as usize * 3;
        let mut out = vec![0u8; row * height as usize];
        for (y, out_row) in out.chunks_exact_mut(row).enumerate() {
            for (i, o) in out_row.iter_mut().enumerate() {
                *o = taps.apply(y, |k| src[k * row + i]);
            }
        }
        cur = RgbImage::from_raw(width, height, out).expect("buffer sized for the image");
    }
    cur
}
