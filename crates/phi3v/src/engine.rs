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

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phi3v_decoder::{BatchBuffers, KvCache};

use crate::generate::{Decoding, Generation, Timings};
use crate::input::ImageInput;
use crate::pipeline::{ImageSlot, Pipeline};
use crate::prefix::{prompt_keys, Keys, PrefixCache};
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
    /// Prompt rows fed per turn of the loop (and image encoding in slices of the same cost):
    /// smaller keeps running answers flowing while a long (image) prompt is read, larger reads
    /// prompts a little faster.
    pub prefill_chunk: usize,
    /// Memory for the KV caches of finished answers, reused by prompts that start the same way
    /// (a conversation resent with a new question); 0 turns the prefix cache off.
    pub prefix_cache_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self { max_queue: 16, max_batch: 8, prefill_chunk: 128, prefix_cache_bytes: 1 << 30 }
    }
}

type Callback = Box<dyn FnMut(Event) + Send>;

/// A pipeline with a worker thread and a queue in front of it. Dropping the engine lets the
/// worker finish the requests it has, then end.
pub struct Engine {
    pipeline: Pipeline,
    sender: Sender<(ChatRequest, Callback)>,
    options: EngineOptions,
    waiting: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    prefix_stats: Arc<[AtomicU64; 2]>,
}

impl Engine {
    /// Starts the worker.
    pub fn new(pipeline: Pipeline, options: EngineOptions) -> Self {
        let (sender, receiver) = channel::<(ChatRequest, Callback)>();
        let options = EngineOptions { max_batch: options.max_batch.max(1), prefill_chunk: options.prefill_chunk.max(1), ..options };
        let waiting = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let prefix_stats = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let worker = Worker {
            pipeline: pipeline.clone(),
            options,
            waiting: waiting.clone(),
            active: active.clone(),
            prefix_stats: prefix_stats.clone(),
        };
        std::thread::Builder::new()
            .name("phi3v-engine".into())
            .spawn(move || worker.run(receiver))
            .expect("spawning the engine's worker thread");
        Self { pipeline, sender, options, waiting, active, prefix_stats }
    }

    /// The model this engine runs.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// Queues a request; `on_event` is called from the worker thread. Refused when the batch
    /// has no room and [`EngineOptions::max_queue`] requests already wait.
    pub fn submit(&self, request: ChatRequest, on_event: impl FnMut(Event) + Send + 'static) -> Result<(), QueueFull> {
        let full = QueueFull { capacity: self.options.max_queue };
        let room = self.options.max_queue + self.options.max_batch.saturating_sub(self.active.load(Ordering::SeqCst));
        if self.waiting.fetch_add(1, Ordering::SeqCst) >= room {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(full);
        }
        self.sender.send((request, Box::new(on_event))).map_err(|_| {
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            full
        })
    }

    /// Requests waiting to start.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Prompts that reused a cached prefix, and the prompt tokens they did not have to read.
    pub fn prefix_cache_hits(&self) -> (u64, u64) {
        (self.prefix_stats[0].load(Ordering::SeqCst), self.prefix_stats[1].load(Ordering::SeqCst))
    }

    /// Requests being generated now (their prompts being read, or their answers written).
    pub fn running(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }
}

/// A request whose prompt is being read: the images a chunk reaches are encoded a slice at a
/// time, then its rows are fed chunk by chunk.
struct Prefill {
    /// Input ids; image N's placeholders are `-N`.
    ids: Vec<i64>,
    image_tokens: Vec<usize>,
    /// Image N at `N - 1`; `None` where the prefix cache holds all of its positions.
    images: Vec<Option<ImageSlot>>,
    keys: Keys,
    params: GenerationParams,
    cache: KvCache,
    fed: usize,
    /// Positions that came from the prefix cache.
    reused: usize,
    started: Instant,
    /// Time spent on this request's images.
    encode: Duration,
    on_event: Callback,
}

/// A request whose answer is being generated.
struct Sequence<'t> {
    decoding: Decoding<'t>,
    cache: KvCache,
    /// The prompt's keys (for the prefix cache once the answer is done).
    keys: Keys,
    /// The penalty's history: prompt and answer ids.
    seen: Vec<u32>,
    on_event: Callback,
    /// The token to feed this turn, or how the sequence ended.
    next: Option<Result<Option<u32>>>,
}

struct Worker {
    pipeline: Pipeline,
    options: EngineOptions,
    waiting: Arc<AtomicUsize>,
    active: Arc<AtomicUsize>,
    prefix_stats: Arc<[AtomicU64; 2]>,
}

impl Worker {
    fn run(self, receiver: Receiver<(ChatRequest, Callback)>) {
        let mut prefilling: VecDeque<Prefill> = VecDeque::new();
        let mut running: Vec<Sequence<'_>> = Vec::new();
        let mut buffers = BatchBuffers::default();
        let position_bytes = self.pipeline.decode_bytes_per_token(1) - self.pipeline.decode_bytes_per_token(0);
        let mut prefix = PrefixCache::new(self.options.prefix_cache_bytes, position_bytes);
        loop {
            // Admit requests while there is room in the batch (waiting for one when idle).
            while prefilling.len() + running.len() < self.options.max_batch {
                let job = if prefilling.is_empty() && running.is_empty() {
                    match receiver.recv() {
                        Ok(job) => job,
                        Err(_) => return, // the engine was dropped and nothing is left
                    }
                } else {
                    match receiver.try_recv() {
                        Ok(job) => job,
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                    }
                };
                self.waiting.fetch_sub(1, Ordering::SeqCst);
                if let Some(p) = self.admit(job, &mut prefix) {
                    prefilling.push_back(p);
                }
                self.active.store(prefilling.len() + running.len(), Ordering::SeqCst);
            }
            if let Some(seq) = self.prefill_turn(&mut prefilling) {
                running.push(seq);
            }
            self.decode_step(&mut running, &mut buffers, &mut prefix);
            self.active.store(prefilling.len() + running.len(), Ordering::SeqCst);
        }
    }

    /// Tokenises the request and takes the longest cached prefix of its prompt (images are
    /// looked at later, a slice per turn, and only where the prefix does not cover them);
    /// `None` when it already ended (cancelled or refused).
    fn admit(&self, (request, mut on_event): (ChatRequest, Callback), prefix: &mut PrefixCache) -> Option<Prefill> {
        if request.params.cancelled() {
            on_event(Event::Done(Err(Error::Cancelled)));
            return None;
        }
        let tokens = catch(|| {
            request.params.validate()?;
            self.pipeline.chat_tokens(&request.messages, &request.images)
        });
        match tokens {
            Ok((ids, image_tokens)) => {
                let crops: Vec<usize> = request.images.iter().map(|i| self.pipeline.crops_of(i)).collect();
                let keys = prompt_keys(&ids, &request.images, &crops);
                let original = self.pipeline.config().original_max_position_embeddings;
                let (fed, cache) = prefix.take(&keys, original).unwrap_or_default();
                self.prefix_stats[0].store(prefix.hits, Ordering::SeqCst);
                self.prefix_stats[1].store(prefix.reused, Ordering::SeqCst);
                let images = (request.images.into_iter().enumerate())
                    .map(|(k, image)| {
                        let last = ids.iter().rposition(|&id| id == -(k as i64 + 1));
                        last.is_some_and(|last| last >= fed).then_some(ImageSlot::Waiting(image))
                    })
                    .collect();
                let (started, encode) = (Instant::now(), Duration::ZERO);
                Some(Prefill { ids, image_tokens, images, keys, params: request.params, cache, fed, reused: fed, started, encode, on_event })
            }
            Err(e) => {
                on_event(Event::Done(Err(e)));
                None
            }
        }
    }

    /// One slice of work on the oldest prompt: a slice of an image its next chunk reaches
    /// (about as costly as the chunk), or else the chunk itself. Its answer starts once the
    /// whole prompt is in.
    fn prefill_turn<'t>(&'t self, prefilling: &mut VecDeque<Prefill>) -> Option<Sequence<'t>> {
        let p = prefilling.front_mut()?;
        let total = p.ids.len();
        let end = p.fed + self.options.prefill_chunk.min(total - p.fed);
        let unready = (0..p.images.len()).find(|&k| {
            matches!(p.images[k], Some(ImageSlot::Waiting(_) | ImageSlot::Encoding { .. })) && p.ids[p.fed..end].contains(&-(k as i64 + 1))
        });
        let logits = if p.params.cancelled() {
            Err(Error::Cancelled)
        } else if let Some(slot) = unready.and_then(|k| p.images[k].as_mut()) {
            let start = Instant::now();
            let layers = self.pipeline.clip_layers_for(self.options.prefill_chunk);
            let done = catch(|| self.pipeline.advance_image(slot, layers));
            p.encode += start.elapsed();
            match done {
                Ok(_) => return None,
                Err(e) => Err(e),
            }
        } else {
            catch(|| {
                let image = |n: usize| match &p.images[n - 1] {
                    Some(ImageSlot::Ready(rows)) => Ok(rows.clone()),
                    _ => Err(Error::Internal(format!("image {n}'s rows were wanted before they were ready"))),
                };
                let rows = self.pipeline.rows(&p.ids, p.fed..end, image)?;
                let decoder = &self.pipeline.0.decoder;
                Ok(self.pipeline.compute(|| decoder.forward(&rows, &mut p.cache))?.to_vec1::<f32>()?)
            })
        };
        p.fed = end;
        let logits = match logits {
            Ok(_) if p.fed < total => return None,
            Ok(logits) => logits,
            Err(e) => {
                let mut p = prefilling.pop_front()?;
                (p.on_event)(Event::Done(Err(e)));
                return None;
            }
        };
        let mut p = prefilling.pop_front()?;
        let prefill = p.started.elapsed().saturating_sub(p.encode);
        let timings = Timings { encode: p.encode, prefill, prefill_tokens: total, ..Default::default() };
        match Decoding::new(&self.pipeline, &p.params, logits, p.cache.len(), p.image_tokens, timings) {
            Ok(decoding) => {
                let seen = p.ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32).collect();
                Some(Sequence { decoding: decoding.with_cached(p.reused), cache: p.cache, keys: p.keys, seen, on_event: p.on_event, next: None })
            }
            Err(e) => {
                (p.on_event)(Event::Done(Err(e)));
                None
            }
        }
    }

    /// One token for every running answer, in one batched pass; finished answers leave.
    fn decode_step<'t>(&'t self, running: &mut Vec<Sequence<'t>>, buffers: &mut BatchBuffers, prefix: &mut PrefixCache) {
        for seq in running.iter_mut() {
            let Sequence { decoding, seen, on_event, .. } = seq;
            seq.next = Some(decoding.next(seen, &mut |text| on_event(Event::Text(text.to_string()))));
        }
        let token = |s: &Sequence<'_>| match s.next {
            Some(Ok(Some(t))) => Some(t),
            _ => None,
        };
        let stepping: Vec<usize> = (0..running.len()).filter(|&i| token(&running[i]).is_some()).collect();
        if !stepping.is_empty() {
            let ids: Vec<u32> = stepping.iter().filter_map(|&i| token(&running[i])).collect();
            let start = Instant::now();
            let ids = &ids;
            let result = catch(|| {
                let mut caches: Vec<&mut KvCache> = running.iter_mut().filter(|s| token(s).is_some()).map(|s| &mut s.cache).collect();
                let decoder = &self.pipeline.0.decoder;
                Ok(self.pipeline.compute(move || decoder.step_batch(ids, &mut caches, buffers))?)
            })
            .map_err(|e| e.to_string());
            let elapsed = start.elapsed();
            for (k, &i) in stepping.iter().enumerate() {
                let seq = &mut running[i];
                let fed = match &result {
                    Ok(logits) => {
                        let vocab = logits.len() / ids.len();
                        seq.decoding.logits.copy_from_slice(&logits[k * vocab..][..vocab]);
                        seq.decoding.fed(seq.cache.len(), elapsed)
                    }
                    Err(e) => Err(Error::Internal(format!("batched decode step: {e}"))),
                };
                if let Err(e) = fed {
                    seq.next = Some(Err(e));
                }
            }
        }
        // Retire what ended: a stop, a limit, cancellation or an error.
        let mut i = 0;
        while i < running.len() {
            if token(&running[i]).is_some() {
                i += 1;
                continue;
            }
            let mut seq = running.swap_remove(i);
            let outcome = match seq.next.take() {
                Some(Err(e)) => Err(e),
                _ => {
                    let on_event = &mut seq.on_event;
                    let generation = seq.decoding.finish(&mut |text| on_event(Event::Text(text.to_string())));
                    // The cache holds the prompt and every generated token: keep it for the
                    // conversation's next turn.
                    let mut keys = std::mem::take(&mut seq.keys);
                    keys.extend(generation.tokens.iter().map(|&t| u64::from(t)));
                    prefix.put(keys, std::mem::take(&mut seq.cache));
                    Ok(generation)
                }
            };
            (seq.on_event)(Event::Done(outcome));
        }
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
