//! The engine's worker: the scheduling loop behind [`super::Engine`].
//!
//! Each turn: admit requests while the batch has room and the KV budget allows (a request
//! that does not fit waits, parked, for the others to shrink); do one slice of work on the
//! oldest new prompt; make room for one more position per running answer, preempting the
//! youngest request when the budget is short (its cache is dropped and, once there is room
//! again, its prompt and answer so far are read anew; sampling goes on where it stopped); then
//! one token for every running answer in one batched decoder pass.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use phi3v_decoder::{BatchBuffers, KvCache, PREFILL_CHUNK};

use super::{catch, Callback, ChatRequest, EngineOptions, Event, Stats};
use crate::generate::{Decoding, Timings};
use crate::input::ImageInput;
use crate::pipeline::{ImageSlot, Pipeline};
use crate::prefix::{prompt_keys, Keys, PrefixCache};
use crate::{Error, Result};

/// A request whose prompt is being read: the images a chunk reaches are encoded a slice at a
/// time, then its rows are fed chunk by chunk.
struct Prefill<'t> {
    /// Input ids; image N's placeholders are `-N`. For a preempted answer: its prompt's, then
    /// the tokens it had generated.
    ids: Vec<i64>,
    image_tokens: Vec<usize>,
    /// The request's images (image N at `N - 1`).
    inputs: Vec<ImageInput>,
    /// Their state; `None` where the prefix cache holds all of an image's positions.
    images: Vec<Option<ImageSlot>>,
    keys: Keys,
    cache: KvCache,
    fed: usize,
    /// Positions that came from the prefix cache.
    reused: usize,
    started: Instant,
    /// Time spent on this request's images.
    encode: Duration,
    /// A preempted answer to go on with once its cache is rebuilt.
    resume: Option<Resume<'t>>,
    common: Common,
}

/// What a request keeps from its admission to its end.
struct Common {
    params: crate::GenerationParams,
    on_event: Callback,
    /// Admission order: the youngest request is preempted first.
    order: u64,
}

/// The token loop of a preempted answer.
struct Resume<'t> {
    decoding: Decoding<'t>,
    seen: Vec<u32>,
    prompt_len: usize,
}

/// A request whose answer is being generated.
struct Sequence<'t> {
    decoding: Decoding<'t>,
    cache: KvCache,
    /// The prompt's ids, keys (for the prefix cache once the answer is done) and images.
    ids: Vec<i64>,
    keys: Keys,
    inputs: Vec<ImageInput>,
    /// The penalty's history: prompt and answer ids.
    seen: Vec<u32>,
    /// The token to feed this turn, or how the sequence ended.
    next: Option<Result<Option<u32>>>,
    common: Common,
}

pub(super) struct Worker {
    pub(super) pipeline: Pipeline,
    pub(super) options: EngineOptions,
    pub(super) stats: Arc<Stats>,
}

impl Worker {
    pub(super) fn run(self, receiver: Receiver<(ChatRequest, Callback)>) {
        let mut parked: VecDeque<Prefill<'_>> = VecDeque::new();
        let mut prefilling: VecDeque<Prefill<'_>> = VecDeque::new();
        let mut running: Vec<Sequence<'_>> = Vec::new();
        let mut buffers = BatchBuffers::default();
        let mut prefix = PrefixCache::new(self.options.prefix_cache_bytes);
        let mut order = 0;
        loop {
            // Admit requests while there is room in the batch and the budget (waiting for one
            // when idle); parked ones first.
            while prefilling.len() + running.len() < self.options.max_batch {
                let p = match parked.pop_front() {
                    Some(p) => p,
                    None => {
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
                        self.stats.waiting.fetch_sub(1, Ordering::SeqCst);
                        order += 1;
                        match self.admit(job, order, &mut prefix) {
                            Some(p) => p,
                            None => continue,
                        }
                    }
                };
                let idle = prefilling.is_empty() && running.is_empty();
                if !idle && self.reserved(&prefilling, &running, 0) + self.cache_bytes(p.ids.len()) > self.budget() {
                    parked.push_front(p);
                    break;
                }
                prefilling.push_back(p);
            }
            self.set_active(parked.len() + prefilling.len() + running.len());
            if let Some(seq) = self.prefill_turn(&mut prefilling, running.is_empty()) {
                running.push(seq);
            }
            self.make_room(&mut prefilling, &mut running, &mut parked);
            self.decode_step(&mut running, &mut buffers, &mut prefix);
            self.set_active(parked.len() + prefilling.len() + running.len());
        }
    }

    fn set_active(&self, n: usize) {
        self.stats.active.store(n, Ordering::SeqCst);
    }

    fn budget(&self) -> usize {
        self.options.kv_budget.bytes(&self.pipeline)
    }

    fn cache_bytes(&self, positions: usize) -> usize {
        self.pipeline.0.decoder.cache_bytes(positions)
    }

    /// KV memory held or promised: each prompt being read counts whole, each answer with
    /// `grow` more positions.
    fn reserved(&self, prefilling: &VecDeque<Prefill<'_>>, running: &[Sequence<'_>], grow: usize) -> usize {
        let prompts: usize = prefilling.iter().map(|p| self.cache_bytes(p.ids.len())).sum();
        prompts + running.iter().map(|s| self.cache_bytes(s.cache.len() + grow)).sum::<usize>()
    }

    /// Tokenises the request, refuses a prompt the KV budget cannot hold, and takes the longest
    /// cached prefix of its prompt (images are looked at later, a slice per turn, and only
    /// where the prefix does not cover them); `None` when it already ended.
    fn admit(&self, (request, mut on_event): (ChatRequest, Callback), order: u64, prefix: &mut PrefixCache) -> Option<Prefill<'static>> {
        if request.params.cancelled() {
            on_event(Event::Done(Err(Error::Cancelled)));
            return None;
        }
        let tokens = catch(|| {
            request.params.validate()?;
            let (ids, image_tokens) = self.pipeline.chat_tokens(&request.messages, &request.images)?;
            if self.cache_bytes(ids.len() + 1) > self.budget() {
                return Err(Error::KvBudget { tokens: ids.len(), bytes: self.cache_bytes(ids.len() + 1), budget: self.budget() });
            }
            Ok((ids, image_tokens))
        });
        let (ids, image_tokens) = match tokens {
            Ok(tokens) => tokens,
            Err(e) => {
                on_event(Event::Done(Err(e)));
                return None;
            }
        };
        let crops: Vec<usize> = request.images.iter().map(|i| self.pipeline.crops_of(i)).collect();
        let keys = prompt_keys(&ids, &request.images, &crops);
        let original = self.pipeline.config().original_max_position_embeddings;
        let (fed, cache) = prefix.take(&keys, original).unwrap_or_default();
        self.stats.prefix_hits.store(prefix.hits, Ordering::SeqCst);
        self.stats.prefix_tokens.store(prefix.reused, Ordering::SeqCst);
        let images = (0..request.images.len())
            .map(|k| {
                let last = ids.iter().rposition(|&id| id == -(k as i64 + 1));
                last.is_some_and(|last| last >= fed).then(|| ImageSlot::Waiting(request.images[k].clone()))
            })
            .collect();
        let common = Common { params: request.params, on_event, order };
        Some(Prefill {
            ids,
            image_tokens,
            inputs: request.images,
            images,
            keys,
            cache,
            fed,
            reused: fed,
            started: Instant::now(),
            encode: Duration::ZERO,
            resume: None,
            common,
        })
    }

    /// One slice of work on the oldest prompt: a slice of an image its next chunk reaches
    /// (about as costly as the chunk), or else the chunk itself. The chunk is
    /// [`EngineOptions::prefill_chunk`] rows while answers are running, and at least the
    /// decoder's own chunk ([`PREFILL_CHUNK`] rows) when none is (`idle`): then nobody waits
    /// between tokens, and larger chunks read prompts faster. Its answer starts (or goes on,
    /// after a preemption) once the whole prompt is in.
    fn prefill_turn<'t>(&'t self, prefilling: &mut VecDeque<Prefill<'t>>, idle: bool) -> Option<Sequence<'t>> {
        let p = prefilling.front_mut()?;
        let total = p.ids.len();
        let chunk = if idle { self.options.prefill_chunk.max(PREFILL_CHUNK) } else { self.options.prefill_chunk };
        let end = p.fed + chunk.min(total - p.fed);
        let unready = (0..p.images.len()).find(|&k| {
            matches!(p.images[k], Some(ImageSlot::Waiting(_) | ImageSlot::Encoding { .. })) && p.ids[p.fed..end].contains(&-(k as i64 + 1))
        });
        let logits = if p.common.params.cancelled() {
            Err(Error::Cancelled)
        } else if let Some(slot) = unready.and_then(|k| p.images[k].as_mut()) {
            let start = Instant::now();
            let layers = self.pipeline.clip_layers_for(chunk);
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
                (p.common.on_event)(Event::Done(Err(e)));
                return None;
            }
        };
        let mut p = prefilling.pop_front()?;
        let (decoding, seen, prompt_len) = match p.resume.take() {
            Some(Resume { decoding, seen, prompt_len }) => (decoding, seen, prompt_len),
            None => {
                let prefill = p.started.elapsed().saturating_sub(p.encode);
                let timings = Timings { encode: p.encode, prefill, prefill_tokens: total, ..Default::default() };
                match Decoding::new(&self.pipeline, &p.common.params, logits, p.cache.len(), std::mem::take(&mut p.image_tokens), timings) {
                    Ok(decoding) => {
                        let seen = p.ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32).collect();
                        (decoding.with_cached(p.reused), seen, total)
                    }
                    Err(e) => {
                        (p.common.on_event)(Event::Done(Err(e)));
                        return None;
                    }
                }
            }
        };
        p.ids.truncate(prompt_len);
        Some(Sequence { decoding, cache: p.cache, ids: p.ids, keys: p.keys, inputs: p.inputs, seen, next: None, common: p.common })
    }

    /// Makes room in the KV budget for one more position of every running answer: preempts
    /// the youngest request (a prompt being read or an answer) until it fits. An answer that
    /// alone fills the budget ends there (`length`).
    fn make_room<'t>(&'t self, prefilling: &mut VecDeque<Prefill<'t>>, running: &mut Vec<Sequence<'t>>, parked: &mut VecDeque<Prefill<'t>>) {
        while self.reserved(prefilling, running, 1) > self.budget() {
            let youngest_prompt = prefilling.iter().enumerate().max_by_key(|(_, p)| p.common.order).map(|(i, p)| (i, p.common.order));
            let youngest_answer = running.iter().enumerate().max_by_key(|(_, s)| s.common.order).map(|(i, s)| (i, s.common.order));
            let victim = match (youngest_prompt, youngest_answer) {
                (Some((i, prompt)), Some((_, answer))) if prompt > answer => prefilling.remove(i).map(restart),
                (Some((i, _)), None) => prefilling.remove(i).map(restart),
                (_, Some((i, _))) if running.len() + prefilling.len() > 1 => Some(preempt(running.swap_remove(i))),
                (_, Some((i, _))) => {
                    // Alone and still too long for the budget.
                    running[i].decoding.end_for_length();
                    return;
                }
                (None, None) => return,
            };
            self.stats.preemptions.fetch_add(1, Ordering::SeqCst);
            parked.extend(victim);
            parked.make_contiguous().sort_by_key(|p| p.common.order);
        }
    }

    /// One token for every running answer, in one batched pass; finished answers leave.
    fn decode_step<'t>(&'t self, running: &mut Vec<Sequence<'t>>, buffers: &mut BatchBuffers, prefix: &mut PrefixCache) {
        for seq in running.iter_mut() {
            let Sequence { decoding, seen, common, .. } = seq;
            let on_event = &mut common.on_event;
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
                    let on_event = &mut seq.common.on_event;
                    let generation = seq.decoding.finish(&mut |text| on_event(Event::Text(text.to_string())));
                    // The cache holds the prompt and every generated token: keep it for the
                    // conversation's next turn.
                    let mut keys = std::mem::take(&mut seq.keys);
                    keys.extend(generation.tokens.iter().map(|&t| u64::from(t)));
                    let bytes = self.cache_bytes(seq.cache.len());
                    prefix.put(keys, std::mem::take(&mut seq.cache), bytes);
                    Ok(generation)
                }
            };
            (seq.common.on_event)(Event::Done(outcome));
        }
    }
}

/// A prompt being read, sent back to be read from its start (its cache dropped).
fn restart(mut p: Prefill<'_>) -> Prefill<'_> {
    p.cache = KvCache::default();
    (p.fed, p.reused) = (0, 0);
    for (slot, image) in p.images.iter_mut().zip(&p.inputs) {
        slot.get_or_insert_with(|| ImageSlot::Waiting(image.clone()));
    }
    p
}

/// An answer whose cache is dropped: its prompt and the tokens generated so far become a
/// prompt to read again, after which its token loop goes on.
fn preempt(seq: Sequence<'_>) -> Prefill<'_> {
    let prompt_len = seq.ids.len();
    let mut ids = seq.ids;
    ids.extend(seq.decoding.tokens().iter().map(|&t| i64::from(t)));
    let images = seq.inputs.iter().map(|image| Some(ImageSlot::Waiting(image.clone()))).collect();
    Prefill {
        ids,
        image_tokens: Vec::new(),
        inputs: seq.inputs,
        images,
        keys: seq.keys,
        cache: KvCache::default(),
        fed: 0,
        reused: 0,
        started: Instant::now(),
        encode: Duration::ZERO,
        resume: Some(Resume { decoding: seq.decoding, seen: seq.seen, prompt_len }),
        common: seq.common,
    }
}
