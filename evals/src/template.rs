//! The prompt template language: text with `{field}`s filled from a sample, `{{` and `}}` for
//! literal braces, checked and rendered in one pass (so a question containing `{options}` stays
//! as written).
//!
//! Fields: `{question}`, `{question_capitalized}` (Python's `str.capitalize`),
//! `{question_stripped}`, `{options}` as `A. …\nB. …`, `{options_paren}` as `(A) …\n(B) …`,
//! `{letters}` as `A, B`; a hint as `{hint_line}` (`Hint: …\n`), `{hint_prefix}` (`… `) or
//! `{context_line}` (`Context: …\n`), nothing without one; MathVista's `{query}` (the dataset's own
//! full prompt, else the question) and `{unit_suffix}` (` (Unit: …)`).

use crate::datasets::Sample;

/// Fills a prompt template with a sample's fields.
pub fn render(template: &str, sample: &Sample) -> String {
    let mut out = String::new();
    for piece in pieces(template).expect("templates are checked before rendering") {
        match piece {
            Piece::Text(t) => out.push_str(t),
            Piece::Field("question") => out.push_str(&sample.question),
            Piece::Field("question_capitalized") => out.push_str(&capitalize(&sample.question)),
            Piece::Field("question_stripped") => out.push_str(sample.question.trim()),
            Piece::Field("hint_line") => {
                if let Some(h) = &sample.hint {
                    out.push_str(&format!("Hint: {h}\n"));
                }
            }
            Piece::Field("unit_suffix") => {
                if let Some(unit) = sample.extra.get("unit") {
                    out.push_str(&format!(" (Unit: {unit})"));
                }
            }
            Piece::Field("query") => out.push_str(sample.extra.get("query").unwrap_or(&sample.question)),
            Piece::Field("letters") => {
                let letters: Vec<String> = (0..sample.options.len()).map(|i| ((b'A' + i as u8) as char).to_string()).collect();
                out.push_str(&letters.join(", "));
            }
            Piece::Field("options_paren") => {
                let options = sample.options.iter().enumerate().map(|(i, o)| format!("({}) {o}", (b'A' + i as u8) as char));
                out.push_str(&options.collect::<Vec<_>>().join("\n"));
            }
            Piece::Field("context_line") => {
                if let Some(h) = &sample.hint {
                    out.push_str(&format!("Context: {h}\n"));
                }
            }
            Piece::Field("hint_prefix") => {
                if let Some(h) = &sample.hint {
                    out.push_str(&format!("{h} "));
                }
            }
            Piece::Field(_) => {
                let options = sample.options.iter().enumerate().map(|(i, o)| format!("{}. {o}", (b'A' + i as u8) as char));
                out.push_str(&options.collect::<Vec<_>>().join("\n"));
            }
        }
    }
    out
}

/// The fields a template may use.
pub const FIELDS: [&str; 11] = [
    "question",
    "question_capitalized",
    "question_stripped",
    "options",
    "options_paren",
    "letters",
    "hint_line",
    "hint_prefix",
    "context_line",
    "unit_suffix",
    "query",
];

/// Checks a prompt template: every `{` opens one of [`FIELDS`] and is closed, `{{` and `}}` are
/// literal braces, and the question is used (`{query}`, MathVista's full prompt, counts).
pub fn check_template(template: &str) -> Result<(), String> {
    let pieces = pieces(template)?;
    if !pieces.iter().any(|p| matches!(p, Piece::Field(f) if f.starts_with("question") || *f == "query")) {
        return Err(format!("template {template:?} never uses the question ({{question}}, {{question_capitalized}} or {{question_stripped}})"));
    }
    Ok(())
}

#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(&'a str),
    Field(&'a str),
}

/// A template as text and fields, in one pass (so a question that contains `{options}` stays
/// as written).
fn pieces(template: &str) -> Result<Vec<Piece<'_>>, String> {
    let bad = |why: &str| format!("template {template:?}: {why} (fields: {{{}}}; {{{{ and }}}} for literal braces)", FIELDS.join("}, {"));
    let mut pieces = Vec::new();
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        if at > 0 {
            pieces.push(Piece::Text(&rest[..at]));
        }
        let (brace, after) = (&rest[at..at + 1], &rest[at + 1..]);
        if after.starts_with(brace) {
            pieces.push(Piece::Text(brace));
            rest = &after[1..];
        } else if brace == "}" {
            return Err(bad("a '}' closes nothing"));
        } else {
            let end = after.find('}').ok_or_else(|| bad("a '{' is never closed"))?;
            let field = &after[..end];
            if !FIELDS.contains(&field) {
                return Err(bad(&format!("unknown field {{{field}}}")));
            }
            pieces.push(Piece::Field(field));
            rest = &after[end + 1..];
        }
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest));
    }
    Ok(pieces)
}

/// Python's `str.capitalize`: first character upper-cased, the rest lower-cased.
fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Harness, Task};

    fn sample(question: &str, options: &[&str]) -> Sample {
        Sample { id: "1".into(), question: question.into(), options: options.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    #[test]
    fn templates_are_checked_and_rendered_in_one_pass() {
        for h in [Harness::LmmsEval, Harness::VlmEvalKit, Harness::Official] {
            for t in Task::ALL {
                assert_eq!(check_template(&t.default_template(h)), Ok(()), "{t:?} {h:?}");
            }
        }
        for bad in ["{question", "question}", "{question} {nope}", "no fields", "{options}", "{question}}"] {
            assert!(check_template(bad).is_err(), "{bad}");
        }
        let s = sample("Is {options} here?", &["a", "b"]);
        assert_eq!(render("{{{question}}}\n{options}", &s), "{Is {options} here?}\nA. a\nB. b");
    }

    #[test]
    fn capitalize_is_pythons() {
        assert_eq!(capitalize("ßtraße ÉTÉ"), "SStraße été");
    }
}
