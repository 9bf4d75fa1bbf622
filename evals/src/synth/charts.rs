//! Seeded chart QA: a small table, drawn as a bar, line or pie chart, and questions whose
//! answers are computed from the table (value lookup, argmax/argmin, difference, sum, average,
//! comparison, colour, count), formatted like ChartQA gold labels (no units, no `%`, fewest
//! decimals, "Yes"/"No"). Each question names its family ([`Question::family`]). Quarterly
//! charts are bar charts of four quarters, asked as `Which quarter had the highest revenue?`.

use rand::seq::{IndexedRandom, SliceRandom};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::canvas::{Align, Canvas, Rgb};

/// Named colours, so that "what colour is …" has a plain answer.
pub(crate) const PALETTE: [(&str, Rgb); 8] = [
    ("blue", [31, 119, 180]),
    ("orange", [255, 127, 14]),
    ("green", [44, 160, 44]),
    ("red", [214, 39, 40]),
    ("purple", [148, 103, 189]),
    ("brown", [140, 86, 75]),
    ("pink", [227, 119, 194]),
    ("gray", [127, 127, 127]),
];

const COUNTRIES: [&str; 12] = ["Germany", "France", "Japan", "Brazil", "Canada", "India", "Mexico", "Spain", "Italy", "Kenya", "Norway", "Chile"];
const FRUITS: [&str; 8] = ["Apples", "Bananas", "Cherries", "Grapes", "Mangoes", "Oranges", "Pears", "Plums"];
const METRICS: [&str; 5] = ["Revenue (million USD)", "Exports (billion USD)", "Population (millions)", "Sales (thousand units)", "Average price (USD)"];
/// What a quarterly chart measures: the word its questions use, and its title.
const QUARTERLY: [(&str, &str); 3] =
    [("revenue", "Quarterly revenue (million USD)"), ("profit", "Quarterly profit (million USD)"), ("sales", "Quarterly sales (thousand units)")];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bar,
    Line,
    Pie,
    /// A bar chart of the quarters Q1–Q4.
    Quarterly,
}

impl Kind {
    /// The kinds `--charts` cycles through (quarterly charts are asked for on their own).
    pub const ALL: [Kind; 3] = [Kind::Bar, Kind::Line, Kind::Pie];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bar => "bar",
            Kind::Line => "line",
            Kind::Pie => "pie",
            Kind::Quarterly => "quarterly",
        }
    }
}

/// A chart's table and look.
#[derive(Debug, Clone)]
pub struct Chart {
    pub kind: Kind,
    pub title: String,
    /// What the values measure, as questions name it (`revenue`; `value` for most charts).
    pub subject: String,
    pub labels: Vec<String>,
    pub values: Vec<f64>,
    /// Decimals shown (and used in answers).
    pub decimals: usize,
    /// One colour per value (bar, pie) or one for the line.
    pub colours: Vec<(&'static str, Rgb)>,
    pub size: (u32, u32),
}

/// One question with its ChartQA-style answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    pub query: String,
    pub label: String,
    /// What it asks for: `value`, `highest`, `lowest`, `difference`, `sum`, `comparison`,
    /// `count`, `colour` or `average`.
    pub family: &'static str,
}

/// `v` with `decimals` decimals, trailing zeros dropped ("12.50" → "12.5", "18.0" → "18").
pub fn format_number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s };
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn round(v: f64, decimals: usize) -> f64 {
    let k = 10f64.powi(decimals as i32);
    (v * k).round() / k
}

/// A random table whose largest and smallest values are unique.
pub fn random_chart(rng: &mut ChaCha8Rng, kind: Kind) -> Chart {
    let size = *[(640, 480), (800, 600), (560, 420)].choose(rng).expect("non-empty");
    loop {
        let mut subject = "value".to_string();
        let (title, labels, values, decimals) = match kind {
            Kind::Bar => {
                let n = rng.random_range(3..=6);
                let labels: Vec<String> = COUNTRIES.choose_multiple(rng, n).map(|s| s.to_string()).collect();
                let base = *[10.0, 100.0, 1000.0].choose(rng).expect("non-empty");
                let decimals = if base < 1000.0 { rng.random_range(0..=1) } else { 0 };
                let values = (0..n).map(|_| round(rng.random_range(0.1 * base..base), decimals)).collect();
                (METRICS.choose(rng).expect("non-empty").to_string(), labels, values, decimals)
            }
            Kind::Quarterly => {
                let (noun, title) = *QUARTERLY.choose(rng).expect("non-empty");
                subject = noun.to_string();
                let labels = (1..=4).map(|q| format!("Q{q}")).collect();
                let base = *[10.0, 100.0].choose(rng).expect("non-empty");
                let decimals = rng.random_range(0..=1);
                let values = (0..4).map(|_| round(rng.random_range(0.1 * base..base), decimals)).collect();
                (title.to_string(), labels, values, decimals)
            }
            Kind::Line => {
                let n = rng.random_range(5..=8);
                let start = rng.random_range(2008..=2016);
                let labels = (start..start + n).map(|y| y.to_string()).collect();
                let base = *[10.0, 100.0].choose(rng).expect("non-empty");
                let decimals = rng.random_range(0..=1);
                let values = (0..n).map(|_| round(rng.random_range(0.2 * base..base), decimals)).collect();
                let metric = METRICS.choose(rng).expect("non-empty");
                (format!("{metric}, {start}–{}", start + n - 1), labels, values, decimals)
            }
            Kind::Pie => {
                let n = rng.random_range(3..=5);
                let labels: Vec<String> = FRUITS.choose_multiple(rng, n).map(|s| s.to_string()).collect();
                let weights: Vec<f64> = (0..n).map(|_| rng.random_range(1.0..10.0)).collect();
                let total: f64 = weights.iter().sum();
                let mut values: Vec<f64> = weights.iter().map(|w| (100.0 * w / total).floor().max(1.0)).collect();
                let rest = 100.0 - values.iter().sum::<f64>();
                values[0] += rest;
                ("Favourite fruit (share of respondents, %)".to_string(), labels, values, 0)
            }
        };
        let unique = |pick: fn(f64, f64) -> bool| {
            let best = values.iter().copied().fold(values[0], |a, b| if pick(b, a) { b } else { a });
            values.iter().filter(|v| **v == best).count() == 1
        };
        if !unique(|a, b| a > b) || !unique(|a, b| a < b) || values.iter().any(|v| *v <= 0.0) {
            continue;
        }
        let colours = match kind {
            Kind::Line => vec![*PALETTE.choose(rng).expect("non-empty")],
            _ => {
                let mut p = PALETTE.to_vec();
                p.shuffle(rng);
                p.truncate(labels.len());
                p
            }
        };
        return Chart { kind, title, subject, labels, values, decimals, colours, size };
    }
}

/// A "nice" axis step (1, 2, 2.5 or 5 × 10^k) for about five ticks up to `max`.
fn nice_step(max: f64) -> f64 {
    let raw = max / 5.0;
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0].iter().map(|m| m * p).find(|s| *s >= raw).unwrap_or(10.0 * p)
}

const INK: Rgb = [33, 33, 33];
const GRID: Rgb = [222, 222, 222];

/// Draws the chart.
pub fn render(chart: &Chart) -> image::RgbImage {
    let (w, h) = (chart.size.0 as f32, chart.size.1 as f32);
    let mut c = Canvas::new(chart.size.0, chart.size.1, [255, 255, 255]);
    c.text(&chart.title, w / 2.0, 26.0, 18.0, INK, Align::Center);
    let value_text = |v: f64| format_number(v, chart.decimals);
    if chart.kind == Kind::Pie {
        let (cx, cy, r) = (w * 0.36, h * 0.55, h.min(w) * 0.32);
        let mut a = 0.0f32;
        for (v, (_, colour)) in chart.values.iter().zip(&chart.colours) {
            let span = *v as f32 / 100.0 * std::f32::consts::TAU;
            c.wedge(cx, cy, r, a, a + span, *colour);
            let mid = a + span / 2.0;
            c.text(&format!("{}%", value_text(*v)), cx + 1.15 * r * mid.sin(), cy - 1.15 * r * mid.cos(), 13.0, INK, Align::Center);
            a += span;
        }
        for (i, (label, (_, colour))) in chart.labels.iter().zip(&chart.colours).enumerate() {
            let y = h * 0.35 + 28.0 * i as f32;
            c.rect(w * 0.72, y - 8.0, 16.0, 16.0, *colour);
            c.text(label, w * 0.72 + 24.0, y, 14.0, INK, Align::Left);
        }
        return c.into_rgb();
    }
    let (left, right, top, bottom) = (76.0, w - 24.0, 60.0, h - 56.0);
    let max = chart.values.iter().copied().fold(0.0, f64::max) * 1.15;
    let step = nice_step(max);
    let y_max = (max / step).ceil() * step;
    let y_of = |v: f64| bottom - (bottom - top) * (v / y_max) as f32;
    let mut tick = 0.0;
    while tick <= y_max + step * 1e-9 {
        let y = y_of(tick);
        c.line(&[(left, y), (right, y)], 1.0, GRID);
        c.text(&format_number(tick, 1), left - 8.0, y, 12.0, INK, Align::Right);
        tick += step;
    }
    c.line(&[(left, bottom), (right, bottom)], 1.5, INK);
    let slot = (right - left) / chart.values.len() as f32;
    let label_size = if chart.labels.iter().any(|l| c.text_width(l, 13.0) > slot - 4.0) { 11.0 } else { 13.0 };
    let mut points = Vec::new();
    for (i, (v, label)) in chart.values.iter().zip(&chart.labels).enumerate() {
        let x = left + slot * (i as f32 + 0.5);
        let y = y_of(*v);
        if matches!(chart.kind, Kind::Bar | Kind::Quarterly) {
            c.rect(x - slot * 0.3, y, slot * 0.6, bottom - y, chart.colours[i].1);
        }
        points.push((x, y));
        let above = if chart.kind == Kind::Line { 16.0 } else { 12.0 };
        c.text(&value_text(*v), x, y - above, 12.0, INK, Align::Center);
        c.text(label, x, bottom + 18.0, label_size, INK, Align::Center);
    }
    if chart.kind == Kind::Line {
        let colour = chart.colours[0].1;
        c.line(&points, 2.5, colour);
        for (x, y) in points {
            c.circle(x, y, 4.0, colour);
        }
    }
    c.into_rgb()
}

/// `n` distinct questions about the chart (fewer if it has fewer templates).
pub fn questions(chart: &Chart, rng: &mut ChaCha8Rng, n: usize) -> Vec<Question> {
    let num = |v: f64| format_number(round(v, chart.decimals), chart.decimals);
    let (v, l) = (&chart.values, &chart.labels);
    let argmax = (0..v.len()).max_by(|a, b| v[*a].total_cmp(&v[*b])).expect("non-empty");
    let argmin = (0..v.len()).min_by(|a, b| v[*a].total_cmp(&v[*b])).expect("non-empty");
    let mut pair: Vec<usize> = (0..v.len()).collect();
    pair.shuffle(rng);
    let (a, b) = (pair[0], pair[1]);
    let i = rng.random_range(0..v.len());
    let (item, things) = match chart.kind {
        Kind::Bar => ("bar", "country"),
        Kind::Quarterly => ("bar", "quarter"),
        Kind::Line => ("point", "year"),
        Kind::Pie => ("slice", "fruit"),
    };
    let of = |k: usize| match chart.kind {
        Kind::Line | Kind::Quarterly => format!("in {}", l[k]),
        _ => format!("for {}", l[k]),
    };
    // "Which country has the highest value?"; "Which quarter had the highest revenue?"
    let extreme = |which: &str| match chart.kind {
        Kind::Quarterly => format!("Which quarter had the {which} {}?", chart.subject),
        _ => format!("Which {things} has the {which} value?"),
    };
    let q = |query: String, label: String, family| Question { query, label, family };
    let mut all = vec![
        q(format!("What is the value {}?", of(i)), num(v[i]), "value"),
        q(extreme("highest"), l[argmax].clone(), "highest"),
        q(extreme("lowest"), l[argmin].clone(), "lowest"),
        q(format!("What is the difference between the values {} and {}?", of(a), of(b)), num((v[a] - v[b]).abs()), "difference"),
        q(format!("What is the sum of the values {} and {}?", of(a), of(b)), num(v[a] + v[b]), "sum"),
        q(format!("Is the value {} greater than the value {}?", of(a), of(b)), if v[a] > v[b] { "Yes" } else { "No" }.into(), "comparison"),
        q(format!("How many {item}s are there in the chart?"), v.len().to_string(), "count"),
    ];
    match chart.kind {
        Kind::Line => all.push(q("What color is the line?".into(), chart.colours[0].0.into(), "colour")),
        _ => all.push(q(format!("What color is the {item} for {}?", l[i]), chart.colours[i].0.into(), "colour")),
    }
    if chart.kind != Kind::Pie {
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        all.push(q("What is the average of all the values?".into(), format_number(round(mean, 2), 2), "average"));
    }
    all.shuffle(rng);
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn numbers_are_formatted_like_chartqa_labels() {
        assert_eq!(format_number(12.5, 1), "12.5");
        assert_eq!(format_number(18.0, 1), "18");
        assert_eq!(format_number(0.1 + 0.2, 1), "0.3");
        assert_eq!(format_number(977633.0, 0), "977633");
        assert_eq!(format_number(-0.0001, 2), "0");
        assert_eq!(nice_step(23.0), 5.0);
        assert_eq!(nice_step(1150.0), 250.0);
    }

    #[test]
    fn answers_follow_from_the_table() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let chart = Chart {
            kind: Kind::Bar,
            title: "t".into(),
            subject: "value".into(),
            labels: vec!["Japan".into(), "Chile".into(), "Kenya".into()],
            values: vec![12.5, 18.0, 9.5],
            decimals: 1,
            colours: PALETTE[..3].to_vec(),
            size: (640, 480),
        };
        let qs = questions(&chart, &mut rng, 100);
        let answer = |start: &str| qs.iter().find(|q| q.query.starts_with(start)).map(|q| q.label.clone()).unwrap();
        assert_eq!(qs.len(), 9);
        assert_eq!(answer("Which country has the highest"), "Chile");
        assert_eq!(answer("Which country has the lowest"), "Kenya");
        assert_eq!(answer("How many bars"), "3");
        let family = |start: &str| qs.iter().find(|q| q.query.starts_with(start)).map(|q| q.family).unwrap();
        assert_eq!(family("Which country has the highest"), "highest");
        assert_eq!(family("Is the value"), "comparison");
        assert_eq!(family("What color"), "colour");
        assert_eq!(answer("What is the average"), "13.33");
        let diff = qs.iter().find(|q| q.query.starts_with("What is the difference")).unwrap();
        assert!(["5.5", "3", "8.5"].contains(&diff.label.as_str()), "{diff:?}");
    }

    #[test]
    fn quarterly_charts_are_asked_about_their_quarters() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let chart = random_chart(&mut rng, Kind::Quarterly);
        assert_eq!(chart.labels, ["Q1", "Q2", "Q3", "Q4"]);
        assert!(QUARTERLY.iter().any(|(noun, title)| chart.subject == *noun && chart.title == *title));
        let qs = questions(&chart, &mut rng, 100);
        let highest = qs.iter().find(|q| q.family == "highest").unwrap();
        assert_eq!(highest.query, format!("Which quarter had the highest {}?", chart.subject));
        let max = chart.values.iter().copied().fold(f64::MIN, f64::max);
        assert_eq!(highest.label, format!("Q{}", chart.values.iter().position(|v| *v == max).unwrap() + 1));
        assert!(qs.iter().any(|q| q.query == "How many bars are there in the chart?" && q.label == "4"));
    }

    #[test]
    fn pies_add_up_to_100_and_extremes_are_unique() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        for kind in [Kind::Bar, Kind::Line, Kind::Pie, Kind::Quarterly] {
            for _ in 0..50 {
                let c = random_chart(&mut rng, kind);
                let max = c.values.iter().copied().fold(f64::MIN, f64::max);
                assert_eq!(c.values.iter().filter(|v| **v == max).count(), 1);
                assert_eq!((c.labels.len(), c.colours.len()), (c.values.len(), if kind == Kind::Line { 1 } else { c.values.len() }));
                if kind == Kind::Pie {
                    assert_eq!(c.values.iter().sum::<f64>(), 100.0);
                }
            }
        }
    }
}
