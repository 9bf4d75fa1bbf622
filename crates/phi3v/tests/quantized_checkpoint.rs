//! Pre-quantised checkpoints (`phi3v::quantize`, `phi3v quantize`): loading one gives exactly
//! what quantising at load gives (the same first-step logits, bit for bit, and the same greedy
//! tokens) on every fixture case, and a file of another format version, truncated, altered, or
//! asked for in another format is refused with an error that says so.

use std::path::Path;

use phi3v::checkpoint::Checkpoint;
use phi3v::{Error, GenerationParams, ImageInput, Pipeline, PipelineOptions, WeightFormat};

fn quantized(name: &str, decoder: WeightFormat, vision: WeightFormat) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let written = phi3v::quantize(&phi3v_fixtures::path(name), decoder, vision, out.path(), None).unwrap();
    assert_eq!(written.formats.decoder, decoder);
    assert_eq!(std::fs::metadata(out.path().join("model.safetensors")).unwrap().len(), written.bytes);
    out
}

fn images(golden: &phi3v_fixtures::ModelCase) -> Vec<ImageInput> {
    golden.images.iter().map(|i| ImageInput::open(&phi3v_fixtures::path(&i.image)).unwrap().with_num_crops(i.num_crops)).collect()
}

#[test]
fn a_quantised_checkpoint_answers_exactly_as_quantising_at_load() {
    use WeightFormat::*;
    let params = GenerationParams { max_new_tokens: 12, ..Default::default() };
    for name in phi3v_fixtures::CHECKPOINTS {
        for (decoder, vision, stored_vision) in [(Q4, Q8, Q8), (Q8, Auto, Bf16), (Q4, Q4, Q4)] {
            let out = quantized(name, decoder, vision);
            let ckpt = Checkpoint::open(out.path()).unwrap();
            let q = ckpt.weights.quantized().expect("written as quantised");
            assert_eq!((q.decoder, q.vision), (decoder, stored_vision), "{name}");
            // Nothing is quantised again: every matrix of the chosen formats is stored packed.
            let packed = ckpt.weights.tensors().keys().filter(|n| n.ends_with(".q4") || n.ends_with(".q8")).count();
            let vision_matrices = if vision == Auto { 0 } else { 6 * ckpt.vision.feature_layers + 2 };
            assert_eq!(packed, 4 * ckpt.config.num_hidden_layers + 1 + vision_matrices, "{name} {decoder}/{vision}");
            for t in ["model.layers.0.mlp.down_proj.weight", "lm_head.weight"] {
                assert!(!ckpt.weights.tensors().contains_key(t), "{t} should be stored packed");
            }

            let at_load = Pipeline::load(&phi3v_fixtures::path(name), &PipelineOptions { weights: decoder, vision_weights: stored_vision, ..Default::default() }).unwrap();
            let stored = Pipeline::load(out.path(), &PipelineOptions::default()).unwrap();
            let same_formats = Pipeline::load(out.path(), &PipelineOptions { weights: decoder, vision_weights: stored_vision, ..Default::default() }).unwrap();
            for (case, golden) in phi3v_fixtures::model_cases(name) {
                let images = images(&golden);
                let want = at_load.next_token_logits(&golden.prompt, &images).unwrap().to_vec1::<f32>().unwrap();
                for p in [&stored, &same_formats] {
                    let got = p.next_token_logits(&golden.prompt, &images).unwrap().to_vec1::<f32>().unwrap();
                    assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{name} {case} {decoder}/{vision}: logits differ");
                }
                let want = at_load.generate(&golden.prompt, &images, &params, |_| {}).unwrap().tokens;
                let got = stored.generate(&golden.prompt, &images, &params, |_| {}).unwrap().tokens;
                assert_eq!(got, want, "{name} {case} {decoder}/{vision}: greedy tokens");
            }
        }
    }
}

/// The weight file's bytes, changed by `edit`, written back.
fn edit_weights(dir: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let file = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    edit(&mut bytes);
    std::fs::write(&file, bytes).unwrap();
}

fn load_error(dir: &Path) -> String {
    match Pipeline::load(dir, &PipelineOptions::default()) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn other_versions_truncated_or_altered_files_and_other_formats_are_refused() {
    let name = phi3v_fixtures::CHECKPOINTS[0];
    let fresh = || quantized(name, WeightFormat::Q4, WeightFormat::Q8);

    let out = fresh();
    edit_weights(out.path(), |b| {
        let header = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        let text = String::from_utf8(b[8..8 + header].to_vec()).unwrap();
        let edited = text.replace("\"phi3v.format_version\":\"1\"", "\"phi3v.format_version\":\"2\"");
        assert_ne!(text, edited, "the version is in the header: {text:.300}");
        b[8..8 + header].copy_from_slice(edited.as_bytes());
    });
    let err = load_error(out.path());
    assert!(err.contains("format version 2") && err.contains("reads version 1"), "{err}");

    let out = fresh();
    edit_weights(out.path(), |b| b.truncate(b.len() - 1));
    let err = load_error(out.path());
    assert!(err.contains("model.safetensors") && err.contains("not a readable safetensors file"), "{err}");

    // One byte of the last tensor's data (the file ends with it) flipped.
    let out = fresh();
    edit_weights(out.path(), |b| *b.last_mut().unwrap() ^= 0x10);
    let err = load_error(out.path());
    assert!(err.contains("does not match its checksum") && err.contains("model.safetensors"), "{err}");

    let out = fresh();
    let options = PipelineOptions { weights: WeightFormat::Q8, ..Default::default() };
    let err = Pipeline::load(out.path(), &options).err().unwrap();
    assert!(matches!(err, Error::QuantizedAs { stored: WeightFormat::Q4, asked: WeightFormat::Q8, .. }), "{err}");
    assert!(err.to_string().contains("decoder was quantised to q4"), "{err}");
    let options = PipelineOptions { vision_weights: WeightFormat::Bf16, ..Default::default() };
    let err = Pipeline::load(out.path(), &options).err().unwrap().to_string();
    assert!(err.contains("vision tower was quantised to q8") && err.contains("cannot load as bf16"), "{err}");

    // Quantising again, over the source or into a directory that holds weights, is refused.
    let again = tempfile::tempdir().unwrap();
    let err = phi3v::quantize(out.path(), WeightFormat::Q4, WeightFormat::Q4, again.path(), None).err().unwrap().to_string();
    assert!(err.contains("already quantised"), "{err}");
    let err = phi3v::quantize(&phi3v_fixtures::path(name), WeightFormat::Q4, WeightFormat::Q4, out.path(), None).err().unwrap().to_string();
    assert!(err.contains("already holds a checkpoint's weights"), "{err}");
    let err = phi3v::quantize(&phi3v_fixtures::path(name), WeightFormat::Bf16, WeightFormat::Q4, again.path(), None).err().unwrap().to_string();
    assert!(err.contains("must be q8 or q4"), "{err}");
}
