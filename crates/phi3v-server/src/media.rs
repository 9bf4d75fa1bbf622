//! Image URLs of a request turned into checked images: `data:image/…;base64,` always,
//! `http(s)://` fetched within the limits, `file://` only under `--allowed-media-dir`.
//! Blocking (network, disk, decoding): call from a blocking thread.

use std::path::{Path, PathBuf};
use std::time::Duration;

use phi3v::{ImageInput, ImageLimits};

use crate::error::ApiError;
use crate::request::ImageRef;

/// Where images may come from and what they may cost.
#[derive(Debug, Clone)]
pub struct MediaPolicy {
    pub limits: ImageLimits,
    /// Whole-download time limit for `http(s)` images.
    pub fetch_timeout: Duration,
    /// The only folder `file://` URLs may point into (`None`: no local files).
    pub allowed_dir: Option<PathBuf>,
}

impl MediaPolicy {
    /// Loads one image and decodes it once, so that a corrupt file is a 400 before the request
    /// is queued. Errors name the field.
    pub fn load(&self, image: &ImageRef) -> Result<ImageInput, ApiError> {
        let bad = |message: String| ApiError::bad_request(message, &image.param);
        let url = image.url.trim();
        let input = if url.starts_with("data:") {
            ImageInput::from_data_url(url, &self.limits).map_err(|e| bad(e.to_string()))?
        } else if url.starts_with("http://") || url.starts_with("https://") {
            ImageInput::fetch(url, &self.limits, self.fetch_timeout).map_err(|e| bad(e.to_string()))?
        } else if let Some(path) = url.strip_prefix("file://") {
            self.local_file(path).map_err(bad)?
        } else {
            let shown: String = url.chars().take(40).collect();
            return Err(bad(format!("unsupported image URL {shown:?}: use a data:image/…;base64 URL, http(s):// or file://")));
        };
        input.check().map_err(|e| bad(e.to_string()))?;
        Ok(input)
    }

    /// A `file://` path, only inside the allowed folder (after resolving `..` and links).
    fn local_file(&self, path: &str) -> Result<ImageInput, String> {
        let dir = self.allowed_dir.as_ref().ok_or("local files are not served (start the server with --allowed-media-dir)")?;
        let path = Path::new(path);
        let outside = || format!("{} is not inside the allowed media folder", path.display());
        let resolved = path.canonicalize().map_err(|_| outside())?;
        if !resolved.starts_with(dir) {
            return Err(outside());
        }
        ImageInput::open_within(&resolved, &self.limits).map_err(|e| e.to_string())
    }
}
