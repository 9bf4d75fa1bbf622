//! `phi3v.Session`: a multi-turn conversation that keeps its KV cache, so a follow-up costs only
//! its own tokens.

use std::sync::{Arc, Mutex, MutexGuard};

use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::generation::{params, Answer, Stream};
use crate::images::image_inputs;

/// A conversation with a pipeline (`Pipeline.session()`). Turns run one at a time: a turn asked
/// for while another runs waits for it.
#[pyclass(module = "phi3v", frozen)]
pub struct Session {
    inner: Arc<Mutex<phi3v::Session>>,
    num_crops: Option<usize>,
}

impl Session {
    pub fn new(session: phi3v::Session, num_crops: Option<usize>) -> Self {
        Self { inner: Arc::new(Mutex::new(session)), num_crops }
    }

    /// `f` on the conversation, once no turn is running (waited for with the GIL released).
    fn with<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut phi3v::Session) -> R + Send) -> R {
        py.detach(|| f(&mut lock(&self.inner)))
    }

    fn start(&self, question: String, images: Option<&Bound<'_, PyAny>>, params: phi3v::GenerationParams) -> PyResult<Stream> {
        let images = image_inputs(images, self.num_crops)?;
        let session = self.inner.clone();
        Stream::start(params, move |params, on_text| lock(&session).ask(&question, &images, params, on_text))
    }
}

/// A poisoned lock still holds a consistent conversation (a failed turn leaves it as it was).
fn lock(session: &Mutex<phi3v::Session>) -> MutexGuard<'_, phi3v::Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

#[pymethods]
impl Session {
    /// The next question, with images new in this turn (placed before it): the whole answer.
    #[pyo3(signature = (question, images=None, **options))]
    fn ask(
        &self,
        py: Python<'_>,
        question: String,
        images: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<Answer>> {
        let params = params(options)?;
        self.start(question, images, params)?.finish(py)
    }

    /// [`Self::ask`], the answer as an iterator of text pieces.
    #[pyo3(signature = (question, images=None, **options))]
    fn stream(
        &self,
        question: String,
        images: Option<&Bound<'_, PyAny>>,
        options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Stream> {
        let params = params(options)?;
        self.start(question, images, params)
    }

    /// The conversation so far: `[{"role": ..., "content": ...}]`, images as their
    /// `<|image_N|>` tags.
    #[getter]
    fn messages<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let messages = self.with(py, |s| s.messages().to_vec());
        messages
            .into_iter()
            .map(|m| {
                let dict = PyDict::new(py);
                dict.set_item("role", m.role)?;
                dict.set_item("content", m.content)?;
                Ok(dict)
            })
            .collect()
    }

    /// Positions held in the KV cache.
    #[getter]
    fn cached_tokens(&self, py: Python<'_>) -> usize {
        self.with(py, |s| s.cached_tokens())
    }

    /// Forgets the conversation (the system message stays).
    fn reset(&self, py: Python<'_>) {
        self.with(py, |s| s.reset());
    }
}
