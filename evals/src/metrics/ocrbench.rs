//! OCRBench (v1): a gold answer must be a substring of the prediction. Handwritten mathematical
//! expressions (HME100k) compare case-sensitively with all spaces removed; everything else
//! lower-cased. The final score counts correct answers out of 1 000.

use std::collections::BTreeMap;

use super::Harness;

/// The HME category, scored with the formula rule.
pub const HME: &str = "Handwritten Mathematical Expression Recognition";

/// The six categories summed into "Text Recognition".
pub const TEXT_RECOGNITION: [&str; 6] = [
    "Regular Text Recognition",
    "Irregular Text Recognition",
    "Artistic Text Recognition",
    "Handwriting Recognition",
    "Digit String Recognition",
    "Non-Semantic Text Recognition",
];

/// lmms-eval (since 2026-07) folds full-width ASCII to ASCII outside the HME rule.
fn fold_full_width(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect()
}

/// Whether a prediction answers the question (any gold answer is a substring of it).
pub fn correct(prediction: &str, answers: &[String], hme: bool, harness: Harness) -> bool {
    let norm = |s: &str| -> String {
        if hme {
            s.trim().replace('\n', " ").replace(' ', "")
        } else {
            let s = s.to_lowercase().trim().replace('\n', " ");
            if harness == Harness::LmmsEval {
                fold_full_width(&s)
            } else {
                s
            }
        }
    };
    let pred = norm(prediction);
    answers.iter().any(|a| pred.contains(&norm(a)))
}

/// Correct answers per category, the Text Recognition subtotal and the final score.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Summary {
    pub per_category: BTreeMap<String, usize>,
    pub text_recognition: usize,
    /// Out of 1 000 on the full benchmark.
    pub final_score: usize,
}

impl Summary {
    /// `(category, correct)` per scored question.
    pub fn new<'a>(results: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let mut s = Summary::default();
        for (category, ok) in results {
            *s.per_category.entry(category.to_string()).or_default() += usize::from(ok);
        }
        s.text_recognition = TEXT_RECOGNITION.iter().map(|c| s.per_category.get(*c).copied().unwrap_or(0)).sum();
        s.final_score = s.per_category.values().sum();
        s
    }

    /// VLMEvalKit's "Final Score Norm": the final score as a percentage of 1 000.
    pub fn final_norm(&self) -> f64 {
        self.final_score as f64 / 10.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn substring_rules() {
        assert!(correct("The sign says STOP here", &s(&["stop"]), false, Harness::Official));
        assert!(!correct("The sign says ST OP", &s(&["stop"]), false, Harness::Official));
        assert!(correct("line one\nline two", &s(&["one line"]), false, Harness::Official));
        // HME: case-sensitive, spaces removed on both sides.
        assert!(correct("x ^ { 2 } + 1", &s(&["x^{2}+1"]), true, Harness::Official));
        assert!(!correct("X^{2}+1", &s(&["x^{2}+1"]), true, Harness::Official));
        // Full-width folding only in lmms-eval.
        assert!(correct("ＡＢＣ１２３", &s(&["abc123"]), false, Harness::LmmsEval));
        assert!(!correct("ＡＢＣ１２３", &s(&["abc123"]), false, Harness::VlmEvalKit));
    }

    #[test]
    fn summary_totals() {
        let results = [("Regular Text Recognition", true), ("Digit String Recognition", true), (HME, true), ("Doc-oriented VQA", false)];
        let s = Summary::new(results);
        assert_eq!((s.text_recognition, s.final_score), (2, 3));
        assert_eq!(s.per_category["Doc-oriented VQA"], 0);
        assert!((s.final_norm() - 0.3).abs() < 1e-12);
    }
}
