//! ChartQA relaxed accuracy: numbers within 5 % of the gold value, anything else by
//! case-insensitive string equality (pix2struct's `relaxed_correctness`, which lmms-eval and
//! VLMEvalKit copy).

use super::pyfloat::py_float;
use super::{lmms_eval_clean, Harness};

/// A trailing `%` (any number of them) means "divide by 100".
fn to_float(text: &str) -> Option<f64> {
    match text.strip_suffix('%') {
        Some(_) => py_float(text.trim_end_matches('%')).map(|v| v / 100.0),
        None => py_float(text),
    }
}

/// One prediction against one gold answer, as pix2struct decides it: the 5 % test in f64 when
/// both parse and the target is non-zero (NaN counts as non-zero and never matches), else
/// `lower() ==`.
pub fn relaxed_correct(prediction: &str, target: &str) -> bool {
    match (to_float(prediction), to_float(target)) {
        (Some(p), Some(t)) if t != 0.0 => (p - t).abs() / t.abs() <= 0.05,
        _ => prediction.to_lowercase() == target.to_lowercase(),
    }
}

/// The score (0 or 1) of a raw model response against the gold answers (best over them).
/// lmms-eval cleans and strips the response first, VLMEvalKit strips it, pix2struct does not.
pub fn score(response: &str, targets: &[String], harness: Harness) -> f64 {
    let prediction = match harness {
        Harness::LmmsEval => lmms_eval_clean(response),
        Harness::VlmEvalKit => response.trim().to_string(),
        Harness::Official => response.to_string(),
    };
    let hit = targets.iter().any(|t| relaxed_correct(&prediction, t));
    if hit {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_vectors_of_the_reference_scorer() {
        let cases = [
            ("62%", "62", false),
            ("0.62", "62%", true),
            ("12.5", "12", true),
            ("12.7", "12", false),
            ("1,234", "1234", false),
            ("0.0", "0", false),
            ("Yes", "yes", true),
            ("1e3", "1000", true),
            ("1_000", "1000", true),
            (" 12 ", "12", true),
            ("nan", "5", false),
            // The 5 % bound in IEEE doubles.
            ("1.05", "1", false),
            ("0.63", "0.6", false),
            ("0.19", "0.2", false),
            ("105", "100", true),
            ("0.21", "0.2", true),
            ("nan", "nan", false),
            ("inf", "inf", false),
        ];
        for (p, t, want) in cases {
            assert_eq!(relaxed_correct(p, t), want, "{p:?} vs {t:?}");
        }
    }

    #[test]
    fn numbers_in_any_decimal_digits_are_numbers() {
        // Python's float() reads Arabic-Indic, Persian, Devanagari and full-width digits, on
        // either side (pix2struct's `_to_float`); a non-ASCII separator makes it text again.
        for (prediction, target) in [("١٢٣", "123"), ("120", "١٢٣"), ("١٠٠%", "1"), ("１２.５", "12.4"), ("۴۲", "4۲")] {
            assert!(relaxed_correct(prediction, target), "{prediction:?} vs {target:?}");
        }
        assert!(!relaxed_correct("١٣٠", "123"));
        assert!(!relaxed_correct("1٬000", "1000"), "U+066C is not a digit: compared as text");
        assert!(relaxed_correct("1٬000", "1٬000"));
    }

    #[test]
    fn harnesses_differ_in_stripping() {
        let gold = vec!["Blue".to_string()];
        assert_eq!(score("blue ", &gold, Harness::LmmsEval), 1.0);
        assert_eq!(score("blue ", &gold, Harness::VlmEvalKit), 1.0);
        assert_eq!(score("blue ", &gold, Harness::Official), 0.0);
        assert_eq!(score("<think>maybe red</think>blue", &gold, Harness::LmmsEval), 1.0);
        let several = vec!["10".to_string(), "ten".to_string()];
        assert_eq!(score("Ten", &several, Harness::Official), 1.0);
    }
}
