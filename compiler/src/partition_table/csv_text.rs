//! The text rules gen_esp32part.py inherits from Python: line splitting, whitespace stripping,
//! `$VAR` expansion and `int(x, 0)` with `k`/`m` suffixes.
//!
//! These are written out by hand (not with a CSV or number crate) because the oracle's
//! behaviour *is* Python's behaviour: `str.splitlines`, `str.strip`, `os.path.expandvars` and
//! `int(text, 0)`. Each function names the Python construct it mirrors.

use std::collections::BTreeMap;

/// Where `$NAME` / `${NAME}` in a CSV line get their values from.
///
/// gen_esp32part.py expands variables from the process environment. A library caller
/// usually wants the output to depend only on its inputs, so the default is [`Variables::None`]
/// (nothing is defined: `$NAME` stays as written, and a line *starting* with `$NAME` is an error,
/// exactly as the tool does for an unset variable).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Variables {
    /// No variable is defined.
    #[default]
    None,
    /// Read the process environment, like the Python tool.
    Process,
    /// A fixed set of variables.
    Map(BTreeMap<String, String>),
}

impl Variables {
    fn get(&self, name: &str) -> Option<String> {
        match self {
            Variables::None => None,
            Variables::Process => {
                // Python's os.environ never holds such keys; std may panic on them.
                if name.is_empty() || name.contains(['=', '\0']) {
                    return None;
                }
                std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
            }
            Variables::Map(map) => map.get(name).cloned(),
        }
    }
}

/// Python's `str.isspace` (Rust's `char::is_whitespace` plus the four ASCII separators).
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.splitlines()`: splits on `\n`, `\r\n`, `\r`, `\v`, `\f`, `\x1c`–`\x1e`,
/// `\x85`, U+2028 and U+2029; a final terminator does not start an extra empty line.
pub(crate) fn py_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let is_break = matches!(
            c,
            '\n' | '\r'
                | '\x0b'
                | '\x0c'
                | '\x1c'
                | '\x1d'
                | '\x1e'
                | '\u{85}'
                | '\u{2028}'
                | '\u{2029}'
        );
        if !is_break {
            continue;
        }
        lines.push(&text[start..i]);
        let mut end = i + c.len_utf8();
        if c == '\r' {
            if let Some(&(j, '\n')) = chars.peek() {
                chars.next();
                end = j + 1;
            }
        }
        start = end;
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// POSIX `os.path.expandvars`: `$name` (ASCII word characters) and `${anything}`; unknown
/// variables stay as written; substituted values are not expanded again.
pub(crate) fn expand_vars(line: &str, vars: &Variables) -> String {
    if !line.contains('$') {
        return line.to_owned();
    }
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'$' {
            // Copy up to the next '$' (which is ASCII, so this stays on char boundaries).
            let next = line[i..].find('$').map_or(line.len(), |n| i + n);
            out.push_str(&line[i..next]);
            i = next;
            continue;
        }
        // Try to match `\$(\w+|\{[^}]*\})` at i.
        let rest = &line[i + 1..];
        let (name, matched_len) = if rest.starts_with('{') {
            match rest.find('}') {
                Some(close) => (&rest[1..close], close + 1),
                None => ("", 0),
            }
        } else {
            let n = rest.bytes().take_while(|b| is_word_byte(*b)).count();
            (&rest[..n], n)
        };
        if matched_len == 0 {
            out.push('$');
            i += 1;
            continue;
        }
        match vars.get(name) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&line[i..=i + matched_len]),
        }
        i += 1 + matched_len;
    }
    out
}

/// The name of the variable an (expanded) line starts with, if it starts with `$identifier`:
/// gen_esp32part.py refuses such lines (`unknown variable 'NAME'`).
pub(crate) fn leading_variable(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('$')?;
    let first = rest.bytes().next()?;
    if !(first.is_ascii_alphabetic() || first == b'_') {
        return None;
    }
    let n = rest.bytes().take_while(|b| is_word_byte(*b)).count();
    Some(&rest[..n])
}

/// Why a number did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NumberError {
    /// `int(x, 0)` raised `ValueError` and there are no keywords: the text is reported as is
    /// (after any `k`/`m` suffixes were taken off).
    Invalid(String),
    /// Not a number and not one of the keywords.
    UnknownKeyword(String),
    /// A valid number that does not fit in 127 bits. Python would carry on with it and crash
    /// later (`struct.error`); we stop here.
    TooLarge(String),
}

/// How many stacked suffixes Python gets through before its recursion limit (1000 frames, some
/// already used by the tool) ends the run with `RecursionError`; we call that a crash too.
const MAX_SUFFIXES: usize = 900;

/// gen_esp32part.py's `parse_int`: `int(v, 0)` after taking off `k`/`m` suffixes (recursively,
/// case-insensitive), falling back to a case-insensitive keyword lookup. The recursion is
/// unrolled here: the suffixes are taken off first, then the core is multiplied from the inside
/// out.
pub(crate) fn parse_int(v: &str, keywords: &[(String, u8)]) -> Result<i128, NumberError> {
    let mut core = v;
    let mut multipliers: Vec<i128> = Vec::new();
    while let Some(last) = core.chars().last() {
        let multiplier = match last.to_lowercase().last() {
            Some('k') => 1024,
            Some('m') => 1024 * 1024,
            _ => break,
        };
        multipliers.push(multiplier);
        core = &core[..core.len() - last.len_utf8()];
        if multipliers.len() > MAX_SUFFIXES {
            return Err(NumberError::TooLarge(v.to_owned()));
        }
    }
    let mut value = match py_int(core) {
        Ok(n) => n,
        Err(PyIntError::TooLarge) => return Err(NumberError::TooLarge(core.to_owned())),
        Err(PyIntError::Invalid) => {
            if keywords.is_empty() {
                return Err(NumberError::Invalid(core.to_owned()));
            }
            let lower = core.to_lowercase();
            keywords
                .iter()
                .find(|(k, _)| *k == lower)
                .map(|(_, value)| i128::from(*value))
                .ok_or_else(|| NumberError::UnknownKeyword(core.to_owned()))?
        }
    };
    for m in multipliers.iter().rev() {
        value = value
            .checked_mul(*m)
            .ok_or_else(|| NumberError::TooLarge(v.to_owned()))?;
    }
    Ok(value)
}

#[derive(Debug, PartialEq, Eq)]
enum PyIntError {
    Invalid,
    TooLarge,
}

/// Python 3.11's decimal-digit limit for `int()` (`sys.get_int_max_str_digits()`), above which
/// it raises `ValueError`.
const PY_MAX_DECIMAL_DIGITS: usize = 4300;

/// Python's `int(text, 0)` for ASCII digits: optional surrounding whitespace and sign, a
/// `0x`/`0o`/`0b` prefix (any case), `_` between digits (also right after the prefix),
/// and no leading zeros on a non-zero decimal number.
fn py_int(text: &str) -> Result<i128, PyIntError> {
    let t = text.trim_matches(is_py_space);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let lower_prefix = t.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits, after_prefix) = match lower_prefix.as_deref() {
        Some("0x") => (16, &t[2..], true),
        Some("0o") => (8, &t[2..], true),
        Some("0b") => (2, &t[2..], true),
        _ => (10, t, false),
    };
    // Grammar: after a prefix `("_"? digit)+`; without one `digit ("_"? digit)*`.
    let bytes = digits.as_bytes();
    if bytes.is_empty() {
        return Err(PyIntError::Invalid);
    }
    let mut value: i128 = 0;
    let mut count = 0usize;
    let mut prev_underscore = !after_prefix; // an underscore may not come first without prefix
    let mut overflow = false;
    for &b in bytes {
        if b == b'_' {
            if prev_underscore {
                return Err(PyIntError::Invalid);
            }
            prev_underscore = true;
            continue;
        }
        let d = char::from(b).to_digit(radix).ok_or(PyIntError::Invalid)?;
        prev_underscore = false;
        count += 1;
        match value
            .checked_mul(i128::from(radix))
            .and_then(|v| v.checked_add(i128::from(d)))
        {
            Some(v) => value = v,
            None => overflow = true,
        }
    }
    if prev_underscore {
        return Err(PyIntError::Invalid);
    }
    if radix == 10 {
        // `0_0` is fine, `09` is not.
        if bytes[0] == b'0' && value != 0 {
            return Err(PyIntError::Invalid);
        }
        if count > PY_MAX_DECIMAL_DIGITS {
            return Err(PyIntError::Invalid);
        }
    }
    if overflow {
        return Err(PyIntError::TooLarge);
    }
    Ok(if negative { -value } else { value })
}

/// Python's `int(text, 0)` (no suffixes, no keywords): how gen_esp32part.py reads `--offset`
/// and the bootloader offsets, for a drop-in command line.
pub fn parse_option_int(text: &str) -> Option<i128> {
    py_int(text).ok()
}

/// Python's `int(text, 16)`: like base 0 but only hex digits, with an optional `0x` prefix.
pub(crate) fn parse_hex_int(text: &str) -> Option<i128> {
    let t = text.trim_matches(is_py_space);
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let body = if t.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("0x")) {
        format!("0x{}", &t[2..])
    } else {
        // Without a prefix an underscore may not come first: py_int enforces that via "0x_"
        // being allowed, so reject it here.
        if t.starts_with('_') {
            return None;
        }
        format!("0x{t}")
    };
    let v = py_int(&body).ok()?;
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_int_grammar() {
        assert_eq!(py_int("65536"), Ok(65536));
        assert_eq!(py_int("0x6_000"), Ok(0x6000));
        assert_eq!(py_int("0x_10"), Ok(16));
        assert_eq!(py_int("0X1f"), Ok(31));
        assert_eq!(py_int("0o17"), Ok(15));
        assert_eq!(py_int("0b101"), Ok(5));
        assert_eq!(py_int("-0x10"), Ok(-16));
        assert_eq!(py_int(" 12 "), Ok(12));
        assert_eq!(py_int("0_0"), Ok(0));
        assert_eq!(py_int("000"), Ok(0));
        assert_eq!(py_int("09000"), Err(PyIntError::Invalid));
        assert_eq!(py_int("1.5"), Err(PyIntError::Invalid));
        assert_eq!(py_int("_1"), Err(PyIntError::Invalid));
        assert_eq!(py_int("1__0"), Err(PyIntError::Invalid));
        assert_eq!(py_int("1_"), Err(PyIntError::Invalid));
        assert_eq!(py_int("0x"), Err(PyIntError::Invalid));
        assert_eq!(py_int(""), Err(PyIntError::Invalid));
        assert_eq!(py_int("- 1"), Err(PyIntError::Invalid));
    }

    #[test]
    fn suffixes_stack_and_apply_to_keywords() {
        let kw = vec![("app".to_owned(), 0u8), ("data".to_owned(), 1u8)];
        assert_eq!(parse_int("1kk", &[]), Ok(1024 * 1024));
        assert_eq!(parse_int("0x18K", &[]), Ok(0x6000));
        assert_eq!(parse_int("1 k", &[]), Ok(1024));
        assert_eq!(parse_int("DATA", &kw), Ok(1));
        assert_eq!(parse_int("datak", &kw), Ok(1024));
        assert_eq!(
            parse_int("1.5M", &[]),
            Err(NumberError::Invalid("1.5".into()))
        );
        assert_eq!(
            parse_int("x", &kw),
            Err(NumberError::UnknownKeyword("x".into()))
        );
    }

    #[test]
    fn splitlines_like_python() {
        assert_eq!(py_splitlines("a\r\nb\rc\nd"), vec!["a", "b", "c", "d"]);
        assert_eq!(py_splitlines("a\n\nb\n"), vec!["a", "", "b"]);
        assert_eq!(py_splitlines("a\x0cb\u{2028}c"), vec!["a", "b", "c"]);
        assert!(py_splitlines("").is_empty());
    }

    #[test]
    fn expandvars_like_posix_python() {
        let vars = Variables::Map(BTreeMap::from([("A".to_owned(), "$B".to_owned())]));
        assert_eq!(expand_vars("x$A,${A}y", &vars), "x$B,$By");
        assert_eq!(
            expand_vars("$NOPE ${NOPE} $ ${", &vars),
            "$NOPE ${NOPE} $ ${"
        );
        assert_eq!(leading_variable("$NOPE,data"), Some("NOPE"));
        assert_eq!(leading_variable("$1"), None);
        assert_eq!(leading_variable(" $X"), None);
    }
}
