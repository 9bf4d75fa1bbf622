//! VQA accuracy (TextVQA, VQAv2): the prediction against 10 human answers, averaged over the
//! 10 leave-one-out subsets of 9 (min(1, matches / 3) each), after the VQA answer normalisation.
//! The normalisation comes in four variants (see [`Normaliser`]).

use super::pyfloat::decimal_digit;
use super::{lmms_eval_clean, Harness};

/// Punctuation handled by the VQA tool (no apostrophe, colon, `$`, `%`, `&`, `#`, `*`; the
/// period is handled separately).
const PUNCT: [char; 21] = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'];

const NUMBERS: [(&str, &str); 12] = [
    ("none", "0"), ("zero", "0"), ("one", "1"), ("two", "2"), ("three", "3"), ("four", "4"),
    ("five", "5"), ("six", "6"), ("seven", "7"), ("eight", "8"), ("nine", "9"), ("ten", "10"),
];

const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// The VQA tool's contractions table (keys with capitals never match lower-cased text; kept as
/// published).
const CONTRACTIONS: &[(&str, &str)] = &[
    ("aint", "ain't"), ("arent", "aren't"), ("cant", "can't"), ("couldve", "could've"), ("couldnt", "couldn't"),
    ("couldn'tve", "couldn't've"), ("couldnt've", "couldn't've"), ("didnt", "didn't"), ("doesnt", "doesn't"),
    ("dont", "don't"), ("hadnt", "hadn't"), ("hadnt've", "hadn't've"), ("hadn'tve", "hadn't've"), ("hasnt", "hasn't"),
    ("havent", "haven't"), ("hed", "he'd"), ("hed've", "he'd've"), ("he'dve", "he'd've"), ("hes", "he's"),
    ("howd", "how'd"), ("howll", "how'll"), ("hows", "how's"), ("Id've", "I'd've"), ("I'dve", "I'd've"), ("Im", "I'm"),
    ("Ive", "I've"), ("isnt", "isn't"), ("itd", "it'd"), ("itd've", "it'd've"), ("it'dve", "it'd've"), ("itll", "it'll"),
    ("let's", "let's"), ("maam", "ma'am"), ("mightnt", "mightn't"), ("mightnt've", "mightn't've"),
    ("mightn'tve", "mightn't've"), ("mightve", "might've"), ("mustnt", "mustn't"), ("mustve", "must've"),
    ("neednt", "needn't"), ("notve", "not've"), ("oclock", "o'clock"), ("oughtnt", "oughtn't"),
    ("ow's'at", "'ow's'at"), ("'ows'at", "'ow's'at"), ("'ow'sat", "'ow's'at"), ("shant", "shan't"),
    ("shed've", "she'd've"), ("she'dve", "she'd've"), ("she's", "she's"), ("shouldve", "should've"),
    ("shouldnt", "shouldn't"), ("shouldnt've", "shouldn't've"), ("shouldn'tve", "shouldn't've"),
    ("somebody'd", "somebodyd"), ("somebodyd've", "somebody'd've"), ("somebody'dve", "somebody'd've"),
    ("somebodyll", "somebody'll"), ("somebodys", "somebody's"), ("someoned", "someone'd"),
    ("someoned've", "someone'd've"), ("someone'dve", "someone'd've"), ("someonell", "someone'll"),
    ("someones", "someone's"), ("somethingd", "something'd"), ("somethingd've", "something'd've"),
    ("something'dve", "something'd've"), ("somethingll", "something'll"), ("thats", "that's"),
    ("thered", "there'd"), ("thered've", "there'd've"), ("there'dve", "there'd've"), ("therere", "there're"),
    ("theres", "there's"), ("theyd", "they'd"), ("theyd've", "they'd've"), ("they'dve", "they'd've"),
    ("theyll", "they'll"), ("theyre", "they're"), ("theyve", "they've"), ("twas", "'twas"), ("wasnt", "wasn't"),
    ("wed've", "we'd've"), ("we'dve", "we'd've"), ("weve", "we've"), ("werent", "weren't"), ("whatll", "what'll"),
    ("whatre", "what're"), ("whats", "what's"), ("whatve", "what've"), ("whens", "when's"), ("whered", "where'd"),
    ("wheres", "where's"), ("whereve", "where've"), ("whod", "who'd"), ("whod've", "who'd've"),
    ("who'dve", "who'd've"), ("wholl", "who'll"), ("whos", "who's"), ("whove", "who've"), ("whyll", "why'll"),
    ("whyre", "why're"), ("whys", "why's"), ("wont", "won't"), ("wouldve", "would've"), ("wouldnt", "wouldn't"),
    ("wouldnt've", "wouldn't've"), ("wouldn'tve", "wouldn't've"), ("yall", "y'all"), ("yall'll", "y'all'll"),
    ("y'allll", "y'all'll"), ("yall'd've", "y'all'd've"), ("y'alld've", "y'all'd've"), ("y'all'dve", "y'all'd've"),
    ("youd", "you'd"), ("youd've", "you'd've"), ("you'dve", "you'd've"), ("youll", "you'll"), ("youre", "you're"),
    ("youve", "you've"),
];

/// The answer-normalisation variants in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normaliser {
    /// EvalAI/MMF processor with word tokenisation (lmms-eval TextVQA, LLaVA).
    EvalAi,
    /// The same without word tokenisation (lmms-eval VQAv2).
    EvalAiNoTokenize,
    /// The official VQA tool (digit-comma-digit with exactly one comma).
    Official,
    /// VLMEvalKit (one-comma rule; a period is kept when either neighbour is a digit; at most
    /// 32 periods removed, as in the others).
    VlmEvalKit,
}

impl Normaliser {
    /// The normaliser a harness applies to TextVQA answers.
    pub fn for_harness(harness: Harness) -> Self {
        match harness {
            Harness::LmmsEval => Normaliser::EvalAi,
            Harness::VlmEvalKit => Normaliser::VlmEvalKit,
            Harness::Official => Normaliser::Official,
        }
    }
}

/// Python's `\d` on `str` patterns: a Unicode decimal digit (not `char::is_numeric`, which
/// also takes superscripts, fractions and Roman numerals).
fn is_digit(c: char) -> bool {
    decimal_digit(c).is_some()
}

/// Any `digit ,+ digit` (EvalAI) or `digit , digit` (one comma) in `s`.
fn has_digit_comma_digit(s: &str, many: bool) -> bool {
    let c: Vec<char> = s.chars().collect();
    (0..c.len()).any(|i| {
        if !is_digit(c[i]) {
            return false;
        }
        let mut j = i + 1;
        while j < c.len() && c[j] == ',' && (many || j == i + 1) {
            j += 1;
        }
        j > i + 1 && j < c.len() && is_digit(c[j])
    })
}

/// The VQA tool's punctuation pass in a harness's variant (VLMEvalKit's is also its
/// `process_punctuation` for yes/no answers).
pub(crate) fn process_punctuation(text: &str, n: Normaliser) -> String {
    let comma = has_digit_comma_digit(text, matches!(n, Normaliser::EvalAi | Normaliser::EvalAiNoTokenize));
    let mut out = text.to_string();
    for p in PUNCT {
        let spaced = text.contains(&format!("{p} ")) || text.contains(&format!(" {p}"));
        out = out.replace(p, if spaced || comma { "" } else { " " });
    }
    // Periods: EvalAI/official delete a '.' not followed by a digit, VLMEvalKit one with no
    // digit on either side (its look-behind sees the text before any deletion). Every one of
    // them passes `re.UNICODE` (32) as `sub`'s count: at most 32 periods go.
    let c: Vec<char> = out.chars().collect();
    let mut removed = 0;
    let mut kept = String::with_capacity(out.len());
    for (i, ch) in c.iter().enumerate() {
        let next_digit = c.get(i + 1).is_some_and(|&d| is_digit(d));
        let prev_digit = i > 0 && is_digit(c[i - 1]);
        let drop = *ch == '.'
            && removed < 32
            && match n {
                Normaliser::VlmEvalKit => !next_digit && !prev_digit,
                _ => !next_digit,
            };
        if drop {
            removed += 1;
        } else {
            kept.push(*ch);
        }
    }
    kept
}

/// Number words to digits, articles dropped, contractions restored.
fn process_digit_article(text: &str) -> String {
    let lookup = |table: &[(&str, &str)], w: String| table.iter().find(|(k, _)| *k == w).map_or(w, |(_, v)| v.to_string());
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| lookup(&NUMBERS, w.to_lowercase()))
        .filter(|w| !ARTICLES.contains(&w.as_str()))
        .map(|w| lookup(CONTRACTIONS, w))
        .collect();
    words.join(" ")
}

/// Normalises an answer (prediction or gold) with one of the variants.
pub fn normalise(answer: &str, n: Normaliser) -> String {
    let mut s = answer.to_string();
    if n == Normaliser::EvalAi {
        s = s.to_lowercase().replace([',', '?'], "").replace("'s", " 's").trim().to_string();
    }
    let s = s.replace(['\n', '\t'], " ").trim().to_string();
    process_digit_article(&process_punctuation(&s, n))
}

/// Mean over the leave-one-out subsets of min(1, matches / 3).
fn leave_one_out(pred: &str, answers: &[String]) -> f64 {
    if answers.is_empty() {
        return 0.0;
    }
    let total: f64 = (0..answers.len())
        .map(|i| {
            let matches = answers.iter().enumerate().filter(|(j, a)| *j != i && a.as_str() == pred).count();
            (matches as f64 / 3.0).min(1.0)
        })
        .sum();
    total / answers.len() as f64
}

/// The VQA accuracy of a response. lmms-eval (TextVQA rules) and VLMEvalKit normalise both
/// sides; the official tool normalises the prediction and only punctuation-processes the gold
/// answers, and only when they are not all identical.
pub fn score(response: &str, answers: &[String], harness: Harness) -> f64 {
    match harness {
        Harness::LmmsEval => {
            let n = Normaliser::for_harness(harness);
            let gold: Vec<String> = answers.iter().map(|a| normalise(a, n)).collect();
            leave_one_out(&normalise(&lmms_eval_clean(response), n), &gold)
        }
        Harness::VlmEvalKit => {
            let n = Normaliser::for_harness(harness);
            let gold: Vec<String> = answers.iter().map(|a| normalise(a, n)).collect();
            leave_one_out(&normalise(response.trim(), n), &gold)
        }
        Harness::Official => {
            let n = Normaliser::for_harness(harness);
            let all_same = answers.windows(2).all(|w| w[0] == w[1]);
            let gold: Vec<String> = if all_same {
                answers.to_vec()
            } else {
                answers.iter().map(|a| process_punctuation(a, n)).collect()
            };
            leave_one_out(&normalise(response, n), &gold)
        }
    }
}

/// The prediction and gold answers as lmms-eval's VQAv2 rule compares them: the prediction
/// through the full EvalAI processor; the gold answers only newline/tab/strip when all ten are
/// the same, otherwise both sides again through punctuation and digit/article processing
/// (without word tokenisation).
fn lmms_eval_vqav2(prediction: &str, answers: &[String]) -> (String, Vec<String>) {
    let pred = normalise(prediction, Normaliser::EvalAi);
    let gold: Vec<String> = answers.iter().map(|a| a.replace(['\n', '\t'], " ").trim().to_string()).collect();
    if gold.iter().collect::<std::collections::HashSet<_>>().len() > 1 {
        let again = |s: &String| normalise(s, Normaliser::EvalAiNoTokenize);
        (again(&pred), gold.iter().map(again).collect())
    } else {
        (pred, gold)
    }
}

/// VQAv2 accuracy. lmms-eval: its own rule ([`lmms_eval_vqav2`]), leave-one-out over the ten
/// answers by position (the annotations' `answer_id` makes every answer distinct, so equal
/// answers still count for each other); the others score as for TextVQA.
pub fn score_vqav2(response: &str, answers: &[String], harness: Harness) -> f64 {
    match harness {
        Harness::LmmsEval => {
            let (pred, gold) = lmms_eval_vqav2(&lmms_eval_clean(response), answers);
            leave_one_out(&pred, &gold)
        }
        _ => score(response, answers, harness),
    }
}

/// The prediction and gold answers through a harness's TextVQA normaliser (for the
/// per-sample log); `prediction` already cleaned as the harness cleans it.
pub fn forms(prediction: &str, answers: &[String], harness: Harness) -> Vec<String> {
    let n = Normaliser::for_harness(harness);
    std::iter::once(prediction).chain(answers.iter().map(String::as_str)).map(|s| normalise(s, n)).collect()
}

/// [`forms`] as [`score_vqav2`] compares them.
pub fn vqav2_forms(prediction: &str, answers: &[String], harness: Harness) -> Vec<String> {
    match harness {
        Harness::LmmsEval => {
            let (pred, gold) = lmms_eval_vqav2(prediction, answers);
            std::iter::once(pred).chain(gold).collect()
        }
        _ => forms(prediction, answers, harness),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evalai_golden_vectors() {
        let cases = [
            ("The answer is two.", "answer is 2"), ("12,000", "12000"), ("Coca-Cola", "coca cola"),
            ("dog's", "dog 's"), ("a dog", "dog"), ("Yes.", "yes"), ("5.", "5"), ("3.5", "3.5"),
            ("hello-world", "hello world"), ("U.S.A.", "usa"), ("none", "0"), ("It's", "it 's"),
            ("dont", "don't"), ("$10", "$10"), ("A-B, C", "b c"), ("1,,000", "1000"),
        ];
        for (input, want) in cases {
            assert_eq!(normalise(input, Normaliser::EvalAi), want, "{input:?}");
        }
    }

    #[test]
    fn vlmevalkit_differences() {
        assert_eq!(normalise("5.", Normaliser::VlmEvalKit), "5.");
        assert_eq!(normalise("dog's", Normaliser::VlmEvalKit), "dog's");
        assert_eq!(normalise("1,,000", Normaliser::VlmEvalKit), "1 000");
        assert_eq!(normalise("U.S.A.", Normaliser::VlmEvalKit), "usa");
        assert_eq!(normalise("The answer is two.", Normaliser::VlmEvalKit), "answer is 2");
        // The one-comma rule fires for "12,000": every listed punctuation mark is deleted.
        assert_eq!(normalise("12,000 (approx)", Normaliser::Official), "12000 approx");
    }

    #[test]
    fn period_cap_of_32() {
        let dots = ".".repeat(40);
        for n in [Normaliser::Official, Normaliser::EvalAi, Normaliser::VlmEvalKit] {
            assert_eq!(normalise(&format!("a{dots}b"), n), format!("a{}b", ".".repeat(8)), "{n:?}");
        }
        // Many dotted tokens (VLMEvalKit's `(?<!\d)\.(?!\d)` with count 32, as Python gives it):
        // the first 32 matching periods go, the rest stay; periods beside digits never match.
        let tokens: Vec<String> = (0..20).map(|i| format!("u.s{i}.x.")).collect();
        let text = tokens.join(" ");
        let want = "us0.x us1.x us2.x us3.x us4.x us5.x us6.x us7.x us8.x us9.x us10.x us11.x us12.x us13.x us14.x \
                    us15.x u.s16.x. u.s17.x. u.s18.x. u.s19.x.";
        assert_eq!(normalise(&text, Normaliser::VlmEvalKit), want);
    }

    #[test]
    fn digits_are_python_decimal_digits() {
        // `\d` takes Arabic-Indic digits, not superscripts: "٣.٥" keeps its period, "²." loses it.
        assert_eq!(normalise("٣.٥", Normaliser::VlmEvalKit), "٣.٥");
        assert_eq!(normalise("x². y", Normaliser::VlmEvalKit), "x² y");
        assert_eq!(normalise("5.", Normaliser::Official), "5");
        // The comma rule fires on Arabic-Indic digits too: punctuation is deleted, not spaced.
        assert_eq!(normalise("١,٠٠٠ (x)", Normaliser::Official), "١٠٠٠ x");
        assert_eq!(normalise("½,¾ (x)", Normaliser::Official), "½ ¾ x");
    }

    /// Hand-worked from lmms-eval's `vqav2_process_results`.
    #[test]
    fn lmms_eval_vqav2_rule() {
        let ten = |a: &[(&str, usize)]| -> Vec<String> { a.iter().flat_map(|(s, n)| std::iter::repeat_n(s.to_string(), *n)).collect() };
        let v = |r: &str, a: &[String]| score_vqav2(r, a, Harness::LmmsEval);
        assert_eq!(v("Yes", &ten(&[("yes", 10)])), 1.0);
        // All ten identical: the gold answers are not normalised at all.
        assert_eq!(v("yes", &ten(&[("Yes.", 10)])), 0.0);
        assert_eq!(score("yes", &ten(&[("Yes.", 10)]), Harness::LmmsEval), 1.0, "TextVQA's rule normalises them");
        // Different answers: both sides normalised ("two" → "2"); the prediction word-tokenised.
        assert_eq!(v("2", &ten(&[("two", 3), ("2", 7)])), 1.0);
        assert_eq!(v("The dog's", &ten(&[("dog 's", 4), ("cat", 6)])), 1.0);
        // Equal answers count for each other: 2 × 1/3 + 8 × 2/3 over 10.
        assert!((v("cat", &ten(&[("cat", 2), ("dog", 8)])) - 0.6).abs() < 1e-12);
        // "dog's" stays "dog's" without word tokenisation on the gold side: no match.
        assert_eq!(v("dog's", &ten(&[("dog's", 4), ("cat", 6)])), 0.0);
        assert_eq!(vqav2_forms("Two dogs.", &ten(&[("two", 1), ("2", 9)]), Harness::LmmsEval)[..2], ["2 dogs", "2"]);
    }

    #[test]
    fn closed_form_scores() {
        for (k, want) in [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)] {
            let mut answers = vec!["cat".to_string(); k];
            answers.resize(10, "dog".to_string());
            for h in [Harness::LmmsEval, Harness::VlmEvalKit, Harness::Official] {
                let got = score("Cat", &answers, h);
                assert!((got - want).abs() < 1e-9, "k={k} {h:?}: {got}");
            }
        }
    }
}
