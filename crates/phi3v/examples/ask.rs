//! Ask one question about one image.
//!
//! cargo run --release -p phi3v --example ask -- MODEL_DIR IMAGE "QUESTION"

use phi3v::{GenerationParams, ImageInput, Pipeline, PipelineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, image, question] = args.as_slice() else {
        return Err("usage: ask MODEL_DIR IMAGE QUESTION".into());
    };
    let pipeline = Pipeline::load(model.as_ref(), &PipelineOptions::default())?;
    let image = ImageInput::open(image.as_ref())?;
    let params = GenerationParams { max_new_tokens: 64, ..Default::default() };
    pipeline.ask(question, &[image], &params, |piece| print!("{piece}"))?;
    println!();
    Ok(())
}
