//! [`Session`]: a multi-turn conversation that keeps its KV cache, so a follow-up question only
//! costs its own tokens (images of earlier turns are not encoded again).

use phi3v_decoder::KvCache;

use crate::generate::{run, Generation};
use crate::input::ImageInput;
use crate::pipeline::Pipeline;
use crate::prompt::{chat_prompt, user_content, Message};
use crate::sampling::GenerationParams;
use crate::Result;

/// A conversation with a [`Pipeline`].
///
/// Turn k's prompt is exactly the continuation of the full conversation rendered with the chat
/// template: `<|end|>\n<|user|>\n{images}{text}<|end|>\n<|assistant|>\n` after the previous
/// reply, tokenised without a leading BOS, images numbered on from the earlier turns. Earlier
/// replies stay in the cache as the tokens that were generated.
pub struct Session {
    pipeline: Pipeline,
    system: Option<String>,
    cache: KvCache,
    seen: Vec<u32>,
    images: usize,
    history: Vec<Message>,
}

impl Session {
    pub(crate) fn new(pipeline: Pipeline) -> Self {
        Self { pipeline, system: None, cache: KvCache::default(), seen: Vec::new(), images: 0, history: Vec::new() }
    }

    /// Sets a system message (kept across [`Session::reset`]; takes effect on the next fresh turn).
    pub fn with_system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Asks the next question, with images that are new in this turn (placed before the text).
    pub fn ask(
        &mut self,
        text: &str,
        images: &[ImageInput],
        params: &GenerationParams,
        on_text: impl FnMut(&str),
    ) -> Result<Generation> {
        if text.trim().is_empty() && images.is_empty() {
            return Err(crate::Error::EmptyPrompt);
        }
        let first_image = self.images + 1;
        let user = Message::new("user", user_content(text, first_image, images.len()));
        let fresh = self.history.is_empty();
        let prompt = if fresh {
            let mut messages: Vec<Message> = self.system.iter().map(|s| Message::new("system", s.clone())).collect();
            messages.push(user.clone());
            chat_prompt(&messages, true)
        } else {
            format!("<|end|>\n{}", chat_prompt(std::slice::from_ref(&user), true))
        };
        let inputs = self.pipeline.inputs(&prompt, images, first_image, !fresh, self.cache.len())?;
        let (seen, cached) = (self.seen.len(), self.cache.len());
        self.seen.extend(inputs.ids.iter().filter(|&&i| i >= 0).map(|&i| i as u32));
        let generation = match run(&self.pipeline, &inputs, &mut self.cache, &mut self.seen, params, on_text) {
            Ok(g) => g,
            Err(e) => {
                // A failed turn leaves the conversation as it was (the penalty's history too).
                self.seen.truncate(seen);
                if !self.cache.truncate(cached, self.pipeline.config().original_max_position_embeddings) {
                    self.reset();
                }
                return Err(e);
            }
        };
        if fresh {
            self.history.extend(self.system.iter().map(|s| Message::new("system", s.clone())));
        }
        self.history.push(user);
        self.history.push(Message::new("assistant", generation.text.clone()));
        self.images += images.len();
        Ok(generation)
    }

    /// The conversation so far (image tags included in the user messages).
    pub fn messages(&self) -> &[Message] {
        &self.history
    }

    /// Positions held in the KV cache.
    pub fn cached_tokens(&self) -> usize {
        self.cache.len()
    }

    /// Forgets the conversation (the system message stays).
    pub fn reset(&mut self) {
        self.cache.clear();
        self.seen.clear();
        self.images = 0;
        self.history.clear();
    }
}
