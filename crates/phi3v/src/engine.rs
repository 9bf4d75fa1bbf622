//! [`Engine`]: one worker thread that runs chat generations from a bounded queue, for servers
//! and other callers that must never block on the model.
//!
//! A request is submitted with a callback; the worker calls it with each piece of text as it is
//! generated ([`Event::Text`]) and once at the end ([`Event::Done`]). Requests run one at a time
//! in arrival order; a full queue refuses new ones at once ([`QueueFull`]). A request whose
//! [`crate::Cancel`] flag is set while it waits is dropped without running; one that is running
//! stops before its next token.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use crate::generate::Generation;
use crate::input::ImageInput;
use crate::pipeline::Pipeline;
use crate::prompt::Message;
use crate::sampling::GenerationParams;
use crate::{Error, Result};

/// A conversation to answer (as [`Pipeline::chat`] takes it).
pub struct ChatRequest {
    pub messages: Vec<Message>,
    pub images: Vec<ImageInput>,
    pub params: GenerationParams,
}

/// What the worker reports about a request.
#[derive(Debug)]
pub enum Event {
    /// New text of the answer (never a split UTF-8 character).
    Text(String),
    /// The end: the whole generation, or why it failed ([`Error::Cancelled`] when its flag was
    /// set before it started).
    Done(Result<Generation>),
}

/// The queue already holds as many waiting requests as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is full ({capacity} requests waiting)")]
pub struct QueueFull {
    pub capacity: usize,
}

type Callback = Box<dyn FnMut(Event) + Send>;

/// A pipeline with a worker thread and a queue in front of it. Dropping the engine lets the
/// worker finish the queued requests, then end.
pub struct Engine {
    pipeline: Pipeline,
    sender: SyncSender<(ChatRequest, Callback)>,
    capacity: usize,
    waiting: Arc<AtomicUsize>,
    busy: Arc<AtomicBool>,
}

impl Engine {
    /// Starts the worker; at most `capacity` requests wait while one runs (0: none wait).
    pub fn new(pipeline: Pipeline, capacity: usize) -> Self {
        let (sender, receiver) = sync_channel::<(ChatRequest, Callback)>(capacity);
        let waiting = Arc::new(AtomicUsize::new(0));
        let busy = Arc::new(AtomicBool::new(false));
        let (worker, count, running) = (pipeline.clone(), waiting.clone(), busy.clone());
        std::thread::Builder::new()
            .name("phi3v-engine".into())
            .spawn(move || {
                for (request, mut on_event) in receiver {
                    count.fetch_sub(1, Ordering::SeqCst);
                    if request.params.cancelled() {
                        on_event(Event::Done(Err(Error::Cancelled)));
                        continue;
                    }
                    running.store(true, Ordering::SeqCst);
                    // A bug in one request must not take the worker, and every later request, down.
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        worker.chat(&request.messages, &request.images, &request.params, |text| {
                            on_event(Event::Text(text.to_string()))
                        })
                    }))
                    .unwrap_or_else(|panic| Err(Error::Internal(panic_message(&panic))));
                    running.store(false, Ordering::SeqCst);
                    on_event(Event::Done(result));
                }
            })
            .expect("spawning the engine's worker thread");
        Self { pipeline, sender, capacity, waiting, busy }
    }

    /// The model this engine runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Queues a request; `on_event` is called from the worker thread.
    pub fn submit(&self, request: ChatRequest, on_event: impl FnMut(Event) + Send + 'static) -> Result<(), QueueFull> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        match self.sender.try_send((request, Box::new(on_event))) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                Err(QueueFull { capacity: self.capacity })
            }
        }
    }

    /// Requests waiting to start.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Whether a request is running now.
    pub fn busy(&self) -> bool {
        self.busy.load(Ordering::SeqCst)
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "a panic without a message".to_string(),
    }
}
