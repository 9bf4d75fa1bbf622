//! The chart/OCR evaluation suite.
//!
//! - [`metrics`]: ChartQA relaxed accuracy, VQA accuracy (TextVQA/VQAv2), ANLS (DocVQA/InfoVQA),
//!   OCRBench, multiple-choice letter extraction (AI2D), each in the variants of the public
//!   harnesses ([`Harness`]).
//!
//! - [`datasets`]: readers for ChartQA, DocVQA/InfoVQA, TextVQA, OCRBench and our own JSONL.
//!
//! Prompts and the resumable runner (`phi3v eval`) build on these; [`report`] scores a run,
//! [`compare`] sets runs beside the published numbers.

pub mod compare;
pub mod datasets;
pub mod hf;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod synth;
pub mod tasks;
pub mod template;

pub use metrics::Harness;
pub use tasks::Task;
