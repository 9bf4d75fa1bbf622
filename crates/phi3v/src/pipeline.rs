//! [`Pipeline`]: a checkpoint loaded once, shared across threads, asked many questions.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use phi3v_checkpoint::{Checkpoint, Phi3VConfig};
use phi3v_decoder::{Decoder, KvCache, KvDtype};
use phi3v_linear::WeightFormat;
use phi3v_vision::HdLayout;

use crate::generate::{run, Generation};
use crate::image::{ImageEncoder, ImageEncoding};
use crate::input::ImageInput;
use crate::progress::{report, Observer, Progress};
use crate::prompt::{chat_prompt, question_messages, Message, PromptTokenizer};
use crate::sampling::GenerationParams;
use crate::session::Session;
use crate::{Error, Result};

/// Token ids that end generation: `<|end|>`, `<|endoftext|>`, `</s>`.
pub const STOP_IDS: [u32; 3] = [32007, 32000, 2];

/// Load-time settings.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// How the decoder's matrices are held: as stored by default (bf16 for the official
    /// checkpoints), or f32, f16, bf16, int8 or int4. Activations are always f32.
    pub weights: WeightFormat,
    /// The same for the vision tower and projector.
    pub vision_weights: WeightFormat,
    /// How the KV cache holds keys and values. `None`: f32 (the reference's arithmetic) when the
    /// decoder's weights are f32, int8 when they are int4 (its rounding is a few percent of the
    /// int4 weights' own error, and each generated token reads half the cache bytes), f16
    /// otherwise (the official bf16 model keeps its cache in bf16, and f16 is finer than that).
    pub kv_cache: Option<KvDtype>,
    /// Memory for remembered image embeddings; an image seen again is not re-encoded.
    pub image_cache_bytes: usize,
    /// Worker threads for this pipeline's computation (`None`: rayon's global pool, one thread
    /// per core unless `RAYON_NUM_THREADS` says otherwise).
    pub threads: Option<usize>,
    /// Receives the progress of loading, image encoding and prefill.
    pub progress: Option<Observer>,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            weights: WeightFormat::Auto,
            vision_weights: WeightFormat::Auto,
            kv_cache: None,
            image_cache_bytes: 256 << 20,
            threads: None,
            progress: None,
        }
    }
}

/// The formats the decoder's and the vision tower's matrices load in, asked for as
/// [`PipelineOptions::weights`] and [`PipelineOptions::vision_weights`] take them: `Auto`
/// resolved against the stored dtype, or for a checkpoint written by `phi3v quantize`, the
/// formats it was written in (asking for another is [`Error::QuantizedAs`]).
pub fn resolve_formats(ckpt: &Checkpoint, decoder: WeightFormat, vision: WeightFormat) -> Result<(WeightFormat, WeightFormat)> {
    let stored = ckpt.weights.stored_dtype();
    let Some(q) = ckpt.weights.quantized() else { return Ok((decoder.resolve(stored), vision.resolve(stored))) };
    let check = |part, stored, asked| match asked {
        WeightFormat::Auto => Ok(stored),
        asked if asked == stored => Ok(stored),
        asked => Err(Error::QuantizedAs { dir: ckpt.dir.clone(), part, stored, asked }),
    };
    Ok((check("decoder", q.decoder, decoder)?, check("vision tower", q.vision, vision)?))
}

/// The vision tower's format when none is asked for: the decoder's (`decoder`, as asked), except
/// for a checkpoint written by `phi3v quantize`, whose vision tower keeps the format it was
/// written in ([`WeightFormat::Auto`]).
pub fn default_vision_format(dir: &Path, decoder: WeightFormat) -> WeightFormat {
    match Checkpoint::open(dir) {
        Ok(ckpt) if ckpt.weights.quantized().is_some() => WeightFormat::Auto,
        _ => decoder,
    }
}

/// A prompt turned into decoder input.
pub struct PromptInputs {
    /// Input ids; image N's placeholders are `-N`.
    pub ids: Vec<i64>,
    /// Decoder rows `[ids.len(), hidden]`: text embeddings with image rows in place.
    pub rows: Tensor,
    /// Image tokens per image.
    pub image_tokens: Vec<usize>,
    /// Time spent encoding images (zero for cached ones).
    pub encode_time: Duration,
}

/// An image of a prompt the engine reads ([`Pipeline::advance_image`]).
pub(crate) enum ImageSlot {
    /// Not looked at yet.
    Waiting(ImageInput),
    /// Part-way through CLIP.
    Encoding { key: [u8; 32], crops: usize, encoding: Box<ImageEncoding> },
    /// Its rows `[num_img_tokens, hidden]`.
    Ready(Tensor),
}

/// Remembers image rows by (content hash, num_crops), least recently used evicted first.
struct ImageCache {
    capacity: usize,
    used: usize,
    entries: Vec<([u8; 32], usize, Tensor)>, // most recent last
    hits: u64,
    misses: u64,
}

impl ImageCache {
    fn get(&mut self, key: &[u8; 32], crops: usize) -> Option<Tensor> {
        let Some(i) = self.entries.iter().position(|(k, c, _)| k == key && *c == crops) else {
            self.misses += 1;
            return None;
        };
        self.hits += 1;
        let entry = self.entries.remove(i);
        let rows = entry.2.clone();
        self.entries.push(entry);
        Some(rows)
    }

    fn put(&mut self, key: [u8; 32], crops: usize, rows: Tensor) {
        let bytes = rows.elem_count() * rows.dtype().size_in_bytes();
        if bytes > self.capacity {
            return;
        }
        while self.used + bytes > self.capacity && !self.entries.is_empty() {
            let (_, _, old) = self.entries.remove(0);
            self.used -= old.elem_count() * old.dtype().size_in_bytes();
        }
        self.used += bytes;
        self.entries.push((key, crops, rows));
    }
}

pub(crate) struct Inner {
    pub(crate) config: Phi3VConfig,
    pub(crate) tokenizer: PromptTokenizer,
    images: ImageEncoder,
    pub(crate) decoder: Decoder,
    cache: Mutex<ImageCache>,
    pool: Option<rayon::ThreadPool>,
    pub(crate) progress: Option<Observer>,
}

/// A loaded model. Cloning is cheap (shared); all methods take `&self` and may run from several
/// threads at once.
#[derive(Clone)]
pub struct Pipeline(pub(crate) Arc<Inner>);

impl Pipeline {
    /// Opens a checkpoint directory (official layout) and loads every weight.
    pub fn load(dir: &Path, options: &PipelineOptions) -> Result<Self> {
        let pool = match options.threads {
            Some(n) if n == 0 || n > max_threads() => {
                return Err(Error::Threads(format!("{n} threads asked for; between 1 and {} on this machine", max_threads())))
            }
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Threads(e.to_string()))?,
            ),
            None => None,
        };
        let ckpt = Checkpoint::open(dir)?;
        let tokenizer = PromptTokenizer::from_file(&ckpt.tokenizer_path())?;
        // Every id the tokenizer can produce must have an embedding row.
        let tokenizer_vocab = tokenizer.tokenizer().get_vocab(true).values().max().map_or(0, |&id| id as usize + 1);
        if tokenizer_vocab > ckpt.config.vocab_size {
            return Err(Error::TokenizerVocab { tokenizer: tokenizer_vocab, model: ckpt.config.vocab_size });
        }
        let device = Device::Cpu;
        let stored = ckpt.weights.stored_dtype();
        let (weights, vision_weights) = resolve_formats(&ckpt, options.weights, options.vision_weights)?;
        let total = ckpt.weights.total_bytes() as u64;
        let on_read = crate::progress::loading(options.progress.clone(), total);
        let vb = ckpt.weights.var_builder_observed(weights.table_dtype(stored), &device, on_read.clone())?;
        let kv = options.kv_cache.unwrap_or(default_kv(weights));
        let decoder = Decoder::load(&ckpt.config, weights, vb)?.with_kv_dtype(kv);
        let images = ImageEncoder::load_observed(&ckpt, vision_weights, &device, on_read)?;
        // Done (tensors the model does not use, such as CLIP's last layer, are never read).
        report(&options.progress, Progress::Loading { bytes: total, total });
        let cache = ImageCache { capacity: options.image_cache_bytes, used: 0, entries: Vec::new(), hits: 0, misses: 0 };
        Ok(Self(Arc::new(Inner {
            config: ckpt.config,
            tokenizer,
            images,
            decoder,
            cache: Mutex::new(cache),
            pool,
            progress: options.progress.clone(),
        })))
    }

    /// Loads a model by Hugging Face id (e.g. `microsoft/Phi-3.5-vision-instruct`, downloaded
    /// into the standard HF cache on first use; `HF_HOME` and `HF_HUB_OFFLINE` are honoured) or
    /// by checkpoint directory.
    pub fn from_pretrained(model: &str, options: &PipelineOptions) -> Result<Self> {
        Self::load(&crate::hub::resolve(model, false)?, options)
    }

    pub fn config(&self) -> &Phi3VConfig {
        &self.0.config
    }

    pub fn tokenizer(&self) -> &PromptTokenizer {
        &self.0.tokenizer
    }

    /// Runs `f` on this pipeline's thread pool (or the caller's, without one).
    pub(crate) fn compute<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.0.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Bytes of weights and KV cache one generated token reads with `context` positions in the
    /// cache: the quantity a memory-bound decode step streams (see `phi3v bench`).
    pub fn decode_bytes_per_token(&self, context: usize) -> usize {
        self.0.decoder.bytes_per_token(context)
    }

    /// Multiply-adds of the decoder's prefill of `positions` positions into an empty cache (see
    /// `phi3v bench`).
    pub fn prefill_multiply_adds(&self, positions: usize) -> u64 {
        self.0.decoder.prefill_multiply_adds(positions)
    }

    /// Multiply-adds of encoding `image` (vision tower and projector), from its size and crops.
    pub fn image_multiply_adds(&self, image: &ImageInput) -> Result<u64> {
        Ok(self.0.images.multiply_adds(&self.layout_of(image)?))
    }

    /// The checkpoint's default `num_crops`.
    pub fn default_crops(&self) -> usize {
        self.0.images.default_crops()
    }

    /// The `num_crops` an image is cut with: its own, or the checkpoint's.
    pub(crate) fn crops_of(&self, image: &ImageInput) -> usize {
        image.num_crops().unwrap_or(self.default_crops())
    }

    /// The crop grid `image` gets, from its size and crops.
    fn layout_of(&self, image: &ImageInput) -> std::result::Result<HdLayout, phi3v_vision::VisionError> {
        let (w, h) = image.dimensions();
        HdLayout::new(w as usize, h as usize, self.crops_of(image))
    }

    /// The pixel values the vision tower reads for `image`: its crops `[crops, 3, 336, 336]`,
    /// global view first, normalised with the checkpoint's mean and std (the reference
    /// processor's `pixel_values` without the zero crops it pads with).
    pub fn preprocess(&self, image: &ImageInput) -> Result<phi3v_vision::Preprocessed> {
        self.compute(|| self.0.images.preprocess(&*image.rgb()?, self.crops_of(image)))
    }

    /// Image rows `[num_img_tokens, hidden]` for one image (from the cache when seen before).
    pub fn encode_image(&self, image: &ImageInput) -> Result<Tensor> {
        let crops = self.crops_of(image);
        let key = image.content_key();
        if let Some(rows) = self.lock_cache().get(&key, crops) {
            return Ok(rows);
        }
        let rows = self.compute(|| -> Result<Tensor> {
            // The decoded pixels live only until the crops are cut.
            let pre = self.0.images.preprocess(&*image.rgb()?, crops)?;
            let of = pre.num_crops();
            report(&self.0.progress, Progress::Encoding { crops: 0, of });
            self.0.images.encode_observed(&pre, &|k| report(&self.0.progress, Progress::Encoding { crops: k, of }))
        })?;
        self.lock_cache().put(key, crops, rows.clone());
        Ok(rows)
    }

    /// Images held in the embedding cache and their bytes.
    pub fn image_cache_usage(&self) -> (usize, usize) {
        let cache = self.lock_cache();
        (cache.entries.len(), cache.used)
    }

    /// Image lookups answered from the embedding cache and those that had to encode, since load.
    pub fn image_cache_hits(&self) -> (u64, u64) {
        let cache = self.lock_cache();
        (cache.hits, cache.misses)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, ImageCache> {
        // A panic while holding the lock cannot leave the cache inconsistent; keep using it.
        self.0.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tokenises an already templated prompt (`<|image_N|>` tags for the images, in order 1..N)
    /// and builds the decoder rows. `first_image` numbers the first image (1 for a fresh
    /// prompt), `continuation` leaves out the leading BOS (for a later turn of a session), and
    /// `past` positions are already in the cache the prompt will follow: the prompt is refused
    /// when it leaves no position for the answer.
    pub(crate) fn inputs(&self, prompt: &str, images: &[ImageInput], first_image: usize, continuation: bool, past: usize) -> Result<PromptInputs> {
        let (ids, image_tokens) = self.tokenize(prompt, images, first_image, continuation, past)?;
        let start = Instant::now();
        let image_rows = images.iter().map(|img| self.encode_image(img)).collect::<Result<Vec<_>>>()?;
        let encode_time = start.elapsed();
        let rows = self.rows(&ids, 0..ids.len(), |n| Ok(image_rows[n - first_image].clone()))?;
        Ok(PromptInputs { ids, rows, image_tokens, encode_time })
    }

    /// Input ids of a prompt (image N's placeholders are `-N`) and image tokens per image,
    /// without encoding anything; refused when the prompt leaves no position for the answer
    /// after `past` cached ones. See [`Self::inputs`] for the other arguments.
    fn tokenize(
        &self,
        prompt: &str,
        images: &[ImageInput],
        first_image: usize,
        continuation: bool,
        past: usize,
    ) -> Result<(Vec<i64>, Vec<usize>)> {
        if prompt.trim().is_empty() && images.is_empty() {
            return Err(Error::EmptyPrompt);
        }
        let layouts = images.iter().map(|img| self.layout_of(img)).collect::<std::result::Result<Vec<_>, _>>()?;
        let image_tokens: Vec<usize> = layouts.iter().map(HdLayout::num_img_tokens).collect();
        let ids = self.0.tokenizer.encode_from(prompt, &image_tokens, first_image, continuation)?;
        let max = self.0.config.max_position_embeddings;
        if past + ids.len() >= max {
            return Err(Error::PromptTooLong { tokens: past + ids.len(), max });
        }
        Ok((ids, image_tokens))
    }

    /// Prompt tokens (image tokens included) of a conversation as [`Self::chat`] would see it,
    /// checked as `chat` checks it (image tags, context length) but without encoding images:
    /// a cheap check before queueing a request.
    pub fn chat_prompt_tokens(&self, messages: &[Message], images: &[ImageInput]) -> Result<usize> {
        Ok(self.chat_token_counts(messages, images)?.0)
    }

    /// [`Self::chat_prompt_tokens`], and the image tokens of each image among them.
    pub fn chat_token_counts(&self, messages: &[Message], images: &[ImageInput]) -> Result<(usize, Vec<usize>)> {
        let (ids, image_tokens) = self.chat_tokens(messages, images)?;
        Ok((ids.len(), image_tokens))
    }

    /// Input ids (image N's placeholders are `-N`) and image tokens per image of a conversation
    /// as [`Self::chat`] reads it, nothing encoded yet (the engine encodes images in slices,
    /// [`Self::advance_image`], and builds rows chunk by chunk, [`Self::rows`]).
    pub(crate) fn chat_tokens(&self, messages: &[Message], images: &[ImageInput]) -> Result<(Vec<i64>, Vec<usize>)> {
        self.tokenize(&chat_text(messages, images)?, images, 1, false, 0)
    }

    /// Decoder rows `[range.len(), hidden]` for `ids[range]`: text embeddings, with image N's
    /// rows over its run of `-N` placeholders (`image(N)` gives them; asked only for the images
    /// the range reaches).
    pub(crate) fn rows(&self, ids: &[i64], range: std::ops::Range<usize>, image: impl Fn(usize) -> Result<Tensor>) -> Result<Tensor> {
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < range.end {
            let id = ids[i];
            let run = ids[i..].iter().take_while(|&&x| (x < 0) == (id < 0) && (id >= 0 || x == id)).count();
            let (from, to) = (i.max(range.start), (i + run).min(range.end));
            if from < to {
                if id < 0 {
                    pieces.push(image((-id) as usize)?.narrow(0, from - i, to - from)?);
                } else {
                    let text: Vec<u32> = ids[from..to].iter().map(|&x| x as u32).collect();
                    pieces.push(self.0.decoder.embed(&text)?);
                }
            }
            i += run;
        }
        Ok(Tensor::cat(&pieces, 0)?)
    }

    /// CLIP layers (over one crop) that cost about as much as `rows` prompt rows through the
    /// decoder (at least one): how the engine sizes its slices of image encoding.
    pub(crate) fn clip_layers_for(&self, rows: usize) -> usize {
        let c = &self.0.config;
        let (h, kv) = (c.hidden_size, c.num_key_value_heads.unwrap_or(c.num_attention_heads));
        let row = c.num_hidden_layers * (h * (2 * h + 2 * kv * (h / c.num_attention_heads)) + 3 * h * c.intermediate_size);
        (rows * row / self.0.images.layer_macs().max(1)).max(1)
    }

    /// Does one slice of work on an image of the engine's: its cache lookup and preprocessing
    /// first, then up to `layers` CLIP layers a call; true once its rows are ready (and cached).
    pub(crate) fn advance_image(&self, slot: &mut ImageSlot, layers: usize) -> Result<bool> {
        match slot {
            ImageSlot::Ready(_) => return Ok(true),
            ImageSlot::Waiting(image) => {
                let (key, crops) = (image.content_key(), self.crops_of(image));
                if let Some(rows) = self.lock_cache().get(&key, crops) {
                    *slot = ImageSlot::Ready(rows);
                    return Ok(true);
                }
                let pre = self.compute(|| -> Result<_> { self.0.images.preprocess(&*image.rgb()?, crops) })?;
                *slot = ImageSlot::Encoding { key, crops, encoding: Box::new(self.0.images.begin(pre)) };
            }
            ImageSlot::Encoding { key, crops, encoding } => {
                if let Some(rows) = self.compute(|| self.0.images.advance(encoding, layers))? {
                    self.lock_cache().put(*key, *crops, rows.clone());
                    *slot = ImageSlot::Ready(rows);
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Input ids and decoder rows of a templated prompt with its images.
    pub fn prompt_inputs(&self, prompt: &str, images: &[ImageInput]) -> Result<PromptInputs> {
        self.inputs(prompt, images, 1, false, 0)
    }

    /// Logits `[vocab]` (f32) of the token after a templated prompt: what the model would say
    /// next, for scoring choices.
    pub fn next_token_logits(&self, prompt: &str, images: &[ImageInput]) -> Result<Tensor> {
        let inputs = self.prompt_inputs(prompt, images)?;
        Ok(self.compute(|| self.0.decoder.forward(&inputs.rows, &mut KvCache::default()))?)
    }

    /// Generates from an already templated prompt (tags and all, passed verbatim), calling
    /// `on_text` with each new piece of text as it is produced.
    pub fn generate(
        &self,
        prompt: &str,
        images: &[ImageInput],
        params: &GenerationParams,
        on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        let inputs = self.prompt_inputs(prompt, images)?;
        let mut cache = KvCache::default();
        let mut seen: Vec<u32> = inputs.ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32).collect();
        run(self, &inputs, &mut cache, &mut seen, params, on_text)
    }

    /// Generates the assistant's reply to a conversation (rendered with the chat template).
    pub fn chat(
        &self,
        messages: &[Message],
        images: &[ImageInput],
        params: &GenerationParams,
        on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        self.generate(&chat_text(messages, images)?, images, params, on_text)
    }

    /// One question about some images: the images are placed first, then the question.
    pub fn ask(&self, question: &str, images: &[ImageInput], params: &GenerationParams, on_text: impl FnMut(&str)) -> Result<Generation> {
        self.chat(&question_messages(None, question, images.len()), images, params, on_text)
    }

    /// A conversation that keeps its KV cache between turns.
    pub fn session(&self) -> Session {
        Session::new(self.clone())
    }
}

/// The KV cache's dtype when none is asked for, by the decoder's resolved weight format (see
/// [`PipelineOptions::kv_cache`]).
pub(crate) fn default_kv(weights: WeightFormat) -> KvDtype {
    match weights {
        WeightFormat::F32 => KvDtype::F32,
        WeightFormat::Q4 => KvDtype::Q8,
        _ => KvDtype::F16,
    }
}

/// The most worker threads a pipeline may have: eight per core (more only slows it down).
pub fn max_threads() -> usize {
    8 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A conversation rendered with the chat template, refused when it has neither text nor images.
fn chat_text(messages: &[Message], images: &[ImageInput]) -> Result<String> {
    if images.is_empty() && messages.iter().all(|m| m.content.trim().is_empty()) {
        return Err(Error::EmptyPrompt);
    }
    Ok(chat_prompt(messages, true))
}
