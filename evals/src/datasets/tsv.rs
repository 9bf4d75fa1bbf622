//! VLMEvalKit's TSV files, and the circular copies of MMBench's questions.

use std::path::Path;

use super::{regular, sample, DatasetError, Sample};

/// A VLMEvalKit TSV (`AI2D_TEST.tsv`, `POPE.tsv`, `MMBench_DEV_EN.tsv`, …): columns `index`,
/// `question`, `answer` (an option letter, or the answer), `image` (base64), and where the
/// benchmark has them the option columns `A`, `B`, …, `category`, `l2-category` (the category is
/// then `{l2-category},{category}`: the sample counts in both), `hint` and `g_index` (the question
/// a circular copy copies; without it, the index modulo 10^6). An `image` may hold several images
/// as a Python list literal of base64 strings (BLINK, MMMU). The images are decoded
/// once into `image_dir` as `{index}.png` / `{index}.jpg` and read from there afterwards.
pub fn vlmevalkit_tsv(tsv: &Path, image_dir: &Path) -> Result<Vec<Sample>, DatasetError> {
    use base64::Engine;
    let format = |message: String| DatasetError::Format { path: tsv.into(), message };
    regular(tsv)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b'\t')
        .from_path(tsv)
        .map_err(|e| format(e.to_string()))?;
    let headers = reader.headers().map_err(|e| format(e.to_string()))?.clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| column(name).ok_or_else(|| format(format!("no `{name}` column")));
    let (index, question, answer, image) = (need("index")?, need("question")?, need("answer")?, need("image")?);
    let (category, l2, hint, g_index, split) =
        (column("category"), column("l2-category").or(column("L2-category")), column("hint"), column("g_index"), column("split"));
    let letters: Vec<usize> = ["A", "B", "C", "D", "E", "F", "G", "H"].iter().map_while(|l| column(l)).collect();
    std::fs::create_dir_all(image_dir).map_err(|source| DatasetError::Io { path: image_dir.into(), source })?;
    let records = reader.records().collect::<Result<Vec<_>, _>>().map_err(|e| format(e.to_string()))?;
    // VLMEvalKit saves space by giving, in `image`, the index of another row whose image is the
    // same: any value of at most 64 characters is such an index, and that row must hold the
    // image itself.
    let by_index: std::collections::HashMap<&str, &str> = records.iter().map(|r| (&r[index], &r[image])).collect();
    let mut samples = Vec::new();
    for (n, r) in records.iter().enumerate() {
        let row = format!("row {}", n + 2);
        let id = r[index].to_string();
        let (source, data) = match r[image].trim() {
            field if field.chars().count() <= 64 => match by_index.get(field) {
                Some(data) if data.chars().count() > 64 => (field.to_string(), *data),
                _ => return Err(format(format!("{row}: image {field:?} is neither an image nor the index of a row with one"))),
            },
            field => (id.clone(), field),
        };
        // The id names the image file written below: a plain name, never a path.
        for name in [&id, &source] {
            if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || "-_.".contains(c)) || name.starts_with('.') {
                return Err(format(format!("{row}: index {name:?} is not a plain name (letters, digits, - _ .)")));
            }
        }
        let options: Vec<String> = letters.iter().map(|&c| r[c].to_string()).take_while(|o| !o.is_empty() && o != "nan").collect();
        // Several images are a Python list literal of base64 strings (`str(list)`), written
        // out as `{index}_{k}`.
        let parts = match python_list(data) {
            Some(list) => list.into_iter().enumerate().map(|(k, d)| (format!("{source}_{k}"), d)).collect(),
            None => vec![(source.clone(), data.to_string())],
        };
        let mut paths = Vec::new();
        for (name, data) in parts {
            let (png, jpg) = (image_dir.join(format!("{name}.png")), image_dir.join(format!("{name}.jpg")));
            paths.push(if png.exists() {
                png
            } else if jpg.exists() {
                jpg
            } else {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data.trim())
                    .map_err(|e| format(format!("{row}: image is not base64: {e}")))?;
                let out = if bytes.starts_with(&[0xFF, 0xD8]) { jpg } else { png };
                std::fs::write(&out, bytes).map_err(|source| DatasetError::Io { path: out.clone(), source })?;
                out
            });
        }
        let text = |c: Option<usize>| c.map(|c| r[c].to_string()).filter(|t| !t.is_empty() && t != "nan");
        let cat = match (text(l2), text(category)) {
            (Some(l2), Some(c)) => Some(format!("{l2},{c}")),
            (l2, c) => c.or(l2),
        };
        // Circular copies: `g_index` names the question copied, else index mod 10^6 does.
        let group = text(g_index).or_else(|| id.parse::<u64>().ok().map(|i| (i % 1_000_000).to_string()));
        let mut s = sample(id, paths, r[question].to_string(), vec![r[answer].trim().to_string()], cat);
        (s.options, s.hint, s.group, s.split) = (options, text(hint), group, text(split));
        samples.push(s);
    }
    Ok(samples)
}

/// The strings of a Python list literal as `str(list)` writes it (`['a', "b'c"]`, backslash
/// escapes kept as they are: base64 and file names have none); `None` when `text` is not one.
pub(crate) fn python_list(text: &str) -> Option<Vec<String>> {
    let inner = text.trim().strip_prefix('[')?.strip_suffix(']')?;
    let mut items = Vec::new();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let quote = rest.chars().next().filter(|q| *q == '\'' || *q == '"')?;
        let end = rest[1..].find(quote)? + 1;
        items.push(rest[1..end].to_string());
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').map_or(rest, str::trim_start);
    }
    Some(items)
}

/// VLMEvalKit's circular copies (`vlmeval/tools.py`, `CIRCULAR`) of questions read without
/// them: a question of k options gets k − 1 copies, copy i with the options rotated right by i
/// (`deque.rotate(1)` i times: option m of the copy is option (m + i) mod k of the original) and
/// the answer moved with them, index `index + OFFSET·i` (OFFSET = 10^6, ×10 while an index
/// reaches it). Left as they are: questions with fewer than two options, an answer that is not one
/// of their letters, or an option that is a run of the alphabet in capitals ("B", "CD") or names
/// two option letters as words (after everything but ASCII letters and spaces becomes a space).
pub fn circular(samples: Vec<Sample>) -> Vec<Sample> {
    let mut offset = 1_000_000u64;
    while samples.iter().filter_map(|s| s.id.parse::<u64>().ok()).any(|i| i >= offset) {
        offset *= 10;
    }
    let letter = |i: usize| ((b'A' + i as u8) as char).to_string();
    let abnormal = |s: &Sample| {
        let letters: Vec<String> = (0..s.options.len()).map(letter).collect();
        s.options.iter().any(|o| {
            let spaced: String = o.chars().map(|c| if c.is_ascii_alphabetic() || c == ' ' { c } else { ' ' }).collect();
            let named: std::collections::HashSet<&str> = spaced.split_whitespace().filter(|w| letters.iter().any(|l| l == w)).collect();
            // `choices[k] in string.ascii_uppercase` is a substring test: "B", "CD", …
            named.len() > 1 || "ABCDEFGHIJKLMNOPQRSTUVWXYZ".contains(o.as_str())
        })
    };
    let mut out = Vec::new();
    for s in samples {
        let k = s.options.len();
        let answer = s.answers.first().and_then(|a| (0..k).find(|&i| *a == letter(i)));
        let index = s.id.parse::<u64>().ok();
        let mut main = Sample { group: Some(s.id.clone()), ..s };
        let (Some(answer), Some(index), false) = (answer, index, k < 2 || abnormal(&main)) else {
            out.push(main);
            continue;
        };
        let copies: Vec<Sample> = (1..k as u64)
            .map(|i| {
                let shift = i as usize;
                Sample {
                    id: (index + offset * i).to_string(),
                    options: (0..k).map(|m| main.options[(m + shift) % k].clone()).collect(),
                    answers: vec![letter((answer + k - shift % k) % k)],
                    ..main.clone()
                }
            })
            .collect();
        main.group = Some(index.to_string());
        out.push(main);
        out.extend(copies);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::write;
    use super::*;
    use crate::datasets::*;

    #[test]
    fn mmbench_rows_keep_their_circular_copies_or_get_them() {
        let d = tempfile::tempdir().unwrap();
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        // As VLMEvalKit's MMBench_DEV_EN.tsv: copies at index + k·10^6 reuse the image by index.
        let head = "index\tquestion\thint\tA\tB\tC\tD\tanswer\tcategory\timage\tsource\tl2-category\tcomment\tsplit";
        let rows = [
            format!("241\tWhich is the main topic?\tThe text is a poster.\tcar\tdog\tcat\t\tA\timage_topic\t{png}\tMMBench\tcoarse_perception\tnan\tdev"),
            "1000241\tWhich is the main topic?\tThe text is a poster.\tdog\tcat\tcar\t\tC\timage_topic\t241\tMMBench\tcoarse_perception\tnan\tdev".to_string(),
        ];
        let tsv = write(d.path(), "MMBench_DEV_EN.tsv", &format!("{head}\n{}\n", rows.join("\n")));
        let s = crate::tasks::Task::MmBench.load(&tsv, None).unwrap();
        assert_eq!(s.len(), 2, "the file's own copies, no more");
        assert_eq!((s[1].group.as_deref(), s[1].options.len(), s[1].images.clone()), (Some("241"), 3, s[0].images.clone()));
        assert_eq!((s[0].hint.as_deref(), s[0].category.as_deref()), (Some("The text is a poster."), Some("coarse_perception,image_topic")));

        // Without copies: VLMEvalKit's CIRCULAR rotations, worked through its deque code.
        let q = |id: &str, options: &[&str], answer: &str| Sample {
            id: id.into(),
            options: options.iter().map(|o| o.to_string()).collect(),
            answers: vec![answer.into()],
            ..Default::default()
        };
        let out = circular(vec![q("7", &["w", "x", "y", "z"], "B"), q("8", &["yes", "no"], "A"), q("9", &["A and B", "neither"], "A"), q("10", &["B", "C"], "A"), q("11", &["p", "q"], "C")]);
        let view: Vec<(&str, String, &str, &str)> =
            out.iter().map(|s| (s.id.as_str(), s.options.join(""), s.answers[0].as_str(), s.group.as_deref().unwrap())).collect();
        assert_eq!(
            view,
            [
                ("7", "wxyz".into(), "B", "7"),
                ("1000007", "xyzw".into(), "A", "7"),
                ("2000007", "yzwx".into(), "D", "7"),
                ("3000007", "zwxy".into(), "C", "7"),
                ("8", "yesno".into(), "A", "8"),
                ("1000008", "noyes".into(), "B", "8"),
                ("9", "A and Bneither".into(), "A", "9"), // names two option letters: left alone
                ("10", "BC".into(), "A", "10"),          // an option is a letter: left alone
                ("11", "pq".into(), "C", "11"),          // the answer is no option: left alone
            ]
        );
        // An index at or past 10^6 moves the copies to 10^7 steps.
        let big = circular(vec![q("1500000", &["a", "b"], "A")]);
        assert_eq!(big[1].id, "11500000");
    }

    #[test]
    fn vlmevalkit_rows_with_several_images() {
        assert_eq!(python_list(r#"['ab', "c'd" ,'e']"#), Some(vec!["ab".into(), "c'd".into(), "e".into()]));
        assert_eq!(python_list("[]"), Some(vec![]));
        assert_eq!((python_list("iVBOR"), python_list("['open")), (None, None));
        let d = tempfile::tempdir().unwrap();
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
        // As VLMEvalKit's BLINK.tsv: `str(list)` of base64 strings; a later row may point at it.
        let tsv = write(d.path(), "BLINK.tsv", &format!("index\tquestion\tA\tB\tanswer\tcategory\timage\n7\tWhich image is brighter?\tthe first image\tthe second image\tB\tRelative_Reflectance\t['{png}', '{png}']\n8\tSame?\tyes\tno\tA\tVisual_Similarity\t7\n"));
        let s = crate::tasks::Task::Blink.load(&tsv, None).unwrap();
        let dir = d.path().join("BLINK_images");
        assert_eq!(s[0].images, [dir.join("7_0.png"), dir.join("7_1.png")]);
        assert_eq!((s[1].images.clone(), s[1].category.as_deref()), (s[0].images.clone(), Some("Visual_Similarity")));
        let lmms = crate::template::render(&crate::tasks::Task::Blink.default_template(crate::Harness::LmmsEval), &s[0]);
        assert_eq!(lmms, "Note: You only need to respond with A, B without providing any additional information.\nWhich image is brighter?\nSelect from the following choices.\n(A) the first image\n(B) the second image");
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "(B) the second image", crate::Harness::LmmsEval).score, 1.0);
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "The second image", crate::Harness::LmmsEval).score, 0.0, "read as T");
        assert_eq!(crate::tasks::Task::Blink.score(&s[0], "The second image", crate::Harness::VlmEvalKit).score, 1.0, "the option's text");
    }
}
