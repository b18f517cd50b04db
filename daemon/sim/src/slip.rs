//! SLIP framing (RFC 1055 as the ESP loaders use it, `docs/formats/serial-protocol.md` §2).
//!
//! Every packet travels as `C0 <escaped bytes> C0`; inside a frame `C0` becomes `DB DC` and `DB`
//! becomes `DB DD`. Lengths and checksums are computed on the unescaped bytes.

/// Frame delimiter.
pub const END: u8 = 0xC0;
/// Escape introducer.
pub const ESC: u8 = 0xDB;
/// `DB DC` stands for a `C0` inside a frame.
pub const ESC_END: u8 = 0xDC;
/// `DB DD` stands for a `DB` inside a frame.
pub const ESC_ESC: u8 = 0xDD;

/// Wraps `payload` in a SLIP frame: opening `C0`, escaped payload, closing `C0`.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + payload.len() / 64 + 2);
    out.push(END);
    for &b in payload {
        match b {
            END => out.extend_from_slice(&[ESC, ESC_END]),
            ESC => out.extend_from_slice(&[ESC, ESC_ESC]),
            _ => out.push(b),
        }
    }
    out.push(END);
    out
}

/// Why a frame was thrown away by the [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A `DB` was followed by something other than `DC` or `DD`; the whole frame is dropped.
    #[error("invalid SLIP escape DB {0:02X}")]
    BadEscape(u8),
}

/// A streaming SLIP decoder that turns bytes from the wire into frames, one byte at a time.
///
/// Bytes outside frames are noise and ignored. Two `C0`s in a row are an empty frame, which
/// means nothing: the second `C0` opens the next frame. That is what makes the decoder
/// resynchronise after a dropped delimiter, like the real ROM.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    in_frame: bool,
    escape: bool,
}

impl Decoder {
    /// A decoder waiting for the first `C0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// True while a frame has been opened and not yet closed.
    pub fn in_frame(&self) -> bool {
        self.in_frame
    }

    /// Feeds one byte. Returns `Some(Ok(frame))` when a non-empty frame closes and
    /// `Some(Err(_))` when a framing error throws the current frame away.
    pub fn push(&mut self, byte: u8) -> Option<Result<Vec<u8>, FramingError>> {
        if !self.in_frame {
            if byte == END {
                self.in_frame = true;
                self.buf.clear();
                self.escape = false;
            }
            return None;
        }
        if self.escape {
            self.escape = false;
            match byte {
                ESC_END => self.buf.push(END),
                ESC_ESC => self.buf.push(ESC),
                other => {
                    // Drop the frame; resynchronise at the next delimiter.
                    self.in_frame = false;
                    self.buf.clear();
                    return Some(Err(FramingError::BadEscape(other)));
                }
            }
            return None;
        }
        match byte {
            END if self.buf.is_empty() => None, // empty frame: this C0 opens the next one
            END => {
                self.in_frame = false;
                Some(Ok(std::mem::take(&mut self.buf)))
            }
            ESC => {
                self.escape = true;
                None
            }
            other => {
                self.buf.push(other);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Result<Vec<u8>, FramingError>> {
        let mut d = Decoder::new();
        bytes.iter().filter_map(|&b| d.push(b)).collect()
    }

    #[test]
    fn encode_escapes_delimiter_and_escape() {
        // Spec section 2: C0 -> DB DC, DB -> DB DD, framed by C0.
        assert_eq!(
            encode(&[0x01, 0xC0, 0x02, 0xDB, 0x03]),
            vec![0xC0, 0x01, 0xDB, 0xDC, 0x02, 0xDB, 0xDD, 0x03, 0xC0]
        );
        assert_eq!(encode(&[]), vec![0xC0, 0xC0]);
    }

    #[test]
    fn decode_round_trips_every_byte_value() {
        let payload: Vec<u8> = (0..=255u8).chain([0xC0, 0xDB, 0xDB, 0xC0]).collect();
        assert_eq!(decode_all(&encode(&payload)), vec![Ok(payload)]);
    }

    #[test]
    fn noise_outside_frames_is_ignored_and_back_to_back_frames_split() {
        let mut wire = b"boot log\r\n".to_vec();
        wire.extend(encode(b"one"));
        wire.extend(encode(b"two")); // C0 ... C0 C0 ... C0
        wire.extend_from_slice(&[0xC0, 0xC0]); // an empty frame means nothing
        wire.extend(encode(b"three"));
        assert_eq!(
            decode_all(&wire),
            vec![
                Ok(b"one".to_vec()),
                Ok(b"two".to_vec()),
                Ok(b"three".to_vec())
            ]
        );
    }

    #[test]
    fn bad_escape_drops_the_frame_and_resynchronises() {
        let mut wire = vec![0xC0, 0x01, 0xDB, 0x05, 0x02, 0xC0];
        wire.extend(encode(b"next"));
        assert_eq!(
            decode_all(&wire),
            vec![Err(FramingError::BadEscape(0x05)), Ok(b"next".to_vec())]
        );
    }

    #[test]
    fn lost_closing_delimiter_costs_only_the_damaged_frame() {
        // The closing C0 of the first frame is lost: "abc" runs into the next frame's opening C0,
        // which closes it; the decoder then treats "def" as noise and resynchronises on its closing
        // C0, so the third frame arrives intact.
        let wire = [
            &[0xC0][..],
            b"abc",
            &[0xC0][..],
            b"def",
            &[0xC0, 0xC0][..],
            b"ghi",
            &[0xC0][..],
        ]
        .concat();
        assert_eq!(
            decode_all(&wire),
            vec![Ok(b"abc".to_vec()), Ok(b"ghi".to_vec())]
        );
    }
}
