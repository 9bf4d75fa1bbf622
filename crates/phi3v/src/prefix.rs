//! The engine's prefix cache: KV caches of finished answers, kept so that a conversation
//! resent in full (as chat clients do every turn) only pays for its new tokens.
//!
//! A sequence is keyed position by position: a text token by its id, an image token by the
//! image's content, its `num_crops` and its place in the image's run, so the same picture
//! sent again matches whatever its number in the conversation. A new prompt takes the entry
//! with the longest common prefix, cut back to that prefix (an entry is taken, not copied: a
//! conversation continues in one place). Entries are evicted least recently used first within
//! a byte budget. A cache whose keys use the long rotary factors cannot be cut back to the
//! switch or below ([`KvCache::truncate`]); such an entry does not match shorter prefixes.

use std::hash::{DefaultHasher, Hash, Hasher};

use phi3v_decoder::KvCache;

use crate::input::ImageInput;

/// Keys of one sequence, one per position.
pub(crate) type Keys = Vec<u64>;

/// The keys of a prompt's input ids (image `N`'s placeholders are `-N`; `images[N-1]` is that
/// image, its crops `crops[N-1]`).
pub(crate) fn prompt_keys(ids: &[i64], images: &[ImageInput], crops: &[usize]) -> Keys {
    let mut keys = Vec::with_capacity(ids.len());
    let mut run = 0u64; // place in the current image's run
    for (i, &id) in ids.iter().enumerate() {
        if id >= 0 {
            keys.push(id as u64);
            continue;
        }
        run = if i > 0 && ids[i - 1] == id { run + 1 } else { 0 };
        let n = (-id) as usize - 1;
        let mut h = DefaultHasher::new();
        (images[n].content_key(), crops[n], run).hash(&mut h);
        keys.push(h.finish() | 1 << 63); // never a text id
    }
    keys
}

/// Kept caches and their keys, most recently used last.
pub(crate) struct PrefixCache {
    /// Keys, cache and the cache's bytes.
    entries: Vec<(Keys, KvCache, usize)>,
    capacity: usize,
    used: usize,
    /// Lookups that reused something, and the positions they reused.
    pub(crate) hits: u64,
    pub(crate) reused: u64,
}

impl PrefixCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { entries: Vec::new(), capacity, used: 0, hits: 0, reused: 0 }
    }

    /// The cache sharing the longest prefix with `keys`, cut back to it, and that length
    /// (always less than `keys.len()`: the last position is read anew for its logits).
    /// `original`: the config's `original_max_position_embeddings`.
    pub(crate) fn take(&mut self, keys: &[u64], original: usize) -> Option<(usize, KvCache)> {
        let usable = |(k, cache, _): &(Keys, KvCache, usize)| {
            let len = k.iter().zip(keys).take_while(|(a, b)| a == b).count().min(keys.len().saturating_sub(1));
            // Long-factor keys cannot be cut back to the switch or below.
            if cache.is_long() && len <= original && len < cache.len() {
                0
            } else {
                len
            }
        };
        let (best, len) = self.entries.iter().map(usable).enumerate().max_by_key(|&(_, len)| len)?;
        if len == 0 {
            return None;
        }
        let (_, mut cache, bytes) = self.entries.remove(best);
        self.used -= bytes;
        if !cache.truncate(len, original) {
            return None;
        }
        self.hits += 1;
        self.reused += len as u64;
        Some((len, cache))
    }

    /// Keeps a finished sequence's cache (`keys.len()` positions, `bytes` of memory), evicting
    /// the least recently used entries to stay within the budget.
    pub(crate) fn put(&mut self, keys: Keys, cache: KvCache, bytes: usize) {
        if bytes > self.capacity || keys.len() != cache.len() {
            return;
        }
        while self.used + bytes > self.capacity && !self.entries.is_empty() {
            let (_, _, old) = self.entries.remove(0);
            self.used -= old;
        }
        self.used += bytes;
        self.entries.push((keys, cache, bytes));
    }
}
