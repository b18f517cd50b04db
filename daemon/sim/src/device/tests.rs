//! Loader rules, frame by frame (`docs/formats/serial-protocol.md` §5 to §9). Expected bytes are worked out by hand
//! from `docs/formats/serial-protocol.md`; deflate inputs are made with miniz_oxide's compressor (the expected output is
//! the original data).

use espfleet_compiler::target::Chip;
use miniz_oxide::deflate::compress_to_vec_zlib;

use super::*;
use crate::chip::default_mac;
use crate::protocol::le32;

fn device(chip: Chip) -> Device {
    let profile = ChipProfile::of(chip);
    let identity = Identity::of(&profile);
    let opts = DeviceOptions {
        profile,
        identity,
        mac: default_mac(chip),
        jedec_capacity_code: 22, // 4 MB
        stub_reboot_to_rom: true,
        timing: FlashTiming::TYPICAL,
    };
    Device::new(opts, Arc::new(Mutex::new(FlashArray::erased(4 << 20))))
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Sends a command, returns the frames the device sends back.
fn send(d: &mut Device, op: u8, data: &[u8]) -> Vec<Vec<u8>> {
    send_chk(d, op, data, 0)
}

fn send_chk(d: &mut Device, op: u8, data: &[u8], chk: u32) -> Vec<Vec<u8>> {
    d.on_frame(&Command::encode(op, data, chk))
        .into_iter()
        .filter_map(|a| match a {
            Action::Frame(f) => Some(f),
            _ => None,
        })
        .collect()
}

/// One reply expected; returns (value, data incl. status).
fn reply(d: &mut Device, op: u8, data: &[u8]) -> (u32, Vec<u8>) {
    let frames = send(d, op, data);
    assert_eq!(frames.len(), 1, "one reply to {op:#x}: {frames:?}");
    let f = &frames[0];
    assert_eq!((f[0], f[1]), (0x01, op));
    (le32(f, 4), f[8..].to_vec())
}

fn data_block(op: u8, seq: u32, block: &[u8]) -> (u8, Vec<u8>, u32) {
    let mut data = words(&[u32::try_from(block.len()).unwrap(), seq, 0, 0]);
    data.extend_from_slice(block);
    (op, data, u32::from(checksum(block)))
}

fn send_block(d: &mut Device, op: u8, seq: u32, block: &[u8]) -> Vec<u8> {
    let (op, data, chk) = data_block(op, seq, block);
    let frames = send_chk(d, op, &data, chk);
    assert_eq!(frames.len(), 1);
    frames[0][8..].to_vec()
}

fn attach(d: &mut Device) {
    let payload = if d.state() == LoaderState::Stub {
        vec![0; 4]
    } else {
        vec![0; 8]
    };
    assert_eq!(reply(d, op::SPI_ATTACH, &payload).1[0], 0);
}

fn start_stub(d: &mut Device) {
    reply(d, op::MEM_BEGIN, &words(&[0x100, 1, 0x1800, 0x4008_0000]));
    assert_eq!(send_block(d, op::MEM_DATA, 0, &[0xAA; 0x100]), [0, 0, 0, 0]);
    let frames = send(d, op::MEM_END, &words(&[0, 0x400A_902C]));
    assert_eq!(frames.len(), 2, "reply, then OHAI");
    assert_eq!(frames[0][8..], [0, 0, 0, 0], "MEM_END answered by the ROM");
    assert_eq!(frames[1], b"OHAI");
    assert_eq!(d.state(), LoaderState::Stub);
}

#[test]
fn sync_answers_eight_times_rom_nonzero_stub_zero() {
    let mut d = device(Chip::Esp32);
    let frames = send(&mut d, op::SYNC, &SYNC_PAYLOAD);
    assert_eq!(frames.len(), 8);
    assert!(frames.iter().all(|f| f.len() == 12 && le32(f, 4) != 0));
    // A damaged SYNC gets no answer at all.
    let mut bad = SYNC_PAYLOAD;
    bad[10] = 0x54;
    assert!(send(&mut d, op::SYNC, &bad).is_empty());
    start_stub(&mut d);
    let frames = send(&mut d, op::SYNC, &SYNC_PAYLOAD);
    assert_eq!(frames.len(), 8);
    assert!(
        frames.iter().all(|f| f.len() == 10 && le32(f, 4) == 0),
        "stub: value 0, 2 status bytes"
    );
}

#[test]
fn chip_identification() {
    let mut esp32 = device(Chip::Esp32);
    // ESP32 ROM: GET_SECURITY_INFO is refused with status 01, error 05, in a reply that repeats
    // the previous reply's opcode and value (here SYNC's); the magic register answers.
    assert_eq!(send(&mut esp32, op::SYNC, &SYNC_PAYLOAD).len(), 8);
    let refused = send(&mut esp32, op::GET_SECURITY_INFO, &[]);
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0],
        [1, op::SYNC, 4, 0, 0x07, 0x07, 0x12, 0x20, 1, 5, 0, 0],
        "SYNC's header, then status 01 05"
    );
    assert_eq!(
        reply(&mut esp32, op::READ_REG, &words(&[0x4000_1000])).0,
        0x00F0_1D83
    );
    let refused = send(&mut esp32, op::GET_SECURITY_INFO, &[]);
    assert_eq!(
        refused[0],
        [1, op::READ_REG, 4, 0, 0x83, 0x1D, 0xF0, 0x00, 1, 5, 0, 0],
        "READ_REG's header and value, then status 01 05"
    );
    // The same for any command the ROM lacks, such as the stub-only ERASE_FLASH.
    assert_eq!(
        send(&mut esp32, op::ERASE_FLASH, &[])[0],
        [1, op::READ_REG, 4, 0, 0x83, 0x1D, 0xF0, 0x00, 1, 5, 0, 0]
    );
    start_stub(&mut esp32);
    assert_eq!(
        reply(&mut esp32, op::GET_SECURITY_INFO, &[]).1,
        [0xFF, 0],
        "ESP32 stub: not implemented"
    );

    let mut c3 = device(Chip::Esp32c3);
    let (_, data) = reply(&mut c3, op::GET_SECURITY_INFO, &[]);
    assert_eq!(data.len(), 24, "20 bytes + 4 ROM status bytes");
    assert_eq!(le32(&data, 12), 5, "chip_id 5");
    assert_eq!(le32(&data, 0) & 4, 0, "secure download mode off");
    start_stub(&mut c3);
    assert_eq!(reply(&mut c3, op::GET_SECURITY_INFO, &[]).1.len(), 22);
    // MAC words (`docs/formats/serial-protocol.md` §7.2) for 58:cf:79:12:34:56.
    assert_eq!(
        reply(&mut c3, op::READ_REG, &words(&[0x6000_8844])).0,
        0x7912_3456
    );
    assert_eq!(
        reply(&mut c3, op::READ_REG, &words(&[0x6000_8848])).0,
        0x58CF
    );
}

#[test]
fn uart_clkdiv_follows_the_baud() {
    let mut d = device(Chip::Esp32);
    assert_eq!(
        reply(&mut d, op::READ_REG, &words(&[0x3FF4_0014])).0,
        40_000_000 / 115_200
    );
    let frames = d.on_frame(&Command::encode(
        op::CHANGE_BAUDRATE,
        &words(&[921_600, 0]),
        0,
    ));
    // Reply first (at the old baud), then the switch.
    assert!(
        matches!(
            frames.as_slice(),
            [Action::Frame(_), Action::SetBaud(921_600)]
        ),
        "{frames:?}"
    );
}

/// The JEDEC ID dance of both clients (`docs/formats/serial-protocol.md` §6.2) on each chip's SPI registers.
#[test]
fn jedec_id_through_spi_registers() {
    for chip in Chip::ALL {
        let mut d = device(chip);
        let spi = ChipProfile::of(chip).spi;
        let wr = |d: &mut Device, addr: u32, value: u32| {
            assert_eq!(
                reply(d, op::WRITE_REG, &words(&[addr, value, 0xFFFF_FFFF, 0])).1[0],
                0
            );
        };
        wr(&mut d, spi.base + spi.usr, 1 << 31 | 1 << 28);
        wr(&mut d, spi.base + spi.usr2, 7 << 28 | 0x9F);
        wr(&mut d, spi.base + spi.miso_dlen, 23);
        wr(&mut d, spi.base + spi.w0, 0);
        wr(&mut d, spi.cmd(), SPI_CMD_USR);
        assert_eq!(
            reply(&mut d, op::READ_REG, &words(&[spi.cmd()])).0 & SPI_CMD_USR,
            0,
            "command done"
        );
        assert_eq!(
            reply(&mut d, op::READ_REG, &words(&[spi.base + spi.w0])).0,
            0x0016_40EF,
            "W25Q32: EF 40 16"
        );
    }
}

#[test]
fn md5_reply_is_hex_from_rom_and_raw_from_stub() {
    let mut d = device(Chip::Esp32);
    attach(&mut d);
    // MD5 of 16 erased bytes, from Python: hashlib.md5(b'\xff'*16).hexdigest().
    let (_, data) = reply(&mut d, op::SPI_FLASH_MD5, &words(&[0x1000, 16, 0, 0]));
    assert_eq!(&data[..32], b"8d79cbc9a4ecdde112fc91ba625b13c2");
    assert_eq!(&data[32..], [0, 0, 0, 0]);
    start_stub(&mut d);
    let (_, data) = reply(&mut d, op::SPI_FLASH_MD5, &words(&[0x1000, 16, 0, 0]));
    assert_eq!(data.len(), 18);
    assert_eq!(
        data[..16],
        *b"\x8d\x79\xcb\xc9\xa4\xec\xdd\xe1\x12\xfc\x91\xba\x62\x5b\x13\xc2"
    );
}

#[test]
fn rom_flash_data_checks_order_and_programs_whole_blocks() {
    let mut d = device(Chip::Esp32);
    // No attach yet: the ROM refuses.
    assert_eq!(
        reply(&mut d, op::FLASH_BEGIN, &words(&[0x1000, 1, 0x400, 0x1000])).1[0],
        1
    );
    attach(&mut d);
    // DATA before BEGIN: ROM 01 / 01.
    assert_eq!(
        send_block(&mut d, op::FLASH_DATA, 0, &[0u8; 0x400]),
        [1, 1, 0, 0]
    );
    d.lock_flash().program(0x1000, &[0x00; 16]); // stale data the erase must remove
    assert_eq!(
        reply(&mut d, op::FLASH_BEGIN, &words(&[0x1000, 2, 0x400, 0x1000])).1,
        [0; 4]
    );
    assert!(
        d.lock_flash().read(0x1000, 16).iter().all(|&b| b == 0xFF),
        "ROM erases at BEGIN"
    );
    // Bad checksum: error 07, nothing written.
    let (op, data, chk) = data_block(op::FLASH_DATA, 0, &[0x12; 0x400]);
    assert_eq!(send_chk(&mut d, op, &data, chk ^ 1)[0][8..], [1, 7, 0, 0]);
    // Out-of-order sequence: refused.
    assert_eq!(
        send_block(&mut d, op::FLASH_DATA, 1, &[0x12; 0x400]),
        [1, 1, 0, 0]
    );
    assert_eq!(
        send_block(&mut d, op::FLASH_DATA, 0, &[0x12; 0x400]),
        [0; 4]
    );
    let mut last = vec![0x34u8; 0x10];
    last.resize(0x400, 0xFF); // padded by the client
    assert_eq!(send_block(&mut d, op::FLASH_DATA, 1, &last), [0; 4]);
    let flash = d.lock_flash().read(0x1000, 0x800);
    assert!(flash[..0x400].iter().all(|&b| b == 0x12));
    assert_eq!(&flash[0x400..], &last[..]);
}

/// Both ROMs refuse FLASH_END with status 01, error 06 when fewer FLASH_DATA bytes arrived than
/// FLASH_BEGIN announced (espflash 4.7 announces a 3 KiB part as 4 KiB and sends three 1 KiB
/// blocks), and leave the loader all the same.
#[test]
fn rom_flash_end_after_a_short_write_fails_and_leaves_the_loader() {
    for chip in [Chip::Esp32, Chip::Esp32c3] {
        let mut d = device(chip);
        attach(&mut d);
        let begin = if chip == Chip::Esp32 {
            words(&[0x1000, 3, 0x400, 0x8000])
        } else {
            words(&[0x1000, 3, 0x400, 0x8000, 0])
        };
        assert_eq!(reply(&mut d, op::FLASH_BEGIN, &begin).1, [0; 4]);
        for seq in 0..3 {
            assert_eq!(
                send_block(&mut d, op::FLASH_DATA, seq, &[0x5A; 0x400]),
                [0; 4]
            );
        }
        let actions = d.on_frame(&Command::encode(op::FLASH_END, &words(&[0]), 0));
        assert!(
            matches!(actions.first(), Some(Action::Frame(f)) if f[1] == op::FLASH_END && f[8..] == [1, 6, 0, 0]),
            "{chip:?}: {actions:?}"
        );
        assert_eq!(d.state(), LoaderState::App, "{chip:?} left the loader");
        assert!(
            d.lock_flash()
                .read(0x8000, 0xC00)
                .iter()
                .all(|&b| b == 0x5A),
            "what arrived is written"
        );
    }
    // Everything announced arrived (the last block padded past the announced size): accepted.
    let mut d = device(Chip::Esp32);
    attach(&mut d);
    reply(&mut d, op::FLASH_BEGIN, &words(&[3000, 3, 0x400, 0x8000]));
    for seq in 0..3 {
        send_block(&mut d, op::FLASH_DATA, seq, &[0x5A; 0x400]);
    }
    let actions = d.on_frame(&Command::encode(op::FLASH_END, &words(&[0]), 0));
    assert!(matches!(actions.first(), Some(Action::Frame(f)) if f[8..] == [0; 4]));
    assert_eq!(d.state(), LoaderState::App);
}

#[test]
fn rom_flash_end_leaves_the_loader() {
    let mut d = device(Chip::Esp32c3);
    attach(&mut d);
    reply(&mut d, op::FLASH_BEGIN, &words(&[0, 0, 0x400, 0, 0]));
    let actions = d.on_frame(&Command::encode(op::FLASH_END, &words(&[1]), 0));
    assert!(matches!(actions.first(), Some(Action::Frame(f)) if f[8..] == [0, 0, 0, 0]));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::Text(t) if t.starts_with(b"ESP-ROM:esp32c3"))),
        "boot log"
    );
    assert_eq!(d.state(), LoaderState::App);
    assert!(
        send(&mut d, op::SYNC, &SYNC_PAYLOAD).is_empty(),
        "the application does not answer"
    );
    d.reset_to_rom();
    assert_eq!(send(&mut d, op::SYNC, &SYNC_PAYLOAD).len(), 8);
}

/// The deflate path: one zlib stream cut at arbitrary boundaries, ROM blocks of 0x400.
#[test]
fn rom_deflate_write_in_1k_blocks() {
    let image: Vec<u8> = (0..50_000u32)
        .map(|i| {
            if i % 5 == 0 {
                (i / 5).to_le_bytes()[0]
            } else {
                0xFF
            }
        })
        .collect();
    let z = compress_to_vec_zlib(&image, 9);
    assert_eq!(&z[..2], [0x78, 0xDA], "zlib header at level 9");
    let mut d = device(Chip::Esp32);
    attach(&mut d);
    let erase_size = u32::try_from(image.len().next_multiple_of(0x400)).unwrap();
    let blocks = u32::try_from(z.len().div_ceil(0x400)).unwrap();
    assert_eq!(
        reply(
            &mut d,
            op::FLASH_DEFL_BEGIN,
            &words(&[erase_size, blocks, 0x400, 0x2000])
        )
        .1,
        [0; 4]
    );
    for (seq, chunk) in z.chunks(0x400).enumerate() {
        assert_eq!(
            send_block(
                &mut d,
                op::FLASH_DEFL_DATA,
                u32::try_from(seq).unwrap(),
                chunk
            ),
            [0; 4]
        );
    }
    // No DEFL_END (esptool's ROM flow): the data must already be in flash.
    assert_eq!(d.lock_flash().read(0x2000, 50_000), image);
}

#[test]
fn rom_deflate_errors() {
    let image = vec![0x5Au8; 3000];
    let mut z = compress_to_vec_zlib(&image, 9);
    let n = z.len();
    z[n - 1] ^= 0xFF; // break the Adler-32 trailer
    let mut d = device(Chip::Esp32);
    attach(&mut d);
    reply(&mut d, op::FLASH_DEFL_BEGIN, &words(&[0x1000, 1, 0x400, 0]));
    assert_eq!(
        send_block(&mut d, op::FLASH_DEFL_DATA, 0, &z),
        [1, 0x0C, 0, 0],
        "Adler-32 error"
    );
    reply(&mut d, op::FLASH_DEFL_BEGIN, &words(&[0x1000, 1, 0x400, 0]));
    assert_eq!(
        send_block(
            &mut d,
            op::FLASH_DEFL_DATA,
            0,
            &[0x78, 0xDA, 0xFF, 0xFF, 0xFF]
        ),
        [1, 0x0B, 0, 0],
        "bad stream"
    );
}

#[test]
fn stub_deflate_write_checks_declared_size() {
    let image: Vec<u8> = (0..70_000u32).map(|i| (i % 251).to_le_bytes()[0]).collect();
    let z = compress_to_vec_zlib(&image, 9);
    let mut d = device(Chip::Esp32c3);
    start_stub(&mut d);
    let size = u32::try_from(image.len()).unwrap();
    let begin = |d: &mut Device, size: u32| {
        reply(
            d,
            op::FLASH_DEFL_BEGIN,
            &words(&[size, 1, 0x4000, 0x10000, 0]),
        )
        .1
    };
    assert_eq!(begin(&mut d, size), [0, 0]);
    for (seq, chunk) in z.chunks(0x4000).enumerate() {
        assert_eq!(
            send_block(
                &mut d,
                op::FLASH_DEFL_DATA,
                u32::try_from(seq).unwrap(),
                chunk
            ),
            [0, 0]
        );
    }
    assert_eq!(reply(&mut d, op::FLASH_DEFL_END, &words(&[1])).1, [0, 0]);
    assert_eq!(d.lock_flash().read(0x10000, size), image);
    assert_eq!(
        d.state(),
        LoaderState::Stub,
        "END(1) keeps the stub running"
    );
    // Declared too small: C9 once output overflows.
    assert_eq!(begin(&mut d, 1000), [0, 0]);
    assert_eq!(
        send_block(&mut d, op::FLASH_DEFL_DATA, 0, &z[..0x4000.min(z.len())]),
        [0xC9, 0]
    );
    // Declared too large: C8 at END.
    assert_eq!(begin(&mut d, size + 1), [0, 0]);
    for (seq, chunk) in z.chunks(0x4000).enumerate() {
        send_block(
            &mut d,
            op::FLASH_DEFL_DATA,
            u32::try_from(seq).unwrap(),
            chunk,
        );
    }
    assert_eq!(reply(&mut d, op::FLASH_DEFL_END, &words(&[1])).1, [0xC8, 0]);
    // Bad checksum from the stub: C1. DATA without BEGIN: C6.
    assert_eq!(begin(&mut d, size), [0, 0]);
    let (op, data, chk) = data_block(op::FLASH_DEFL_DATA, 0, &z[..100]);
    assert_eq!(send_chk(&mut d, op, &data, chk ^ 0x80)[0][8..], [0xC1, 0]);
    reply(&mut d, op::FLASH_DEFL_END, &words(&[1]));
    assert_eq!(
        send_block(&mut d, op::FLASH_DEFL_DATA, 0, &z[..100]),
        [0xC6, 0]
    );
}

#[test]
fn stub_erases_just_in_time_and_clamps_padding() {
    let mut d = device(Chip::Esp32);
    start_stub(&mut d);
    d.lock_flash().program(0, &[0u8; 0x3000]);
    // 0x1800 bytes at 0x1000: sectors 0x1000 and 0x2000 get erased; 0x0 is untouched.
    assert_eq!(
        reply(
            &mut d,
            op::FLASH_BEGIN,
            &words(&[0x1800, 1, 0x4000, 0x1000])
        )
        .1,
        [0, 0]
    );
    let mut block = vec![0x77u8; 0x1800];
    block.resize(0x4000, 0xFF);
    let actions = d.on_frame(&{
        let (op, data, chk) = data_block(op::FLASH_DATA, 0, &block);
        Command::encode(op, &data, chk)
    });
    // Reply first; the flash work runs in the background (double buffering).
    assert!(matches!(actions.first(), Some(Action::Frame(f)) if f[8..] == [0, 0]));
    assert!(actions.iter().any(
        |a| matches!(a, Action::BackgroundWork(t) if *t >= FlashTiming::TYPICAL.sector_erase * 2)
    ));
    let flash = d.lock_flash().read(0, 0x4000);
    assert!(
        flash[..0x1000].iter().all(|&b| b == 0),
        "sector before the write untouched"
    );
    assert!(flash[0x1000..0x2800].iter().all(|&b| b == 0x77));
    assert!(
        flash[0x2800..0x3000].iter().all(|&b| b == 0xFF),
        "rest of the last sector erased, padding not written"
    );
    // FLASH_BEGIN(0,0) + FLASH_END(0): esptool's soft reset back into the ROM at 115200.
    d.set_baud(921_600);
    reply(&mut d, op::FLASH_BEGIN, &words(&[0, 0, 0x4000, 0]));
    let actions = d.on_frame(&Command::encode(op::FLASH_END, &words(&[0]), 0));
    assert!(actions.contains(&Action::SetBaud(115_200)));
    assert_eq!(d.state(), LoaderState::Rom);
}

#[test]
fn stub_read_flash_streams_with_acks_then_md5() {
    let mut d = device(Chip::Esp32c3);
    start_stub(&mut d);
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7).to_le_bytes()[0]).collect();
    d.lock_flash().program(0x8000, &data);
    // Packets of 0x1000, at most 0x2000 bytes in flight: two packets.
    let frames = send(
        &mut d,
        op::READ_FLASH,
        &words(&[0x8000, 10_000, 0x1000, 0x2000]),
    );
    assert_eq!(frames.len(), 3, "reply + 2 packets");
    assert_eq!(frames[0][8..], [0, 0]);
    let mut got = frames[1].clone();
    got.extend_from_slice(&frames[2]);
    let more = d.on_frame(&0x1000u32.to_le_bytes());
    assert_eq!(more.len(), 1, "one more packet after the first ack");
    let Action::Frame(p) = &more[0] else { panic!() };
    got.extend_from_slice(p);
    assert_eq!(p.len(), 10_000 - 0x2000);
    assert!(d.on_frame(&0x2000u32.to_le_bytes()).is_empty());
    let last = d.on_frame(&10_000u32.to_le_bytes());
    let Some(Action::Frame(md5)) = last.first() else {
        panic!("{last:?}")
    };
    assert_eq!(got, data);
    assert_eq!(
        md5.as_slice(),
        FlashArray::with_image(0x10000, &data).md5(0, 10_000)
    );
    // Back to commands.
    assert_eq!(
        reply(&mut d, op::READ_REG, &words(&[0x4000_1000])).0,
        0x1B31_506F
    );
}

#[test]
fn rom_read_flash_slow_returns_64_bytes() {
    let mut d = device(Chip::Esp32);
    attach(&mut d);
    d.lock_flash().program(0x100, b"hello");
    let (_, data) = reply(&mut d, op::READ_FLASH_SLOW, &words(&[0x100, 5]));
    assert_eq!(data.len(), 64 + 4);
    assert_eq!(&data[..6], b"hello\xff");
    assert_eq!(
        reply(&mut d, op::READ_FLASH_SLOW, &words(&[0x100, 65])).1,
        [1, 0x0A, 0, 0]
    );
    // Stub-only commands are unknown to the ROM: the ESP32 ROM refuses them in the previous
    // reply's header, the C3 ROM (as modelled) echoes the opcode.
    let refused = send(&mut d, op::ERASE_FLASH, &[]);
    assert_eq!(
        (refused[0][1], &refused[0][8..]),
        (op::READ_FLASH_SLOW, &[1, 5, 0, 0][..])
    );
    let mut c3 = device(Chip::Esp32c3);
    assert_eq!(reply(&mut c3, op::ERASE_FLASH, &[]).1, [1, 5, 0, 0]);
}

#[test]
fn write_reg_applies_mask_and_delay() {
    let mut d = device(Chip::Esp32);
    reply(
        &mut d,
        op::WRITE_REG,
        &words(&[0x6000_0000, 0xFFFF_FFFF, 0x0000_FF00, 0]),
    );
    let actions = d.on_frame(&Command::encode(
        op::WRITE_REG,
        &words(&[0x6000_0000, 0x1234_5678, 0x00FF_0000, 50]),
        0,
    ));
    assert!(actions.contains(&Action::Pause(Duration::from_micros(50))));
    assert_eq!(
        reply(&mut d, op::READ_REG, &words(&[0x6000_0000])).0,
        0x0034_FF00
    );
}

/// Both clients pass max_in_flight = 64 with 4 KiB packets; the window counts bytes, so the stub
/// waits for each acknowledgement before the next packet.
#[test]
fn stub_read_flash_window_counts_bytes() {
    let mut d = device(Chip::Esp32);
    start_stub(&mut d);
    let frames = send(&mut d, op::READ_FLASH, &words(&[0, 0x3000, 0x1000, 64]));
    assert_eq!(frames.len(), 2, "reply + 1 packet");
    assert_eq!(d.on_frame(&0x1000u32.to_le_bytes()).len(), 1);
    assert_eq!(d.on_frame(&0x2000u32.to_le_bytes()).len(), 1);
    let last = d.on_frame(&0x3000u32.to_le_bytes());
    assert!(
        matches!(last.as_slice(), [Action::Frame(md5)] if md5.len() == 16),
        "then the MD5"
    );
}
