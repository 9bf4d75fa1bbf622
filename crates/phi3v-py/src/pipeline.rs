//! `phi3v.Pipeline`: a checkpoint loaded once; `ask`, `stream`, `chat`, `session`, `inspect`
//! and `pixel_values`. Every method may be called from several Python threads at once.

use std::path::PathBuf;

use phi3v::{Generation, GenerationParams, KvDtype, Observer, PipelineOptions, Progress, WeightFormat};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::generation::{params, Answer, Stream};
use crate::images::{image_input, image_inputs};
use crate::session::Session;
use crate::{chat, raise};

/// A Phi-3-vision / Phi-3.5-vision checkpoint, loaded.
#[pyclass(module = "phi3v", frozen)]
pub struct Pipeline {
    inner: phi3v::Pipeline,
    /// Crops per image, when not the checkpoint's.
    num_crops: Option<usize>,
    model: String,
}

#[pymethods]
impl Pipeline {
    /// Loads `model` (a checkpoint directory, or a Hugging Face id resolved through the HF cache
    /// as `phi3v` resolves it). `quant`: `"q8"` or `"q4"` to quantise the weight matrices
    /// (default: as stored, or as written by `phi3v quantize`); `vision_quant`: the vision
    /// tower's if not the same (`"none"`, `"q8"`, `"q4"`); `dtype`: unquantised matrices as
    /// `"auto"` (stored), `"f32"`, `"bf16"` or `"f16"`; `kv_cache`: `"auto"`, `"f32"`, `"f16"`
    /// or `"q8"`; `num_crops`: crops per image (default: the checkpoint's); `threads`: worker
    /// threads (default: one per core); `progress`: called as `progress(stage, done, total)`
    /// while loading (`"loading"`, bytes), encoding an image (`"encoding"`, crops) and reading a
    /// prompt (`"prefill"`, tokens).
    #[new]
    #[pyo3(signature = (model, *, quant=None, vision_quant=None, dtype="auto", kv_cache="auto", num_crops=None, threads=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        model: PathBuf,
        quant: Option<&str>,
        vision_quant: Option<&str>,
        dtype: &str,
        kv_cache: &str,
        num_crops: Option<usize>,
        threads: Option<usize>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let max = phi3v::vision::MAX_CROPS;
        if let Some(n) = num_crops.filter(|n| !(1..=max).contains(n)) {
            return Err(PyValueError::new_err(format!("num_crops must be from 1 to {max}, got {n}")));
        }
        let dense = one_of(dtype, "dtype", &["auto", "f32", "bf16", "f16"])?;
        let decoder = match quant {
            Some(q) => one_of(q, "quant", &["q8", "q4"])?,
            None => dense,
        };
        let kv_cache = match kv_cache {
            "auto" => None,
            kv => Some(kv.parse::<KvDtype>().map_err(|_| bad_choice("kv_cache", kv, &["auto", "f32", "f16", "q8"]))?),
        };
        let vision = match vision_quant {
            None => None,
            Some("none") => Some(dense),
            Some(q) => Some(one_of(q, "vision_quant", &["none", "q8", "q4"])?),
        };
        let model = model.to_string_lossy().into_owned();
        let inner = py.detach(|| -> phi3v::Result<phi3v::Pipeline> {
            let dir = phi3v::hub::resolve(&model, false)?;
            let vision_weights = vision.unwrap_or_else(|| phi3v::default_vision_format(&dir, decoder));
            let progress = progress.map(observer);
            let options = PipelineOptions { weights: decoder, vision_weights, kv_cache, threads, progress, ..Default::default() };
            phi3v::Pipeline::load(&dir, &options)
        });
        Ok(Self { inner: inner.map_err(raise)?, num_crops, model })
    }

    /// One question about `images` (placed before it): the whole answer.
    #[pyo3(signature = (question, images=None, **options))]
    fn ask(
        &self,
        py: Python<'_>,
        question: String,
        images: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<Answer>> {
        let params = params(options)?;
        self.start_ask(question, images, params)?.finish(py)
    }

    /// [`Self::ask`], the answer as an iterator of text pieces as they are generated.
    #[pyo3(signature = (question, images=None, **options))]
    fn stream(
        &self,
        question: String,
        images: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Stream> {
        let params = params(options)?;
        self.start_ask(question, images, params)
    }

    /// Generates from a prompt already in the chat template, passed verbatim, with an
    /// `<|image_N|>` tag for each of `images` (as `phi3v ask --raw`).
    #[pyo3(signature = (prompt, images=None, **options))]
    fn generate(
        &self,
        py: Python<'_>,
        prompt: String,
        images: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<Answer>> {
        let params = params(options)?;
        let images = image_inputs(images, self.num_crops)?;
        self.start(params, move |p, params, on_text| p.generate(&prompt, &images, params, on_text))?.finish(py)
    }

    /// The assistant's reply to OpenAI-style `messages` (`{"role": ..., "content": ...}`, the
    /// content a string or a list of parts: `{"type": "text", "text": ...}`,
    /// `{"type": "image_url", "image_url": {"url": ...}}` with a data URL, an http(s) URL, a
    /// `file://` URL or a path, or `{"type": "image", "image": ...}` with any image form).
    /// With `stream=True`, an iterator of text pieces.
    #[pyo3(signature = (messages, *, stream=false, **options))]
    fn chat(
        &self,
        py: Python<'_>,
        messages: &Bound<'_, PyAny>,
        stream: bool,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let params = params(options)?;
        let (messages, images) = chat::conversation(messages, self.num_crops)?;
        let running = self.start(params, move |p, params, on_text| p.chat(&messages, &images, params, on_text))?;
        Ok(if stream { Py::new(py, running)?.into_any() } else { running.finish(py)?.into_any() })
    }

    /// A conversation that keeps its KV cache between turns (`system`: a system message).
    #[pyo3(signature = (system=None))]
    fn session(&self, system: Option<String>) -> Session {
        let session = self.inner.session();
        Session::new(match system {
            Some(s) => session.with_system(s),
            None => session,
        }, self.num_crops)
    }

    /// What a question with `images` costs, without running the model: a dict of
    /// `prompt_tokens` (image tokens included), `image_tokens` (per image), `text_tokens` and
    /// `context` (the model's positions). A prompt over the context is a `PromptError`.
    #[pyo3(signature = (question="", images=None, *, system=None))]
    fn inspect<'py>(&self, py: Python<'py>, question: &str, images: Option<&Bound<'py, PyAny>>, system: Option<String>) -> PyResult<Bound<'py, PyDict>> {
        let images = image_inputs(images, self.num_crops)?;
        let messages = phi3v::prompt::question_messages(system.as_deref(), question, images.len());
        let (prompt_tokens, image_tokens) = self.inner.chat_token_counts(&messages, &images).map_err(raise)?;
        let dict = PyDict::new(py);
        dict.set_item("prompt_tokens", prompt_tokens)?;
        dict.set_item("text_tokens", prompt_tokens - image_tokens.iter().sum::<usize>())?;
        dict.set_item("image_tokens", image_tokens)?;
        dict.set_item("context", self.inner.config().max_position_embeddings)?;
        Ok(dict)
    }

    /// The pixel values the vision tower reads for `image`: a float32 numpy array
    /// `[crops, 3, 336, 336]`, the global view first, then the tiles row by row (the reference
    /// processor's `pixel_values` without its zero padding crops).
    fn pixel_values<'py>(&self, py: Python<'py>, image: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let input = image_input(image, "image", self.num_crops)?;
        let pre = py.detach(|| self.inner.preprocess(&input)).map_err(raise)?;
        let bytes: Vec<u8> = pre.crops.iter().flat_map(|v| v.to_le_bytes()).collect();
        let numpy = py.import("numpy")?;
        let flat = numpy.call_method1("frombuffer", (PyBytes::new(py, &bytes), "<f4"))?;
        let side = phi3v::vision::CROP;
        flat.call_method1("reshape", ((pre.num_crops(), 3, side, side),))
    }

    /// Crops per image: the checkpoint's unless `num_crops` was given.
    #[getter]
    fn num_crops(&self) -> usize {
        self.num_crops.unwrap_or(self.inner.default_crops())
    }

    /// The most positions a prompt and its answer may take together.
    #[getter]
    fn context_length(&self) -> usize {
        self.inner.config().max_position_embeddings
    }

    fn __repr__(&self) -> String {
        format!("Pipeline({:?}, num_crops={})", self.model, self.num_crops())
    }
}

impl Pipeline {
    /// Starts `job` on the pipeline on a thread of its own ([`Stream::start`]).
    fn start<F>(&self, params: GenerationParams, job: F) -> PyResult<Stream>
    where
        F: FnOnce(&phi3v::Pipeline, &GenerationParams, &mut dyn FnMut(&str)) -> phi3v::Result<Generation> + Send + 'static,
    {
        let pipeline = self.inner.clone();
        Stream::start(params, move |params, on_text| job(&pipeline, params, on_text))
    }

    /// Starts one question about `images`.
    fn start_ask(&self, question: String, images: Option<&Bound<'_, PyAny>>, params: GenerationParams) -> PyResult<Stream> {
        let images = image_inputs(images, self.num_crops)?;
        self.start(params, move |p, params, on_text| p.ask(&question, &images, params, on_text))
    }
}

/// Reports progress to a Python callable (taking the GIL for each call). What it raises cannot
/// reach the caller from the model's threads: it is reported as unraisable and ignored.
fn observer(callback: Py<PyAny>) -> Observer {
    Observer::new(move |p| {
        let (stage, done, total) = match p {
            Progress::Loading { bytes, total } => ("loading", bytes, total),
            Progress::Encoding { crops, of } => ("encoding", crops as u64, of as u64),
            Progress::Prefill { tokens, of } => ("prefill", tokens as u64, of as u64),
        };
        Python::attach(|py| {
            if let Err(e) = callback.call1(py, (stage, done, total)) {
                e.write_unraisable(py, Some(callback.bind(py)));
            }
        })
    })
}

/// `value` parsed as a weight format, when it is one of `allowed`.
fn one_of(value: &str, name: &str, allowed: &[&str]) -> PyResult<WeightFormat> {
    match value.parse::<WeightFormat>() {
        Ok(f) if allowed.contains(&value) => Ok(f),
        _ => Err(bad_choice(name, value, allowed)),
    }
}

fn bad_choice(name: &str, value: &str, allowed: &[&str]) -> PyErr {
    PyValueError::new_err(format!("{name} must be one of {}, got {value:?}", allowed.join(", ")))
}
