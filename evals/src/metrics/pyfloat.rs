//! Python's `float(str)` for the inputs benchmark answers contain, and the Unicode decimal
//! digits Python's `float()` and regex `\d` accept.

/// The code points of the zeros of Unicode's decimal-digit runs (general category `Nd`, ten
/// consecutive code points each, zero to nine), as of Unicode 15 (Python 3.12 and 3.13; 3.11's
/// Unicode 14 lacks Kawi's U+11F50 and Nag Mundari's U+1E4F0).
const DIGIT_ZEROS: [u32; 68] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
    0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0,
    0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x11F50,
    0x16A60, 0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E950,
    0x1FBF0,
];

/// The value of a Unicode decimal digit (`unicodedata.decimal`; what Python's `\d` matches):
/// ASCII digits, Arabic-Indic, Devanagari, full-width, mathematical and the rest.
pub fn decimal_digit(c: char) -> Option<u32> {
    let c = c as u32;
    let zero = DIGIT_ZEROS.partition_point(|&z| z <= c).checked_sub(1).map(|i| DIGIT_ZEROS[i])?;
    (c - zero < 10).then_some(c - zero)
}

/// Parses like Python's `float()`: every non-ASCII decimal digit read as its ASCII digit and
/// non-ASCII whitespace as a space (any other non-ASCII character refuses the text); then
/// surrounding ASCII whitespace allowed, optional sign, decimal or exponent notation,
/// `inf`/`infinity`/`nan` in any case, single underscores between digits. Thousands
/// separators, currency signs and units are rejected.
pub fn py_float(text: &str) -> Option<f64> {
    let ascii: String = text
        .chars()
        .map(|c| match c {
            c if c.is_ascii() => Some(c),
            c if c.is_whitespace() => Some(' '),
            c => decimal_digit(c).and_then(|d| char::from_digit(d, 10)),
        })
        .collect::<Option<_>>()?;
    let s = ascii.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    if s.is_empty() {
        return None;
    }
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
        return s.parse::<f64>().ok();
    }
    // Underscores: only single ones, each between two digits.
    let bytes = body.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'_' {
            let digit_before = i > 0 && bytes[i - 1].is_ascii_digit();
            let digit_after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(digit_before && digit_after) {
                return None;
            }
        } else if !(b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')) {
            return None;
        }
    }
    s.replace('_', "").parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::py_float;

    #[test]
    fn accepts_what_python_accepts() {
        for (s, v) in [(" 12 ", 12.0), ("\n-3.5\t", -3.5), ("1e3", 1000.0), ("+.5", 0.5), ("1_000", 1000.0), ("5.", 5.0), ("1_0.2_5", 10.25)] {
            assert_eq!(py_float(s), Some(v), "{s:?}");
        }
        assert_eq!(py_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert!(py_float("NaN").unwrap().is_nan());
    }

    #[test]
    fn rejects_what_python_rejects() {
        for s in ["1,234", "$5", "5 km", "five", "", "_1", "1_", "1__0", "1._5", "0x10", "1 000", "e5", "--1", "in f"] {
            assert_eq!(py_float(s), None, "{s:?}");
        }
    }

    /// Each case as CPython 3.12's `float()` gives it (`_PyUnicode_TransformDecimalAndSpaceToASCII`:
    /// non-ASCII digits and spaces become ASCII, any other non-ASCII character fails; ASCII
    /// control separators such as U+001C are not stripped).
    #[test]
    fn unicode_digits_and_spaces_as_python_reads_them() {
        let read = [
            ("١٢٣", 123.0), ("١٢.٥", 12.5), ("-٣.٥", -3.5), ("٣e٢", 300.0), ("١_٠", 10.0), ("１２.５", 12.5),
            ("۴۲", 42.0), ("४२", 42.0), ("𝟓.𝟓", 5.5), ("3\u{3000}", 3.0), ("\u{a0}3", 3.0), ("3\u{85}", 3.0),
            ("\u{2028}7", 7.0), ("\u{11f53}", 3.0), ("\u{1e4f9}", 9.0),
        ];
        for (s, v) in read {
            assert_eq!(py_float(s), Some(v), "{s:?}");
        }
        for s in ["\u{1c}3", "3\u{200b}", "1٬000", "１２．５", "ｉｎｆ", "\u{2212}3", "⁵", "½", "٣٫٥", "1\u{660}\u{19da}"] {
            assert_eq!(py_float(s), None, "{s:?}");
        }
    }

    #[test]
    fn decimal_digits_are_unicode_nd() {
        use super::decimal_digit;
        for (c, v) in [('0', 0), ('9', 9), ('\u{669}', 9), ('\u{ff10}', 0), ('\u{1d7ff}', 9), ('\u{1fbf9}', 9), ('\u{19d9}', 9)] {
            assert_eq!(decimal_digit(c), Some(v), "{c:?}");
        }
        // No (superscripts, fractions, U+19DA), Nl (Roman numerals), letters and gaps.
        for c in ['\u{b2}', '\u{bd}', '\u{19da}', '\u{2160}', 'a', '/', ':', '\u{65f}', '\u{1fbfa}', '\u{10ffff}'] {
            assert_eq!(decimal_digit(c), None, "{c:?}");
        }
    }
}
