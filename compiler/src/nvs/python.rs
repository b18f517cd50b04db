//! The few Python built-ins whose exact behaviour decides what the generator accepts:
//! `int(text)`, `int(text, 0)`, `str.strip()`, `binascii.a2b_hex` and `binascii.a2b_base64`.
//!
//! Re-implemented from their documented semantics so that we accept and reject the same inputs.

/// Outcome of parsing an integer the way Python does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PyInt {
    /// A value that fits in an `i128`.
    Value(i128),
    /// Valid syntax, but the magnitude exceeds `i128` (out of range for every NVS type).
    Huge,
    /// Not an integer literal.
    Invalid,
}

/// Python's `str.isspace()` for one character: Unicode White_Space plus the four ASCII
/// information separators `\x1c`..`\x1f`.
pub fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()` with no argument.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `bytes.strip()` with no argument (ASCII whitespace only).
pub fn py_strip_bytes(b: &[u8]) -> &[u8] {
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = b.iter().position(|c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !is_space(c))
        .map_or(start, |i| i + 1);
    &b[start..end]
}

/// `int(text)` for a `str`: Unicode whitespace is allowed around the literal.
/// (Python also accepts non-ASCII decimal digits; we do not — a documented divergence.)
pub fn int_from_str(s: &str) -> PyInt {
    if s.bytes()
        .all(|b| b.is_ascii() && !(0x1c..=0x1f).contains(&b))
    {
        return parse_radix_literal(s.as_bytes(), 10, false);
    }
    let mut ascii = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_py_space(c) {
            ascii.push(b' ');
        } else if c.is_ascii() {
            ascii.push(c as u8);
        } else {
            return PyInt::Invalid;
        }
    }
    parse_radix_literal(&ascii, 10, false)
}

/// `int(data)` for `bytes` (a `file` row): ASCII whitespace is allowed around the literal.
pub fn int_from_bytes(b: &[u8]) -> PyInt {
    if !b.is_ascii() {
        return PyInt::Invalid;
    }
    parse_radix_literal(b, 10, false)
}

/// `int(text, 0)`: decimal or `0x`/`0o`/`0b` prefixed, as the generator reads SIZE.
pub fn int_base0(s: &str) -> PyInt {
    int_from_str_with(s, true)
}

fn int_from_str_with(s: &str, base0: bool) -> PyInt {
    let mut ascii = Vec::with_capacity(s.len());
    for c in s.chars() {
        if is_py_space(c) {
            ascii.push(b' ');
        } else if c.is_ascii() {
            ascii.push(c as u8);
        } else {
            return PyInt::Invalid;
        }
    }
    parse_radix_literal(&ascii, 10, base0)
}

fn parse_radix_literal(text: &[u8], radix: u32, base0: bool) -> PyInt {
    let t = py_strip_bytes(text);
    let (neg, mut rest) = match t.first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut radix = radix;
    let mut leading_zero_rule = false;
    if base0 {
        let prefix = |p: u8| rest.len() >= 2 && rest[0] == b'0' && rest[1].eq_ignore_ascii_case(&p);
        if prefix(b'x') {
            radix = 16;
        } else if prefix(b'o') {
            radix = 8;
        } else if prefix(b'b') {
            radix = 2;
        } else {
            leading_zero_rule = true;
        }
        if radix != 10 {
            rest = &rest[2..];
            // An underscore may follow the prefix directly: 0x_1f.
            if rest.first() == Some(&b'_') {
                rest = &rest[1..];
                if rest.is_empty() {
                    return PyInt::Invalid;
                }
            }
        }
    }
    if rest.is_empty() {
        return PyInt::Invalid;
    }
    let mut value: i128 = 0;
    let mut huge = false;
    let mut prev_underscore = true; // forbids a leading underscore
    let mut all_zero = true;
    for &c in rest {
        if c == b'_' {
            if prev_underscore {
                return PyInt::Invalid;
            }
            prev_underscore = true;
            continue;
        }
        let Some(d) = char::from(c).to_digit(radix) else {
            return PyInt::Invalid;
        };
        prev_underscore = false;
        if d != 0 {
            all_zero = false;
        }
        match value
            .checked_mul(i128::from(radix))
            .and_then(|v| v.checked_add(i128::from(d)))
        {
            Some(v) => value = v,
            None => huge = true,
        }
    }
    if prev_underscore {
        return PyInt::Invalid;
    }
    // With base 0, a decimal literal may not start with 0 unless it is all zeros.
    if leading_zero_rule && rest[0] == b'0' && !all_zero {
        return PyInt::Invalid;
    }
    if huge {
        PyInt::Huge
    } else if neg {
        PyInt::Value(-value)
    } else {
        PyInt::Value(value)
    }
}

/// `binascii.a2b_hex` on ASCII input; `None` on a non-hex digit or odd length.
pub fn a2b_hex(b: &[u8]) -> Option<Vec<u8>> {
    if b.len() % 2 != 0 {
        return None;
    }
    let nibble = |c: u8| char::from(c).to_digit(16);
    b.chunks_exact(2)
        .map(|p| Some(u8::try_from(nibble(p[0])? * 16 + nibble(p[1])?).expect("two nibbles")))
        .collect()
}

/// `binascii.a2b_base64` in its default (non-strict) mode: characters outside the alphabet are
/// skipped, a pad sequence ends the input, and leftover bits are an error.
pub fn a2b_base64(input: &[u8]) -> Result<Vec<u8>, String> {
    // 0xFF marks bytes outside the alphabet (skipped, as in non-strict mode).
    const TABLE: [u8; 256] = {
        let mut t = [0xFF; 256];
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut i = 0;
        while i < 64 {
            t[alphabet[i] as usize] = i as u8;
            i += 1;
        }
        t
    };
    let value = |c: u8| -> Option<u8> {
        let v = TABLE[usize::from(c)];
        (v != 0xFF).then_some(v)
    };
    let mut out = Vec::with_capacity(input.len() / 4 * 3 + 3);
    // Fast path: whole groups of four alphabet characters. It stops at the first group holding
    // anything else (padding, a skipped character), where the general loop below takes over in
    // its initial state, which is the state between groups.
    let mut done = 0;
    for quad in input.chunks_exact(4) {
        let v = [
            TABLE[usize::from(quad[0])],
            TABLE[usize::from(quad[1])],
            TABLE[usize::from(quad[2])],
            TABLE[usize::from(quad[3])],
        ];
        if (v[0] | v[1] | v[2] | v[3]) & 0xC0 != 0 {
            break;
        }
        let n = (u32::from(v[0]) << 18)
            | (u32::from(v[1]) << 12)
            | (u32::from(v[2]) << 6)
            | u32::from(v[3]);
        out.extend_from_slice(&n.to_be_bytes()[1..]);
        done += 4;
    }
    let mut quad_pos = 0u8;
    let mut left: u8 = 0;
    let mut pads = 0u8;
    for &c in &input[done..] {
        if c == b'=' {
            if quad_pos >= 2 {
                pads += 1;
                if quad_pos + pads >= 4 {
                    return Ok(out);
                }
            }
            continue;
        }
        let Some(v) = value(c) else { continue };
        pads = 0;
        match quad_pos {
            0 => {
                quad_pos = 1;
                left = v;
            }
            1 => {
                quad_pos = 2;
                out.push((left << 2) | (v >> 4));
                left = v & 0x0F;
            }
            2 => {
                quad_pos = 3;
                out.push((left << 4) | (v >> 2));
                left = v & 0x03;
            }
            _ => {
                quad_pos = 0;
                out.push((left << 6) | v);
                left = 0;
            }
        }
    }
    match quad_pos {
        0 => Ok(out),
        1 => Err(format!(
            "Invalid base64-encoded string: number of data characters ({}) cannot be 1 more than a multiple of 4",
            out.len() / 3 * 4 + 1
        )),
        _ => Err("Incorrect padding".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values: Python 3.11 behaviour (checked in the venv oracle interpreter by hand).
    #[test]
    fn int_parsing() {
        assert_eq!(int_from_str(" 1_0 "), PyInt::Value(10));
        assert_eq!(int_from_str("-128"), PyInt::Value(-128));
        assert_eq!(int_from_str("007"), PyInt::Value(7));
        assert_eq!(int_from_str("0x10"), PyInt::Invalid);
        assert_eq!(int_from_str("1__0"), PyInt::Invalid);
        assert_eq!(int_from_str("_1"), PyInt::Invalid);
        assert_eq!(int_from_str(""), PyInt::Invalid);
        assert_eq!(int_from_str("- 1"), PyInt::Invalid);
        assert_eq!(int_from_bytes(b"12345\n"), PyInt::Value(12345));
        assert_eq!(
            int_from_str("99999999999999999999999999999999999999999"),
            PyInt::Huge
        );
        assert_eq!(int_base0("0x6000"), PyInt::Value(0x6000));
        assert_eq!(int_base0("0x_60_00"), PyInt::Value(0x6000));
        assert_eq!(int_base0("24576"), PyInt::Value(24576));
        assert_eq!(int_base0("010"), PyInt::Invalid);
        assert_eq!(int_base0("00"), PyInt::Value(0));
        assert_eq!(int_base0("0b1"), PyInt::Value(1));
    }

    #[test]
    fn base64_lenient() {
        assert_eq!(a2b_base64(b"YQ==").unwrap(), b"a");
        assert_eq!(a2b_base64(b"YQ").unwrap_err(), "Incorrect padding");
        assert!(a2b_base64(b"Y").unwrap_err().contains("cannot be 1 more"));
        assert_eq!(a2b_base64(b"YQ=x=").unwrap(), b"a\x0c");
        assert_eq!(a2b_base64(b"a=b=c=d").unwrap(), b"i\xb7");
        assert_eq!(a2b_base64(b"ab=cdef=").unwrap_err(), "Incorrect padding");
        assert_eq!(a2b_base64(b"aGk=\n!").unwrap(), b"hi");
        // Python 3.11 binascii.a2b_base64, across the whole-group fast path.
        assert_eq!(a2b_base64(b"YWJj=").unwrap(), b"abc");
        assert_eq!(a2b_base64(b"YWJjZA==").unwrap(), b"abcd");
        assert_eq!(a2b_base64(b"YW Jj").unwrap(), b"abc");
        assert_eq!(a2b_base64(b"YWJjZGVm").unwrap(), b"abcdef");
        assert_eq!(a2b_base64(b"YWJj\nZGVm").unwrap(), b"abcdef");
    }
}
