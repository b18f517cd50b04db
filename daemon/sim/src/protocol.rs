//! Packet layout, opcodes, checksum and status bytes of the ESP serial protocol (`docs/formats/serial-protocol.md`
//! §3 to §5). Pure functions from bytes to bytes; the loader logic lives in `device`.

/// Opcodes the simulator knows (`docs/formats/serial-protocol.md` §5).
pub mod op {
    /// Start an uncompressed flash write.
    pub const FLASH_BEGIN: u8 = 0x02;
    /// One block of an uncompressed flash write.
    pub const FLASH_DATA: u8 = 0x03;
    /// Finish a flash write: 0 = reboot, 1 = run user code.
    pub const FLASH_END: u8 = 0x04;
    /// Start a RAM download (the stub upload).
    pub const MEM_BEGIN: u8 = 0x05;
    /// Finish a RAM download, optionally jumping to an entry point.
    pub const MEM_END: u8 = 0x06;
    /// One block of a RAM download.
    pub const MEM_DATA: u8 = 0x07;
    /// Synchronise (and autobaud in the ROM).
    pub const SYNC: u8 = 0x08;
    /// Write one or more registers.
    pub const WRITE_REG: u8 = 0x09;
    /// Read one register.
    pub const READ_REG: u8 = 0x0A;
    /// Set SPI flash parameters (total size).
    pub const SPI_SET_PARAMS: u8 = 0x0B;
    /// Attach the SPI flash.
    pub const SPI_ATTACH: u8 = 0x0D;
    /// ROM-only slow flash read, 64 bytes per command.
    pub const READ_FLASH_SLOW: u8 = 0x0E;
    /// Change the UART speed.
    pub const CHANGE_BAUDRATE: u8 = 0x0F;
    /// Start a compressed flash write.
    pub const FLASH_DEFL_BEGIN: u8 = 0x10;
    /// One block of a compressed flash write (a piece of one zlib stream).
    pub const FLASH_DEFL_DATA: u8 = 0x11;
    /// Finish a compressed flash write.
    pub const FLASH_DEFL_END: u8 = 0x12;
    /// MD5 of a flash region.
    pub const SPI_FLASH_MD5: u8 = 0x13;
    /// Security info; carries the chip id on ESP32-C3.
    pub const GET_SECURITY_INFO: u8 = 0x14;
    /// Stub: erase the whole chip.
    pub const ERASE_FLASH: u8 = 0xD0;
    /// Stub: erase a sector-aligned region.
    pub const ERASE_REGION: u8 = 0xD1;
    /// Stub: fast flash read with acknowledged data frames.
    pub const READ_FLASH: u8 = 0xD2;
    /// Stub: leave the loader and run the application.
    pub const RUN_USER_CODE: u8 = 0xD3;

    /// A human name for an opcode, for events and logs.
    pub fn name(op: u8) -> &'static str {
        match op {
            FLASH_BEGIN => "FLASH_BEGIN",
            FLASH_DATA => "FLASH_DATA",
            FLASH_END => "FLASH_END",
            MEM_BEGIN => "MEM_BEGIN",
            MEM_END => "MEM_END",
            MEM_DATA => "MEM_DATA",
            SYNC => "SYNC",
            WRITE_REG => "WRITE_REG",
            READ_REG => "READ_REG",
            SPI_SET_PARAMS => "SPI_SET_PARAMS",
            SPI_ATTACH => "SPI_ATTACH",
            READ_FLASH_SLOW => "READ_FLASH_SLOW",
            CHANGE_BAUDRATE => "CHANGE_BAUDRATE",
            FLASH_DEFL_BEGIN => "FLASH_DEFL_BEGIN",
            FLASH_DEFL_DATA => "FLASH_DEFL_DATA",
            FLASH_DEFL_END => "FLASH_DEFL_END",
            SPI_FLASH_MD5 => "SPI_FLASH_MD5",
            GET_SECURITY_INFO => "GET_SECURITY_INFO",
            ERASE_FLASH => "ERASE_FLASH",
            ERASE_REGION => "ERASE_REGION",
            READ_FLASH => "READ_FLASH",
            RUN_USER_CODE => "RUN_USER_CODE",
            _ => "UNKNOWN",
        }
    }
}

/// The 36-byte payload of a SYNC command: `07 07 12 20` and 32 × `55`.
pub const SYNC_PAYLOAD: [u8; 36] = {
    let mut p = [0x55u8; 36];
    p[0] = 0x07;
    p[1] = 0x07;
    p[2] = 0x12;
    p[3] = 0x20;
    p
};

/// Seed of the data checksum (`docs/formats/serial-protocol.md` §3.3).
pub const CHECKSUM_SEED: u8 = 0xEF;

/// The checksum of the `*_DATA` commands: `EF` XOR every byte of the block.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(CHECKSUM_SEED, |acc, b| acc ^ b)
}

/// A command frame as the host sent it (`docs/formats/serial-protocol.md` §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The opcode.
    pub op: u8,
    /// The checksum field (meaningful for the three `*_DATA` commands only).
    pub checksum: u32,
    /// The data field.
    pub data: Vec<u8>,
}

/// Why a frame is not a command. The ROM gives no reply to such frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer than the 8 header bytes.
    #[error("frame of {0} bytes is shorter than a command header")]
    TooShort(usize),
    /// The direction byte is not 00.
    #[error("direction byte {0:02X} is not a request")]
    NotARequest(u8),
    /// The size field disagrees with the bytes that followed.
    #[error("size field says {declared} bytes but {actual} followed")]
    SizeMismatch {
        /// The size field.
        declared: usize,
        /// Bytes after the header.
        actual: usize,
    },
}

impl Command {
    /// Parses an unescaped frame.
    pub fn parse(frame: &[u8]) -> Result<Self, PacketError> {
        if frame.len() < 8 {
            return Err(PacketError::TooShort(frame.len()));
        }
        if frame[0] != 0x00 {
            return Err(PacketError::NotARequest(frame[0]));
        }
        let declared = usize::from(u16::from_le_bytes([frame[2], frame[3]]));
        let data = &frame[8..];
        if declared != data.len() {
            return Err(PacketError::SizeMismatch {
                declared,
                actual: data.len(),
            });
        }
        Ok(Command {
            op: frame[1],
            checksum: le32(frame, 4),
            data: data.to_vec(),
        })
    }

    /// Builds a request frame (unescaped); used by tests and by raw clients.
    pub fn encode(op: u8, data: &[u8], checksum: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + data.len());
        out.push(0x00);
        out.push(op);
        out.extend_from_slice(
            &u16::try_from(data.len())
                .expect("command data fits in 64 KiB")
                .to_le_bytes(),
        );
        out.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// The `n`th little-endian word of the data field, if present.
    pub fn word(&self, n: usize) -> Option<u32> {
        let start = n * 4;
        (self.data.len() >= start + 4).then(|| le32(&self.data, start))
    }
}

/// Reads a little-endian u32 at `at`.
pub fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Which loader answers: decides the status bytes (`docs/formats/serial-protocol.md` §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    /// The mask-ROM serial loader: 4 status bytes.
    Rom,
    /// The flasher stub: 2 status bytes.
    Stub,
}

/// A failure as the loader reports it. Each site names both codes; the loader in charge picks
/// one (`docs/formats/serial-protocol.md` §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// ROM error code (second status byte, first is 01).
    pub rom: u8,
    /// Stub error code (first status byte).
    pub stub: u8,
}

impl Failure {
    /// ROM 01 (invalid parameter) / stub C0 (bad data length).
    pub const BAD_LENGTH: Failure = Failure {
        rom: 0x01,
        stub: 0xC0,
    };
    /// ROM 05 (invalid message) / stub FF (not implemented).
    pub const UNSUPPORTED: Failure = Failure {
        rom: 0x05,
        stub: 0xFF,
    };
    /// ROM 07 / stub C1: data checksum mismatch.
    pub const CHECKSUM: Failure = Failure {
        rom: 0x07,
        stub: 0xC1,
    };
    /// ROM 01 / stub C6: DATA without BEGIN.
    pub const NOT_IN_FLASH_MODE: Failure = Failure {
        rom: 0x01,
        stub: 0xC6,
    };
    /// ROM 01 / stub C2: out-of-sequence block, or a bad block size.
    pub const BAD_SEQUENCE: Failure = Failure {
        rom: 0x01,
        stub: 0xC2,
    };
    /// ROM 06 / stub C4: the SPI flash operation failed (e.g. outside the flash).
    pub const FLASH_OP: Failure = Failure {
        rom: 0x06,
        stub: 0xC4,
    };
    /// ROM 0B / stub C7: the zlib stream is broken.
    pub const INFLATE: Failure = Failure {
        rom: 0x0B,
        stub: 0xC7,
    };
    /// ROM 0C / stub C7: the zlib Adler-32 trailer does not match.
    pub const ADLER: Failure = Failure {
        rom: 0x0C,
        stub: 0xC7,
    };
    /// ROM 0A / stub C0: a read longer than the command allows.
    pub const READ_LENGTH: Failure = Failure {
        rom: 0x0A,
        stub: 0xC0,
    };
    /// Stub C8: END before all declared bytes were written (the ROM does not check).
    pub const NOT_ENOUGH_DATA: Failure = Failure {
        rom: 0x06,
        stub: 0xC8,
    };
    /// Stub C9: more bytes than BEGIN declared (the ROM does not check).
    pub const TOO_MUCH_DATA: Failure = Failure {
        rom: 0x06,
        stub: 0xC9,
    };
}

/// Builds a response frame (unescaped): header, `payload`, then the loader's status bytes.
///
/// `value` goes into the header's value field (READ_REG result, SYNC marker).
pub fn response(
    op: u8,
    value: u32,
    payload: &[u8],
    result: Result<(), Failure>,
    loader: Loader,
) -> Vec<u8> {
    let status: &[u8] = match (loader, result) {
        (Loader::Rom, Ok(())) => &[0, 0, 0, 0],
        (Loader::Rom, Err(f)) => &[1, f.rom, 0, 0],
        (Loader::Stub, Ok(())) => &[0, 0],
        (Loader::Stub, Err(f)) => &[f.stub, 0],
    };
    let size = payload.len() + status.len();
    let mut out = Vec::with_capacity(8 + size);
    out.push(0x01);
    out.push(op);
    out.extend_from_slice(
        &u16::try_from(size)
            .expect("response fits in 64 KiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(&value.to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(status);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_ef_xor_bytes() {
        // Worked by hand: EF ^ 01 ^ 02 ^ 03 = EF ^ 00 = EF; EF ^ FF = 10.
        assert_eq!(checksum(&[]), 0xEF);
        assert_eq!(checksum(&[1, 2, 3]), 0xEF);
        assert_eq!(checksum(&[0xFF]), 0x10);
        // A block of 0x400 FF padding bytes cancels out in pairs.
        assert_eq!(checksum(&[0xFF; 0x400]), 0xEF);
        assert_eq!(checksum(&[0xAA, 0x55]), 0xEF ^ 0xFF);
    }

    #[test]
    fn parse_checks_header() {
        let frame = Command::encode(op::READ_REG, &0x4000_1000u32.to_le_bytes(), 0);
        assert_eq!(
            frame,
            [0x00, 0x0A, 0x04, 0x00, 0, 0, 0, 0, 0x00, 0x10, 0x00, 0x40]
        );
        let cmd = Command::parse(&frame).unwrap();
        assert_eq!((cmd.op, cmd.word(0)), (0x0A, Some(0x4000_1000)));
        assert_eq!(Command::parse(&frame[..7]), Err(PacketError::TooShort(7)));
        assert_eq!(
            Command::parse(&frame[..11]),
            Err(PacketError::SizeMismatch {
                declared: 4,
                actual: 3
            })
        );
        let mut reply = frame.clone();
        reply[0] = 1;
        assert_eq!(Command::parse(&reply), Err(PacketError::NotARequest(1)));
    }

    #[test]
    fn status_lengths_match_what_espflash_expects() {
        // Spec 3.2: a plain stub reply is 10 bytes and a stub MD5 reply 26; a ROM reply is
        // never 10 or 26 bytes.
        assert_eq!(response(op::SYNC, 0, &[], Ok(()), Loader::Stub).len(), 10);
        assert_eq!(
            response(op::SPI_FLASH_MD5, 0, &[0; 16], Ok(()), Loader::Stub).len(),
            26
        );
        assert_eq!(
            response(op::SYNC, 0x2012_0707, &[], Ok(()), Loader::Rom).len(),
            12
        );
        assert_eq!(
            response(op::SPI_FLASH_MD5, 0, &[b'0'; 32], Ok(()), Loader::Rom).len(),
            44
        );
        let rom_err = response(op::FLASH_DATA, 0, &[], Err(Failure::CHECKSUM), Loader::Rom);
        assert_eq!(
            rom_err,
            [0x01, 0x03, 0x04, 0x00, 0, 0, 0, 0, 0x01, 0x07, 0x00, 0x00]
        );
        let stub_err = response(op::FLASH_DATA, 0, &[], Err(Failure::CHECKSUM), Loader::Stub);
        assert_eq!(stub_err, [0x01, 0x03, 0x02, 0x00, 0, 0, 0, 0, 0xC1, 0x00]);
    }
}
