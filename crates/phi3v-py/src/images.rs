//! Python objects to [`ImageInput`]s: a path (`str` or `os.PathLike`; an `http(s)://` string is
//! downloaded), encoded bytes, a `PIL.Image.Image` of any mode (converted with
//! `.convert("RGB")`, as the reference processor converts it), or an `H×W×3` uint8 array.

use std::path::PathBuf;
use std::time::Duration;

use image::RgbImage;
use phi3v::{ImageInput, ImageLimits};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

use crate::{raise, ImageError};

/// How long an `http(s)://` image may take to download (as `phi3v ask` allows).
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// One image argument; `name` (`images[0]`, `messages[1].content[0]`) is named in errors about
/// objects that have no file name of their own.
pub fn image_input(obj: &Bound<'_, PyAny>, name: &str, num_crops: Option<usize>) -> PyResult<ImageInput> {
    let py = obj.py();
    // Errors about a file or URL name it; others name the argument.
    let (input, named) = if let Ok(text) = obj.cast::<PyString>() {
        let text = text.to_cow()?.into_owned();
        let input = if text.starts_with("http://") || text.starts_with("https://") {
            py.detach(|| ImageInput::fetch(&text, &ImageLimits::default(), FETCH_TIMEOUT))
        } else if text.starts_with("data:") {
            ImageInput::from_data_url(&text, &ImageLimits::default())
        } else {
            py.detach(|| ImageInput::open(text.as_ref()))
        };
        (input.map_err(raise)?, false)
    } else if let Some(bytes) = encoded(obj)? {
        (ImageInput::from_bytes(&bytes).map_err(|e| at(name, e))?, true)
    } else if is_pil_image(obj)? {
        let rgb = pil_rgb(obj).map_err(|e| ImageError::new_err(format!("{name}: PIL cannot convert it to RGB: {e}")))?;
        (rgb_input(name, rgb)?, true)
    } else if obj.hasattr("__array_interface__")? {
        (rgb_input(name, array_rgb(obj, name)?)?, true)
    } else if let Ok(path) = obj.extract::<PathBuf>() {
        (py.detach(|| ImageInput::open(&path)).map_err(raise)?, false)
    } else {
        let kind = obj.get_type().name()?;
        return Err(PyTypeError::new_err(format!(
            "{name}: expected a path, bytes, a PIL.Image.Image or an H×W×3 uint8 numpy array, got {kind}"
        )));
    };
    // Decoded once here so that a corrupt body is reported now, as `phi3v ask` reports it.
    py.detach(|| input.check()).map_err(|e| if named { at(name, e) } else { raise(e) })?;
    Ok(match num_crops {
        Some(n) => input.with_num_crops(n),
        None => input,
    })
}

/// `objs` (a sequence, or `None` for no images) as inputs, each named `images[i]`.
pub fn image_inputs(objs: Option<&Bound<'_, PyAny>>, num_crops: Option<usize>) -> PyResult<Vec<ImageInput>> {
    let Some(objs) = objs else { return Ok(Vec::new()) };
    if objs.is_instance_of::<PyString>() || objs.is_instance_of::<PyBytes>() || !objs.hasattr("__iter__")? || objs.hasattr("__array_interface__")? {
        return Err(PyTypeError::new_err("images must be a list of images (a path, bytes, a PIL image or an array each)"));
    }
    objs.try_iter()?.enumerate().map(|(i, obj)| image_input(&obj?, &format!("images[{i}]"), num_crops)).collect()
}

/// A library error about an image held in memory, naming the argument it came from.
fn at(name: &str, e: phi3v::Error) -> PyErr {
    match e {
        phi3v::Error::Vision(v) => raise(phi3v::Error::Vision(v.at(name.as_ref()))),
        e => raise(e),
    }
}

/// The bytes of a `bytes`, `bytearray` or `memoryview` (an encoded image file).
fn encoded(obj: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Some(bytes.as_bytes().to_vec()));
    }
    if let Ok(bytes) = obj.cast::<PyByteArray>() {
        return Ok(Some(bytes.to_vec()));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        return Ok(Some(obj.call_method0("tobytes")?.cast::<PyBytes>()?.as_bytes().to_vec()));
    }
    Ok(None)
}

fn rgb_input(name: &str, (width, height, pixels): (u32, u32, Vec<u8>)) -> PyResult<ImageInput> {
    let rgb = RgbImage::from_raw(width, height, pixels)
        .ok_or_else(|| ImageError::new_err(format!("{name}: {width}×{height} pixels do not match the data")))?;
    Ok(ImageInput::from_rgb(rgb))
}

/// Whether `obj` is a `PIL.Image.Image` (only when PIL was imported: otherwise it cannot be).
fn is_pil_image(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    let modules = obj.py().import("sys")?.getattr("modules")?;
    match modules.get_item("PIL.Image") {
        Ok(module) => obj.is_instance(&module.getattr("Image")?),
        Err(_) => Ok(false),
    }
}

/// Width, height and RGB bytes of a PIL image after `.convert("RGB")`.
fn pil_rgb(obj: &Bound<'_, PyAny>) -> PyResult<(u32, u32, Vec<u8>)> {
    let rgb = obj.call_method1("convert", ("RGB",))?;
    let (width, height): (u32, u32) = rgb.getattr("size")?.extract()?;
    Ok((width, height, rgb.call_method0("tobytes")?.extract()?))
}

/// Width, height and bytes of an `H×W×3` uint8 array (any strides: `tobytes` gives C order).
fn array_rgb(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<(u32, u32, Vec<u8>)> {
    let shape: Vec<usize> = obj.getattr("shape")?.extract()?;
    let dtype = obj.getattr("dtype")?.str()?.to_string();
    let [height, width, 3] = shape[..] else {
        return Err(ImageError::new_err(format!("{name}: an array image must be H×W×3 (RGB), got shape {shape:?}")));
    };
    if dtype != "uint8" {
        return Err(ImageError::new_err(format!("{name}: an array image must be uint8, got {dtype}")));
    }
    let too_big = |n: usize| u32::try_from(n).map_err(|_| ImageError::new_err(format!("{name}: {width}×{height} pixels is too large")));
    Ok((too_big(width)?, too_big(height)?, obj.call_method1("tobytes", ("C",))?.extract()?))
}
