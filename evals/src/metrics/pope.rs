//! POPE (object hallucination, yes/no): which answer a response gives, and accuracy, precision,
//! recall, F1 and yes-ratio over a set, "yes" being the positive class.
//!
//! - lmms-eval (`tasks/pope/utils.py`): the answer is the whole cleaned response, lower-cased;
//!   only exactly `yes` or `no` count for precision and recall (anything else is wrong for
//!   accuracy and in no cell of the confusion matrix); its yes-ratio is that of the **gold**
//!   answers.
//! - VLMEvalKit (`YOrN_Extraction`, `POPE_rating`): lower-cased, its punctuation pass, split on
//!   whitespace; `yes` without `no` is Yes, `no` without `yes` is No, else Unknown, which counts
//!   as a No for precision and recall. It reports no yes-ratio; ours is that of its predictions.
//! - The POPE authors (`evaluate.py`, as LLaVA's `eval_pope.py`): the first sentence (up to the
//!   first `.`), commas removed, split on spaces; `No`, `no` or `not` among the words is no,
//!   anything else yes; yes-ratio of the predictions.

use super::vqa::{process_punctuation, Normaliser};
use super::{lmms_eval_clean, Harness};

/// The answer a harness reads in a response: `yes`, `no`, or (lmms-eval) the cleaned response,
/// (VLMEvalKit) `unknown`.
pub fn extract(response: &str, harness: Harness) -> String {
    match harness {
        Harness::LmmsEval => lmms_eval_clean(response).to_lowercase(),
        Harness::VlmEvalKit => {
            let lower = response.to_lowercase();
            let text = process_punctuation(&lower, Normaliser::VlmEvalKit);
            let words: Vec<&str> = text.split_whitespace().collect();
            match (words.contains(&"yes"), words.contains(&"no")) {
                (true, false) => "yes".into(),
                (false, true) => "no".into(),
                _ => "unknown".into(),
            }
        }
        Harness::Official => {
            let first = response.split('.').next().unwrap_or_default().replace(',', "");
            let no = first.split(' ').any(|w| matches!(w, "No" | "no" | "not"));
            if no { "no" } else { "yes" }.into()
        }
    }
}

/// Whether the extracted answer is the gold one (`yes`/`no`, any case).
pub fn correct(extracted: &str, gold: &str) -> bool {
    extracted == gold.trim().to_lowercase()
}

/// The set's scores, each 0..=1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub accuracy: f64,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub yes_ratio: f64,
}

impl Summary {
    /// Over `(gold, extracted)` pairs under a harness's rules (see the module docs).
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, harness: Harness) -> Summary {
        let (mut tp, mut fp, mut fn_, mut right, mut n, mut gold_yes, mut pred_yes) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
        for (gold, pred) in pairs {
            let gold = gold.trim().to_lowercase();
            let (g, p) = (gold == "yes", pred == "yes");
            // lmms-eval counts a miss only when the answer is exactly "no".
            let negative = if harness == Harness::LmmsEval { pred == "no" } else { !p };
            n += 1;
            right += usize::from(correct(pred, &gold));
            gold_yes += usize::from(g);
            pred_yes += usize::from(p);
            tp += usize::from(g && p);
            fp += usize::from(!g && p);
            fn_ += usize::from(g && negative);
        }
        let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let (precision, recall) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
        let f1 = if precision + recall > 0.0 { 2.0 * precision * recall / (precision + recall) } else { 0.0 };
        let yes_ratio = ratio(if harness == Harness::LmmsEval { gold_yes } else { pred_yes }, n);
        Summary { accuracy: ratio(right, n), precision, recall, f1, yes_ratio }
    }

    /// Name and value ×100, in the order tables show them.
    pub fn named(&self) -> [(&'static str, f64); 5] {
        [
            ("accuracy", 100.0 * self.accuracy),
            ("precision", 100.0 * self.precision),
            ("recall", 100.0 * self.recall),
            ("f1", 100.0 * self.f1),
            ("yes_ratio", 100.0 * self.yes_ratio),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_harness_reads_yes_and_no_its_own_way() {
        let cases = [
            // response, lmms-eval, VLMEvalKit, POPE's evaluate.py
            ("Yes", "yes", "yes", "yes"),
            (" No\n", "no", "no", "yes"), // split on spaces only: "No\n" is not "No"
            ("Yes.", "yes.", "yes", "yes"),
            ("No, there is not.", "no, there is not.", "no", "no"),
            ("Yes, no doubt.", "yes, no doubt.", "unknown", "no"),
            ("There is not a dog. Yes.", "there is not a dog. yes.", "yes", "no"),
            ("I see a dog", "i see a dog", "unknown", "yes"),
            ("NO", "no", "no", "yes"),
            ("<think>maybe no</think>yes", "yes", "unknown", "yes"),
            ("yes/no", "yes/no", "unknown", "yes"),
        ];
        for (response, lmms, vlm, official) in cases {
            assert_eq!(extract(response, Harness::LmmsEval), lmms, "{response:?}");
            assert_eq!(extract(response, Harness::VlmEvalKit), vlm, "{response:?}");
            assert_eq!(extract(response, Harness::Official), official, "{response:?}");
        }
    }

    #[test]
    fn summaries_follow_each_harness() {
        // gold, lmms-eval extraction: TP, FP, a "yes." that is no cell, a TN, an FN.
        let pairs = [("yes", "yes"), ("no", "yes"), ("yes", "yes."), ("no", "no"), ("yes", "no")];
        let s = Summary::new(pairs, Harness::LmmsEval);
        assert_eq!((s.accuracy, s.precision, s.recall), (0.4, 0.5, 0.5));
        assert!((s.f1 - 0.5).abs() < 1e-12 && (s.yes_ratio - 0.6).abs() < 1e-12, "gold yes-ratio: {s:?}");
        // VLMEvalKit: an Unknown for a gold Yes is a false negative.
        let pairs = [("Yes", "yes"), ("No", "yes"), ("Yes", "unknown"), ("No", "no"), ("Yes", "no")];
        let s = Summary::new(pairs, Harness::VlmEvalKit);
        assert_eq!((s.accuracy, s.precision), (0.4, 0.5));
        assert!((s.recall - 1.0 / 3.0).abs() < 1e-12 && (s.f1 - 0.4).abs() < 1e-12 && (s.yes_ratio - 0.4).abs() < 1e-12, "{s:?}");
        // POPE's own: yes-ratio of the predictions; nothing predicted yes gives 0, not a division by zero.
        let s = Summary::new([("yes", "no"), ("no", "no")], Harness::Official);
        assert_eq!((s.accuracy, s.precision, s.recall, s.f1, s.yes_ratio), (0.5, 0.0, 0.0, 0.0, 0.0));
    }
}
