//! Progress of the long steps, for bars and logs: reading the weights, encoding an image's
//! crops, reading the prompt. Set [`crate::PipelineOptions::progress`] to receive it.

use std::sync::Arc;

/// Where a long step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Loading: `bytes` of the checkpoint's `total` read (and converted or quantised).
    Loading { bytes: u64, total: u64 },
    /// Encoding an image: `crops` of its `of` crops (global view included) through CLIP.
    Encoding { crops: usize, of: usize },
    /// Prefill: `tokens` of the prompt's `of` positions through the decoder.
    Prefill { tokens: usize, of: usize },
}

/// Receives [`Progress`], from any of the pipeline's threads. Clones share the function.
#[derive(Clone)]
pub struct Observer(Arc<dyn Fn(Progress) + Send + Sync>);

impl Observer {
    pub fn new(f: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    pub(crate) fn report(&self, p: Progress) {
        (self.0)(p)
    }
}

impl std::fmt::Debug for Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// What the checkpoint reader calls with each tensor's stored bytes, reported through
/// `observer` as [`Progress::Loading`] out of `total`. Tensors may be read from several
/// threads: the count and its report happen under one lock, so the observer sees the bytes grow.
pub(crate) fn loading(observer: Option<Observer>, total: u64) -> phi3v_checkpoint::ReadObserver {
    let read = std::sync::Mutex::new(0u64);
    Arc::new(move |bytes| {
        let mut read = read.lock().unwrap_or_else(|e| e.into_inner());
        *read += bytes;
        report(&observer, Progress::Loading { bytes: *read, total });
    })
}

/// Reports through `observer`, if there is one.
pub(crate) fn report(observer: &Option<Observer>, p: Progress) {
    if let Some(o) = observer {
        o.report(p);
    }
}
