//! The chart/OCR evaluation suite.
//!
//! - [`metrics`]: ChartQA relaxed accuracy, VQA accuracy (TextVQA/VQAv2), ANLS (DocVQA/InfoVQA),
//!   OCRBench, multiple-choice letter extraction (AI2D), each in the variants of the public
//!   harnesses ([`Harness`]).
//!
//! Dataset readers, prompts and the resumable runner (`phi3v eval`) build on these.

pub mod metrics;

pub use metrics::Harness;
