//! The simulator on a real pty, driven by a small client written here: each fault injection
//! behaving as specified, UART pacing, autobaud and baud mismatch, unplug, reset and the
//! file-backed flash. Expected bytes come from `docs/formats/serial-protocol.md` (framing, status bytes), worked by hand.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::time::{Duration, Instant};

use espfleet_compiler::target::{Chip, FlashSize};
use espfleet_sim::protocol::{Command, SYNC_PAYLOAD, checksum, le32, op};
use espfleet_sim::{
    ByteFault, ByteFaultKind, Direction, LoaderState, Pacing, ReportedChip, SimConfig, SimHandle,
    Simulator, Stall, Trigger, slip,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};

struct Client {
    port: File,
    decoder: slip::Decoder,
    text: Vec<u8>,
}

/// What a read returned.
#[derive(Debug, PartialEq)]
enum Got {
    Frame(Vec<u8>),
    Timeout,
    HungUp,
}

impl Client {
    fn open(path: &Path) -> Client {
        let port = File::options()
            .read(true)
            .write(true)
            .open(path)
            .expect("open pty");
        Client {
            port,
            decoder: slip::Decoder::new(),
            text: Vec::new(),
        }
    }

    fn set_baud(&self, baud: u32) {
        let mut t = tcgetattr(self.port.as_fd()).unwrap();
        t.set_speed(baud).unwrap();
        tcsetattr(self.port.as_fd(), OptionalActions::Now, &t).unwrap();
    }

    fn send_raw(&mut self, frame: &[u8]) {
        self.port.write_all(&slip::encode(frame)).unwrap();
    }

    fn send(&mut self, op: u8, data: &[u8]) {
        self.send_raw(&Command::encode(op, data, 0));
    }

    fn recv(&mut self, timeout: Duration) -> Got {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Got::Timeout;
            }
            let ts = Timespec {
                tv_sec: 0,
                tv_nsec: i64::try_from(left.as_nanos().min(100_000_000)).unwrap(),
            };
            let mut fds = [PollFd::new(&self.port, PollFlags::IN)];
            if rustix::event::poll(&mut fds, Some(&ts)).unwrap() == 0 {
                continue;
            }
            let mut byte = [0u8; 1];
            match self.port.read(&mut byte) {
                Ok(0) | Err(_) => return Got::HungUp,
                Ok(_) => {}
            }
            if !self.decoder.in_frame() && byte[0] != slip::END {
                self.text.push(byte[0]);
            }
            if let Some(Ok(frame)) = self.decoder.push(byte[0]) {
                return Got::Frame(frame);
            }
        }
    }

    fn frame(&mut self) -> Vec<u8> {
        match self.recv(Duration::from_secs(3)) {
            Got::Frame(f) => f,
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    /// SYNC; returns the 8 replies.
    fn sync(&mut self) -> Vec<Vec<u8>> {
        self.send(op::SYNC, &SYNC_PAYLOAD);
        (0..8).map(|_| self.frame()).collect()
    }

    /// A command and its one reply's data field (payload + status).
    fn command(&mut self, op: u8, data: &[u8]) -> (u32, Vec<u8>) {
        self.send(op, data);
        let f = self.frame();
        assert_eq!((f[0], f[1]), (1, op), "reply to {op:#x}");
        (le32(&f, 4), f[8..].to_vec())
    }
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn data_frame(op: u8, seq: u32, block: &[u8]) -> Vec<u8> {
    let mut data = words(&[u32::try_from(block.len()).unwrap(), seq, 0, 0]);
    data.extend_from_slice(block);
    Command::encode(op, &data, u32::from(checksum(block)))
}

fn fast(chip: Chip) -> SimConfig {
    let mut c = SimConfig::new(chip);
    c.pacing = Pacing::OFF;
    c
}

fn spawn(config: SimConfig) -> (SimHandle, Client) {
    let sim = Simulator::spawn(config).unwrap();
    let client = Client::open(sim.path());
    (sim, client)
}

const SYNC_WIRE_LEN: u64 = 46; // C0 + 8 header + 36 payload + C0, nothing escaped

#[test]
fn sync_and_identification_over_the_pty() {
    let (sim, mut c) = spawn(fast(Chip::Esp32));
    let replies = c.sync();
    assert!(
        replies
            .iter()
            .all(|r| r.len() == 12 && r[1] == op::SYNC && le32(r, 4) != 0)
    );
    assert_eq!(
        c.command(op::READ_REG, &words(&[0x4000_1000])).0,
        0x00F0_1D83
    );
    let stats = sim.stats();
    assert_eq!(stats.commands, 2);
    assert_eq!(stats.bytes_received, SYNC_WIRE_LEN + 14);
    assert_eq!(stats.bytes_sent, 8 * 14 + 14);
}

#[test]
fn dropped_byte_from_host_loses_only_that_frame() {
    let mut config = fast(Chip::Esp32);
    config.faults.bytes.push(ByteFault {
        direction: Direction::ToDevice,
        kind: ByteFaultKind::Drop,
        first: 20,
        every: None,
    });
    let (sim, mut c) = spawn(config);
    c.send(op::SYNC, &SYNC_PAYLOAD);
    assert_eq!(
        c.recv(Duration::from_millis(300)),
        Got::Timeout,
        "the damaged SYNC gets no reply"
    );
    assert_eq!(c.sync().len(), 8, "the next one does");
    let s = sim.stats();
    assert_eq!((s.bytes_dropped, s.commands), (1, 1));
}

#[test]
fn corrupted_data_byte_from_host_gives_checksum_error() {
    let sync = slip::encode(&Command::encode(op::SYNC, &SYNC_PAYLOAD, 0));
    let attach = slip::encode(&Command::encode(op::SPI_ATTACH, &[0; 8], 0));
    let begin = slip::encode(&Command::encode(
        op::FLASH_BEGIN,
        &words(&[0x400, 1, 0x400, 0x1000]),
        0,
    ));
    // Byte 10 of the FLASH_DATA block: after the opening C0, 8 header and 16 data-header bytes.
    let first = (sync.len() + attach.len() + begin.len() + 1 + 8 + 16 + 10) as u64;
    let mut config = fast(Chip::Esp32);
    config.faults.bytes.push(ByteFault {
        direction: Direction::ToDevice,
        kind: ByteFaultKind::Corrupt,
        first,
        every: None,
    });
    let (sim, mut c) = spawn(config);
    c.sync();
    assert_eq!(c.command(op::SPI_ATTACH, &[0; 8]).1, [0; 4]);
    assert_eq!(
        c.command(op::FLASH_BEGIN, &words(&[0x400, 1, 0x400, 0x1000]))
            .1,
        [0; 4]
    );
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x11; 0x400]));
    assert_eq!(c.frame()[8..], [1, 0x07, 0, 0], "ROM: checksum error 07");
    assert!(
        sim.flash_contents()[0x1000..0x1400]
            .iter()
            .all(|&b| b == 0xFF),
        "nothing written"
    );
    // The client retries the block and it goes through.
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x11; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    assert!(
        sim.flash_contents()[0x1000..0x1400]
            .iter()
            .all(|&b| b == 0x11)
    );
    assert_eq!(sim.stats().bytes_corrupted, 1);
}

#[test]
fn corrupted_and_dropped_bytes_to_host() {
    let mut config = fast(Chip::Esp32);
    // First SYNC reply: C0 01 08 04 00 07 07 12 20 ... Corrupt byte 5 (value field, 07 -> 06)
    // and drop byte 14 + 3 (the size field of the second reply).
    config.faults.bytes.push(ByteFault {
        direction: Direction::ToHost,
        kind: ByteFaultKind::Corrupt,
        first: 5,
        every: None,
    });
    config.faults.bytes.push(ByteFault {
        direction: Direction::ToHost,
        kind: ByteFaultKind::Drop,
        first: 17,
        every: None,
    });
    let (sim, mut c) = spawn(config);
    let r = c.sync();
    assert_eq!(le32(&r[0], 4), 0x2012_0706, "one bit flipped");
    assert_eq!(r[1].len(), 11, "one byte missing");
    assert!(
        r[2..]
            .iter()
            .all(|f| f.len() == 12 && le32(f, 4) == 0x2012_0707)
    );
    let s = sim.stats();
    assert_eq!((s.bytes_corrupted, s.bytes_dropped), (1, 1));
}

#[test]
fn stall_delays_the_reply_then_recovers() {
    let mut config = fast(Chip::Esp32c3);
    let stall = Duration::from_millis(400);
    config.faults.stall = Some(Stall {
        trigger: Trigger::Opcode {
            op: op::READ_REG,
            nth: 2,
        },
        duration: Some(stall),
    });
    let (sim, mut c) = spawn(config);
    c.sync();
    let t = Instant::now();
    c.command(op::READ_REG, &words(&[0x4000_1000]));
    assert!(t.elapsed() < stall, "first READ_REG not stalled");
    let t = Instant::now();
    c.send(op::READ_REG, &words(&[0x4000_1000]));
    assert_eq!(c.recv(Duration::from_millis(200)), Got::Timeout, "stalled");
    assert!(
        matches!(c.recv(Duration::from_secs(2)), Got::Frame(_)),
        "answered after the stall"
    );
    assert!(t.elapsed() >= stall);
    assert_eq!(sim.stats().stalls, 1);
}

#[test]
fn unplug_mid_transfer_hangs_up_and_removes_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = fast(Chip::Esp32);
    config.link = Some(dir.path().join("esp"));
    config.faults.unplug = Some(Trigger::Opcode {
        op: op::FLASH_DATA,
        nth: 2,
    });
    let (sim, mut c) = spawn(config);
    let path = sim.path().to_owned();
    assert!(dir.path().join("esp").exists());
    c.sync();
    c.command(op::SPI_ATTACH, &[0; 8]);
    c.command(op::FLASH_BEGIN, &words(&[0x1000, 4, 0x400, 0]));
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x22; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    c.send_raw(&data_frame(op::FLASH_DATA, 1, &[0x33; 0x400]));
    assert_eq!(
        c.recv(Duration::from_secs(3)),
        Got::HungUp,
        "the client sees the line hang up"
    );
    assert!(sim.is_unplugged());
    assert!(!path.exists(), "{} is gone", path.display());
    assert!(!dir.path().join("esp").exists(), "link removed");
    let flash = sim.flash_contents();
    assert!(
        flash[..0x400].iter().all(|&b| b == 0x22),
        "the first block was written"
    );
    assert!(
        flash[0x400..0x800].iter().all(|&b| b == 0xFF),
        "the second never arrived"
    );
}

#[test]
fn unplug_through_the_handle() {
    let (sim, mut c) = spawn(fast(Chip::Esp32c3));
    c.sync();
    sim.unplug();
    assert!(sim.is_unplugged());
    assert_eq!(c.recv(Duration::from_secs(1)), Got::HungUp);
}

#[test]
fn report_another_chip() {
    let mut config = fast(Chip::Esp32c3);
    config.faults.report_chip = Some(ReportedChip::Chip(Chip::Esp32));
    let (_sim, mut c) = spawn(config);
    c.sync();
    c.send(op::GET_SECURITY_INFO, &[]);
    let refused = c.frame();
    assert_eq!(
        (refused[1], &refused[8..]),
        (op::SYNC, &[1, 5, 0, 0][..]),
        "claims to be an ESP32 ROM, refusing as one does"
    );
    assert_eq!(
        c.command(op::READ_REG, &words(&[0x4000_1000])).0,
        0x00F0_1D83
    );

    let mut config = fast(Chip::Esp32);
    config.faults.report_chip = Some(ReportedChip::Magic(0xDEAD_BEEF));
    let (_sim, mut c) = spawn(config);
    c.sync();
    assert_eq!(
        c.command(op::READ_REG, &words(&[0x4000_1000])).0,
        0xDEAD_BEEF
    );
}

/// A "4 MB" module with 2 MB inside: the JEDEC ID says 4 MB and writes above 2 MB wrap around.
#[test]
fn smaller_flash_than_the_jedec_id_claims() {
    let mut config = fast(Chip::Esp32);
    config.flash_size = FlashSize::parse("2MB").unwrap();
    config.faults.jedec_flash_size = FlashSize::parse("4MB");
    let (sim, mut c) = spawn(config);
    c.sync();
    let spi = espfleet_sim::chip::ChipProfile::of(Chip::Esp32).spi;
    for (addr, value) in [
        (spi.base + spi.usr, 1u32 << 31 | 1 << 28),
        (spi.base + spi.usr2, 7 << 28 | 0x9F),
        (spi.cmd(), 1 << 18),
    ] {
        c.command(op::WRITE_REG, &words(&[addr, value, 0xFFFF_FFFF, 0]));
    }
    assert_eq!(
        c.command(op::READ_REG, &words(&[spi.base + spi.w0])).0,
        0x0016_40EF,
        "claims 4 MB (code 16)"
    );
    c.command(op::SPI_ATTACH, &[0; 8]);
    c.command(
        op::SPI_SET_PARAMS,
        &words(&[0, 4 << 20, 0x1_0000, 0x1000, 0x100, 0xFFFF]),
    );
    c.command(op::FLASH_BEGIN, &words(&[0x400, 1, 0x400, 0x20_1000]));
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x44; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    let flash = sim.flash_contents();
    assert_eq!(flash.len(), 2 << 20);
    assert!(
        flash[0x1000..0x1400].iter().all(|&b| b == 0x44),
        "wrapped to 0x1000"
    );
}

#[test]
fn autobaud_on_sync_and_baud_mismatch_drops_frames() {
    let (sim, mut c) = spawn(fast(Chip::Esp32));
    c.set_baud(460_800);
    c.sync(); // ROM autobaud picks up 460800
    assert_eq!(sim.stats().baud, 460_800);
    assert_eq!(
        c.command(op::READ_REG, &words(&[0x3FF4_0014])).0,
        40_000_000 / 460_800
    );
    c.set_baud(230_400); // no CHANGE_BAUDRATE: the device still listens at 460800
    // Bytes that arrive within one poll of a speed change may have been written before it (by
    // the previous client, say), so the simulator lets them through; wait past that window.
    std::thread::sleep(Duration::from_millis(100));
    c.send(op::READ_REG, &words(&[0x4000_1000]));
    assert_eq!(c.recv(Duration::from_millis(300)), Got::Timeout);
    assert_eq!(sim.stats().frames_dropped, 1);
    c.set_baud(460_800);
    c.command(op::CHANGE_BAUDRATE, &words(&[921_600, 0]));
    c.set_baud(921_600);
    assert_eq!(
        c.command(op::READ_REG, &words(&[0x4000_1000])).0,
        0x00F0_1D83
    );
}

/// 8N1 pacing: 10 bit-times per byte. A 0x1800-byte MEM_DATA block (6,170 bytes on the wire) at
/// 115200 takes at least 0.535 s to arrive; only a lower bound is checked.
#[test]
fn uart_pacing_takes_line_time() {
    let mut config = SimConfig::new(Chip::Esp32);
    config.pacing.flash_time_scale = 0.0;
    let (_sim, mut c) = spawn(config);
    c.sync();
    c.command(op::MEM_BEGIN, &words(&[0x1800, 1, 0x1800, 0x4008_0000]));
    let block = vec![0x11u8; 0x1800];
    let frame = data_frame(op::MEM_DATA, 0, &block);
    let wire = slip::encode(&frame).len() + 14; // command in, ROM reply out
    let t = Instant::now();
    c.send_raw(&frame);
    assert_eq!(c.frame()[8..], [0; 4]);
    let min = Duration::from_secs_f64(f64::from(u32::try_from(wire).unwrap()) * 10.0 / 115_200.0);
    assert!(
        t.elapsed() >= min.mul_f64(0.98),
        "took {:?}, line time {min:?}",
        t.elapsed()
    );
}

#[test]
fn stub_upload_says_ohai_and_reset_and_boot() {
    let (sim, mut c) = spawn(fast(Chip::Esp32c3));
    c.sync();
    c.command(op::MEM_BEGIN, &words(&[4, 1, 0x1800, 0x4038_0000]));
    c.send_raw(&data_frame(op::MEM_DATA, 0, &[1, 2, 3, 4]));
    assert_eq!(c.frame()[8..], [0; 4]);
    assert_eq!(c.command(op::MEM_END, &words(&[0, 0x4038_0E9A])).1, [0; 4]);
    assert_eq!(c.frame(), b"OHAI");
    assert_eq!(sim.state(), LoaderState::Stub);
    assert!(c.sync().iter().all(|r| r.len() == 10 && le32(r, 4) == 0));
    sim.boot_app();
    assert_eq!(sim.state(), LoaderState::App);
    c.send(op::SYNC, &SYNC_PAYLOAD);
    assert_eq!(
        c.recv(Duration::from_millis(300)),
        Got::Timeout,
        "the application ignores SYNC"
    );
    assert!(
        String::from_utf8_lossy(&c.text).contains("invalid header: 0xffffffff"),
        "{:?}",
        String::from_utf8_lossy(&c.text)
    );
    sim.reset_to_bootloader();
    assert_eq!(sim.state(), LoaderState::Rom);
    assert!(c.sync().iter().all(|r| r.len() == 12));
}

#[test]
fn flash_file_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flash.bin");
    let mut config = fast(Chip::Esp32);
    config.flash_size = FlashSize::parse("1MB").unwrap();
    config.flash_file = Some(file.clone());
    let (sim, mut c) = spawn(config.clone());
    c.sync();
    c.command(op::SPI_ATTACH, &[0; 8]);
    c.command(op::FLASH_BEGIN, &words(&[0x400, 1, 0x400, 0x8000]));
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x55; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    drop(c);
    sim.stop().unwrap();
    let saved = std::fs::read(&file).unwrap();
    assert_eq!(saved.len(), 1 << 20);
    assert!(saved[0x8000..0x8400].iter().all(|&b| b == 0x55));
    let (sim, _c) = spawn(config);
    assert_eq!(sim.flash_contents(), saved, "loaded back");
}

/// umockdev (and serialport's `TTYPort::pair()`) hand over a pty master made elsewhere: the
/// simulator adopts it and serves the slave side.
#[test]
fn adopts_an_existing_pty_master() {
    use rustix::pty::OpenptFlags;
    let master =
        rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)
            .unwrap();
    rustix::pty::grantpt(&master).unwrap();
    rustix::pty::unlockpt(&master).unwrap();
    let name = rustix::pty::ptsname(&master, Vec::new()).unwrap();
    let sim = Simulator::spawn_on_master(master, fast(Chip::Esp32c3)).unwrap();
    assert_eq!(sim.path().as_os_str().as_encoded_bytes(), name.as_bytes());
    let mut c = Client::open(sim.path());
    assert_eq!(c.sync().len(), 8);
    assert_eq!(c.command(op::GET_SECURITY_INFO, &[]).1.len(), 24);
}

#[test]
fn replug_gives_a_fresh_rom_loader_with_the_same_flash() {
    let mut config = fast(Chip::Esp32);
    config.faults.unplug = Some(Trigger::Opcode {
        op: op::FLASH_DATA,
        nth: 2,
    });
    let (mut sim, mut c) = spawn(config);
    c.sync();
    c.command(op::SPI_ATTACH, &[0; 8]);
    c.command(op::FLASH_BEGIN, &words(&[0x800, 2, 0x400, 0]));
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x66; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    c.send_raw(&data_frame(op::FLASH_DATA, 1, &[0x66; 0x400]));
    assert_eq!(c.recv(Duration::from_secs(3)), Got::HungUp);
    sim.replug().unwrap();
    assert!(!sim.is_unplugged() && sim.is_running());
    assert_eq!(sim.state(), LoaderState::Rom);
    let mut c = Client::open(sim.path());
    assert_eq!(c.sync().len(), 8);
    // A new session works; the unplug fault is armed again, so write a single block.
    c.command(op::SPI_ATTACH, &[0; 8]);
    c.command(op::FLASH_BEGIN, &words(&[0x400, 1, 0x400, 0x1000]));
    c.send_raw(&data_frame(op::FLASH_DATA, 0, &[0x77; 0x400]));
    assert_eq!(c.frame()[8..], [0; 4]);
    let flash = sim.flash_contents();
    assert!(
        flash[..0x400].iter().all(|&b| b == 0x66),
        "written before the unplug: kept"
    );
    assert!(
        flash[0x400..0x800].iter().all(|&b| b == 0xFF),
        "never arrived"
    );
    assert!(
        flash[0x1000..0x1400].iter().all(|&b| b == 0x77),
        "written after the replug"
    );
}

/// A hang with no end: nothing comes back until the harness resets the board.
#[test]
fn endless_stall_until_reset() {
    let mut config = fast(Chip::Esp32);
    config.faults.stall = Some(Stall {
        trigger: Trigger::Command(2),
        duration: None,
    });
    let (sim, mut c) = spawn(config);
    c.sync();
    c.send(op::READ_REG, &words(&[0x4000_1000]));
    assert_eq!(c.recv(Duration::from_millis(500)), Got::Timeout);
    sim.reset_to_bootloader();
    assert_eq!(c.sync().len(), 8, "answers again after the reset");
}

/// espflash 4.7's old ROM-loader ending, replayed byte for byte: FLASH_BEGIN announcing a
/// 3,072-byte part rounded up to 4 KiB, the three 1 KiB blocks it needs, then FLASH_END(reboot).
/// Both ROMs answer that FLASH_END with status 01, error 06, and leave download mode anyway: the
/// board stops answering SYNC and prints its boot log. A FLASH_END after everything announced
/// arrived is accepted (and leaves the loader too).
#[test]
fn flash_end_after_a_short_write_is_refused_with_0106_and_leaves_the_loader() {
    for chip in [Chip::Esp32, Chip::Esp32c3] {
        for (announced, blocks, status) in [(0x1000u32, 3u32, [1u8, 6, 0, 0]), (0x1000, 4, [0; 4])]
        {
            let (sim, mut c) = spawn(fast(chip));
            c.sync();
            assert_eq!(c.command(op::SPI_ATTACH, &[0; 8]).1, [0; 4]);
            let mut begin = words(&[announced, blocks, 0x400, 0x8000]);
            if chip == Chip::Esp32c3 {
                begin.extend_from_slice(&[0; 4]); // the C3 ROM's "encrypted" word
            }
            assert_eq!(c.command(op::FLASH_BEGIN, &begin).1, [0; 4]);
            for seq in 0..blocks {
                c.send_raw(&data_frame(op::FLASH_DATA, seq, &[0xA5; 0x400]));
                assert_eq!(c.frame()[8..], [0; 4], "{chip:?} block {seq}");
            }
            let (_, end) = c.command(op::FLASH_END, &words(&[0]));
            assert_eq!(end, status, "{chip:?}, {blocks} of {announced:#x} bytes");
            c.send(op::SYNC, &SYNC_PAYLOAD);
            assert_eq!(
                c.recv(Duration::from_millis(300)),
                Got::Timeout,
                "{chip:?}: out of download mode"
            );
            assert_eq!(sim.state(), LoaderState::App);
            assert!(
                sim.flash_contents()[0x8000..0x8000 + 0x400 * blocks as usize]
                    .iter()
                    .all(|&b| b == 0xA5),
                "{chip:?}: the blocks that arrived are written"
            );
        }
    }
}
