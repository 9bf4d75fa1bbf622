//! The README's library example, verbatim (a test holds the two equal and runs this one).
//!
//! cargo run --release -p phi3v --example readme     (from the repository's root)

use phi3v::{GenerationParams, ImageInput, Pipeline, PipelineOptions};

fn main() -> Result<(), phi3v::Error> {
    // A Hugging Face id (downloaded into the HF cache on first use) or a checkpoint directory.
    let pipeline = Pipeline::from_pretrained("microsoft/Phi-3.5-vision-instruct", &PipelineOptions::default())?;
    let chart = ImageInput::open("assets/chart.png".as_ref())?;
    let answer = pipeline.ask("Which quarter had the highest revenue?", &[chart],
                              &GenerationParams::default(), |piece| print!("{piece}"))?;
    println!("\n{} prompt tokens, {:.1} tokens/s", answer.prompt_tokens, answer.timings.decode_tokens_per_s());
    Ok(())
}
