//! Turning generated token ids into text deltas that never split a UTF-8 character.
//!
//! Phi-3's tokenizer falls back to single bytes for rare characters, so one character may span
//! several tokens. The stream decodes everything generated so far and only releases text once
//! it no longer ends in an incomplete character (U+FFFD from the byte-fallback decoder).

use tokenizers::Tokenizer;

use crate::prompt::PromptError;

/// Incremental detokeniser for one generation.
pub struct TextStream<'a> {
    tokenizer: &'a Tokenizer,
    tokens: Vec<u32>,
    emitted: usize,
}

impl<'a> TextStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self { tokenizer, tokens: Vec::new(), emitted: 0 }
    }

    fn decode(&self) -> Result<String, PromptError> {
        self.tokenizer.decode(&self.tokens, true).map_err(|e| PromptError::Tokenizer(e.to_string()))
    }

    /// Adds a token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, token: u32) -> Result<String, PromptError> {
        self.tokens.push(token);
        let text = self.decode()?;
        match text.get(self.emitted..) {
            Some(delta) if !text.ends_with('\u{FFFD}') => {
                let delta = delta.to_string();
                self.emitted = text.len();
                Ok(delta)
            }
            _ => Ok(String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenizer() -> Tokenizer {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-phi3v/tokenizer.json");
        Tokenizer::from_file(p).unwrap()
    }

    #[test]
    fn multi_token_characters_are_released_whole() {
        let tok = tokenizer();
        // "Hi 🦙!" : the llama is four byte-fallback tokens.
        let ids = tok.encode("Hi 🦙!", false).unwrap().get_ids().to_vec();
        let mut stream = TextStream::new(&tok);
        let deltas: Vec<String> = ids.iter().map(|&t| stream.push(t).unwrap()).collect();
        assert_eq!(deltas.concat(), "Hi 🦙!");
        assert!(deltas.iter().filter(|d| d.is_empty()).count() >= 3, "{deltas:?}");
        assert!(deltas.iter().all(|d| !d.contains('\u{FFFD}')));
    }

    #[test]
    fn untrained_padding_ids_decode_to_nothing() {
        // Ids 32045..32063 exist in the model's vocabulary but not in the tokenizer.
        let tok = tokenizer();
        let mut stream = TextStream::new(&tok);
        assert_eq!(stream.push(15043).unwrap(), "Hello");
        assert_eq!(stream.push(32050).unwrap(), "");
        assert_eq!(stream.push(3186).unwrap(), " world");
    }
}
