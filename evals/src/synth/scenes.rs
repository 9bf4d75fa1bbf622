//! Seeded questions about scenes of 2–4 coloured shapes ("a red circle") on a light background:
//!
//! - POPE-style object presence: one question about an object a scene shows (yes) and, per POPE
//!   split, one about an object it lacks (no), chosen as POPE chooses its negatives: at random
//!   (`random`), the most frequent object over all scenes (`popular`), or the object most often
//!   seen together with the scene's own (`adversarial`).
//! - MMBench-style multiple choice: how many shapes there are, and the colour of a shape the
//!   scene has only one of, with four options.
//! - ScienceQA-style: which shape has a colour the scene shows once (circle, square, triangle).
//! - BLINK-style, over two scenes: which image has more shapes.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::canvas::Canvas;
use super::charts::PALETTE;

const SHAPES: [&str; 3] = ["circle", "square", "triangle"];
/// Colours used (the first six of the chart palette: blue, orange, green, red, purple, brown).
const COLOURS: usize = 6;
/// Objects are `colour * SHAPES.len() + shape`.
const OBJECTS: usize = COLOURS * SHAPES.len();

/// The POPE splits, in the order their files are listed.
pub const SPLITS: [&str; 3] = ["adversarial", "popular", "random"];

/// One picture and the objects in it.
pub struct Scene {
    pub objects: Vec<usize>,
}

/// "red circle".
pub fn object_name(object: usize) -> String {
    format!("{} {}", PALETTE[object / SHAPES.len()].0, SHAPES[object % SHAPES.len()])
}

pub fn random_scene(rng: &mut ChaCha8Rng) -> Scene {
    let mut all: Vec<usize> = (0..OBJECTS).collect();
    all.shuffle(rng);
    let n = rng.random_range(2..=4);
    Scene { objects: all[..n].to_vec() }
}

/// 448×336, the objects in distinct cells of a 3×2 grid.
pub fn render(scene: &Scene, rng: &mut ChaCha8Rng) -> image::RgbImage {
    let mut c = Canvas::new(448, 336, [245, 245, 240]);
    let mut cells: Vec<usize> = (0..6).collect();
    cells.shuffle(rng);
    for (&object, &cell) in scene.objects.iter().zip(&cells) {
        let (cx, cy) = (74.0 + 150.0 * (cell % 3) as f32, 84.0 + 168.0 * (cell / 3) as f32);
        let (x, y) = (cx + rng.random_range(-12.0..12.0), cy + rng.random_range(-12.0..12.0));
        let r: f32 = rng.random_range(36.0..52.0);
        let colour = PALETTE[object / SHAPES.len()].1;
        match SHAPES[object % SHAPES.len()] {
            "circle" => c.circle(x, y, r, colour),
            "square" => c.rect(x - r, y - r, 2.0 * r, 2.0 * r, colour),
            _ => c.polygon(&[(x, y - r), (x + r, y + 0.8 * r), (x - r, y + 0.8 * r)], colour),
        }
    }
    c.into_rgb()
}

/// One question: "Is there a {object} in the image?".
pub struct Question {
    pub split: &'static str,
    pub scene: usize,
    pub text: String,
    /// `yes` or `no`.
    pub label: &'static str,
}

/// Per split, per scene: the yes question (the same object in every split), then the no one.
pub fn questions(scenes: &[Scene], rng: &mut ChaCha8Rng) -> Vec<Question> {
    let count = |o: usize| scenes.iter().filter(|s| s.objects.contains(&o)).count();
    let together = |a: usize, b: usize| scenes.iter().filter(|s| s.objects.contains(&a) && s.objects.contains(&b)).count();
    let positives: Vec<usize> = scenes.iter().map(|s| *s.objects.choose(rng).expect("scenes have objects")).collect();
    let ask = |o: usize| format!("Is there a {} in the image?", object_name(o));
    let mut out = Vec::new();
    for split in SPLITS {
        for (i, scene) in scenes.iter().enumerate() {
            let absent: Vec<usize> = (0..OBJECTS).filter(|o| !scene.objects.contains(o)).collect();
            // Highest key wins; ties go to the lower object number.
            let best = |key: &dyn Fn(usize) -> usize| *absent.iter().rev().max_by_key(|&&o| key(o)).expect("18 objects, at most 4 shown");
            let negative = match split {
                "random" => *absent.choose(rng).expect("absent objects"),
                "popular" => best(&count),
                _ => best(&|o| scene.objects.iter().map(|&p| together(o, p)).sum::<usize>() * OBJECTS + count(o)),
            };
            out.push(Question { split, scene: i, text: ask(positives[i]), label: "yes" });
            out.push(Question { split, scene: i, text: ask(negative), label: "no" });
        }
    }
    out
}

/// A four-option question about one scene.
pub struct Choice {
    pub scene: usize,
    pub question: String,
    pub hint: Option<String>,
    pub options: [String; 4],
    /// Index of the right option.
    pub answer: usize,
    /// What it tests: `count` or `colour`.
    pub category: &'static str,
}

/// Per scene: the count question, then (when a shape occurs once) the colour question.
pub fn choices(scenes: &[Scene], rng: &mut ChaCha8Rng) -> Vec<Choice> {
    let mut out = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        let n = scene.objects.len();
        let first = rng.random_range(1..=n.min(2));
        let options = [0, 1, 2, 3].map(|k| (first + k).to_string());
        let hint = Some("Count every shape, whatever its colour.".to_string());
        out.push(Choice { scene: i, question: "How many shapes are there in the image?".into(), hint, options, answer: n - first, category: "count" });
        let shapes: Vec<usize> = scene.objects.iter().map(|o| o % SHAPES.len()).collect();
        let Some(&object) = scene.objects.iter().find(|&&o| shapes.iter().filter(|&&s| s == o % SHAPES.len()).count() == 1) else { continue };
        let mut colours: Vec<usize> = (0..COLOURS).filter(|&c| c != object / SHAPES.len()).collect();
        colours.shuffle(rng);
        let mut picked = [object / SHAPES.len(), colours[0], colours[1], colours[2]];
        picked.shuffle(rng);
        let answer = picked.iter().position(|&c| c == object / SHAPES.len()).expect("the right colour is an option");
        let question = format!("What colour is the {}?", SHAPES[object % SHAPES.len()]);
        out.push(Choice { scene: i, question, hint: None, options: picked.map(|c| PALETTE[c].0.to_string()), answer, category: "colour" });
    }
    out
}

/// A ScienceQA-style question: `(scene, colour name, index of the right shape in SHAPES)`, one
/// per scene that has a colour shown once.
pub fn shape_of_colour(scenes: &[Scene], rng: &mut ChaCha8Rng) -> Vec<(usize, &'static str, usize)> {
    scenes
        .iter()
        .enumerate()
        .filter_map(|(i, scene)| {
            let colour = |o: usize| o / SHAPES.len();
            let once: Vec<usize> = scene.objects.iter().copied().filter(|&o| scene.objects.iter().filter(|&&p| colour(p) == colour(o)).count() == 1).collect();
            once.choose(rng).map(|&o| (i, PALETTE[colour(o)].0, o % SHAPES.len()))
        })
        .collect()
}

/// BLINK-style pairs: `(first scene, second scene, 0 when the first has more shapes else 1)`,
/// for neighbouring scenes whose counts differ.
pub fn more_shapes(scenes: &[Scene]) -> Vec<(usize, usize, usize)> {
    (1..scenes.len())
        .filter(|&i| scenes[i - 1].objects.len() != scenes[i].objects.len())
        .map(|i| (i - 1, i, usize::from(scenes[i].objects.len() > scenes[i - 1].objects.len())))
        .collect()
}

/// The shape names, in option order.
pub fn shape_names() -> [&'static str; 3] {
    SHAPES
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn negatives_follow_the_pope_rules() {
        let scenes: Vec<Scene> = [vec![0, 1], vec![0, 2], vec![0, 1, 3], vec![4, 5]].into_iter().map(|objects| Scene { objects }).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let q = questions(&scenes, &mut rng);
        assert_eq!(q.len(), 3 * 4 * 2);
        let no = |split: &str, scene: usize| q.iter().find(|q| q.split == split && q.scene == scene && q.label == "no").unwrap().text.clone();
        // Popular: object 0 (in three scenes) unless shown, then 1 (in two).
        assert_eq!(no("popular", 3), ask_text(0));
        assert_eq!(no("popular", 0), ask_text(2), "1 is shown; 2, 3, 4 and 5 are in one scene each; the lowest wins");
        // Adversarial for scene 3 (objects 4, 5): nothing co-occurs, so the most frequent, 0.
        assert_eq!(no("adversarial", 3), ask_text(0));
        // Scene 1 (0, 2): 1 is seen with 0 twice.
        assert_eq!(no("adversarial", 1), ask_text(1));
        for s in &q {
            let shown = scenes[s.scene].objects.iter().any(|&o| s.text == ask_text(o));
            assert_eq!(shown, s.label == "yes", "{}", s.text);
        }
    }

    #[test]
    fn choices_have_one_right_option() {
        // 0: blue circle, 3: orange circle, 4: orange square (objects are colour * 3 + shape).
        let scenes: Vec<Scene> = [vec![0, 3, 4], vec![4, 8]].into_iter().map(|objects| Scene { objects }).collect();
        let c = choices(&scenes, &mut ChaCha8Rng::seed_from_u64(2));
        let summary: Vec<(usize, &str, &str)> = c.iter().map(|c| (c.scene, c.category, c.options[c.answer].as_str())).collect();
        assert_eq!(summary, [(0, "count", "3"), (0, "colour", "orange"), (1, "count", "2"), (1, "colour", "orange")]);
        assert_eq!((c[1].question.as_str(), c[3].question.as_str()), ("What colour is the square?", "What colour is the square?"));
        assert!(c.iter().all(|c| c.options.iter().collect::<std::collections::HashSet<_>>().len() == 4));
    }

    fn ask_text(o: usize) -> String {
        format!("Is there a {} in the image?", object_name(o))
    }
}
