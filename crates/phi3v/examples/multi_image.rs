//! Several images in one question: each is placed where its `<|image_N|>` tag stands.
//!
//! cargo run --release -p phi3v --example multi_image -- MODEL_DIR IMAGE1 IMAGE2 ["QUESTION"]

use phi3v::{GenerationParams, ImageInput, Message, Pipeline, PipelineOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (model, first, second) = match args.as_slice() {
        [m, a, b, ..] => (m, a, b),
        _ => return Err("usage: multi_image MODEL_DIR IMAGE1 IMAGE2 [QUESTION]".into()),
    };
    let question = args.get(3).map_or("What differs between the two images?", String::as_str);
    let pipeline = Pipeline::load(model.as_ref(), &PipelineOptions::default())?;
    let images = [ImageInput::open(first.as_ref())?, ImageInput::open(second.as_ref())?];
    // `Pipeline::ask` would put both images first; with `chat` the tags say where they go.
    let messages = [Message::new("user", format!("First: <|image_1|>\nSecond: <|image_2|>\n{question}"))];
    let params = GenerationParams { max_new_tokens: 128, ..Default::default() };
    let answer = pipeline.chat(&messages, &images, &params, |piece| print!("{piece}"))?;
    println!("\n({} image tokens: {:?})", answer.image_tokens.iter().sum::<usize>(), answer.image_tokens);
    Ok(())
}
