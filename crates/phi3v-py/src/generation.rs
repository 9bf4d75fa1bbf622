//! A generation on its own thread ([`Stream`]), what it returns ([`Answer`], [`Timings`]), and
//! the generation keywords every method takes ([`params`]).
//!
//! The model never runs while holding the GIL: the generation runs on a thread of its own and
//! sends text pieces through a channel; the Python thread waits for them with the GIL released,
//! in slices of [`SLICE`], checking for signals in between (Ctrl-C cancels the generation,
//! which stops before its next token, and raises `KeyboardInterrupt`).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Mutex;
use std::time::Duration;

use phi3v::{Cancel, Generation, GenerationParams};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::{raise, Error};

/// How long the waiting thread holds off between checks for Ctrl-C.
const SLICE: Duration = Duration::from_millis(50);

/// Stop strings: one or several.
#[derive(FromPyObject)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// The keywords every generation method takes, with their defaults.
const KEYWORDS: &str = "max_tokens=512, temperature=0.0, top_p=1.0, top_k=0, seed=None, repetition_penalty=1.0, stop=None";

/// Generation parameters from a method's keyword arguments (see [`KEYWORDS`]): greedy unless
/// `temperature` > 0, a fresh random seed when none is given. An unknown keyword or a value of
/// the wrong type is `TypeError`, a bad value `ValueError`.
pub fn params(options: Option<&Bound<'_, PyDict>>) -> PyResult<GenerationParams> {
    let mut params = GenerationParams::default();
    let mut seed = None;
    for (key, value) in options.into_iter().flat_map(|o| o.iter()) {
        let key: String = key.extract()?;
        let wrong = |e: PyErr| PyTypeError::new_err(format!("{key}: {}", e.value(value.py())));
        match key.as_str() {
            "max_tokens" => params.max_new_tokens = value.extract().map_err(wrong)?,
            "temperature" => params.temperature = value.extract().map_err(wrong)?,
            "top_p" => params.top_p = value.extract().map_err(wrong)?,
            "top_k" => params.top_k = value.extract().map_err(wrong)?,
            "seed" => seed = value.extract::<Option<u64>>().map_err(wrong)?,
            "repetition_penalty" => params.repetition_penalty = value.extract().map_err(wrong)?,
            "stop" => {
                params.stop = match value.extract::<Option<Stop>>().map_err(wrong)? {
                    None => Vec::new(),
                    Some(Stop::One(s)) => vec![s],
                    Some(Stop::Many(v)) => v,
                }
            }
            _ => return Err(PyTypeError::new_err(format!("unexpected keyword argument {key:?} (generation takes {KEYWORDS})"))),
        }
    }
    params.seed = seed.unwrap_or_else(rand::random);
    // Named as the keyword is (`max_tokens`, not the library's `max_new_tokens`).
    params.validate().map_err(|e| PyValueError::new_err(e.to_string().replace("max_new_tokens", "max_tokens")))?;
    Ok(params)
}

/// What a generation job sends: text as it is released, then its end.
enum Event {
    Text(String),
    Done(phi3v::Result<Generation>),
}

/// Pieces of an answer as they are generated: `for piece in pipeline.stream(...)`. After the
/// last piece, `answer` holds the whole [`Answer`]. Closing it (or dropping it) stops the
/// generation before its next token.
#[pyclass(module = "phi3v")]
pub struct Stream {
    events: Mutex<Receiver<Event>>,
    cancel: Cancel,
    seed: u64,
    finished: bool,
    answer: Option<Py<Answer>>,
}

impl Stream {
    /// Starts `job` on a thread of its own with `params` (given a cancel flag): `job` calls its
    /// second argument with each piece of text.
    pub fn start<F>(mut params: GenerationParams, job: F) -> PyResult<Self>
    where
        F: FnOnce(&GenerationParams, &mut dyn FnMut(&str)) -> phi3v::Result<Generation> + Send + 'static,
    {
        let cancel = Cancel::new();
        params.cancel = Some(cancel.clone());
        let seed = params.seed;
        let (send, events) = mpsc::channel();
        std::thread::Builder::new()
            .name("phi3v-generate".into())
            .spawn(move || {
                let result = job(&params, &mut |piece| drop(send.send(Event::Text(piece.to_string()))));
                drop(send.send(Event::Done(result)));
            })
            .map_err(|e| raise(phi3v::Error::Threads(e.to_string())))?;
        Ok(Self { events: Mutex::new(events), cancel, seed, finished: false, answer: None })
    }

    /// The next piece of text, `None` at the end (then [`Self::answer`] is set). Waits with the
    /// GIL released; Ctrl-C cancels the generation and raises `KeyboardInterrupt`.
    fn next_piece(&mut self, py: Python<'_>) -> PyResult<Option<String>> {
        while !self.finished {
            if let Err(interrupted) = py.check_signals() {
                self.close();
                return Err(interrupted);
            }
            let events = &self.events;
            let event = py.detach(|| events.lock().unwrap_or_else(|e| e.into_inner()).recv_timeout(SLICE));
            match event {
                Ok(Event::Text(piece)) => return Ok(Some(piece)),
                Ok(Event::Done(result)) => {
                    self.finished = true;
                    self.answer = Some(Py::new(py, Answer::new(py, result.map_err(raise)?, self.seed)?)?);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    self.finished = true;
                    return Err(Error::new_err("internal error: the generation thread ended without an answer"));
                }
            }
        }
        Ok(None)
    }

    /// Runs to the end, dropping the text: the answer.
    pub fn finish(mut self, py: Python<'_>) -> PyResult<Py<Answer>> {
        while self.next_piece(py)?.is_some() {}
        Ok(self.answer.take().expect("a finished stream has its answer"))
    }
}

#[pymethods]
impl Stream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self, py: Python<'_>) -> PyResult<Option<String>> {
        self.next_piece(py)
    }

    /// The whole answer once the last piece was read; `None` before.
    #[getter]
    fn answer(&self, py: Python<'_>) -> Option<Py<Answer>> {
        self.answer.as_ref().map(|a| a.clone_ref(py))
    }

    /// Stops the generation before its next token (what was generated is kept in a session).
    fn close(&mut self) {
        if !self.finished {
            self.cancel.cancel();
            self.finished = true;
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(&mut self, _exc_type: Py<PyAny>, _exc: Py<PyAny>, _traceback: Py<PyAny>) {
        self.close();
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.close();
    }
}

/// Where the time of one answer went.
#[pyclass(module = "phi3v", frozen, get_all)]
pub struct Timings {
    /// Image preprocessing, vision tower and projector (0 for images seen before).
    encode_s: f64,
    /// The forward pass over the prompt.
    prefill_s: f64,
    /// All later forward passes.
    decode_s: f64,
    /// Rows in the prefill.
    prefill_tokens: usize,
    /// Forward passes after the prefill.
    decode_steps: usize,
    prefill_tokens_per_s: f64,
    decode_tokens_per_s: f64,
}

#[pymethods]
impl Timings {
    /// Seconds until the first token: encoding and prefill.
    #[getter]
    fn first_token_s(&self) -> f64 {
        self.encode_s + self.prefill_s
    }

    fn __repr__(&self) -> String {
        format!(
            "Timings(encode_s={:.3}, prefill_s={:.3}, decode_s={:.3}, prefill_tokens={}, decode_steps={})",
            self.encode_s, self.prefill_s, self.decode_s, self.prefill_tokens, self.decode_steps
        )
    }
}

/// One answer: its text and token ids, what the prompt cost, why it stopped, where the time went.
#[pyclass(module = "phi3v", frozen, get_all)]
pub struct Answer {
    /// The reply (stop token and stop string excluded).
    text: String,
    /// Generated token ids (a final stop token excluded).
    tokens: Vec<u32>,
    /// Tokens in the prompt, image tokens included.
    prompt_tokens: usize,
    /// Image tokens of each image in the prompt.
    image_tokens: Vec<usize>,
    /// OpenAI's `finish_reason`: `stop`, `length` or `cancelled`.
    finish_reason: &'static str,
    /// What stopped it: `token 32007`, `string "…"`, `max_tokens`, `context_full`, `cancelled`.
    stop: String,
    /// The sampler's seed (to repeat a sampled answer).
    seed: u64,
    timings: Py<Timings>,
}

impl Answer {
    fn new(py: Python<'_>, g: Generation, seed: u64) -> PyResult<Self> {
        let t = &g.timings;
        let timings = Timings {
            encode_s: t.encode.as_secs_f64(),
            prefill_s: t.prefill.as_secs_f64(),
            decode_s: t.decode.as_secs_f64(),
            prefill_tokens: t.prefill_tokens,
            decode_steps: t.decode_steps,
            prefill_tokens_per_s: t.prefill_tokens_per_s(),
            decode_tokens_per_s: t.decode_tokens_per_s(),
        };
        Ok(Self {
            finish_reason: g.stop.finish_reason(),
            stop: g.stop.to_string(),
            text: g.text,
            tokens: g.tokens,
            prompt_tokens: g.prompt_tokens,
            image_tokens: g.image_tokens,
            seed,
            timings: Py::new(py, timings)?,
        })
    }
}

#[pymethods]
impl Answer {
    fn __str__(&self) -> &str {
        &self.text
    }

    fn __repr__(&self) -> String {
        format!("Answer(text={:?}, tokens={}, finish_reason={:?})", self.text, self.tokens.len(), self.finish_reason)
    }
}
