//! The trained demo checkpoint (`assets/phi3v-demo`, from `tests/reference/train_demo.sh`)
//! against the PyTorch reference, through the public API: the greedy answer to every question of
//! the committed chart set (`assets/evals/chartqa.jsonl`, charts the model never saw) and to the
//! README's two quarter questions about `assets/chart.png` is the reference's, token for token (`tests/fixtures/golden/phi3v-demo.json`, written by
//! `tests/reference/demo_goldens.py`). Parity on trained weights: the answers are words the
//! model chose from what it read, not the noise of random weights.
//!
//! Tolerance: tokens identical with the reference's arithmetic (f32 KV cache). phi3v's logits
//! agree with the reference to about 1e-3, so the test also checks that no answer rests on a
//! closer call than `MIN_GAP` between the two best logits (a flip there would be a tie, not a bug).

use phi3v::{GenerationParams, ImageInput, KvDtype, Pipeline, PipelineOptions};

const MIN_GAP: f64 = 0.01;

fn evals(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/evals").join(rel)
}

#[test]
fn demo_model_answers_every_chart_question_as_the_reference_does() {
    let golden = phi3v_fixtures::demo_goldens();
    let options = PipelineOptions { kv_cache: Some(KvDtype::F32), ..Default::default() };
    let p = Pipeline::load(&phi3v_fixtures::demo_model(), &options).unwrap();
    let params = GenerationParams { max_new_tokens: golden.max_tokens, ..Default::default() };
    let asked = std::fs::read_to_string(evals("chartqa.jsonl")).unwrap().lines().count();
    assert_eq!(golden.cases.len(), asked + 2, "one reference answer per question of the set, two about the README's chart");
    let mut differ = Vec::new();
    for case in &golden.cases {
        assert!(case.min_gap >= MIN_GAP, "{}: the reference's answer is a near tie ({})", case.id, case.min_gap);
        let image = ImageInput::open(&evals(&case.image)).unwrap();
        let g = p.ask(&case.question, &[image], &params, |_| {}).unwrap();
        if g.tokens != case.tokens {
            differ.push(format!("{}: {:?} ({:?}), reference {:?} ({:?})", case.id, g.text, g.tokens, case.answer, case.tokens));
        }
    }
    assert!(differ.is_empty(), "{} of {} answers differ:\n{}", differ.len(), golden.cases.len(), differ.join("\n"));
}
