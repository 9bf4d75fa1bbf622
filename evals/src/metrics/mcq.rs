//! Multiple-choice answers (AI2D, MMBench): which option letter a response picks.

use super::{lmms_eval_clean, Harness};

/// lmms-eval: the letter of a leading `X.` if there is one (taken from the raw response), else
/// the cleaned response itself; lower-cased, ASCII punctuation removed (the form it compares).
fn lmms_eval_extract(response: &str) -> String {
    let trimmed = response.trim_start();
    let mut chars = trimmed.chars();
    let extracted = match (chars.next(), chars.next()) {
        (Some(c), Some('.')) if c.is_ascii_uppercase() => c.to_string(),
        _ => lmms_eval_clean(response),
    };
    extracted.to_lowercase().chars().filter(|c| !c.is_ascii_punctuation()).collect()
}

fn lmms_eval_correct(response: &str, letter: char) -> bool {
    lmms_eval_extract(response) == letter.to_lowercase().to_string()
}

/// Answers VLMEvalKit's `can_infer_option` refuses outright (counted wrong as "Z").
const REJECTIONS: [&str; 4] = [
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
];

/// VLMEvalKit's rule-based extraction (`vlmeval/utils/matching_util.py::can_infer`, without an
/// LLM judge): a refusal is "Z"; a single option letter standing as a token among the last
/// four; else, with no letter token, a standalone "Z"; else the first "(correct) answer is X"
/// (any case, any whitespace, X in A–D, `**` allowed around it); else the unique option whose
/// text the response contains (when the response is at most twice the options' length).
/// `options` are the option texts for A, B, C, ….
pub fn vlmevalkit_infer(response: &str, options: &[String]) -> Option<char> {
    if REJECTIONS.iter().any(|r| response.contains(r)) {
        return Some('Z');
    }
    let letters: Vec<char> = (0..options.len()).map(|i| (b'A' + i as u8) as char).collect();
    let spaced: String = response.chars().map(|c| if ".()[],:;!*#{}".contains(c) { ' ' } else { c }).collect();
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let found: Vec<(usize, char)> = tokens
        .iter()
        .enumerate()
        .filter_map(|(i, t)| letters.iter().find(|l| t.len() == 1 && t.starts_with(**l)).map(|l| (i, *l)))
        .collect();
    let distinct: std::collections::BTreeSet<char> = found.iter().map(|(_, l)| *l).collect();
    match distinct.len() {
        1 if found[0].0 + 4 >= tokens.len() => return Some(found[0].1),
        0 if tokens.contains(&"Z") => return Some('Z'),
        _ => {}
    }
    if let Some(l) = answer_is(response).filter(|l| letters.contains(l)) {
        return Some(l);
    }
    let lower = response.to_lowercase();
    let total: usize = options.iter().map(|o| o.chars().count()).sum();
    if response.chars().count() <= 2 * total {
        let hits: Vec<char> =
            options.iter().zip(&letters).filter(|(o, _)| lower.contains(&o.to_lowercase())).map(|(_, l)| *l).collect();
        if hits.len() == 1 {
            return Some(hits[0]);
        }
    }
    None
}

/// lmms-eval's MMBench matcher (`MMBench_Evaluator.can_infer`, an older copy of VLMEvalKit's,
/// without its judge): among the whitespace-split tokens, the one letter of A–E standing alone
/// (unless an `A` is among more than three tokens: a quantifier), else the one letter written
/// `X.`, `X,`, `X:`, `X)`, `X).`, `(X)`, `(X).`, `:X`, `:X,`, `:X.`, `:X)`, `:X).` (tried in that
/// order, each needing exactly one such letter), else the one option (A–D) whose lower-cased
/// text the lower-cased response contains.
pub fn lmms_eval_mmbench_infer(response: &str, options: &[String]) -> Option<char> {
    const CHOICES: [char; 5] = ['A', 'B', 'C', 'D', 'E'];
    const FORMS: [(&str, &str); 12] =
        [("", "."), ("", ","), ("", ":"), ("", ")"), ("", ")."), ("(", ")"), ("(", ")."), (":", ""), (":", ","), (":", "."), (":", ")"), (":", ").")];
    let splits: Vec<&str> = response.split_whitespace().collect();
    let present = |prefix: &str, suffix: &str| -> Vec<char> {
        CHOICES.into_iter().filter(|c| splits.contains(&format!("{prefix}{c}{suffix}").as_str())).collect()
    };
    if !response.contains("Failed to obtain answer via API") {
        let bare = present("", "");
        if bare.len() == 1 && !(splits.contains(&"A") && splits.len() > 3) {
            return Some(bare[0]);
        }
        if let Some(found) = FORMS.iter().map(|(p, s)| present(p, s)).find(|f| f.len() == 1) {
            return Some(found[0]);
        }
    }
    let lower = response.to_lowercase();
    let hits: Vec<char> =
        options.iter().take(4).zip(CHOICES).filter(|(o, _)| lower.contains(&o.to_lowercase())).map(|(_, c)| c).collect();
    (hits.len() == 1).then(|| hits[0])
}

/// lmms-eval's ScienceQA rule (`sqa_process_results`, "how llava parse it"): the response as the
/// letter when it is one; the first character when the response is a capital letter and a
/// period (`B. …`); else nothing.
pub fn lmms_eval_scienceqa(response: &str) -> String {
    let mut chars = response.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => c.to_string(),
        (Some(c), Some('.')) if c.is_uppercase() => c.to_string(),
        _ => String::new(),
    }
}

/// lmms-eval's BLINK rule (`_extract_answer_letter`): Python's `re.match(r"[\(\s]*([A-Z])",
/// text.strip(), re.IGNORECASE)` upper-cased: the first character after any `(` and whitespace,
/// when it is a letter (case-insensitively `[A-Z]` also takes `ı`, `ſ` and the Kelvin sign, whose
/// upper cases are I, S and K); else nothing. "The answer is B" reads as T.
pub fn lmms_eval_blink(response: &str) -> String {
    let first = response.trim().chars().find(|c| *c != '(' && !c.is_whitespace());
    match first {
        Some(c) if c.is_ascii_alphabetic() => c.to_ascii_uppercase().to_string(),
        Some('ı') => "I".into(),
        Some('ſ') => "S".into(),
        Some('\u{212A}') => "K".into(),
        _ => String::new(),
    }
}

/// The letter of the first `answer\s+is\s+\**([ABCD])` in `text`, case-insensitive (upper-cased),
/// as VLMEvalKit's `_VERBOSE_ANSWER_RE` finds it (its optional leading `correct\s+` does not
/// change which letter).
fn answer_is(text: &str) -> Option<char> {
    let lower = text.to_ascii_lowercase();
    lower.match_indices("answer").find_map(|(at, word)| {
        let rest = &lower[at + word.len()..];
        let rest = rest.trim_start_matches(char::is_whitespace);
        if rest.len() == lower.len() - at - word.len() {
            return None; // no whitespace after "answer"
        }
        let after_is = rest.strip_prefix("is")?;
        let rest = after_is.trim_start_matches(char::is_whitespace);
        if rest.len() == after_is.len() {
            return None;
        }
        let c = rest.trim_start_matches('*').chars().next()?;
        ('a'..='d').contains(&c).then(|| c.to_ascii_uppercase())
    })
}

/// Whether `response` picks option `letter` under a harness's rules. `Official` follows the
/// LLaVA ScienceQA rule the Phi-3 report used: exactly a letter, "X. …", or one "The answer is X.".
pub fn correct(response: &str, options: &[String], letter: char, harness: Harness) -> bool {
    match harness {
        Harness::LmmsEval => lmms_eval_correct(response, letter),
        _ => extract(response, options, harness) == letter.to_string(),
    }
}

/// The answer a harness reads from `response`: an option letter (lmms-eval: the lower-cased,
/// punctuation-free text it compares with the letter); empty when nothing can be extracted.
pub fn extract(response: &str, options: &[String], harness: Harness) -> String {
    let letter = match harness {
        Harness::LmmsEval => return lmms_eval_extract(response),
        Harness::VlmEvalKit => vlmevalkit_infer(response, options),
        Harness::Official => llava_letter(response, options.len()),
    };
    letter.map_or_else(String::new, String::from)
}

fn llava_letter(response: &str, n: usize) -> Option<char> {
    let valid = |c: char| c.is_ascii_uppercase() && ((c as u8 - b'A') as usize) < n;
    let mut chars = response.chars();
    match (chars.next(), chars.next(), chars.next()) {
        (Some(c), None, _) if valid(c) => return Some(c),
        (Some(c), Some('.'), Some(' ')) if valid(c) => return Some(c),
        _ => {}
    }
    let hits: Vec<char> = response
        .match_indices("The answer is ")
        .filter_map(|(at, m)| {
            let mut rest = response[at + m.len()..].chars();
            match (rest.next(), rest.next()) {
                (Some(c), Some('.')) if valid(c) => Some(c),
                _ => None,
            }
        })
        .collect();
    (hits.len() == 1).then(|| hits[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<String> {
        ["leaf", "tree", "root", "stem"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lmms_eval_letter_filter() {
        // "B. tree" scores: the leading "B." filter takes the letter.
        for ok in ["B", "b", " B", "B.", "(B)", "B. tree", "<think>hmm</think>B"] {
            assert!(lmms_eval_correct(ok, 'B'), "{ok:?}");
        }
        for wrong in ["B) tree", "The answer is B", "B tree", "<think>x</think>B. tree"] {
            assert!(!lmms_eval_correct(wrong, 'B'), "{wrong:?}");
        }
    }

    #[test]
    fn vlmevalkit_inference() {
        let o = opts();
        assert_eq!(vlmevalkit_infer("B", &o), Some('B'));
        assert_eq!(vlmevalkit_infer("(C) root", &o), Some('C'));
        assert_eq!(vlmevalkit_infer("I think the answer is D", &o), Some('D'));
        assert_eq!(vlmevalkit_infer("It is the tree.", &o), Some('B'));
        assert_eq!(vlmevalkit_infer("B or C", &o), None);
        assert_eq!(vlmevalkit_infer("leaf or root", &o), None);
    }

    /// Cases worked through VLMEvalKit's current `can_infer_option` and `_VERBOSE_ANSWER_RE`.
    #[test]
    fn vlmevalkit_answer_is_in_any_case() {
        let o = opts();
        let long = "Looking at the diagram carefully, the part that carries water up from the ground is";
        assert_eq!(vlmevalkit_infer("the answer is c", &o), Some('C'));
        assert_eq!(vlmevalkit_infer("The ANSWER IS\n\n**b**, since it grows", &o), Some('B'));
        assert_eq!(vlmevalkit_infer(&format!("The correct answer is **D**. {long} the stem."), &o), Some('D'));
        // A lone letter token early in a long answer is not taken; the phrase still is.
        assert_eq!(vlmevalkit_infer(&format!("C is wrong. {long} the answer is a"), &o), Some('A'));
        // Only A–D, and only letters of the options there are.
        let five: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        assert_eq!(vlmevalkit_infer(&format!("{long} so the answer is e as shown"), &five), None);
        assert_eq!(vlmevalkit_infer("so the answer is d", &o[..3]), None);
        assert_eq!(vlmevalkit_infer("the answer is: c", &o), None, "no colon in the pattern");
        assert_eq!(vlmevalkit_infer("answeris c", &o), None);
        // Refusals and a standalone Z are "Z" (wrong), before any text matching.
        assert_eq!(vlmevalkit_infer("Cannot determine the answer from the tree", &o), Some('Z'));
        assert_eq!(vlmevalkit_infer("Z", &o), Some('Z'));
        assert_eq!(vlmevalkit_infer("Z, the root", &o), Some('Z'));
    }

    /// Cases worked through lmms-eval's `MMBench_Evaluator.can_infer`.
    #[test]
    fn lmms_eval_mmbench_matching() {
        let o = opts();
        for (response, want) in [
            ("B", Some('B')),
            ("B. tree", Some('B')),
            ("The answer is C", Some('C')),
            ("A cat sits on it", None), // "A" among more than three tokens: a quantifier; "cat" is no option
            ("A tree", Some('A')),      // three tokens or fewer: the letter
            ("A big old tree", Some('B')),
            ("(D) stem", Some('D')),
            ("I pick (D).", Some('D')),
            ("B or C", None),
            ("B, not C.", Some('C')), // "X." is tried before "X,"
            ("E", Some('E')), // any of A–E, options or not
            ("answer:C", None),
            ("It is the root", Some('C')),
            ("leaf or root", None),
            ("Failed to obtain answer via API: B", None),
        ] {
            assert_eq!(lmms_eval_mmbench_infer(response, &o), want, "{response:?}");
        }
    }

    /// Cases worked through lmms-eval's `sqa_process_results`.
    #[test]
    fn lmms_eval_scienceqa_rule() {
        for (response, got) in [("B", "B"), ("B. tree", "B"), ("B.", "B"), ("b. tree", ""), ("(B)", ""), ("B tree", ""), ("The answer is B.", ""), ("É.", "É")] {
            assert_eq!(lmms_eval_scienceqa(response), got, "{response:?}");
        }
    }

    /// Cases worked through lmms-eval's `_extract_answer_letter`.
    #[test]
    fn lmms_eval_blink_rule() {
        for (response, got) in [("(B) the second image", "B"), (" ( c", "C"), ("A.", "A"), ("The answer is B", "T"), ("1", ""), ("", ""), ("((\n d)", "D"), ("ſo", "S"), ("[B]", "")] {
            assert_eq!(lmms_eval_blink(response), got, "{response:?}");
        }
    }

    #[test]
    fn llava_rule() {
        assert!(correct("C", &opts(), 'C', Harness::Official));
        assert!(correct("C. root", &opts(), 'C', Harness::Official));
        assert!(correct("So. The answer is C.", &opts(), 'C', Harness::Official));
        assert!(!correct("E", &opts(), 'E', Harness::Official));
        assert!(!correct("root", &opts(), 'C', Harness::Official));
    }
}
