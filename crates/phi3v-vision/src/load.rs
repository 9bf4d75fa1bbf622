//! Decoding image files to 8-bit RGB the way the reference (PIL `Image.open(...).convert("RGB")`)
//! does: alpha dropped (not composited), grey replicated, palettes looked up, no EXIF rotation.
//! 16-bit colour keeps the high byte of each sample; 16-bit grey is clipped to 0..=255, as PIL's
//! `I;16` → `RGB` conversion does.
//!
//! JPEG (YCbCr and greyscale) is decoded by libjpeg-turbo's decoder (through the `mozjpeg`
//! crate, built from source), with the defaults PIL uses (ISLOW IDCT, fancy upsampling), so the
//! pixels are PIL's exactly. Other formats use the `image` crate. See `docs/REFERENCE-NOTES.md`.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::VisionError;

/// Largest accepted image, in pixels: Pillow's decompression-bomb error threshold
/// (2 × `Image.MAX_IMAGE_PIXELS`).
pub const MAX_PIXELS: u64 = 178_956_970;

/// Reads an image file and converts it to RGB.
pub fn load_rgb(path: &Path) -> Result<RgbImage, VisionError> {
    let err = |message: String| VisionError::Read { path: path.to_path_buf(), message };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    decode_rgb(&bytes).map_err(|e| match e {
        VisionError::Read { message, .. } => err(message),
        other => other,
    })
}

/// Decodes an image held in memory (any supported format) and converts it to RGB.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, VisionError> {
    let err = |e: &dyn std::fmt::Display| VisionError::Read { path: "<memory>".into(), message: e.to_string() };
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| err(&e))?;
    let format = reader.format().ok_or_else(|| err(&"unrecognised image format"))?;
    if format == ImageFormat::Jpeg && jpeg_truncated(bytes) {
        return Err(err(&"JPEG data is truncated (no end-of-image marker after the last scan)"));
    }
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(2 * MAX_PIXELS * 4); // room for RGBA plus a conversion buffer
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| err(&e))?;
    let (w, h) = decoder.dimensions();
    if w == 0 || h == 0 {
        return Err(VisionError::EmptyImage { width: w as usize, height: h as usize });
    }
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(VisionError::TooLarge { width: w as usize, height: h as usize });
    }
    if format == ImageFormat::Jpeg {
        if let Some(rgb) = decode_jpeg_libjpeg(bytes).map_err(|e| err(&e))? {
            return Ok(rgb);
        }
    }
    let img = DynamicImage::from_decoder(decoder).map_err(|e| err(&e))?;
    Ok(to_rgb_like_pil(img))
}

/// Decodes a YCbCr or greyscale JPEG to RGB with libjpeg-turbo's decoder; `None` for other
/// colour spaces (CMYK/YCCK), which fall back to the `image` crate.
fn decode_jpeg_libjpeg(bytes: &[u8]) -> Result<Option<RgbImage>, String> {
    use mozjpeg::{ColorSpace, Decompress};
    // The crate reports libjpeg errors by unwinding; contain them here.
    let result = std::panic::catch_unwind(|| -> std::io::Result<Option<RgbImage>> {
        let d = Decompress::new_mem(bytes)?;
        if !matches!(d.color_space(), ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE | ColorSpace::JCS_RGB) {
            return Ok(None);
        }
        let mut started = d.rgb()?;
        let (w, h) = (started.width() as u32, started.height() as u32);
        let data = started.read_scanlines::<u8>()?;
        started.finish()?;
        Ok(RgbImage::from_raw(w, h, data))
    });
    match result {
        Ok(Ok(img)) => Ok(img),
        Ok(Err(e)) => Err(e.to_string()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_else(|| "corrupt JPEG data".to_string())),
    }
}

/// True when a JPEG stream has no end-of-image marker (FF D9) after its last start-of-scan
/// marker (FF DA). Decoders fill a truncated scan with grey; PIL refuses such files ("image file
/// is truncated"), and so do we. Entropy-coded data cannot contain FF D9.
fn jpeg_truncated(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(at) => !bytes[at..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => true,
    }
}

/// PIL's `convert("RGB")` of the mode PIL would have opened the file in.
fn to_rgb_like_pil(img: DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    let from_fn = |f: &dyn Fn(u32, u32) -> [u8; 3]| RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb,
        DynamicImage::ImageLuma16(g) => from_fn(&|x, y| [g.get_pixel(x, y)[0].min(255) as u8; 3]),
        DynamicImage::ImageLumaA16(g) => from_fn(&|x, y| [(g.get_pixel(x, y)[0] >> 8) as u8; 3]),
        DynamicImage::ImageRgb16(c) => from_fn(&|x, y| c.get_pixel(x, y).0.map(|v| (v >> 8) as u8)),
        DynamicImage::ImageRgba16(c) => from_fn(&|x, y| {
            let p = c.get_pixel(x, y).0;
            [p[0], p[1], p[2]].map(|v| (v >> 8) as u8)
        }),
        // 8-bit grey, grey+alpha, RGBA (alpha dropped, colour kept as stored) and anything else.
        other => other.to_rgb8(),
    }
}
