//! Prompt building exactly as the reference processor does it.
//!
//! 1. The chat template renders messages as `<|{role}|>\n{content}<|end|>\n`, then
//!    `<|assistant|>\n` when a generation prompt is asked for.
//! 2. The prompt is split on `<|image_N|>` tags; every text chunk (even an empty one) is tokenised
//!    on its own, with BOS, so a BOS follows every image.
//! 3. Each tag becomes `num_img_tokens[N-1]` copies of the placeholder id `-N`.
//!
//! Unlike the reference, tags are validated: they must be numbered 1..=N for N images, each used
//! exactly once. They may appear in any order; image N's rows go where `<|image_N|>` stands
//! (the reference writes rows in image order regardless, which misplaces out-of-order tags).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

/// One chat message. `role` is usually `system`, `user` or `assistant`; any role renders.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self { role: role.into(), content: content.into() }
    }
}

/// Renders messages with the Phi-3-vision chat template (no BOS: the tokenizer adds it).
pub fn chat_prompt(messages: &[Message], add_generation_prompt: bool) -> String {
    let mut out = String::new();
    for m in messages {
        out.push_str(&format!("<|{}|>\n{}<|end|>\n", m.role, m.content));
    }
    if add_generation_prompt && messages.last().is_none_or(|m| m.role != "assistant") {
        out.push_str("<|assistant|>\n");
    }
    out
}

/// A piece of a message's content as OpenAI-style APIs send it: text, or an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part<T> {
    Text(String),
    Image(T),
}

/// A message's content from its parts: each image becomes the tag `<|image_N|>` where it
/// stands, numbered on from `first_image`, and the parts are joined by newlines (images then a
/// question render as `<|image_1|>\n<|image_2|>\nquestion`, as [`crate::Pipeline::ask`]
/// renders them). Returns the content and the images in tag order.
pub fn join_parts<T>(parts: impl IntoIterator<Item = Part<T>>, first_image: usize) -> (String, Vec<T>) {
    let mut images = Vec::new();
    let pieces: Vec<String> = parts
        .into_iter()
        .map(|part| match part {
            Part::Text(text) => text,
            Part::Image(image) => {
                images.push(image);
                format!("<|image_{}|>", first_image + images.len() - 1)
            }
        })
        .collect();
    (pieces.join("\n"), images)
}

/// `<|image_k|>\n` for each of `count` images numbered on from `first_image`, then the text.
pub fn user_content(text: &str, first_image: usize, count: usize) -> String {
    let images = (0..count).map(|_| Part::Image(()));
    join_parts(images.chain([Part::Text(text.to_string())]), first_image).0
}

/// One question about `images` images, as [`crate::Pipeline::ask`] asks it: an optional system
/// message, then the user's message with the images' tags before the question.
pub fn question_messages(system: Option<&str>, question: &str, images: usize) -> Vec<Message> {
    let mut messages: Vec<Message> = system.map(|s| Message::new("system", s)).into_iter().collect();
    messages.push(Message::new("user", user_content(question, 1, images)));
    messages
}

/// Problems with a prompt's image tags or its tokenisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// `found`: the tags as written in the prompt, in order.
    #[error("{}", describe_mismatch(found, *first, *images))]
    TagMismatch { found: Vec<String>, first: usize, images: usize },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
}

fn describe_mismatch(found: &[String], first: usize, images: usize) -> String {
    let has = if found.is_empty() { "no tags".to_string() } else { found.join(", ") };
    match images {
        0 => format!("the prompt has image tags ({has}) but no images were given"),
        1 => format!("the prompt needs the tag <|image_{first}|> once for its one image; it has {has}"),
        n => format!(
            "image tags must be numbered <|image_{first}|> … <|image_{}|> for {n} images, each used once; the prompt has {has}",
            first + n - 1
        ),
    }
}

/// A piece of a prompt: text, or the tag of image `N` (1-based; `None` when the number is too
/// large for any image), as written.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Image(Option<usize>, &'a str),
}

/// Splits on `<|image_N|>` (N = ASCII digits), like the reference's `<\|image_\d+\|>` regex;
/// text pieces surround every tag, possibly empty.
fn split_tags(prompt: &str) -> Vec<Piece<'_>> {
    const OPEN: &str = "<|image_";
    let mut pieces = Vec::new();
    let mut rest = prompt;
    let mut text_start = 0;
    let mut offset = 0;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let tag_len = OPEN.len() + digits + 2;
        if digits > 0 && after[digits..].starts_with("|>") {
            pieces.push(Piece::Text(&prompt[text_start..offset + at]));
            pieces.push(Piece::Image(after[..digits].parse().ok(), &prompt[offset + at..offset + at + tag_len]));
            text_start = offset + at + tag_len;
            offset = text_start;
            rest = &prompt[offset..];
        } else {
            offset += at + OPEN.len();
            rest = &prompt[offset..];
        }
    }
    pieces.push(Piece::Text(&prompt[text_start..]));
    pieces
}

/// The Phi-3 tokenizer plus the processor's chunking rule.
#[derive(Clone)]
pub struct PromptTokenizer {
    tokenizer: Tokenizer,
}

impl PromptTokenizer {
    /// Loads `tokenizer.json` (a regular file of at most
    /// [`phi3v_checkpoint::MAX_JSON_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, PromptError> {
        let bytes = phi3v_checkpoint::read_regular(path, phi3v_checkpoint::MAX_JSON_BYTES)
            .map_err(|e| PromptError::Tokenizer(e.to_string()))?;
        let tokenizer =
            Tokenizer::from_bytes(bytes).map_err(|e| PromptError::Tokenizer(format!("{}: {e}", path.display())))?;
        Ok(Self { tokenizer })
    }

    /// The wrapped tokenizer (for decoding).
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Token ids of one text chunk, BOS first (the tokenizer's post-processor adds it).
    pub fn encode_chunk(&self, text: &str) -> Result<Vec<u32>, PromptError> {
        let enc = self.tokenizer.encode(text, true).map_err(|e| PromptError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Input ids of a prompt for images with the given token counts; image `N`'s placeholders
    /// are `num_img_tokens[N-1]` copies of `-N`.
    pub fn encode(&self, prompt: &str, num_img_tokens: &[usize]) -> Result<Vec<i64>, PromptError> {
        self.encode_from(prompt, num_img_tokens, 1, false)
    }

    /// [`Self::encode`] for a later part of a prompt: its images are numbered from
    /// `first_image` (so `num_img_tokens[k]` belongs to `<|image_{first_image + k}|>`), and with
    /// `continuation` its first text chunk continues the previous one (no BOS).
    pub fn encode_from(
        &self,
        prompt: &str,
        num_img_tokens: &[usize],
        first_image: usize,
        continuation: bool,
    ) -> Result<Vec<i64>, PromptError> {
        let pieces = split_tags(prompt);
        let tags: Vec<(Option<usize>, &str)> =
            pieces.iter().filter_map(|p| if let Piece::Image(n, text) = p { Some((*n, *text)) } else { None }).collect();
        let mut sorted: Vec<Option<usize>> = tags.iter().map(|t| t.0).collect();
        sorted.sort_unstable();
        let expected = (first_image..first_image + num_img_tokens.len()).map(Some);
        if !sorted.into_iter().eq(expected) {
            let found = tags.iter().map(|t| t.1.to_string()).collect();
            return Err(PromptError::TagMismatch { found, first: first_image, images: num_img_tokens.len() });
        }
        let mut ids = Vec::new();
        for (i, piece) in pieces.into_iter().enumerate() {
            match piece {
                Piece::Text(t) if i == 0 && continuation => {
                    let enc = self.tokenizer.encode(t, false).map_err(|e| PromptError::Tokenizer(e.to_string()))?;
                    ids.extend(enc.get_ids().iter().map(|&id| i64::from(id)));
                }
                Piece::Text(t) => ids.extend(self.encode_chunk(t)?.into_iter().map(i64::from)),
                Piece::Image(n, _) => {
                    let n = n.expect("validated above");
                    ids.extend(std::iter::repeat_n(-(n as i64), num_img_tokens[n - first_image]))
                }
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_the_reference_regex() {
        use Piece::*;
        assert_eq!(split_tags("a<|image_1|>b"), [Text("a"), Image(Some(1), "<|image_1|>"), Text("b")]);
        assert_eq!(
            split_tags("<|image_1|><|image_02|>"),
            [Text(""), Image(Some(1), "<|image_1|>"), Text(""), Image(Some(2), "<|image_02|>"), Text("")]
        );
        assert_eq!(split_tags("<|image_|> <|image_x|> <|image_3"), [Text("<|image_|> <|image_x|> <|image_3")]);
        assert_eq!(split_tags("<|image_<|image_7|>"), [Text("<|image_"), Image(Some(7), "<|image_7|>"), Text("")]);
        let huge = "<|image_99999999999999999999999|>";
        assert_eq!(split_tags(huge), [Text(""), Image(None, huge), Text("")]);
    }
}
