//! Seeded OCR items: a word, a number or a short line of words rendered on a plain background,
//! asked about with OCRBench's recognition questions.

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::canvas::{Align, Canvas};

const WORDS: [&str; 40] = [
    "river", "market", "window", "garden", "silver", "planet", "orange", "harbor", "station", "winter", "candle", "forest",
    "museum", "bridge", "coffee", "ticket", "island", "letter", "rocket", "violet", "pencil", "castle", "summer", "travel",
    "yellow", "anchor", "engine", "falcon", "marble", "number", "office", "puzzle", "signal", "thunder", "velvet", "wonder",
    "bakery", "cinema", "desert", "gallery",
];

/// What an item asks for; also its reporting category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    Number,
    Line,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Word, Kind::Number, Kind::Line];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Word => "word",
            Kind::Number => "number",
            Kind::Line => "line",
        }
    }
}

/// One rendered item.
pub struct Item {
    pub image: image::RgbImage,
    pub question: &'static str,
    pub answer: String,
}

/// The text of an item: a word in lower, title or upper case; a 3–8 digit number; 3–5 words.
fn text(rng: &mut ChaCha8Rng, kind: Kind) -> String {
    let word = |rng: &mut ChaCha8Rng| WORDS.choose(rng).expect("non-empty").to_string();
    match kind {
        Kind::Word => {
            let w = word(rng);
            match rng.random_range(0..3) {
                0 => w,
                1 => w.to_uppercase(),
                _ => w[..1].to_uppercase() + &w[1..],
            }
        }
        Kind::Number => {
            let digits = rng.random_range(3..=8);
            (0..digits).map(|i| char::from(b'0' + rng.random_range(u8::from(i == 0)..10))).collect()
        }
        Kind::Line => {
            let n = rng.random_range(3..=5);
            (0..n).map(|_| word(rng)).collect::<Vec<_>>().join(" ")
        }
    }
}

/// A random item of `kind`: dark text on a light background or the reverse, 24–44 px.
pub fn random_item(rng: &mut ChaCha8Rng, kind: Kind) -> Item {
    let answer = text(rng, kind);
    let size = rng.random_range(24..=44) as f32;
    let light = [rng.random_range(215..=255), rng.random_range(215..=255), rng.random_range(215..=255)];
    let dark = [rng.random_range(0..=60), rng.random_range(0..=60), rng.random_range(0..=60)];
    let (bg, fg) = if rng.random_bool(0.75) { (light, dark) } else { (dark, light) };
    let probe = Canvas::new(1, 1, bg);
    let (w, h) = ((probe.text_width(&answer, size) + 2.0 * size).ceil() as u32, (size * 2.2).ceil() as u32);
    let mut canvas = Canvas::new(w, h, bg);
    canvas.text(&answer, w as f32 / 2.0, h as f32 / 2.0, size, fg, Align::Center);
    let question = match kind {
        Kind::Number => "what is the number in the image?",
        _ => "what is written in the image?",
    };
    Item { image: canvas.into_rgb(), question, answer }
}
