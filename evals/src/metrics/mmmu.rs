//! MMMU's rule-based answer parsing (the benchmark's `eval_utils.py`, copied into lmms-eval's
//! `tasks/mmmu/utils.py`): an option letter out of a multiple-choice response, candidate strings
//! and numbers out of an open one, and whether they match the gold answer.

use std::sync::OnceLock;

use fancy_regex::Regex;

use super::pyfloat::py_float;

/// `parse_multi_choice_response`: the option a response picks, or `None` where the harness
/// picks one at random (`random.choice`, unseeded: counted wrong here). Ends stripped of
/// `, . ! ? ; : '` (each in turn), then: a `(X)`; else an `X ` (after padding with spaces); else
/// an `X.`; else, for responses of more than five words, an option's text. Several candidates:
/// the one found last in the response.
pub fn parse_multi_choice(response: &str, options: &[String]) -> Option<char> {
    let mut text = response;
    for c in [',', '.', '!', '?', ';', ':', '\''] {
        text = text.trim_matches(c);
    }
    let padded = format!(" {text} ");
    let letters: Vec<char> = (0..options.len()).map(|i| (b'A' + i as u8) as char).collect();
    let found = |form: &dyn Fn(char) -> String| -> Vec<char> { letters.iter().copied().filter(|&l| padded.contains(&form(l))).collect() };
    let bracketed = found(&|l| format!("({l})"));
    let mut candidates = bracketed.clone();
    if candidates.is_empty() {
        candidates = found(&|l| format!("{l} "));
    }
    if candidates.is_empty() {
        candidates = found(&|l| format!("{l}."));
    }
    let lower = padded.to_lowercase();
    let by_text = candidates.is_empty() && padded.split_whitespace().count() > 5;
    if by_text {
        candidates = letters.iter().zip(options).filter(|(_, o)| lower.contains(&o.to_lowercase())).map(|(l, _)| *l).collect();
    }
    match candidates.len() {
        0 => None,
        1 => Some(candidates[0]),
        _ => {
            // Python's `rfind` (-1 when absent) and `np.argmax` (first of equal maxima).
            let position = |l: char| -> i64 {
                let found = if by_text {
                    lower.rfind(&options[(l as u8 - b'A') as usize].to_lowercase())
                } else if !bracketed.is_empty() {
                    padded.rfind(&format!("({l})"))
                } else {
                    padded.rfind(&format!(" {l} "))
                };
                found.map_or(-1, |p| p as i64)
            };
            let mut best = candidates[0];
            for &c in &candidates[1..] {
                if position(c) > position(best) {
                    best = c;
                }
            }
            Some(best)
        }
    }
}

/// A normalised answer: a number rounded to two decimals, or lower-cased text.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    Number(f64),
    Text(String),
}

/// `normalize_str`: stripped; a number (Python `float()` after removing commas) rounded to two
/// decimals; else lower-cased text, a single character padded on either side (" a", "a ").
pub fn normalise(text: &str) -> Vec<Norm> {
    let text = text.trim();
    if let Some(x) = py_float(&text.replace(',', "")) {
        // Python's round(x, 2): correctly rounded, as Rust's formatting is.
        return vec![Norm::Number(format!("{x:.2}").parse().unwrap_or(x))];
    }
    let lower = text.to_lowercase();
    if lower.chars().count() == 1 {
        return vec![Norm::Text(format!(" {lower}")), Norm::Text(format!("{lower} "))];
    }
    vec![Norm::Text(lower)]
}

fn number_patterns() -> &'static [Regex; 3] {
    static PATTERNS: OnceLock<[Regex; 3]> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        [r"-?\b\d{1,3}(?:,\d{3})+\b", r"-?\d+(?:\.\d+)?[eE][+-]?\d+", r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])"]
            .map(|p| Regex::new(p).expect("the patterns are valid"))
    })
}

/// `extract_numbers`: numbers with thousands commas, then in scientific notation, then plain.
fn extract_numbers(text: &str) -> Vec<String> {
    number_patterns().iter().flat_map(|re| re.find_iter(text).filter_map(Result::ok).map(|m| m.as_str().to_string()).collect::<Vec<_>>()).collect()
}

/// `parse_open_response`: per line of the stripped, lower-cased response, the shortest tail
/// after an indicator ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ",
/// "result ", and "=" on the last line), or the whole response when no line has one; plus the
/// numbers in those; all normalised.
pub fn parse_open(response: &str) -> Vec<Norm> {
    let lower = response.trim().trim_matches('.').to_lowercase();
    // `re.split(r"\.\s(?=[A-Z])|\n", …)` on lower-cased text: only the newlines split.
    let lines: Vec<&str> = lower.split('\n').collect();
    let mut indicators = vec!["could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result "];
    let mut keys: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if i + 1 == lines.len() {
            indicators.push("=");
        }
        let mut shortest = String::new();
        for ind in &indicators {
            if line.contains(ind) {
                let tail = line.rsplit(ind).next().unwrap_or_default().trim().to_string();
                if shortest.is_empty() || tail.chars().count() < shortest.chars().count() {
                    shortest = tail;
                }
            }
        }
        if !shortest.is_empty() && ![":", ",", ".", "!", "?", ";", "'"].contains(&shortest.trim()) {
            keys.push(shortest);
        }
    }
    if keys.is_empty() {
        keys.push(lower.clone());
    }
    let numbers: Vec<String> = keys.iter().flat_map(|k| extract_numbers(k)).collect();
    let mut out: Vec<Norm> = Vec::new();
    for n in keys.iter().chain(&numbers).flat_map(|s| normalise(s)) {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// `eval_open`: a gold text (normalised) contained in a predicted text, or a gold number equal
/// to a predicted number.
pub fn open_correct(gold: &str, predictions: &[Norm]) -> bool {
    let golds = normalise(gold);
    predictions.iter().any(|p| match p {
        Norm::Text(t) => golds.iter().any(|g| matches!(g, Norm::Text(g) if t.contains(g.as_str()))),
        Norm::Number(x) => golds.iter().any(|g| matches!(g, Norm::Number(y) if x == y)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Vec<String> {
        ["red blood cell", "nerve cell", "skin cell", "bone cell"].iter().map(|s| s.to_string()).collect()
    }

    /// Cases worked through MMMU's `parse_multi_choice_response` (as lmms-eval has it).
    #[test]
    fn multiple_choice_parsing() {
        let o = opts();
        for (response, want) in [
            ("B", Some('B')),
            ("(C)", Some('C')),
            ("B.", Some('B')),
            ("The answer is (A), not (D).", Some('D')), // both bracketed: the last one
            ("A or D", Some('D')),
            ("I think C.", Some('C')),
            ("It shows a nerve cell with long axons here", Some('B')),
            ("nerve cell", None), // five words or fewer: text is not matched; lmms-eval picks at random
            ("", None),
            ("'D'", Some('D')),
            ("E", None), // not an option letter
        ] {
            assert_eq!(parse_multi_choice(response, &o), want, "{response:?}");
        }
    }

    /// Cases worked through `parse_open_response`, `normalize_str` and `eval_open`.
    #[test]
    fn open_parsing() {
        assert_eq!(normalise(" 1,234.567 "), [Norm::Number(1234.57)]);
        assert_eq!(normalise("X"), [Norm::Text(" x".into()), Norm::Text("x ".into())]);
        assert_eq!(normalise("Paris"), [Norm::Text("paris".into())]);
        let p = parse_open("The total is 1,500 dollars.\nSo the answer is 1500");
        assert!(p.contains(&Norm::Number(1500.0)) && p.contains(&Norm::Text("1,500 dollars.".into())), "{p:?}");
        assert!(p.contains(&Norm::Number(500.0)), "the plain pattern finds 500 in 1,500: {p:?}");
        assert!(open_correct("1500", &p));
        assert!(open_correct("1,500", &p));
        assert!(!open_correct("15", &p));
        // Scientific notation, and "=" on the last line only.
        let p = parse_open("x = 3e-2");
        assert!(p.contains(&Norm::Number(0.03)), "{p:?}");
        // Text answers: the gold contained in a predicted tail.
        let p = parse_open("Therefore the capital is Paris, France.");
        assert!(open_correct("paris", &p) && !open_correct("lyon", &p), "{p:?}");
        // No indicator: the whole response.
        assert_eq!(parse_open("Blue."), [Norm::Text("blue".into())]);
    }
}
