//! The benchmarks as tasks: how each one is read, prompted and scored.
//!
//! A task's prompt is a template over the sample ([`crate::template`]), placed after the image
//! tags in the user turn, as the Phi-3-vision harnesses do (MMMU places its images itself,
//! [`Task::place_images`]). The defaults are lmms-eval's (VLMEvalKit's with
//! [`Harness::VlmEvalKit`]); any can be overridden per task.

use std::path::{Path, PathBuf};

use crate::datasets::{self, DatasetError, Sample};
use crate::metrics::{anls, chartqa, lmms_eval_clean, mathvista, mcq, mmmu, ocrbench, pope, vqa, Harness};

/// A benchmark, which fixes the metric, the default prompt and the answer length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    ChartQa,
    DocVqa,
    InfoVqa,
    TextVqa,
    VqaV2,
    OcrBench,
    Ai2d,
    Pope,
    MmBench,
    ScienceQa,
    Blink,
    Mmmu,
    MathVista,
}

/// What a score is, for tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    RelaxedAccuracy,
    Anls,
    VqaAccuracy,
    /// OCRBench: correct answers (also given out of 1 000 on the full set).
    Substring,
    Accuracy,
    /// POPE: F1 with "yes" the positive class (accuracy, precision, recall and yes-ratio beside).
    F1,
    /// MMBench: a question is right when every rotated copy of it is.
    CircularAccuracy,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::RelaxedAccuracy => "relaxed accuracy",
            Metric::Anls => "ANLS",
            Metric::VqaAccuracy => "VQA accuracy",
            Metric::Substring => "OCRBench accuracy",
            Metric::Accuracy => "accuracy",
            Metric::F1 => "F1",
            Metric::CircularAccuracy => "circular accuracy",
        }
    }
}

/// One scored response, with what the metric looked at (for the per-sample log).
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// 0..=1.
    pub score: f64,
    /// The answer the metric extracted from the response (cleaned text, or the option letter).
    pub extracted: String,
    /// The metric's normalised forms of the prediction, then of each gold answer (empty where
    /// the metric compares raw text).
    pub normalised: Vec<String>,
}

const SHORT: &str = "\nAnswer the question using a single word or phrase.";
/// The LLaVA-style multiple-choice instruction lmms-eval (and the Phi-3 report) end with.
const LETTER: &str = "\nAnswer with the option's letter from the given choices directly.";
/// VLMEvalKit's multiple-choice prompt (`ImageMCQDataset.build_prompt`).
const VLMEVALKIT_MCQ: &str = "{hint_line}Question: {question}\nOptions:\n{options}\nPlease select the correct answer from the options above. \n";

impl Task {
    pub const ALL: [Task; 13] = [
        Task::ChartQa,
        Task::DocVqa,
        Task::InfoVqa,
        Task::TextVqa,
        Task::VqaV2,
        Task::OcrBench,
        Task::Ai2d,
        Task::Pope,
        Task::MmBench,
        Task::ScienceQa,
        Task::Blink,
        Task::Mmmu,
        Task::MathVista,
    ];

    /// The name used on the command line and in every output file.
    pub fn name(self) -> &'static str {
        match self {
            Task::ChartQa => "chartqa",
            Task::DocVqa => "docvqa",
            Task::InfoVqa => "infovqa",
            Task::TextVqa => "textvqa",
            Task::VqaV2 => "vqav2",
            Task::OcrBench => "ocrbench",
            Task::Ai2d => "ai2d",
            Task::Pope => "pope",
            Task::MmBench => "mmbench",
            Task::ScienceQa => "scienceqa",
            Task::Blink => "blink",
            Task::Mmmu => "mmmu",
            Task::MathVista => "mathvista",
        }
    }

    pub fn from_name(name: &str) -> Option<Task> {
        Task::ALL.into_iter().find(|t| t.name() == name.to_ascii_lowercase())
    }

    pub fn metric(self) -> Metric {
        match self {
            Task::ChartQa => Metric::RelaxedAccuracy,
            Task::DocVqa | Task::InfoVqa => Metric::Anls,
            Task::TextVqa | Task::VqaV2 => Metric::VqaAccuracy,
            Task::OcrBench => Metric::Substring,
            Task::Ai2d | Task::ScienceQa | Task::Blink | Task::Mmmu | Task::MathVista => Metric::Accuracy,
            Task::Pope => Metric::F1,
            Task::MmBench => Metric::CircularAccuracy,
        }
    }

    /// The default prompt template under a harness (see the module docs for placeholders).
    pub fn default_template(self, harness: Harness) -> String {
        let vlmevalkit = harness == Harness::VlmEvalKit;
        match self {
            Task::ChartQa if vlmevalkit => format!("{{question}}{SHORT}"),
            Task::ChartQa => "{question}\nAnswer the question with a single word.".into(),
            Task::DocVqa | Task::InfoVqa => format!("{{question}}{SHORT}"),
            Task::TextVqa if vlmevalkit => format!("{{question}}{SHORT}"),
            Task::TextVqa => format!("{{question_capitalized}}{SHORT}"),
            Task::VqaV2 => format!("{{question}}{SHORT}"),
            Task::OcrBench => "{question_stripped}".into(),
            Task::Ai2d if vlmevalkit => {
                "Question: {question}\nOptions:\n{options}\nPlease select the correct answer from the options above. \n".into()
            }
            Task::Ai2d => format!("{{question}}\n{{options}}{LETTER}"),
            Task::Pope if vlmevalkit => "{question}".into(),
            Task::Pope => format!("{{question_stripped}}{SHORT}"),
            Task::MmBench if harness == Harness::LmmsEval => format!("{{hint_prefix}}{{question}} There are several options:\n{{options}}{LETTER}"),
            // MMBench's authors are VLMEvalKit's: `official` is its prompt too.
            Task::MmBench | Task::ScienceQa | Task::Blink | Task::Mmmu if vlmevalkit => VLMEVALKIT_MCQ.into(),
            Task::MmBench => VLMEVALKIT_MCQ.into(),
            Task::ScienceQa => format!("{{context_line}}{{question}}\n{{options}}{LETTER}"),
            // lmms-eval's note, then BLINK's own prompt (its `prompt` field: the question, "Select
            // from the following choices." and the options as (A) …).
            Task::Blink if harness == Harness::LmmsEval => "Note: You only need to respond with {letters} without providing any additional information.\n{query}".into(),
            Task::Blink => "{query}".into(),
            // lmms-eval's mmmu_val gives no instruction: the question, the options and "\n\n".
            Task::Mmmu if harness == Harness::LmmsEval => "{question}\n{options}\n\n".into(),
            Task::Mmmu => format!("{{question}}\n{{options}}{LETTER}"),
            // lmms-eval's "format-prompt" for multiple choice (free-form: `template_for`).
            Task::MathVista if harness == Harness::LmmsEval => format!("{{question}}{{unit_suffix}}\n{{options}}{LETTER}"),
            // MathVista's own `query` (its hint, question, unit and choices).
            Task::MathVista => "{query}".into(),
        }
    }

    /// Most new tokens under a harness: lmms-eval's per-task limits (TextVQA: the Phi-3-vision
    /// wrapper's 1 024), VLMEvalKit's 2 048 for every task.
    pub fn max_new_tokens(self, harness: Harness) -> usize {
        if harness == Harness::VlmEvalKit {
            return 2048;
        }
        match self {
            Task::ChartQa | Task::Ai2d | Task::VqaV2 | Task::ScienceQa | Task::Mmmu => 16,
            Task::DocVqa | Task::InfoVqa => 32,
            Task::TextVqa | Task::MmBench | Task::Blink | Task::MathVista => 1024,
            Task::OcrBench | Task::Pope => 128,
        }
    }

    /// The prompt to send a judge model when the rules found no answer in `scored`: MathVista's
    /// extraction prompt (its `query` and the response), for a non-empty response; `None` for
    /// every other task.
    pub fn judge_prompt(self, sample: &Sample, response: &str, scored: &Scored, harness: Harness) -> Option<String> {
        let response = if harness == Harness::LmmsEval { lmms_eval_clean(response) } else { response.trim().to_string() };
        let query = sample.extra.get("query").unwrap_or(&sample.question);
        (self == Task::MathVista && scored.extracted.is_empty() && !response.is_empty()).then(|| mathvista::judge_prompt(query, &response))
    }

    /// Scores an answer a judge extracted (MathVista: normalised to the answer's type, then
    /// compared as text).
    pub fn score_extraction(self, sample: &Sample, extraction: &str) -> Scored {
        let prediction = mathvista::normalise(extraction, &mathvista_problem(sample));
        let ok = sample.answers.first().is_some_and(|gold| mathvista::correct(prediction.as_deref(), gold));
        Scored { score: f64::from(u8::from(ok)), extracted: extraction.to_string(), normalised: prediction.into_iter().collect() }
    }

    /// The default template for one sample: MMMU's open questions (no options) get the open
    /// form of the harness's prompt.
    pub fn template_for(self, harness: Harness, sample: &Sample) -> String {
        match (self, harness, sample.options.is_empty()) {
            (Task::Mmmu, Harness::LmmsEval, true) => "{question}\n\n".into(),
            (Task::Mmmu, Harness::VlmEvalKit, true) => "{hint_line}Question: {question}\n".into(),
            (Task::Mmmu, Harness::Official, true) => format!("{{question}}{SHORT}"),
            (Task::MathVista, Harness::LmmsEval, true) => {
                let precision = sample.extra.get("precision").map(String::as_str);
                let hint = match (sample.extra.get("answer_type").map(String::as_str), precision) {
                    (Some("integer"), _) => "Answer the question using a single integer number.",
                    (Some("float"), Some("1")) => "Answer the question using a single floating-point number with one decimal place.",
                    (Some("float"), Some("2")) => "Answer the question using a single floating-point number with two decimal places.",
                    (Some("list"), _) => "Answer the question using a Python list.",
                    _ => "",
                };
                if hint.is_empty() { "{question}{unit_suffix}".into() } else { format!("{{question}}{{unit_suffix}}\n{hint}") }
            }
            _ => self.default_template(harness),
        }
    }

    /// The prompt and images a harness sends for a rendered prompt. MMMU writes `<image N>`
    /// (the sample's image N) where its images belong: lmms-eval keeps the text and sends the
    /// images it names, in sorted order; VLMEvalKit (Phi-3.5) sends one image per mention, in
    /// order, and the text with each mention turned into a line break; `Official` (the Phi-3
    /// report: images interleaved where the question has them) puts `<|image_k|>` at each
    /// image's first mention. Other tasks: the sample's images, before the text.
    pub fn place_images(self, harness: Harness, sample: &Sample, prompt: String) -> (String, Vec<PathBuf>) {
        if self != Task::Mmmu {
            return (prompt, sample.images.clone());
        }
        let image = |n: usize| n.checked_sub(1).and_then(|i| sample.images.get(i)).cloned();
        let mentions = image_mentions(&prompt);
        match harness {
            Harness::LmmsEval => {
                let mut named: Vec<usize> = mentions.iter().map(|m| m.1).collect();
                named.sort_by_key(|n| format!("image_{n}"));
                named.dedup();
                (prompt, named.into_iter().filter_map(image).collect())
            }
            Harness::VlmEvalKit if mentions.is_empty() => (prompt, sample.images.clone()),
            Harness::VlmEvalKit => {
                let (mut text, mut images, mut at) = (String::new(), Vec::new(), 0);
                for (range, n) in &mentions {
                    text.push_str(&prompt[at..range.start]);
                    text.push('\n');
                    images.extend(image(*n));
                    at = range.end;
                }
                text.push_str(&prompt[at..]);
                (text, images)
            }
            Harness::Official => {
                let (mut text, mut images, mut order, mut at) = (String::new(), Vec::new(), Vec::new(), 0);
                for (range, n) in &mentions {
                    text.push_str(&prompt[at..range.start]);
                    match (order.contains(n), image(*n)) {
                        (false, Some(path)) => {
                            order.push(*n);
                            images.push(path);
                            text.push_str(&format!("<|image_{}|>", order.len()));
                        }
                        _ => text.push_str(&prompt[range.clone()]),
                    }
                    at = range.end;
                }
                text.push_str(&prompt[at..]);
                (text, images)
            }
        }
    }

    /// Whether a sample's category may list several, comma-separated (POPE's splits in
    /// VLMEvalKit's TSV, MMBench's l2-category and category, ScienceQA's subject, context and
    /// grade, MathVista's task and skills, the generated charts' kind and question family): the
    /// sample counts in each.
    pub fn several_categories(self) -> bool {
        matches!(self, Task::Pope | Task::MmBench | Task::ScienceQa | Task::MathVista | Task::ChartQa)
    }

    /// Reads the task's samples: our JSONL when the path ends in `.jsonl`, else the public
    /// format of the benchmark. `images` overrides where the public formats keep their images
    /// (default: beside the annotation file, as the downloads unpack).
    pub fn load(self, path: &Path, images: Option<&Path>) -> Result<Vec<Sample>, DatasetError> {
        if path.extension().is_some_and(|e| e == "jsonl") {
            return datasets::jsonl(path);
        }
        let dir = if path.is_dir() { path } else { path.parent().unwrap_or(Path::new(".")) };
        let root = |default: &str| images.map_or_else(|| dir.join(default), Path::to_path_buf);
        // Images unpacked from a TSV or parquet file go to `{stem}_images/` beside it.
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let tsv = || datasets::vlmevalkit_tsv(path, &root(&format!("{name}_images")));
        match self {
            _ if is_hub(self, path) => {
                // The Hub's parquet: images written once beside it (`images/` in a folder).
                let out = images.map_or_else(|| if path.is_dir() { path.join("images") } else { dir.join(format!("{name}_images")) }, Path::to_path_buf);
                let read = match self {
                    Task::Mmmu => crate::hf::mmmu,
                    Task::Blink => crate::hf::blink,
                    Task::Pope => crate::hf::pope,
                    Task::ScienceQa => crate::hf::scienceqa,
                    Task::MathVista => crate::hf::mathvista,
                    _ => crate::hf::mmbench,
                };
                let samples = read(path, &out)?;
                Ok(if self == Task::MmBench { with_circular_copies(samples) } else { samples })
            }
            Task::ChartQa if path.is_dir() => {
                let mut all = Vec::new();
                for split in ["human", "augmented"] {
                    all.extend(datasets::chartqa(&path.join(format!("test_{split}.json")), &root("png"), split)?);
                }
                Ok(all)
            }
            Task::ChartQa => {
                let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
                datasets::chartqa(path, &root("png"), stem.strip_prefix("test_").unwrap_or(&stem))
            }
            Task::DocVqa => datasets::docvqa(path, &images.map_or_else(|| datasets::docvqa_images(dir, "spdocvqa_images"), Path::to_path_buf)),
            Task::InfoVqa => datasets::docvqa(path, &images.map_or_else(|| datasets::docvqa_images(dir, "infographicsvqa_images"), Path::to_path_buf)),
            Task::TextVqa => datasets::textvqa(path, &root("train_images")),
            Task::VqaV2 => {
                let subtype = ["val2014", "test2015", "train2014", "test-dev2015"].into_iter().find(|s| path.to_string_lossy().contains(s));
                datasets::vqav2(path, &root(subtype.map_or("val2014", |s| if s.starts_with("test") { "test2015" } else { s })))
            }
            Task::OcrBench => datasets::ocrbench(path, &images.map_or_else(|| datasets::ocrbench_images(dir), Path::to_path_buf)),
            Task::Ai2d if path.is_dir() => datasets::ai2d(path),
            Task::Pope if !is_tsv(path) => {
                let (folder, beside) = if path.is_dir() { (path, path.join("val2014")) } else { (dir, dir.join("val2014")) };
                let default = if beside.is_dir() { beside } else { folder.to_path_buf() };
                datasets::pope(path, &images.map_or(default, Path::to_path_buf))
            }
            Task::ScienceQa if !is_tsv(path) => datasets::scienceqa(path, images),
            Task::MmBench => Ok(with_circular_copies(tsv()?)),
            Task::MathVista => datasets::mathvista(path, images.unwrap_or(dir)),
            Task::Blink => {
                // BLINK's own prompt (what the Hub files carry), rebuilt: the question, then
                // "Select from the following choices." and the options as (A) ….
                let mut samples = tsv()?;
                for s in &mut samples {
                    let prompt = crate::template::render("{question}\nSelect from the following choices.\n{options_paren}", s);
                    s.extra.entry("query".into()).or_insert(prompt);
                }
                Ok(samples)
            }
            Task::Mmmu => {
                let all = tsv()?;
                // MMMU_DEV_VAL holds dev and validation: the table's number is validation's.
                let val: Vec<Sample> = all.iter().filter(|s| s.split.as_deref() == Some("validation")).cloned().collect();
                Ok(if val.is_empty() { all } else { val })
            }
            Task::Pope | Task::Ai2d | Task::ScienceQa => tsv(),
        }
    }

    /// Scores a raw model response under a harness's rules.
    pub fn score(self, sample: &Sample, response: &str, harness: Harness) -> Scored {
        let cleaned = || match harness {
            Harness::LmmsEval => lmms_eval_clean(response),
            Harness::VlmEvalKit => response.trim().to_string(),
            Harness::Official => response.to_string(),
        };
        let answers = &sample.answers;
        match self {
            Task::ChartQa => Scored { score: chartqa::score(response, answers, harness), extracted: cleaned(), normalised: Vec::new() },
            Task::DocVqa | Task::InfoVqa => {
                let collapse = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
                let normalised = std::iter::once(cleaned()).chain(answers.iter().cloned()).map(|s| collapse(&s)).collect();
                Scored { score: anls::score(response, answers, harness), extracted: cleaned(), normalised }
            }
            Task::TextVqa => {
                let normalised = vqa::forms(&cleaned(), answers, harness);
                Scored { score: vqa::score(response, answers, harness), extracted: cleaned(), normalised }
            }
            Task::VqaV2 => {
                let normalised = vqa::vqav2_forms(&cleaned(), answers, harness);
                Scored { score: vqa::score_vqav2(response, answers, harness), extracted: cleaned(), normalised }
            }
            Task::OcrBench => {
                let hme = sample.category.as_deref() == Some(ocrbench::HME);
                let ok = ocrbench::correct(&cleaned(), answers, hme, harness);
                Scored { score: f64::from(u8::from(ok)), extracted: cleaned(), normalised: Vec::new() }
            }
            Task::Pope => {
                let extracted = pope::extract(response, harness);
                let ok = answers.first().is_some_and(|gold| pope::correct(&extracted, gold));
                Scored { score: f64::from(u8::from(ok)), extracted, normalised: Vec::new() }
            }
            Task::MmBench => {
                let letter = answers.first().map_or_else(String::new, |a| a.trim().to_string());
                let picked = match harness {
                    Harness::LmmsEval => mcq::lmms_eval_mmbench_infer(&cleaned(), &sample.options),
                    _ => mcq::vlmevalkit_infer(response, &sample.options),
                };
                let extracted = picked.map_or_else(String::new, String::from);
                Scored { score: f64::from(u8::from(!extracted.is_empty() && extracted == letter)), extracted, normalised: Vec::new() }
            }
            Task::MathVista => self.score_extraction(sample, &mathvista::extract(&cleaned(), &mathvista_problem(sample), false)),
            Task::Mmmu if harness == Harness::VlmEvalKit => {
                // MMMU_preproc: an open question becomes A = its answer, B = "Other Answers".
                let (options, letter) = match sample.options.is_empty() {
                    true => (vec![answers.first().cloned().unwrap_or_default(), "Other Answers".into()], "A".to_string()),
                    false => (sample.options.clone(), answers.first().map_or_else(String::new, |a| a.trim().to_string())),
                };
                let extracted = mcq::vlmevalkit_infer(response, &options).map_or_else(String::new, String::from);
                Scored { score: f64::from(u8::from(!extracted.is_empty() && extracted == letter)), extracted, normalised: Vec::new() }
            }
            Task::Mmmu if sample.options.is_empty() => {
                let predictions = mmmu::parse_open(&cleaned());
                let ok = answers.first().is_some_and(|gold| mmmu::open_correct(gold, &predictions));
                let normalised = predictions.iter().map(|p| format!("{p:?}")).collect();
                Scored { score: f64::from(u8::from(ok)), extracted: cleaned(), normalised }
            }
            Task::Mmmu => {
                let extracted = mmmu::parse_multi_choice(&cleaned(), &sample.options).map_or_else(String::new, String::from);
                let ok = answers.first().is_some_and(|gold| !extracted.is_empty() && *gold.trim() == extracted);
                Scored { score: f64::from(u8::from(ok)), extracted, normalised: Vec::new() }
            }
            Task::Blink => {
                let letter = answers.first().map_or_else(String::new, |a| a.trim().trim_matches(['(', ')']).to_string());
                let extracted = match harness {
                    Harness::VlmEvalKit => mcq::vlmevalkit_infer(response, &sample.options).map_or_else(String::new, String::from),
                    _ => mcq::lmms_eval_blink(&cleaned()),
                };
                Scored { score: f64::from(u8::from(!extracted.is_empty() && extracted == letter)), extracted, normalised: Vec::new() }
            }
            Task::ScienceQa => {
                let letter = answers.first().and_then(|a| a.trim().chars().next()).unwrap_or('?');
                let extracted = match harness {
                    Harness::LmmsEval => mcq::lmms_eval_scienceqa(&cleaned()),
                    _ => mcq::extract(response, &sample.options, harness),
                };
                Scored { score: f64::from(u8::from(extracted == letter.to_string())), extracted, normalised: Vec::new() }
            }
            Task::Ai2d => {
                let letter = answers.first().and_then(|a| a.trim().chars().next()).unwrap_or('?');
                let ok = mcq::correct(response, &sample.options, letter, harness);
                let extracted = mcq::extract(response, &sample.options, harness);
                Scored { score: f64::from(u8::from(ok)), extracted, normalised: Vec::new() }
            }
        }
    }
}

/// MMBench rows as read: a file with VLMEvalKit's circular copies keeps them, one without gets
/// them.
fn with_circular_copies(samples: Vec<Sample>) -> Vec<Sample> {
    let has_copies = samples.iter().any(|s| s.group.as_ref().is_some_and(|g| *g != s.id));
    if has_copies {
        samples
    } else {
        datasets::circular(samples)
    }
}

fn mathvista_problem(sample: &Sample) -> mathvista::Problem<'_> {
    let precision = sample.extra.get("precision").and_then(|p| p.parse().ok());
    let answer_type = sample.extra.get("answer_type").map_or("text", String::as_str);
    mathvista::Problem { choices: &sample.options, answer_type, precision }
}

/// Where `<image N>` (N a single digit, as VLMEvalKit's split requires) stands, and N.
fn image_mentions(text: &str) -> Vec<(std::ops::Range<usize>, usize)> {
    let mut found = Vec::new();
    for (at, _) in text.match_indices("<image ") {
        let rest = &text[at + 7..];
        let mut chars = rest.chars();
        if let (Some(d), Some('>')) = (chars.next(), chars.next()) {
            if let Some(n) = d.to_digit(10) {
                found.push((at..at + 9, n as usize));
            }
        }
    }
    found
}

/// A parquet file, or for the tasks read from the Hub's layout (MMMU, BLINK) a folder, or for
/// the others a folder holding parquet files.
fn is_hub(task: Task, path: &Path) -> bool {
    let parquet = |p: &Path| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("parquet"));
    let hub_task = matches!(task, Task::Mmmu | Task::Blink | Task::Pope | Task::ScienceQa | Task::MathVista | Task::MmBench);
    let folder_of_parquet = || {
        let walk = |d: &Path| std::fs::read_dir(d).into_iter().flatten().filter_map(|e| e.ok().map(|e| e.path())).collect::<Vec<_>>();
        walk(path).iter().any(|p| parquet(p) || (p.is_dir() && walk(p).iter().any(|q| parquet(q))))
    };
    hub_task && (parquet(path) || (path.is_dir() && (matches!(task, Task::Mmmu | Task::Blink) || folder_of_parquet())))
}

fn is_tsv(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("tsv"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::render;

    fn sample(question: &str, answers: &[&str], options: &[&str]) -> Sample {
        Sample {
            id: "1".into(),
            images: Vec::new(),
            question: question.into(),
            answers: answers.iter().map(|s| s.to_string()).collect(),
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn default_prompts_follow_the_harnesses() {
        let s = sample("what brand IS this? ", &[], &["tree", "sun"]);
        let p = |t: Task, h| render(&t.default_template(h), &s);
        assert_eq!(p(Task::ChartQa, Harness::LmmsEval), "what brand IS this? \nAnswer the question with a single word.");
        assert_eq!(p(Task::ChartQa, Harness::VlmEvalKit), "what brand IS this? \nAnswer the question using a single word or phrase.");
        assert_eq!(p(Task::TextVqa, Harness::LmmsEval), "What brand is this? \nAnswer the question using a single word or phrase.");
        assert_eq!(p(Task::OcrBench, Harness::LmmsEval), "what brand IS this?");
        assert_eq!(
            p(Task::Ai2d, Harness::LmmsEval),
            "what brand IS this? \nA. tree\nB. sun\nAnswer with the option's letter from the given choices directly."
        );
        assert_eq!(
            p(Task::Ai2d, Harness::VlmEvalKit),
            "Question: what brand IS this? \nOptions:\nA. tree\nB. sun\nPlease select the correct answer from the options above. \n"
        );
        assert_eq!(p(Task::MmBench, Harness::LmmsEval).lines().next(), Some("what brand IS this?  There are several options:"));
        let mut mm = sample("Which one?", &["A"], &["x", "y"]);
        mm.hint = Some("Look left.".into());
        let q = |h, s: &Sample| render(&Task::MmBench.default_template(h), s);
        assert_eq!(q(Harness::LmmsEval, &mm), "Look left. Which one? There are several options:\nA. x\nB. y\nAnswer with the option's letter from the given choices directly.");
        assert_eq!(q(Harness::VlmEvalKit, &mm), "Hint: Look left.\nQuestion: Which one?\nOptions:\nA. x\nB. y\nPlease select the correct answer from the options above. \n");
        mm.hint = None;
        assert!(q(Harness::VlmEvalKit, &mm).starts_with("Question: Which one?\n"));
    }

    #[test]
    fn each_task_scores_with_its_metric() {
        let h = Harness::LmmsEval;
        let s = |a: &[&str]| sample("q", a, &[]);
        assert_eq!(Task::ChartQa.score(&s(&["12"]), " 12.5\n", h).score, 1.0);
        assert_eq!(Task::ChartQa.score(&s(&["12"]), "13", h).score, 0.0);
        let d = Task::DocVqa.score(&s(&["Invoice  No"]), "invoice no.", h);
        assert!((d.score - (1.0 - 1.0 / 11.0)).abs() < 1e-12, "{d:?}");
        assert_eq!(d.normalised, ["invoice no.", "invoice no"]);
        let t = Task::TextVqa.score(&s(&["two"; 10]), "2", h);
        assert_eq!((t.score, t.normalised[0].as_str()), (1.0, "2"));
        assert_eq!(Task::OcrBench.score(&s(&["stop"]), "<think>x</think>It says STOP", h).score, 1.0);
        let mc = sample("q", &["B"], &["tree", "sun"]);
        let a = Task::Ai2d.score(&mc, "B. sun", h);
        assert_eq!((a.score, a.extracted.as_str()), (1.0, "b"));
        assert_eq!(Task::Ai2d.score(&mc, "A", h).score, 0.0);
        assert_eq!(Task::Ai2d.score(&mc, "the answer is B", Harness::VlmEvalKit).score, 1.0);
    }

    #[test]
    fn mmmu_images_go_where_each_harness_puts_them() {
        let mut s = sample("Compare <image 2> with <image 1>; is <image 2> larger?", &["A"], &["yes", "no"]);
        s.images = ["1.png", "2.png", "3.png"].iter().map(PathBuf::from).collect();
        let place = |h| Task::Mmmu.place_images(h, &s, render(&Task::Mmmu.template_for(h, &s), &s));
        let (text, images) = place(Harness::LmmsEval);
        assert_eq!(text, "Compare <image 2> with <image 1>; is <image 2> larger?\nA. yes\nB. no\n\n");
        assert_eq!(images, [PathBuf::from("1.png"), PathBuf::from("2.png")], "named images, sorted, once each");
        let (text, images) = place(Harness::VlmEvalKit);
        assert!(text.starts_with("Question: Compare \n with \n; is \n larger?\nOptions:\nA. yes"), "{text}");
        assert_eq!(images, [PathBuf::from("2.png"), PathBuf::from("1.png"), PathBuf::from("2.png")], "one per mention");
        let (text, images) = place(Harness::Official);
        assert_eq!(text, "Compare <|image_1|> with <|image_2|>; is <image 2> larger?\nA. yes\nB. no\nAnswer with the option's letter from the given choices directly.");
        assert_eq!(images, [PathBuf::from("2.png"), PathBuf::from("1.png")]);
        // Open questions get the open form; other tasks keep their images first.
        s.options.clear();
        assert_eq!(render(&Task::Mmmu.template_for(Harness::LmmsEval, &s), &s), format!("{}\n\n", s.question));
        assert_eq!(Task::Ai2d.place_images(Harness::Official, &s, "<image 1>".into()).1.len(), 3);
        // Scoring: MMMU's parser, or VLMEvalKit's with an open answer as option A.
        let mut mc = sample("q", &["B"], &["red blood cell", "nerve cell"]);
        assert_eq!(Task::Mmmu.score(&mc, "(B)", Harness::LmmsEval).score, 1.0);
        mc.options.clear();
        mc.answers = vec!["1,500".into()];
        assert_eq!(Task::Mmmu.score(&mc, "So the total is 1500.", Harness::LmmsEval).score, 1.0);
        assert_eq!(Task::Mmmu.score(&mc, "It is 1,500", Harness::VlmEvalKit).score, 1.0, "the answer's text is option A");
        assert_eq!(Task::Mmmu.score(&mc, "Other Answers", Harness::VlmEvalKit).score, 0.0);
    }

    #[test]
    fn names_round_trip() {
        for t in Task::ALL {
            assert_eq!(Task::from_name(t.name()), Some(t));
        }
        assert_eq!(Task::from_name("ChartQA"), Some(Task::ChartQa));
        assert_eq!(Task::from_name("mmvet"), None);
    }
}
