//! The `POST /v1/chat/completions` body: parsed, checked field by field (errors name the field),
//! and turned into the library's messages (with `<|image_N|>` tags numbered across the whole
//! conversation, where the image parts stand) and generation parameters.

use serde::Deserialize;

use crate::error::ApiError;

/// The request fields phi3v reads; others are ignored.
#[derive(Debug, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: Option<String>,
    pub messages: Vec<RequestMessage>,
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    seed: Option<i64>,
    stop: Option<Stop>,
    n: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    stream_options: Option<StreamOptions>,
    frequency_penalty: Option<f64>,
    presence_penalty: Option<f64>,
    logprobs: Option<bool>,
    top_logprobs: Option<u64>,
    response_format: Option<serde_json::Value>,
    tools: Option<Vec<serde_json::Value>>,
    // Extensions, as vLLM takes them.
    top_k: Option<u64>,
    repetition_penalty: Option<f64>,
    num_crops: Option<u64>,
    mm_processor_kwargs: Option<ProcessorKwargs>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ProcessorKwargs {
    num_crops: Option<u64>,
}

#[derive(Debug, Deserialize)]
pub struct RequestMessage {
    role: String,
    /// A string or an array of parts; read by hand so that errors name the part.
    content: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part {
    Text { text: String },
    ImageUrl { image_url: serde_json::Value },
}

/// An image the request refers to, and where.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRef {
    pub url: String,
    /// The field, for errors: `messages[1].content[0].image_url.url`.
    pub param: String,
}

/// A request checked and translated for the engine.
#[derive(Debug)]
pub struct Prepared {
    pub messages: Vec<phi3v::Message>,
    /// In tag order: `images[k]` is `<|image_{k+1}|>`.
    pub images: Vec<ImageRef>,
    pub params: phi3v::GenerationParams,
    pub num_crops: Option<usize>,
    pub stream: bool,
    pub include_usage: bool,
}

/// Parses a body; serde's message gets the path of the field at fault.
pub fn parse(body: &[u8]) -> Result<ChatCompletionRequest, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let param = if path == "." || path == "?" { "body".to_string() } else { path };
        ApiError::bad_request(format!("invalid request body: {}", e.inner()), param)
    })
}

fn bad(message: impl Into<String>, param: &str) -> ApiError {
    ApiError::bad_request(message, param)
}

impl ChatCompletionRequest {
    /// Checks every field and builds the conversation. `max_images` bounds the images of one
    /// request, `max_crops` its `num_crops`.
    pub fn prepare(self, max_images: usize, max_crops: usize) -> Result<Prepared, ApiError> {
        let params = self.params()?;
        let num_crops = self.num_crops(max_crops)?;
        if self.stream_options.is_some() && !self.stream {
            return Err(bad("stream_options can only be set when stream is true", "stream_options"));
        }
        let (messages, images) = conversation(self.messages)?;
        if images.len() > max_images {
            return Err(bad(format!("{} images in one request; this server takes at most {max_images}", images.len()), "messages"));
        }
        Ok(Prepared {
            messages,
            images,
            params,
            num_crops,
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
        })
    }

    fn params(&self) -> Result<phi3v::GenerationParams, ApiError> {
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(bad(format!("n is {n}; this server generates one choice per request (n = 1)"), "n"));
        }
        if self.logprobs == Some(true) || self.top_logprobs.is_some_and(|n| n > 0) {
            let param = if self.logprobs == Some(true) { "logprobs" } else { "top_logprobs" };
            return Err(bad("logprobs are not supported by this server", param));
        }
        for (name, value) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if value.is_some_and(|v| v != 0.0) {
                return Err(bad(format!("{name} is not supported by this server (only 0); repetition_penalty is"), name));
            }
        }
        if self.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(bad("tools are not supported by this server", "tools"));
        }
        if let Some(format) = &self.response_format {
            if format.get("type").and_then(|t| t.as_str()) != Some("text") {
                return Err(bad("only response_format {\"type\": \"text\"} is supported", "response_format"));
            }
        }
        let max = match (self.max_completion_tokens, self.max_tokens) {
            (Some(n), _) => Some((n, "max_completion_tokens")),
            (None, Some(n)) => Some((n, "max_tokens")),
            (None, None) => None,
        };
        let max_new_tokens = match max {
            Some((0, name)) => return Err(bad(format!("{name} must be at least 1"), name)),
            Some((n, _)) => usize::try_from(n).unwrap_or(usize::MAX),
            None => usize::MAX, // up to the end of the context, as OpenAI and vLLM
        };
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(bad(format!("temperature must be from 0 to 2, got {temperature}"), "temperature"));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(bad(format!("top_p must be in (0, 1], got {top_p}"), "top_p"));
        }
        let repetition_penalty = self.repetition_penalty.unwrap_or(1.0);
        if !(repetition_penalty.is_finite() && repetition_penalty > 0.0) {
            return Err(bad(format!("repetition_penalty must be > 0, got {repetition_penalty}"), "repetition_penalty"));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 {
            return Err(bad(format!("at most 4 stop sequences, got {}", stop.len()), "stop"));
        }
        if stop.iter().any(String::is_empty) {
            return Err(bad("stop sequences must not be empty", "stop"));
        }
        Ok(phi3v::GenerationParams {
            max_new_tokens,
            temperature: temperature as f32,
            top_k: self.top_k.map_or(0, |k| usize::try_from(k).unwrap_or(usize::MAX)),
            top_p: top_p as f32,
            // Without a seed every request samples differently, as OpenAI's.
            seed: self.seed.map_or_else(rand::random, |s| s as u64),
            repetition_penalty: repetition_penalty as f32,
            stop,
            cancel: None,
        })
    }

    fn num_crops(&self, max: usize) -> Result<Option<usize>, ApiError> {
        let (value, param) = match (self.num_crops, self.mm_processor_kwargs.as_ref().and_then(|k| k.num_crops)) {
            (Some(n), _) => (n, "num_crops"),
            (None, Some(n)) => (n, "mm_processor_kwargs.num_crops"),
            (None, None) => return Ok(None),
        };
        if !(1..=max as u64).contains(&value) {
            return Err(bad(format!("{param} must be from 1 to {max} on this server, got {value}"), param));
        }
        Ok(Some(value as usize))
    }
}

/// The messages with image parts turned into `<|image_N|>` tags (N counted across the whole
/// conversation, [`phi3v::prompt::join_parts`]) and the images in tag order.
fn conversation(messages: Vec<RequestMessage>) -> Result<(Vec<phi3v::Message>, Vec<ImageRef>), ApiError> {
    if messages.is_empty() {
        return Err(bad("messages must not be empty", "messages"));
    }
    let mut images = Vec::new();
    let mut out = Vec::new();
    for (i, message) in messages.into_iter().enumerate() {
        let role = message.role.as_str();
        if !matches!(role, "system" | "user" | "assistant") {
            return Err(bad(format!("role {role:?} is not supported (system, user or assistant)"), &format!("messages[{i}].role")));
        }
        let content = match message.content {
            None | Some(serde_json::Value::Null) if role == "assistant" => String::new(),
            None | Some(serde_json::Value::Null) => return Err(bad(format!("a {role} message needs content"), &format!("messages[{i}].content"))),
            Some(serde_json::Value::String(text)) => checked_text(text, &format!("messages[{i}].content"))?,
            Some(serde_json::Value::Array(parts)) => {
                let mut pieces = Vec::new();
                for (j, part) in parts.into_iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    let part: Part = serde_json::from_value(part).map_err(|e| bad(format!("invalid content part: {e}"), &param))?;
                    pieces.push(match part {
                        Part::Text { text } => phi3v::Part::Text(checked_text(text, &format!("{param}.text"))?),
                        Part::ImageUrl { .. } if role != "user" => {
                            return Err(bad(format!("images are only taken in user messages, not {role}"), &param))
                        }
                        Part::ImageUrl { image_url } => {
                            let url = image_url
                                .get("url")
                                .and_then(|u| u.as_str())
                                .ok_or_else(|| bad("image_url must be an object with a string \"url\"", &format!("{param}.image_url")))?;
                            phi3v::Part::Image(ImageRef { url: url.to_string(), param: format!("{param}.image_url.url") })
                        }
                    });
                }
                let (content, tagged) = phi3v::prompt::join_parts(pieces, images.len() + 1);
                images.extend(tagged);
                content
            }
            Some(_) => return Err(bad("content must be a string or an array of parts", &format!("messages[{i}].content"))),
        };
        out.push(phi3v::Message::new(role, content));
    }
    Ok((out, images))
}

/// Text may not carry image tags of its own: images are given as `image_url` parts.
fn checked_text(text: String, param: &str) -> Result<String, ApiError> {
    match text.find("<|image_") {
        Some(_) => Err(bad("text must not contain <|image_N|> tags; send images as image_url parts", param)),
        None => Ok(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prepare(body: &str) -> Result<Prepared, ApiError> {
        parse(body.as_bytes())?.prepare(8, 16)
    }

    #[test]
    fn images_are_tagged_where_they_stand_and_numbered_across_messages() {
        let body = r#"{"messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:a"}}, {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": "A chart."},
            {"role": "user", "content": [{"type": "text", "text": "And"}, {"type": "image_url", "image_url": {"url": "data:b", "detail": "low"}}]}
        ]}"#;
        let p = prepare(body).unwrap();
        let contents: Vec<&str> = p.messages.iter().map(|m| m.content.as_str()).collect();
        assert_eq!(contents, ["Be brief.", "<|image_1|>\nWhat?", "A chart.", "And\n<|image_2|>"]);
        assert_eq!(p.images.iter().map(|i| i.url.as_str()).collect::<Vec<_>>(), ["data:a", "data:b"]);
        assert_eq!(p.images[1].param, "messages[3].content[1].image_url.url");
    }

    #[test]
    fn every_refused_field_is_named() {
        let cases = [
            (r#"{"messages": [{"role": "user", "content": "hi"}], "n": 2}"#, "n"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "logprobs": true}"#, "logprobs"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "presence_penalty": 0.5}"#, "presence_penalty"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "temperature": 2.5}"#, "temperature"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "top_p": 0}"#, "top_p"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}"#, "max_tokens"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "stop": ["a","b","c","d","e"]}"#, "stop"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "num_crops": 99}"#, "num_crops"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}"#, "stream_options"),
            (r#"{"messages": [{"role": "tool", "content": "hi"}]}"#, "messages[0].role"),
            (r#"{"messages": [{"role": "user", "content": "<|image_1|> hi"}]}"#, "messages[0].content"),
            (r#"{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "data:x"}]}]}"#, "messages[0].content[0].image_url"),
            (r#"{"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}"#, "messages[0].content[0]"),
            (r#"{"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}"#, "temperature"),
            (r#"{"messages": []}"#, "messages"),
            (r#"{"model": "x"}"#, "body"),
        ];
        for (body, param) in cases {
            let e = prepare(body).expect_err(body);
            assert_eq!(e.status, 400, "{body}");
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {}", e.message);
        }
    }

    #[test]
    fn defaults_and_extensions() {
        let p = prepare(r#"{"messages": [{"role": "user", "content": "hi"}], "seed": 7, "unknown": 1}"#).unwrap();
        assert_eq!((p.params.temperature, p.params.seed, p.params.max_new_tokens), (1.0, 7, usize::MAX));
        let p = prepare(r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "max_completion_tokens": 3,
            "mm_processor_kwargs": {"num_crops": 2}, "stop": "x", "stream": true, "stream_options": {"include_usage": true}}"#)
        .unwrap();
        assert_eq!((p.params.max_new_tokens, p.num_crops, p.params.stop.clone()), (3, Some(2), vec!["x".to_string()]));
        assert!(p.stream && p.include_usage);
    }
}
