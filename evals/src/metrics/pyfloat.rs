//! Python's `float(str)` for the inputs benchmark answers contain.

/// Parses like Python's `float()`: surrounding whitespace allowed, optional sign, decimal or
/// exponent notation, `inf`/`infinity`/`nan` in any case, single underscores between digits.
/// Thousands separators, currency signs and units are rejected. (Non-ASCII decimal digits,
/// which Python also accepts, are not.)
pub fn py_float(text: &str) -> Option<f64> {
    let s = text.trim();
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
}
