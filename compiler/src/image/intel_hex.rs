//! Intel HEX, byte for byte as the Python `intelhex` 2.3.0 package writes it — the package
//! esptool's `merge-bin --format hex` uses — and read the way esptool reads a `.hex` input
//! file (`docs/formats/esp-at-images.md` §10.4).
//!
//! Writing (`IntelHex.write_hex_file`, 16 data bytes per record): data records never cross a
//! 64 KiB boundary or a gap; when any byte lies above 0xFFFF, an extended linear address record
//! (type 04) starts the file and every later 64 KiB block that holds data; the file ends with
//! `:00000001FF`. Hex digits are upper case, lines end in `\n`.

use std::fmt::Write as _;

/// Data bytes per record, `intelhex`'s default `byte_count`.
const RECORD_DATA: u64 = 16;

/// Why a file is not Intel HEX. [`DecodeError::NotHex`] makes esptool treat the file as raw
/// binary; [`DecodeError::Overlap`] makes it fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not UTF-8, or a record that `intelhex` refuses (bad syntax, length, type or checksum).
    NotHex {
        /// 1-based line of the first bad record (0 when the file is not UTF-8).
        line: usize,
    },
    /// Two data records write the same address.
    Overlap {
        /// The address written twice.
        address: u64,
        /// 1-based line of the second record.
        line: usize,
    },
}

/// Encodes non-overlapping `(address, bytes)` regions (any order) as `intelhex` writes them.
/// Adjacent regions are written as one run, as `intelhex` sees only addresses.
pub fn encode(regions: &[(u32, &[u8])]) -> String {
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut sorted: Vec<&(u32, &[u8])> = regions.iter().filter(|r| !r.1.is_empty()).collect();
    sorted.sort_by_key(|r| r.0);
    for &&(addr, data) in &sorted {
        let addr = u64::from(addr);
        match runs.last_mut() {
            Some((start, bytes)) if *start + bytes.len() as u64 == addr => {
                bytes.extend_from_slice(data);
            }
            _ => runs.push((addr, data.to_vec())),
        }
    }
    let mut out = String::new();
    if let Some((last_start, last)) = runs.last() {
        let max_addr = last_start + last.len() as u64 - 1;
        let need_offset_record = max_addr > 0xFFFF;
        let mut high = None;
        for (start, bytes) in &runs {
            let mut at = 0u64;
            let len = bytes.len() as u64;
            while at < len {
                let cur = start + at;
                if need_offset_record && high != Some(cur >> 16) {
                    high = Some(cur >> 16);
                    let h = u16::try_from(cur >> 16).unwrap_or(u16::MAX);
                    record(&mut out, 0, 4, &h.to_be_bytes());
                }
                let low = cur & 0xFFFF;
                let n = RECORD_DATA.min(0x1_0000 - low).min(len - at);
                let s = usize::try_from(at).unwrap_or(usize::MAX);
                let e = usize::try_from(at + n).unwrap_or(usize::MAX);
                record(&mut out, u16::try_from(low).unwrap_or(0), 0, &bytes[s..e]);
                at += n;
            }
        }
    }
    out.push_str(":00000001FF\n");
    out
}

fn record(out: &mut String, addr: u16, kind: u8, data: &[u8]) {
    let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
    let [hi, lo] = addr.to_be_bytes();
    let mut sum = len.wrapping_add(hi).wrapping_add(lo).wrapping_add(kind);
    let _ = write!(out, ":{len:02X}{addr:04X}{kind:02X}");
    for &b in data {
        sum = sum.wrapping_add(b);
        let _ = write!(out, "{b:02X}");
    }
    let _ = writeln!(out, "{:02X}", sum.wrapping_neg());
}

/// Reads an Intel HEX file as `IntelHex.loadhex` does (text with universal newlines; records
/// types 00–05; data after the end-of-file record ignored; a missing end record accepted) and
/// returns its bytes as the contiguous runs esptool cuts it into, sorted by address.
pub fn decode(bytes: &[u8]) -> Result<Vec<(u64, Vec<u8>)>, DecodeError> {
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotHex { line: 0 })?;
    let mut data: std::collections::BTreeMap<u64, u8> = std::collections::BTreeMap::new();
    let mut offset: u64 = 0;
    let mut start_seen = false;
    for (index, line) in universal_lines(text).enumerate() {
        let line_no = index + 1;
        let bad = || DecodeError::NotHex { line: line_no };
        if line.is_empty() {
            continue;
        }
        let hex = line.strip_prefix(':').ok_or_else(bad)?;
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let rec: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
            .collect();
        if rec.len() < 5 || rec.len() != 5 + usize::from(rec[0]) {
            return Err(bad());
        }
        let addr = u64::from(u16::from_be_bytes([rec[1], rec[2]]));
        let kind = rec[3];
        if kind > 5 || rec.iter().fold(0u8, |a, &b| a.wrapping_add(b)) != 0 {
            return Err(bad());
        }
        let payload = &rec[4..rec.len() - 1];
        match kind {
            0 => {
                for (i, &b) in payload.iter().enumerate() {
                    let address = offset + addr + i as u64;
                    if data.insert(address, b).is_some() {
                        return Err(DecodeError::Overlap {
                            address,
                            line: line_no,
                        });
                    }
                }
            }
            1 if payload.is_empty() => break,
            2 | 4 if payload.len() == 2 && addr == 0 => {
                let value = u64::from(u16::from_be_bytes([payload[0], payload[1]]));
                offset = if kind == 2 { value * 16 } else { value << 16 };
            }
            3 | 5 if payload.len() == 4 && addr == 0 && !start_seen => start_seen = true,
            _ => return Err(bad()),
        }
    }
    let mut runs: Vec<(u64, Vec<u8>)> = Vec::new();
    for (address, byte) in data {
        match runs.last_mut() {
            Some((start, bytes)) if *start + bytes.len() as u64 == address => bytes.push(byte),
            _ => runs.push((address, vec![byte])),
        }
    }
    Ok(runs)
}

/// Python's universal-newline line iteration with the line ends removed: `\r\n`, `\r` and
/// `\n` each end a line.
fn universal_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
        let line = &rest[..end];
        let skip = if rest[end..].starts_with("\r\n") {
            2
        } else {
            usize::from(end < rest.len())
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_file_has_no_offset_record() {
        // Worked by hand: 3 bytes at 0x0010; checksum = -(03+00+10+00+01+02+03) = 0xE7.
        assert_eq!(
            encode(&[(0x10, &[1, 2, 3])]),
            ":03001000010203E7\n:00000001FF\n"
        );
    }

    #[test]
    fn records_split_at_gaps_and_64k_blocks() {
        let a = [0xAAu8; 20];
        let text = encode(&[(0xFFF8, &a)]);
        let lines: Vec<&str> = text.lines().collect();
        // 04 record for block 0, 8 bytes up to 0xFFFF, 04 record for block 1, 12 bytes.
        assert_eq!(lines[0], ":020000040000FA");
        assert!(lines[1].starts_with(":08FFF800"));
        assert_eq!(lines[2], ":020000040001F9");
        assert!(lines[3].starts_with(":0C000000"));
        assert_eq!(lines[4], ":00000001FF");
        assert_eq!(decode(text.as_bytes()).unwrap(), vec![(0xFFF8, a.to_vec())]);
    }

    #[test]
    fn decode_is_lenient_where_intelhex_is_and_strict_where_it_is_not() {
        assert_eq!(
            decode(b":0100000041BE\r\n\r\n:00000001FF\n:zz").unwrap(),
            vec![(0, vec![0x41])]
        );
        assert_eq!(
            decode(b":0100000041BF\n"),
            Err(DecodeError::NotHex { line: 1 })
        );
        assert_eq!(
            decode(b" :0100000041BE\n"),
            Err(DecodeError::NotHex { line: 1 })
        );
        assert_eq!(
            decode(b":0100000041BE\n:0100000042BD\n"),
            Err(DecodeError::Overlap {
                address: 0,
                line: 2
            })
        );
        assert_eq!(decode(&[b':', 0xFF]), Err(DecodeError::NotHex { line: 0 }));
    }
}
