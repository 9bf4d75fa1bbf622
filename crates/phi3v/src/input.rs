//! [`ImageInput`]: an image to ask about, held encoded until the model needs its pixels.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::RgbImage;
use phi3v_vision::{ImageLimits, VisionError};
use sha2::{Digest, Sha256};

use crate::Result;

/// An image to ask about, with an optional per-image crop limit.
///
/// A file or buffer is checked when the input is made (a regular file within
/// [`ImageLimits::max_bytes`], a known format, a header within [`ImageLimits::max_pixels`]) and
/// kept encoded: its pixels are decoded only while the model encodes it, so holding many
/// inputs costs their encoded bytes, and at most one image is decoded at a time. Cloning is
/// cheap (shared).
#[derive(Clone)]
pub struct ImageInput {
    source: Source,
    width: u32,
    height: u32,
    num_crops: Option<usize>,
    limits: ImageLimits,
    /// The file it came from, named in errors.
    path: Option<Arc<PathBuf>>,
}

#[derive(Clone)]
enum Source {
    Encoded(Arc<[u8]>),
    Rgb(Arc<RgbImage>),
}

impl ImageInput {
    /// Reads an image file (JPEG, PNG, WebP, GIF, BMP) within the default [`ImageLimits`].
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_within(path, &ImageLimits::default())
    }

    /// Reads an image file, refusing it before reading when it is larger than
    /// `limits.max_bytes` or not a regular file, and before decoding when its header says
    /// more than `limits.max_pixels`.
    pub fn open_within(path: &Path, limits: &ImageLimits) -> Result<Self> {
        let bytes = phi3v_vision::read_file(path, limits)?;
        let mut input = Self::from_bytes_within(bytes, limits).map_err(|e| match e {
            crate::Error::Vision(v) => crate::Error::Vision(v.at(path)),
            other => other,
        })?;
        input.path = Some(Arc::new(path.to_path_buf()));
        Ok(input)
    }

    /// Downloads an image from an `http(s)://` URL: at most `limits.max_bytes` (a larger
    /// `Content-Length` is refused before the body is read, and reading stops one byte past the
    /// limit, which the header check then refuses), within `timeout` for the whole exchange,
    /// following at most 5 redirects.
    pub fn fetch(url: &str, limits: &ImageLimits, timeout: std::time::Duration) -> Result<Self> {
        use std::io::Read;
        let fail = |message: String| crate::Error::Fetch { url: url.to_string(), message };
        let agent = ureq::AgentBuilder::new().timeout(timeout).redirects(5).build();
        let response = agent.get(url).call().map_err(|e| fail(e.to_string()))?;
        let declared = response.header("Content-Length").and_then(|v| v.parse::<u64>().ok());
        if let Some(len) = declared.filter(|&len| len > limits.max_bytes) {
            return Err(fail(format!("{len} bytes, more than the limit of {}", limits.max_bytes)));
        }
        let mut bytes = Vec::new();
        response.into_reader().take(limits.max_bytes + 1).read_to_end(&mut bytes).map_err(|e| fail(e.to_string()))?;
        Self::from_bytes_within(bytes, limits).map_err(|e| match e {
            crate::Error::Vision(v) => fail(v.to_string()),
            other => other,
        })
    }

    /// An image in a `data:image/<type>;base64,<data>` URL (as OpenAI-style requests carry
    /// them), refused from its length alone when it would hold more than `limits.max_bytes`.
    pub fn from_data_url(url: &str, limits: &ImageLimits) -> Result<Self> {
        use base64::Engine as _;
        let fail = |message: String| crate::Error::DataUrl(message);
        let rest = url.strip_prefix("data:").ok_or_else(|| fail("it does not start with data:".into()))?;
        let (meta, data) = rest.split_once(',').ok_or_else(|| fail("a data URL needs a comma before its data".into()))?;
        let mime = meta.strip_suffix(";base64").ok_or_else(|| fail("only base64 data URLs are supported (data:image/png;base64,…)".into()))?;
        if !mime.starts_with("image/") {
            return Err(fail(format!("data URL of type {mime:?}; an image/… type is needed")));
        }
        let decoded = data.len() as u64 / 4 * 3;
        if decoded > limits.max_bytes + 3 {
            return Err(fail(format!("the image holds about {decoded} bytes, more than the limit of {}", limits.max_bytes)));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim_end())
            .map_err(|e| fail(format!("the data URL is not valid base64: {e}")))?;
        Self::from_bytes_within(bytes, limits)
    }

    /// An image held in memory, encoded in any supported format, within the default
    /// [`ImageLimits`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        Self::from_bytes_within(bytes, &ImageLimits::default())
    }

    /// An encoded image held in memory, checked against `limits` from its header.
    pub fn from_bytes_within(bytes: impl Into<Arc<[u8]>>, limits: &ImageLimits) -> Result<Self> {
        let bytes: Arc<[u8]> = bytes.into();
        let header = phi3v_vision::probe(&bytes, limits)?;
        Ok(Self {
            source: Source::Encoded(bytes),
            width: header.width,
            height: header.height,
            num_crops: None,
            limits: *limits,
            path: None,
        })
    }

    /// Pixels already decoded (and converted to RGB as the reference processor does).
    pub fn from_rgb(rgb: RgbImage) -> Self {
        let (width, height) = rgb.dimensions();
        Self { source: Source::Rgb(Arc::new(rgb)), width, height, num_crops: None, limits: ImageLimits::default(), path: None }
    }

    /// Overrides the checkpoint's `num_crops` for this image.
    pub fn with_num_crops(mut self, num_crops: usize) -> Self {
        self.num_crops = Some(num_crops);
        self
    }

    /// Width and height in pixels.
    pub fn dimensions(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The crop limit set with [`Self::with_num_crops`].
    pub fn num_crops(&self) -> Option<usize> {
        self.num_crops
    }

    /// The pixels as RGB: decoded now for an encoded image (a corrupt body is found here).
    pub fn rgb(&self) -> Result<Arc<RgbImage>> {
        match &self.source {
            Source::Rgb(rgb) => Ok(rgb.clone()),
            Source::Encoded(bytes) => {
                let rgb = phi3v_vision::decode_rgb_within(bytes, &self.limits).map_err(|e| self.named(e))?;
                Ok(Arc::new(rgb))
            }
        }
    }

    /// Decodes the image once and drops the pixels: finds a corrupt body before any model work.
    pub fn check(&self) -> Result<()> {
        self.rgb().map(drop)
    }

    /// Identifies the content (and so the embedding): a hash of the encoded bytes, or of the
    /// size and pixels of an RGB input.
    pub(crate) fn content_key(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        match &self.source {
            Source::Encoded(bytes) => {
                hasher.update(b"encoded");
                hasher.update(bytes);
            }
            Source::Rgb(rgb) => {
                hasher.update(b"rgb");
                hasher.update(rgb.width().to_le_bytes());
                hasher.update(rgb.height().to_le_bytes());
                hasher.update(rgb.as_raw());
            }
        }
        hasher.finalize().into()
    }

    fn named(&self, e: VisionError) -> VisionError {
        match &self.path {
            Some(path) => e.at(path),
            None => e,
        }
    }
}
