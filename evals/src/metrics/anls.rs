//! ANLS (DocVQA / InfoVQA): 1 − normalised Levenshtein distance, best over the gold answers,
//! zeroed below the 0.5 threshold.

use super::Harness;

/// Unit-cost edit distance over chars.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// lmms-eval / VLMEvalKit normalisation: strip, lower-case, collapse whitespace runs.
fn collapse(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Normalised distance of one pair under a harness's rules.
fn distance(gt: &str, pred: &str, harness: Harness) -> f64 {
    let (a, b, len) = match harness {
        // Distance on normalised strings, length of the *raw* strings upper-cased (sic).
        Harness::LmmsEval | Harness::VlmEvalKit => {
            let len = gt.to_uppercase().chars().count().max(pred.to_uppercase().chars().count());
            (collapse(gt), collapse(pred), len)
        }
        // pix2struct: lower-case only, lengths of the lowered strings.
        Harness::Official => {
            let (a, b) = (gt.to_lowercase(), pred.to_lowercase());
            let len = a.chars().count().max(b.chars().count());
            (a, b, len)
        }
    };
    if len == 0 {
        return 0.0;
    }
    levenshtein(&a, &b) as f64 / len as f64
}

/// ANLS of one response against its gold answers (0..=1). lmms-eval strips the response first.
pub fn score(response: &str, answers: &[String], harness: Harness) -> f64 {
    let pred = match harness {
        Harness::LmmsEval => super::lmms_eval_clean(response),
        _ => response.to_string(),
    };
    let best = answers.iter().map(|gt| distance(gt, &pred, harness)).fold(f64::INFINITY, f64::min);
    match harness {
        // Kept when 1 − NL ≥ 0.5.
        Harness::LmmsEval | Harness::VlmEvalKit => {
            let s = 1.0 - best;
            if s < 0.5 {
                0.0
            } else {
                s
            }
        }
        // pix2struct keeps 1 − NL only when NL < 0.5.
        Harness::Official => {
            if best < 0.5 {
                1.0 - best
            } else {
                0.0
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn edit_distance() {
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("ß", "ss"), 2);
    }

    #[test]
    fn scores_and_thresholds() {
        assert_eq!(score("Invoice", &s(&["invoice"]), Harness::LmmsEval), 1.0);
        assert!((score("invoise", &s(&["invoice"]), Harness::LmmsEval) - (1.0 - 1.0 / 7.0)).abs() < 1e-12);
        // Exactly 0.5: kept by lmms-eval/VLMEvalKit, dropped by pix2struct.
        assert_eq!(score("ab", &s(&["ac"]), Harness::LmmsEval), 0.5);
        assert_eq!(score("ab", &s(&["ac"]), Harness::Official), 0.0);
        assert_eq!(score("xyz", &s(&["abc"]), Harness::LmmsEval), 0.0);
        // Best over answers; empty vs empty is a perfect match.
        assert_eq!(score("12", &s(&["twelve", "12"]), Harness::VlmEvalKit), 1.0);
        assert_eq!(score("", &s(&[""]), Harness::VlmEvalKit), 1.0);
    }

    #[test]
    fn raw_lengths_are_the_denominator() {
        // VLMEvalKit does not strip the prediction: the trailing newline lengthens the
        // denominator (8) while the distance is taken on normalised strings (1).
        let got = score("invoise\n", &s(&["invoice"]), Harness::VlmEvalKit);
        assert!((got - (1.0 - 1.0 / 8.0)).abs() < 1e-12, "{got}");
        // "ß" upper-cases to "SS": the denominator grows by one.
        let got = score("straße", &s(&["strasse"]), Harness::LmmsEval);
        assert!((got - (1.0 - 2.0 / 7.0)).abs() < 1e-12, "{got}");
    }
}
