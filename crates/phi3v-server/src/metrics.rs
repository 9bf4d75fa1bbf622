//! `GET /metrics`: Prometheus text format.

use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Everything the server counts.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<Vec<(String, String)>, Counter>,
    waiting: Gauge,
    running: Gauge,
    time_to_first_token: Histogram,
    tokens_per_second: Histogram,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    image_cache_hits: Counter,
    image_cache_misses: Counter,
    prefix_cache_hits: Counter,
    prefix_cache_tokens: Counter,
    preemptions: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let m = Self {
            registry: Mutex::new(Registry::with_prefix("phi3v")),
            requests: Family::default(),
            waiting: Gauge::default(),
            running: Gauge::default(),
            time_to_first_token: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            tokens_per_second: Histogram::new(exponential_buckets(0.5, 2.0, 12)),
            prompt_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            image_cache_hits: Counter::default(),
            image_cache_misses: Counter::default(),
            prefix_cache_hits: Counter::default(),
            prefix_cache_tokens: Counter::default(),
            preemptions: Counter::default(),
        };
        {
            let mut r = m.registry.lock().unwrap_or_else(|e| e.into_inner());
            r.register("http_requests", "HTTP requests by path and status", m.requests.clone());
            r.register("queue_waiting", "Chat requests waiting for the model", m.waiting.clone());
            r.register("requests_running", "Chat requests being generated", m.running.clone());
            r.register("time_to_first_token_seconds", "From request to first generated text", m.time_to_first_token.clone());
            r.register("decode_tokens_per_second", "Generation speed after the first token, per request", m.tokens_per_second.clone());
            r.register("prompt_tokens", "Prompt tokens processed (image tokens included)", m.prompt_tokens.clone());
            r.register("completion_tokens", "Tokens generated", m.completion_tokens.clone());
            r.register("image_cache_hits", "Images answered from the embedding cache", m.image_cache_hits.clone());
            r.register("image_cache_misses", "Images that had to be encoded", m.image_cache_misses.clone());
            r.register("prefix_cache_hits", "Prompts that reused a cached prefix", m.prefix_cache_hits.clone());
            r.register("prefix_cache_tokens", "Prompt tokens taken from the prefix cache", m.prefix_cache_tokens.clone());
            r.register("preemptions", "Requests whose KV cache was dropped to stay within --kv-budget", m.preemptions.clone());
        }
        m
    }
}

impl Metrics {
    pub fn request(&self, path: &str, status: u16) {
        self.requests.get_or_create(&vec![("path".into(), path.into()), ("status".into(), status.to_string())]).inc();
    }

    pub fn first_token(&self, seconds: f64) {
        self.time_to_first_token.observe(seconds);
    }

    /// A finished generation.
    pub fn generation(&self, g: &phi3v::Generation) {
        self.prompt_tokens.inc_by(g.prompt_tokens as u64);
        self.completion_tokens.inc_by(g.tokens.len() as u64);
        if g.timings.decode_steps > 0 {
            self.tokens_per_second.observe(g.timings.decode_tokens_per_s());
        }
    }

    /// The text format, with the engine's gauges and the image cache's counts read now.
    pub fn render(&self, engine: Option<&phi3v::Engine>) -> String {
        // Held while the cache counts are brought up to date, so two scrapes cannot both add.
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(engine) = engine {
            self.waiting.set(engine.waiting() as i64);
            self.running.set(engine.running() as i64);
            // The engine keeps these totals; the counters catch up with them.
            let catch_up = |counter: &Counter, total: u64| counter.inc_by(total.saturating_sub(counter.get()));
            let (hits, misses) = engine.pipeline().image_cache_hits();
            catch_up(&self.image_cache_hits, hits);
            catch_up(&self.image_cache_misses, misses);
            let (hits, tokens) = engine.prefix_cache_hits();
            catch_up(&self.prefix_cache_hits, hits);
            catch_up(&self.prefix_cache_tokens, tokens);
            catch_up(&self.preemptions, engine.preemptions());
        }
        let mut out = String::new();
        encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}
