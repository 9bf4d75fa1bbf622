//! Scoring exactly as the published harnesses do. Where they disagree, each function takes a
//! [`Harness`]; the default is lmms-eval, the harness most Phi-3.5-vision numbers come from.

pub mod anls;
pub mod chartqa;
pub mod mathvista;
pub mod mcq;
pub mod mmmu;
pub mod ocrbench;
pub mod pope;
pub mod pyfloat;
pub mod vqa;

/// Which harness's rules to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Harness {
    /// EvolvingLMMs-Lab/lmms-eval (responses stripped, reasoning blocks removed).
    #[default]
    LmmsEval,
    /// open-compass/VLMEvalKit.
    VlmEvalKit,
    /// The benchmark authors' own scorers (pix2struct for ChartQA, the VQA tool, the OCRBench
    /// script, the RRC/pix2struct ANLS).
    Official,
}

impl Harness {
    pub const ALL: [Harness; 3] = [Harness::LmmsEval, Harness::VlmEvalKit, Harness::Official];

    /// `lmms-eval`, `vlmevalkit` or `official`.
    pub fn name(self) -> &'static str {
        match self {
            Harness::LmmsEval => "lmms-eval",
            Harness::VlmEvalKit => "vlmevalkit",
            Harness::Official => "official",
        }
    }

    pub fn from_name(name: &str) -> Option<Harness> {
        Harness::ALL.into_iter().find(|h| h.name() == name.to_ascii_lowercase())
    }
}

/// lmms-eval's response clean-up before any task scorer: `<think>…</think>` and
/// `<analysis>…</analysis>` blocks removed (text after a lone closing tag kept), then stripped.
pub fn lmms_eval_clean(response: &str) -> String {
    let mut text = response.to_string();
    for tag in ["think", "analysis"] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        while let Some(start) = text.find(&open) {
            match text[start..].find(&close) {
                Some(end) => text.replace_range(start..start + end + close.len(), ""),
                None => break,
            }
        }
        if let Some(end) = text.find(&close) {
            text.replace_range(..end + close.len(), "");
        }
    }
    text.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasoning_blocks_are_removed() {
        assert_eq!(lmms_eval_clean("<think>hmm</think> B "), "B");
        assert_eq!(lmms_eval_clean("half a thought</think>42"), "42");
        assert_eq!(lmms_eval_clean("<analysis>x</analysis>yes<think>y</think>"), "yes");
        assert_eq!(lmms_eval_clean("  plain \n"), "plain");
    }
}
