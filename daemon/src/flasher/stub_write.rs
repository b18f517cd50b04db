//! Writing through the flasher stub with the link kept busy.
//!
//! espflash's own `write_bins_to_flash` compresses each part on the calling thread right before
//! sending it (level 9: about half a second for a 1.5 MB app, with the UART idle), and checks
//! each part's MD5 right after its last block (the UART idles again while the stub finishes
//! programming that block). This module drives the same espflash commands (`FlashDeflBegin`,
//! `FlashDeflData`, `FlashMd5`, `FlashDeflEnd` through `Connection::command`, with espflash's
//! timeouts) in the same order per part, but:
//!
//! * every part is compressed on a background thread that starts before the connect, so the
//!   compression is done by the time the stub is up;
//! * the MD5 checks run after the last part, so the next part's blocks go out while the stub is
//!   still programming the previous part's tail;
//! * a part's trailing erased (0xFF) sectors are not sent when the board's flash there is
//!   already erased (checked by MD5 first), so the stub does not spend time programming 0xFF.
//!
//! The session around it (stub upload, verification, the end) is in `super::session`.
//!
//! Everything else (framing, checksums, replies, the stub itself) is espflash's.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use espflash::command::{Command, CommandType};
use espflash::connection::Connection;
use espfleet_compiler::image::FlashImage;
use flate2::Compression;
use flate2::write::{ZlibDecoder, ZlibEncoder};

/// The stub's block size for writes (espflash's `STUB_FLASH_WRITE_SIZE`).
pub(crate) const BLOCK: usize = 0x4000;

/// A part ready to send: the bytes to send in blocks, and how much flash each block fills.
pub(crate) struct Prepared {
    /// The padded part (what ends up on the flash).
    pub(crate) raw: Vec<u8>,
    /// zlib stream of `raw`, when it is smaller; `None`: send `raw` uncompressed.
    pub(crate) deflated: Option<Vec<u8>>,
    /// Uncompressed bytes each compressed block produces (for espflash's per-block timeouts).
    pub(crate) block_output: Vec<u32>,
}

impl Prepared {
    fn new(raw: Vec<u8>, cancel: &AtomicBool) -> Option<Prepared> {
        let mut encoder = ZlibEncoder::new(Vec::with_capacity(raw.len() / 2), Compression::best());
        for chunk in raw.chunks(256 * 1024) {
            if cancel.load(Ordering::Relaxed) {
                return None;
            }
            encoder.write_all(chunk).ok()?;
        }
        let deflated = encoder.finish().ok()?;
        if deflated.len() >= raw.len() {
            let block_output = raw
                .chunks(BLOCK)
                .map(|b| u32::try_from(b.len()).unwrap_or(u32::MAX))
                .collect();
            return Some(Prepared {
                raw,
                deflated: None,
                block_output,
            });
        }
        // How much each block inflates to, as espflash computes it, for the per-block timeout.
        let mut decoder = ZlibDecoder::new(Vec::new());
        let mut produced = 0usize;
        let mut block_output = Vec::with_capacity(deflated.len().div_ceil(BLOCK));
        for block in deflated.chunks(BLOCK) {
            decoder.write_all(block).ok()?;
            decoder.flush().ok()?;
            let total = decoder.get_ref().len();
            block_output.push(u32::try_from(total - produced).unwrap_or(u32::MAX));
            produced = total;
        }
        Some(Prepared {
            raw,
            deflated: Some(deflated),
            block_output,
        })
    }

    /// The bytes that go over the wire, in blocks.
    pub(crate) fn payload(&self) -> &[u8] {
        self.deflated.as_deref().unwrap_or(&self.raw)
    }

    /// Number of blocks.
    pub(crate) fn blocks(&self) -> usize {
        self.payload().len().div_ceil(BLOCK)
    }
}

/// Compresses every part of an image on a background thread, in image order.
pub(crate) struct Compressor {
    cancel: Arc<AtomicBool>,
    rx: mpsc::Receiver<(usize, Prepared)>,
    ready: Vec<Option<Prepared>>,
}

impl Compressor {
    /// Starts compressing `image`'s parts (each padded to 4 bytes with 0xFF, as flash writes
    /// need).
    pub(crate) fn start(image: &FlashImage) -> Compressor {
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let parts: Vec<Arc<[u8]>> = image.segments.iter().map(|s| Arc::clone(&s.data)).collect();
        let flag = Arc::clone(&cancel);
        let n = parts.len();
        let spawned = std::thread::Builder::new()
            .name("flash compress".to_owned())
            .spawn(move || {
                for (i, data) in parts.iter().enumerate() {
                    let head = super::head_len(data);
                    let Some(prepared) = Prepared::new(super::pad4(&data[..head]), &flag) else {
                        return;
                    };
                    if tx.send((i, prepared)).is_err() {
                        return;
                    }
                }
            });
        if spawned.is_err() {
            // No thread: compress on demand instead (see `take`).
            cancel.store(true, Ordering::Relaxed);
        }
        Compressor {
            cancel,
            rx,
            ready: (0..n).map(|_| None).collect(),
        }
    }

    /// Part `index`, its first `len` bytes prepared for sending. The background thread
    /// prepares each part without its erased tail ([`super::head_len`]); if the caller needs
    /// another length (the board's flash is not erased there), it is prepared here.
    pub(crate) fn take(&mut self, index: usize, image: &FlashImage, len: usize) -> Prepared {
        while self.ready[index].is_none() {
            match self.rx.recv() {
                Ok((i, p)) => self.ready[i] = Some(p),
                Err(_) => break,
            }
        }
        let data = &image.segments[index].data[..len];
        match self.ready[index].take() {
            Some(p) if p.raw.len() == len.next_multiple_of(4) => p,
            _ => {
                let never = AtomicBool::new(false);
                Prepared::new(super::pad4(data), &never)
                    .expect("compressing into memory cannot fail")
            }
        }
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// Sends one prepared part at `offset` through the stub; `on_block(n)` after each block.
pub(crate) fn send_part(
    connection: &mut Connection,
    chip: espflash::target::Chip,
    offset: u32,
    part: &Prepared,
    on_block: &mut dyn FnMut(usize),
) -> Result<(), espflash::Error> {
    let payload = part.payload();
    let blocks = u32::try_from(part.blocks()).unwrap_or(u32::MAX);
    let block_size = u32::try_from(BLOCK).unwrap_or(u32::MAX);
    let raw_len = u32::try_from(part.raw.len()).unwrap_or(u32::MAX);
    let erase_size = raw_len.next_multiple_of(0x1000);
    if part.deflated.is_some() {
        connection.with_timeout(
            CommandType::FlashDeflBegin.timeout_for_size(erase_size),
            |c| {
                c.command(Command::FlashDeflBegin {
                    size: raw_len,
                    blocks,
                    block_size,
                    offset,
                    supports_encryption: false,
                })
                .map(drop)
            },
        )?;
    } else {
        connection.with_timeout(CommandType::FlashBegin.timeout_for_size(erase_size), |c| {
            c.command(Command::FlashBegin {
                size: erase_size,
                blocks,
                block_size,
                offset,
                supports_encryption: chip != espflash::target::Chip::Esp32,
            })
            .map(drop)
        })?;
    }
    for (seq, block) in payload.chunks(BLOCK).enumerate() {
        let sequence = u32::try_from(seq).unwrap_or(u32::MAX);
        if part.deflated.is_some() {
            let out = part.block_output.get(seq).copied().unwrap_or(block_size);
            connection.with_timeout(CommandType::FlashDeflData.timeout_for_size(out), |c| {
                c.command(Command::FlashDeflData {
                    data: block,
                    pad_to: 0,
                    pad_byte: 0xFF,
                    sequence,
                })
                .map(drop)
            })?;
        } else {
            let len = u32::try_from(block.len()).unwrap_or(u32::MAX);
            connection.with_timeout(CommandType::FlashData.timeout_for_size(len), |c| {
                c.command(Command::FlashData {
                    data: block,
                    pad_to: BLOCK,
                    pad_byte: 0xFF,
                    sequence,
                })
                .map(drop)
            })?;
        }
        on_block(seq + 1);
    }
    Ok(())
}
