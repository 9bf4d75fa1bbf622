//! MathVista's scoring (the benchmark's `extract_answer`, `normalize_extracted_answer` and
//! `safe_equal`, as lmms-eval's `mathvista_evals.py` has them) without the judge model: the
//! rule-based extraction (a response that is a choice's text, an integer or a float; with
//! `quick_extract`, `The answer is "…".`), then normalisation to the answer's type and a string
//! comparison with the gold answer. Where the rules extract nothing, the harnesses ask a judge
//! model ([`judge_prompt`]); without one, that answer counts as not extracted.

use super::pyfloat::py_float;

/// What a problem's answer is.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem<'a> {
    /// Choice texts of a `multi_choice` question; empty for `free_form`.
    pub choices: &'a [String],
    /// `text`, `integer`, `float` or `list`.
    pub answer_type: &'a str,
    /// Decimal places of a float answer.
    pub precision: Option<u32>,
}

impl Problem<'_> {
    fn multi_choice(&self) -> bool {
        !self.choices.is_empty()
    }
}

/// `extract_answer` without the judge: the response itself when it is one of the choices, an
/// integer (Python `int()`) or a float (Python `str(float())`); with `quick_extract`, the text of
/// `The answer is "…".`; else nothing.
pub fn extract(response: &str, problem: &Problem, quick_extract: bool) -> String {
    if response.is_empty() {
        return String::new();
    }
    if problem.multi_choice() && problem.choices.iter().any(|c| c == response) {
        return response.to_string();
    }
    if problem.answer_type == "integer" {
        if let Some(i) = py_int(response) {
            return i.to_string();
        }
    }
    if problem.answer_type == "float" {
        if let Some(x) = py_float(response) {
            return py_repr(x);
        }
    }
    if quick_extract {
        // re.search(r'The answer is "(.*)"\.', response): greedy, within one line.
        for line in response.split('\n') {
            if let Some(start) = line.find("The answer is \"") {
                let rest = &line[start + 15..];
                if let Some(end) = rest.rfind("\".") {
                    return rest[..end].to_string();
                }
            }
        }
    }
    String::new()
}

/// The few-shot extraction prompt MathVista (and lmms-eval after it) sends its judge, in the
/// harness's own words: five worked examples, then the problem's `query`, the response and
/// `Extracted answer: `.
const DEMO_PROMPT: &str = r#"Please read the following example. Then extract the answer from the model response and type it at the end of the prompt.

Hint: Please answer the question requiring an integer answer and provide the final value, e.g., 1, 2, 3, at the end.
Question: Which number is missing?

Model response: The number missing in the sequence is 14.

Extracted answer: 14

Hint: Please answer the question requiring a floating-point number with one decimal place and provide the final value, e.g., 1.2, 1.3, 1.4, at the end.
Question: What is the fraction of females facing the camera?

Model response: The fraction of females facing the camera is 0.6, which means that six out of ten females in the group are facing the camera.

Extracted answer: 0.6

Hint: Please answer the question requiring a floating-point number with two decimal places and provide the final value, e.g., 1.23, 1.34, 1.45, at the end.
Question: How much money does Luca need to buy a sour apple candy and a butterscotch candy? (Unit: $)

Model response: Luca needs $1.45 to buy a sour apple candy and a butterscotch candy.

Extracted answer: 1.45

Hint: Please answer the question requiring a Python list as an answer and provide the final list, e.g., [1, 2, 3], [1.2, 1.3, 1.4], at the end.
Question: Between which two years does the line  graph saw its maximum peak?

Model response: The line graph saw its maximum peak between 2007 and 2008.

Extracted answer: [2007, 2008]

Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.
Question: What fraction of the shape is blue?
Choices:
(A) 3/11
(B) 8/11
(C) 6/11
(D) 3/5

Model response: The correct answer is (B) 8/11.

Extracted answer: B"#;

/// `create_test_prompt`: the demo, then `{query}\n\n{response}`, then `Extracted answer: `.
pub fn judge_prompt(query: &str, response: &str) -> String {
    format!("{DEMO_PROMPT}\n\n{query}\n\n{response}\n\nExtracted answer: ")
}

/// `normalize_extracted_answer`: a choice's text for multiple-choice questions (the letter in
/// `(X)`, or a bare letter, picks it; anything else the choice nearest in Levenshtein distance,
/// so an empty extraction picks the shortest choice); `str(int(float(x)))` for integers;
/// `str(round(float(x), precision))` for floats; the text for lists. `None` where Python raises.
pub fn normalise(extraction: &str, problem: &Problem) -> Option<String> {
    if problem.multi_choice() {
        let mut e = extraction.trim().to_string();
        if let Some(letter) = bracketed_letter(&e) {
            e = letter.to_string();
        }
        let letters: Vec<String> = (0..problem.choices.len()).map(|i| ((b'A' + i as u8) as char).to_string()).collect();
        if let Some(i) = letters.iter().position(|l| *l == e) {
            return Some(problem.choices[i].clone());
        }
        let distances: Vec<usize> = problem.choices.iter().map(|c| strsim::levenshtein(&e, c)).collect();
        let best = distances.iter().enumerate().min_by_key(|(i, d)| (**d, *i)).map(|(i, _)| i)?;
        return Some(problem.choices[best].clone());
    }
    match problem.answer_type {
        "integer" => py_float(extraction).filter(|x| x.is_finite()).map(|x| (x.trunc() as i128).to_string()),
        "float" => {
            let x = py_float(extraction)?;
            let places = problem.precision.unwrap_or(0);
            Some(py_repr(format!("{x:.*}", places as usize).parse().ok()?))
        }
        _ => Some(extraction.to_string()),
    }
}

/// `safe_equal`: the stripped texts are equal (`None` reads as "None").
pub fn correct(prediction: Option<&str>, answer: &str) -> bool {
    prediction.unwrap_or("None").trim() == answer.trim()
}

/// The first `(X)` with X an ASCII letter, upper-cased (`re.findall(r"\(([a-zA-Z])\)")`).
fn bracketed_letter(text: &str) -> Option<char> {
    let b = text.as_bytes();
    (0..b.len().saturating_sub(2)).find(|&i| b[i] == b'(' && b[i + 1].is_ascii_alphabetic() && b[i + 2] == b')').map(|i| (b[i + 1] as char).to_ascii_uppercase())
}

/// Python's `int(str)` for decimal text: surrounding whitespace, a sign, digits (any Unicode
/// decimal digit) with single underscores between them.
fn py_int(text: &str) -> Option<i128> {
    let t = text.trim();
    let (negative, digits) = match t.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty() || digits.starts_with('_') || digits.ends_with('_') || digits.contains("__") {
        return None;
    }
    let mut value: i128 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = super::pyfloat::decimal_digit(c)?;
        value = value.checked_mul(10)?.checked_add(i128::from(d))?;
    }
    Some(if negative { -value } else { value })
}

/// Python's `repr(float)`: the shortest round-tripping digits, `.0` on whole numbers,
/// scientific notation below 1e-4 and from 1e16.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0".into() } else { "0.0".into() };
    }
    let sci = format!("{x:e}"); // shortest digits: "-1.2345e-5"
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("a number");
    let (sign, mantissa) = mantissa.strip_prefix('-').map_or(("", mantissa), |m| ("-", m));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!("{}.{}", &digits[..point as usize], &digits[point as usize..])
        };
        format!("{sign}{body}")
    } else {
        let rest = if digits.len() > 1 { format!(".{}", &digits[1..]) } else { String::new() };
        format!("{sign}{}{rest}e{}{:02}", &digits[..1], if exp < 0 { '-' } else { '+' }, exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_judge_prompt_ends_with_the_problem() {
        let p = judge_prompt("Question: How many?", "There are 3.");
        assert!(p.starts_with("Please read the following example."));
        assert!(p.contains("Extracted answer: B\n\nQuestion: How many?\n\nThere are 3.\n\nExtracted answer: "), "{p}");
        // The harness's `\n` escapes in its last example are line breaks.
        assert!(p.contains("blue?\nChoices:\n(A) 3/11\n(B) 8/11"));
    }

    #[test]
    fn python_float_repr() {
        for (x, want) in [(1.5, "1.5"), (2.0, "2.0"), (1e-5, "1e-05"), (0.0001, "0.0001"), (1e16, "1e+16"), (123456789.0, "123456789.0"), (-0.25, "-0.25"), (1.23e-7, "1.23e-07")] {
            assert_eq!(py_repr(x), want, "{x}");
        }
    }

    /// Cases worked through MathVista's functions (`extract_answer` with no judge,
    /// `normalize_extracted_answer`, `safe_equal`).
    #[test]
    fn extraction_and_normalisation() {
        let choices: Vec<String> = ["3/11", "8/11", "6/11", "3/5"].iter().map(|s| s.to_string()).collect();
        let mc = Problem { choices: &choices, answer_type: "text", precision: None };
        assert_eq!(extract("8/11", &mc, false), "8/11");
        assert_eq!(extract("The correct answer is (B) 8/11.", &mc, false), "", "only the judge reads that");
        assert_eq!(normalise("(b) 8/11", &mc).as_deref(), Some("8/11"));
        assert_eq!(normalise("C", &mc).as_deref(), Some("6/11"));
        assert_eq!(normalise("", &mc).as_deref(), Some("3/5"), "nearest to nothing: the shortest choice");
        let int = Problem { choices: &[], answer_type: "integer", precision: None };
        assert_eq!(extract(" 14 ", &int, false), "14");
        assert_eq!(extract("14.0", &int, false), "", "int() refuses a point");
        assert_eq!(normalise("14.7", &int).as_deref(), Some("14"));
        assert_eq!(normalise("fourteen", &int), None);
        assert!(correct(normalise("14", &int).as_deref(), "14"));
        assert!(!correct(normalise("x", &int).as_deref(), "14"));
        let float = Problem { choices: &[], answer_type: "float", precision: Some(1) };
        assert_eq!(extract("0.60", &float, false), "0.6");
        assert_eq!(normalise("0.66", &float).as_deref(), Some("0.7"));
        assert_eq!(normalise("2", &float).as_deref(), Some("2.0"));
        assert_eq!(extract("I think The answer is \"[1, 2]\".", &Problem { choices: &[], answer_type: "list", precision: None }, true), "[1, 2]");
    }
}
