//! The simulator driven by espflash 4.7's own `Flasher` as a client: ROM and stub on both chips,
//! with the no-reset options a pty needs. The expected bytes are the segments themselves;
//! espflash checks each write by MD5 (`verify`).
//!
//! espfleet's flasher drives espflash's `Connection` itself (see `daemon/src/flasher.rs`); these
//! tests show how espflash's own write path fares against the simulator, which answers the way
//! the real ROMs do: its ROM write ends with a FLASH_END the ROM refuses when the last part is
//! not a multiple of 4 KiB, and on the ESP32 each connect waits out two GET_SECURITY_INFO
//! timeouts (the ROM refuses that command in another command's reply).

use std::borrow::Cow;
use std::path::Path;

use espflash::connection::{Connection, ResetAfterOperation, ResetBeforeOperation};
use espflash::flasher::Flasher;
use espflash::image_format::Segment;
use espflash::target::DefaultProgressCallback;
use espfleet_compiler::target::Chip;
use espfleet_sim::protocol::op;
use espfleet_sim::{LoaderState, Pacing, SimConfig, Simulator};
use serialport::UsbPortInfo;

fn connect(path: &Path, stub: bool, after: ResetAfterOperation, baud: Option<u32>) -> Flasher {
    let port = serialport::new(path.to_str().unwrap(), 115_200)
        .open_native()
        .expect("open the pty");
    // A CP2102N, as a real board would show up; no reset lines are used.
    let info = UsbPortInfo {
        vid: 0x10C4,
        pid: 0xEA60,
        serial_number: None,
        manufacturer: None,
        product: None,
        interface: None,
    };
    let conn = Connection::new(port, info, after, ResetBeforeOperation::NoReset, 115_200);
    Flasher::connect(conn, stub, true, true, None, baud).expect("espflash connects")
}

fn images() -> (Vec<u8>, Vec<u8>) {
    let mut x = 0x9E37_79B9u32;
    let noise: Vec<u8> = (0..40_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect();
    let sparse: Vec<u8> = (0..60_000usize)
        .map(|i| if i % 9 == 0 { noise[i / 9] } else { 0xFF })
        .collect();
    (noise, sparse)
}

fn write_and_check(chip: Chip, stub: bool) {
    let mut config = SimConfig::new(chip);
    // Line-rate pacing at 460800 after the baud change, flash times cut to 2 %.
    config.pacing = Pacing {
        flash_time_scale: 0.02,
        ..Pacing::REALISTIC
    };
    let sim = Simulator::spawn(config).unwrap();
    let (noise, sparse) = images();
    let segments = [
        Segment {
            addr: 0x10000,
            data: Cow::Borrowed(&sparse),
        },
        Segment {
            addr: 0x30000,
            data: Cow::Borrowed(&noise),
        },
    ];
    let after = if stub {
        ResetAfterOperation::NoResetNoStub
    } else {
        ResetAfterOperation::NoReset
    };
    let mut flasher = connect(sim.path(), stub, after, Some(460_800));
    let info = flasher.device_info().unwrap();
    let expected_revision = if chip == Chip::Esp32 { (3, 0) } else { (0, 4) };
    assert_eq!(info.revision, Some(expected_revision));
    assert_eq!(info.flash_size, espflash::flasher::FlashSize::_4Mb);
    assert_eq!(
        info.mac_address.as_deref(),
        Some(if chip == Chip::Esp32 {
            "24:0a:c4:12:34:56"
        } else {
            "58:cf:79:12:34:56"
        })
    );

    flasher
        .write_bins_to_flash(&segments, &mut DefaultProgressCallback)
        .unwrap();
    let flash = sim.flash_contents();
    assert_eq!(&flash[0x10000..0x10000 + sparse.len()], &sparse[..]);
    assert_eq!(&flash[0x30000..0x30000 + noise.len()], &noise[..]);

    let ops = sim.stats().commands_by_opcode;
    if stub {
        assert!(
            ops.get(&op::FLASH_DEFL_DATA).is_some_and(|&n| n > 0),
            "{ops:?}"
        );
        // NoResetNoStub keeps the stub: the same flasher skips unchanged segments and reads back.
        let before = sim
            .stats()
            .commands_by_opcode
            .get(&op::FLASH_DEFL_DATA)
            .copied();
        flasher
            .write_bins_to_flash(&segments, &mut DefaultProgressCallback)
            .unwrap();
        assert_eq!(
            sim.stats()
                .commands_by_opcode
                .get(&op::FLASH_DEFL_DATA)
                .copied(),
            before,
            "skipped: MD5 matched"
        );
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("read.bin");
        flasher
            .read_flash(0x30000, 40_000, 0x1000, 64, out.clone())
            .unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), noise);
        assert_eq!(sim.state(), LoaderState::Stub);
    } else {
        assert!(
            ops.get(&op::FLASH_DATA).is_some_and(|&n| n > 0) && !ops.contains_key(&op::MEM_BEGIN),
            "{ops:?}"
        );
        // espflash ends a ROM session with FLASH_END(reboot); a harness-side reset brings the
        // board back to the loader, where a second session finds everything already written.
        drop(flasher);
        sim.reset_to_bootloader();
        let mut flasher = connect(sim.path(), stub, after, None);
        let data_before = sim.stats().commands_by_opcode.get(&op::FLASH_DATA).copied();
        flasher
            .write_bins_to_flash(&segments, &mut DefaultProgressCallback)
            .unwrap();
        assert_eq!(
            sim.stats().commands_by_opcode.get(&op::FLASH_DATA).copied(),
            data_before,
            "skipped"
        );
        drop(flasher);
        short_last_part_is_refused(&sim, &noise);
    }
    sim.stop().unwrap();
}

/// A last part of 3 KiB through espflash's ROM write: it announces 4 KiB, sends three 1 KiB
/// blocks and ends with FLASH_END, which the ROM refuses (01 06), leaving the loader anyway.
/// The data was written and verified before that.
fn short_last_part_is_refused(sim: &espfleet_sim::SimHandle, noise: &[u8]) {
    sim.reset_to_bootloader();
    let mut flasher = connect(sim.path(), false, ResetAfterOperation::NoReset, None);
    let tail = [Segment {
        addr: 0x50000,
        data: Cow::Borrowed(&noise[..3072]),
    }];
    let err = flasher
        .write_bins_to_flash(&tail, &mut DefaultProgressCallback)
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("command: FlashEnd, kind: FailedToAct"),
        "{err:?}"
    );
    assert_eq!(
        &sim.flash_contents()[0x50000..0x50000 + 3072],
        &noise[..3072]
    );
    // The ROM replies first, then leaves the loader.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while sim.state() != LoaderState::App && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(sim.state(), LoaderState::App, "left the loader");
}

#[test]
fn espflash_esp32_rom() {
    write_and_check(Chip::Esp32, false);
}

#[test]
fn espflash_esp32_stub() {
    write_and_check(Chip::Esp32, true);
}

#[test]
fn espflash_esp32c3_rom() {
    write_and_check(Chip::Esp32c3, false);
}

#[test]
fn espflash_esp32c3_stub() {
    write_and_check(Chip::Esp32c3, true);
}
