//! OpenAI-style messages (a list of dicts) to the library's messages and images.

use phi3v::{ImageInput, Message, Part};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::images::image_input;
use crate::PromptError;

/// `messages` as the library's messages (image parts become `<|image_N|>` tags where they
/// stand, numbered across the conversation) and their images in tag order. Errors name the
/// field: `messages[1].content[0].image_url`.
pub fn conversation(messages: &Bound<'_, PyAny>, num_crops: Option<usize>) -> PyResult<(Vec<Message>, Vec<ImageInput>)> {
    let list = messages.cast::<PyList>().map_err(|_| bad("messages", "must be a list of {\"role\": ..., \"content\": ...} dicts"))?;
    let mut out = Vec::new();
    let mut images = Vec::new();
    for (i, message) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let message = message.cast_into::<PyDict>().map_err(|_| bad(&at, "must be a dict with \"role\" and \"content\""))?;
        let role: String = field(&message, "role", &at)?.extract().map_err(|_| bad(&format!("{at}.role"), "must be a string"))?;
        if !matches!(role.as_str(), "system" | "user" | "assistant") {
            return Err(bad(&format!("{at}.role"), &format!("{role:?} is not supported (system, user or assistant)")));
        }
        let content = message.get_item("content")?;
        let parts = match content {
            None => Vec::new(),
            Some(c) if c.is_none() => Vec::new(),
            Some(c) if c.is_instance_of::<PyString>() => vec![Part::Text(c.extract()?)],
            Some(c) => {
                let parts = c.cast_into::<PyList>().map_err(|_| bad(&format!("{at}.content"), "must be a string or a list of parts"))?;
                let mut out = Vec::new();
                for (j, part) in parts.iter().enumerate() {
                    let at = format!("{at}.content[{j}]");
                    let part = self::part(&part, &at, num_crops)?;
                    if matches!(part, Part::Image(_)) && role != "user" {
                        return Err(bad(&at, &format!("images are only taken in user messages, not {role}")));
                    }
                    out.push(part);
                }
                out
            }
        };
        let (content, tagged) = phi3v::prompt::join_parts(parts, images.len() + 1);
        images.extend(tagged);
        out.push(Message::new(role, content));
    }
    Ok((out, images))
}

/// One content part: `{"type": "text", "text": ...}`, `{"type": "image_url", "image_url":
/// {"url": ...}}` or `{"type": "image", "image": ...}`.
fn part(part: &Bound<'_, PyAny>, at: &str, num_crops: Option<usize>) -> PyResult<Part<ImageInput>> {
    let part = part.cast::<PyDict>().map_err(|_| bad(at, "must be a dict with a \"type\""))?;
    let kind: String = field(part, "type", at)?.extract().map_err(|_| bad(&format!("{at}.type"), "must be a string"))?;
    match kind.as_str() {
        "text" => Ok(Part::Text(field(part, "text", at)?.extract().map_err(|_| bad(&format!("{at}.text"), "must be a string"))?)),
        "image_url" => {
            let value = field(part, "image_url", at)?;
            let url = match value.cast::<PyDict>() {
                Ok(dict) => field(dict, "url", &format!("{at}.image_url"))?,
                Err(_) => value,
            };
            let url: String = url.extract().map_err(|_| bad(&format!("{at}.image_url.url"), "must be a string"))?;
            let url = url.strip_prefix("file://").unwrap_or(&url);
            let url = PyString::new(part.py(), url);
            Ok(Part::Image(image_input(&url, &format!("{at}.image_url.url"), num_crops)?))
        }
        "image" => Ok(Part::Image(image_input(&field(part, "image", at)?, &format!("{at}.image"), num_crops)?)),
        other => Err(bad(&format!("{at}.type"), &format!("{other:?} is not a part type (text, image_url or image)"))),
    }
}

fn field<'py>(dict: &Bound<'py, PyDict>, key: &str, at: &str) -> PyResult<Bound<'py, PyAny>> {
    dict.get_item(key)?.ok_or_else(|| bad(at, &format!("needs a {key:?} field")))
}

fn bad(at: &str, message: &str) -> PyErr {
    PromptError::new_err(format!("{at}: {message}"))
}
