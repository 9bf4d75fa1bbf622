//! Turning generated token ids into text deltas that never split a UTF-8 character.
//!
//! Phi-3's tokenizer falls back to single bytes for rare characters, so one character may span
//! several tokens, and its decoder drops the space that begins a text, so a token's text depends
//! on the one before it. The tokenizers crate's [`DecodeStream`] handles both with constant
//! work per token: it decodes only the tokens of the last piece of text it released and those
//! since, and releases text once it no longer ends in an incomplete character (U+FFFD from the
//! byte-fallback decoder).

use tokenizers::{DecodeStream, DecoderWrapper, ModelWrapper, NormalizerWrapper, PostProcessorWrapper, PreTokenizerWrapper, Tokenizer};

use crate::prompt::PromptError;

/// Incremental detokeniser for one generation.
pub struct TextStream<'a> {
    decode: DecodeStream<'a, ModelWrapper, NormalizerWrapper, PreTokenizerWrapper, PostProcessorWrapper, DecoderWrapper>,
}

impl<'a> TextStream<'a> {
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        Self { decode: tokenizer.decode_stream(true) }
    }

    /// Adds a token; returns the text that became complete (possibly empty).
    pub fn push(&mut self, token: u32) -> Result<String, PromptError> {
        let text = self.decode.step(token).map_err(|e| PromptError::Tokenizer(e.to_string()))?;
        Ok(text.unwrap_or_default())
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
    fn a_long_answer_streams_to_its_whole_decoding() {
        let tok = tokenizer();
        let text = "Revenue rose 12.5% in Q4 (¥3,400万).\n\n- 東京: 42\n- Zürich: 17 🦙🦙\nThe highest bar is Q4; the lowest, Q1.  Done!";
        let ids: Vec<u32> = tok.encode(text.repeat(40), false).unwrap().get_ids().to_vec();
        assert!(ids.len() > 2000, "{}", ids.len());
        let mut stream = TextStream::new(&tok);
        let streamed: String = ids.iter().map(|&t| stream.push(t).unwrap()).collect();
        assert_eq!(streamed, tok.decode(&ids, true).unwrap());
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
