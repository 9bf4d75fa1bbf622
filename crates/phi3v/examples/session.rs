//! A conversation about one image: follow-up questions reuse the KV cache, so each costs only
//! its own tokens (the image is not encoded or read again).
//!
//! cargo run --release -p phi3v --example session -- MODEL_DIR IMAGE

use phi3v::{GenerationParams, ImageInput, Pipeline, PipelineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, image] = args.as_slice() else {
        return Err("usage: session MODEL_DIR IMAGE".into());
    };
    let pipeline = Pipeline::load(model.as_ref(), &PipelineOptions::default())?;
    let mut session = pipeline.session().with_system("Answer in one sentence.");
    let params = GenerationParams { max_new_tokens: 64, ..Default::default() };
    let image = ImageInput::open(image.as_ref())?;
    let turns = [("What is in this image?", vec![image]), ("What colours stand out?", vec![]), ("Summarise both answers.", vec![])];
    for (question, images) in turns {
        println!("> {question}");
        let g = session.ask(question, &images, &params, |piece| print!("{piece}"))?;
        println!("\n({} new prompt tokens, {} in the cache)\n", g.prompt_tokens, session.cached_tokens());
    }
    Ok(())
}
