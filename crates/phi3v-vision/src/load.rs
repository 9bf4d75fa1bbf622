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

/// Largest accepted image file or buffer by default, in bytes (256 MiB).
pub const MAX_BYTES: u64 = 256 << 20;

/// What an image may cost before it is decoded. The file (or buffer) is refused past
/// `max_bytes` before it is read, and the image past `max_pixels` from its header, before any
/// pixel is decoded; decoding is bounded by `max_pixels` too. So one image holds at most
/// `max_bytes` while encoded, at most `8 · max_pixels` bytes while it is decoded and
/// `3 · max_pixels` once it is RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageLimits {
    /// Largest width × height ([`MAX_PIXELS`] by default).
    pub max_pixels: u64,
    /// Largest encoded size ([`MAX_BYTES`] by default).
    pub max_bytes: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        Self { max_pixels: MAX_PIXELS, max_bytes: MAX_BYTES }
    }
}

/// An image's format and size, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageHeader {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

/// Reads an image file and converts it to RGB, within the default [`ImageLimits`].
pub fn load_rgb(path: &Path) -> Result<RgbImage, VisionError> {
    let bytes = read_file(path, &ImageLimits::default())?;
    decode_rgb(&bytes).map_err(|e| e.at(path))
}

/// The bytes of an image file, refused before reading when it is not a regular file (a FIFO or
/// a device would block or never end) or is larger than `limits.max_bytes`.
pub fn read_file(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>, VisionError> {
    use phi3v_checkpoint::CappedReadError;
    let err = |message: String| VisionError::Read { path: path.to_path_buf(), message };
    phi3v_checkpoint::read_capped(path, limits.max_bytes).map_err(|e| match e {
        CappedReadError::Io(e) => err(plain_io(&e)),
        CappedReadError::NotRegular => err("not a regular file".into()),
        CappedReadError::TooLarge(bytes) => VisionError::TooManyBytes { bytes, max: limits.max_bytes }.at(path),
    })
}

/// An I/O error's text without Rust's " (os error N)" suffix.
fn plain_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Reads the format and size of an encoded image from its header and checks them against
/// `limits` (and a JPEG's end marker), without decoding any pixel.
pub fn probe(bytes: &[u8], limits: &ImageLimits) -> Result<ImageHeader, VisionError> {
    let err = |e: &dyn std::fmt::Display| VisionError::Read { path: "<memory>".into(), message: e.to_string() };
    if bytes.len() as u64 > limits.max_bytes {
        return Err(VisionError::TooManyBytes { bytes: bytes.len() as u64, max: limits.max_bytes });
    }
    let reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|e| err(&e))?;
    let format = reader.format().ok_or_else(|| err(&"unrecognised image format"))?;
    if format == ImageFormat::Jpeg && jpeg_truncated(bytes) {
        return Err(err(&"JPEG data is truncated (no end-of-image marker after the last scan)"));
    }
    let (width, height) = reader.into_dimensions().map_err(|e| err(&e))?;
    if width == 0 || height == 0 {
        return Err(VisionError::EmptyImage { width: width as usize, height: height as usize });
    }
    if width as u64 * height as u64 > limits.max_pixels {
        return Err(VisionError::TooLarge { width: width as usize, height: height as usize, max: limits.max_pixels });
    }
    Ok(ImageHeader { format, width, height })
}

/// Decodes an image held in memory (any supported format) and converts it to RGB, within the
/// default [`ImageLimits`].
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, VisionError> {
    decode_rgb_within(bytes, &ImageLimits::default())
}

/// [`decode_rgb`] within `limits`: the header is checked first ([`probe`]), and the decoder
/// may not allocate more than the largest image allowed needs.
pub fn decode_rgb_within(bytes: &[u8], limits: &ImageLimits) -> Result<RgbImage, VisionError> {
    let err = |e: &dyn std::fmt::Display| VisionError::Read { path: "<memory>".into(), message: e.to_string() };
    let header = probe(bytes, limits)?;
    if header.format == ImageFormat::Jpeg {
        if let Some(rgb) = decode_jpeg_libjpeg(bytes).map_err(|e| err(&e))? {
            return Ok(rgb);
        }
    }
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(header.format);
    let mut decode_limits = image::Limits::default();
    // Room for 8-bit RGBA plus a conversion buffer (or 16-bit RGBA).
    decode_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8));
    reader.limits(decode_limits);
    let decoder = reader.into_decoder().map_err(|e| err(&e))?;
    let (w, h) = decoder.dimensions();
    if (w, h) != (header.width, header.height) {
        return Err(err(&format!("header says {}×{} but the decoder {w}×{h}", header.width, header.height)));
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
