//! [`Engine`]: a worker thread that generates for many conversations at once, fed from a
//! bounded queue, for servers and other callers that must never block on the model.
//!
//! A request is submitted with a callback; the worker calls it with each piece of text as it is
//! generated ([`Event::Text`]) and once at the end ([`Event::Done`]). The worker's loop is
//! continuous batching: up to [`EngineOptions::max_batch`] requests are active at once; each
//! turn of the loop does one slice of work on the oldest new prompt (a chunk of
//! [`EngineOptions::prefill_chunk`] rows, or as many CLIP layers of one of its images as cost
//! about the same) and then one token of every running answer in one batched decoder pass
//! ([`phi3v_decoder::Decoder::step_batch`]: each weight matrix is read once for all of them).
//! So a new image request never stops the running answers for longer than one slice.
//! Requests join between steps and leave as soon as they end. A full queue refuses new requests
//! at once ([`QueueFull`]); a request whose [`crate::Cancel`] flag is set stops before its next
//! chunk or token.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Sender};
use std::sync::Arc;

use crate::generate::Generation;
use crate::input::ImageInput;
use crate::pipeline::Pipeline;
use crate::prompt::Message;
use crate::sampling::GenerationParams;
use crate::{Error, Result};

mod worker;

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
    /// set before its answer started).
    Done(Result<Generation>),
}

/// The queue already holds as many waiting requests as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the queue is full ({capacity} requests waiting)")]
pub struct QueueFull {
    pub capacity: usize,
}

/// How the engine schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Requests that may wait while the batch is full (0: none wait).
    pub max_queue: usize,
    /// Requests generated together (1: one at a time).
    pub max_batch: usize,
    /// Prompt rows fed per turn of the loop while answers are running (and image encoding in
    /// slices of the same cost): smaller keeps them flowing while a long (image) prompt is read,
    /// larger reads prompts faster. With no answer running, prompts are read in chunks of at
    /// least 256 rows. 16 keeps the gap between tokens under a second on two cores with the
    /// full-size model (see docs/PERFORMANCE.md).
    pub prefill_chunk: usize,
    /// Memory for the KV caches of finished answers, reused by prompts that start the same way
    /// (a conversation resent with a new question); 0 turns the prefix cache off.
    pub prefix_cache_bytes: usize,
    /// Memory for the KV caches of the requests being generated. A request whose prompt does
    /// not fit waits; when running answers outgrow it, the youngest request is preempted (its
    /// cache dropped, its prompt and answer so far read again later); a prompt larger than all
    /// of it is refused ([`Error::KvBudget`]).
    pub kv_budget: KvBudget,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { max_queue: 16, max_batch: 8, prefill_chunk: 16, prefix_cache_bytes: 1 << 30, kv_budget: KvBudget::Bytes(4 << 30) }
    }
}

/// How much KV cache an [`Engine`]'s running requests may hold: bytes, or positions (tokens)
/// at the model's bytes per position. A sequence's cache counts by blocks of 512 positions, as
/// it is allocated. Parsed from `4GiB`, `512MiB`, `2G`, `1000000` (bytes) or `16384tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KvBudget {
    Bytes(usize),
    Tokens(usize),
}

impl KvBudget {
    /// The budget in bytes for `pipeline`'s decoder and KV cache dtype.
    pub fn bytes(self, pipeline: &Pipeline) -> usize {
        match self {
            KvBudget::Bytes(b) => b,
            KvBudget::Tokens(t) => t.saturating_mul(pipeline.0.decoder.cache_bytes(512) / 512),
        }
    }
}

impl std::str::FromStr for KvBudget {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let n: usize = number.parse().map_err(|_| format!("{s:?}: expected a number with a unit, such as 4GiB or 16384tokens"))?;
        let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
            "tokens" | "token" | "t" => return Ok(KvBudget::Tokens(n)),
            "" | "b" => 1,
            "k" | "kb" => 1_000,
            "kib" => 1 << 10,
            "m" | "mb" => 1_000_000,
            "mib" => 1 << 20,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1 << 30,
            other => return Err(format!("{s:?}: unknown unit {other:?} (B, KB, KiB, MB, MiB, GB, GiB or tokens)")),
        };
        n.checked_mul(scale).map(KvBudget::Bytes).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl std::fmt::Display for KvBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvBudget::Bytes(b) if b % (1 << 30) == 0 => write!(f, "{}GiB", b >> 30),
            KvBudget::Bytes(b) if b % (1 << 20) == 0 => write!(f, "{}MiB", b >> 20),
            KvBudget::Bytes(b) => write!(f, "{b}B"),
            KvBudget::Tokens(t) => write!(f, "{t}tokens"),
        }
    }
}

/// Counters the worker keeps and the engine reads.
#[derive(Default)]
struct Stats {
    /// Requests sent and not yet taken by the worker.
    waiting: AtomicUsize,
    /// Requests taken: parked for memory, reading their prompts, or answering.
    active: AtomicUsize,
    prefix_hits: AtomicU64,
    prefix_tokens: AtomicU64,
    preemptions: AtomicU64,
}

type Callback = Box<dyn FnMut(Event) + Send>;

/// A pipeline with a worker thread and a queue in front of it. Dropping the engine lets the
/// worker finish the requests it has, then end.
pub struct Engine {
    pipeline: Pipeline,
    sender: Sender<(ChatRequest, Callback)>,
    options: EngineOptions,
    stats: Arc<Stats>,
}

impl Engine {
    /// Starts the worker.
    pub fn new(pipeline: Pipeline, options: EngineOptions) -> Self {
        let (sender, receiver) = channel::<(ChatRequest, Callback)>();
        let options = EngineOptions { max_batch: options.max_batch.max(1), prefill_chunk: options.prefill_chunk.max(1), ..options };
        let stats = Arc::new(Stats::default());
        let worker = worker::Worker { pipeline: pipeline.clone(), options, stats: stats.clone() };
        std::thread::Builder::new()
            .name("phi3v-engine".into())
            .spawn(move || worker.run(receiver))
            .expect("spawning the engine's worker thread");
        Self { pipeline, sender, options, stats }
    }

    /// The model this engine runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Queues a request; `on_event` is called from the worker thread. Refused when the batch
    /// has no room and [`EngineOptions::max_queue`] requests already wait.
    pub fn submit(&self, request: ChatRequest, on_event: impl FnMut(Event) + Send + 'static) -> Result<(), QueueFull> {
        let full = QueueFull { capacity: self.options.max_queue };
        let room = self.options.max_queue + self.options.max_batch.saturating_sub(self.stats.active.load(Ordering::SeqCst));
        if self.stats.waiting.fetch_add(1, Ordering::SeqCst) >= room {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(full);
        }
        self.sender.send((request, Box::new(on_event))).map_err(|_| {
            self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
            full
        })
    }

    /// Requests waiting to start.
    pub fn waiting(&self) -> usize {
        self.stats.waiting.load(Ordering::SeqCst)
    }

    /// Prompts that reused a cached prefix, and the prompt tokens they did not have to read.
    pub fn prefix_cache_hits(&self) -> (u64, u64) {
        (self.stats.prefix_hits.load(Ordering::SeqCst), self.stats.prefix_tokens.load(Ordering::SeqCst))
    }

    /// Requests preempted so far (their KV cache dropped to make room, read again later).
    pub fn preemptions(&self) -> u64 {
        self.stats.preemptions.load(Ordering::SeqCst)
    }

    /// Requests taken by the worker: waiting for KV memory, reading their prompts, or
    /// writing their answers.
    pub fn running(&self) -> usize {
        self.stats.active.load(Ordering::SeqCst)
    }
}

/// Runs `f`; a panic becomes [`Error::Internal`] (one request's bug must not end the worker).
fn catch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
            (Some(s), _) => s.to_string(),
            (_, Some(s)) => s.clone(),
            _ => "a panic without a message".to_string(),
        };
        Err(Error::Internal(message))
    })
}
