//! The daemon's event loop end to end in one process: the test device source (a channel)
//! instead of udev, simulated boards (`espfleet-sim` on ptys) flashed by the real flasher,
//! the real journal and status socket. The udev + umockdev version with the real binary is
//! `daemon_umockdev.rs`.
//!
//! Manifests here are JSON test doubles read by [`JsonLoader`] (name, chip, match rules and a
//! seed for pseudo-random images), so these tests exercise the daemon without depending on the
//! manifest language; the umockdev test uses real KDL manifests and the compiler.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use espfleet::daemon::board::BoardConnector;
use espfleet::daemon::device::{ChannelSource, DeviceEvent, SerialPort};
use espfleet::daemon::event::Event;
use espfleet::daemon::event_loop::Daemon;
use espfleet::daemon::integration::SerialConnector;
use espfleet::daemon::journal::{self, Outcome, Record};
use espfleet::daemon::manifests::{LoadedManifest, ManifestLoader};
use espfleet::daemon::worker::RetryPolicy;
use espfleet::daemon::{DaemonConfig, status};
use espfleet_compiler::device_match::{MatchRule, UsbFacts};
use espfleet_compiler::image::{FlashImage, Segment};
use espfleet_compiler::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};
use espfleet_sim::{
    ByteFault, ByteFaultKind, Direction, Pacing, SimConfig, SimHandle, Simulator, Trigger,
};

/// A test manifest: `{"name", "chip", "match": [MatchRule...], "seed", "size"}`.
#[derive(serde::Deserialize)]
struct JsonManifest {
    name: String,
    chip: Chip,
    #[serde(rename = "match")]
    rules: Vec<MatchRule>,
    seed: u32,
    size: usize,
}

/// Deterministic incompressible bytes (xorshift32), so the stub's deflate cannot shrink them.
fn noise(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

fn image_for(chip: Chip, seed: u32, size: usize) -> FlashImage {
    FlashImage {
        chip,
        flash: FlashSettings {
            mode: FlashMode::Dio,
            freq: FlashFreq::F40m,
            size: FlashSize::from_bytes(4 << 20).unwrap(),
        },
        segments: vec![
            Segment {
                name: "mfg_nvs".into(),
                offset: 0x9000,
                data: noise(seed ^ 0x5555, 0x1000).into(),
            },
            Segment {
                name: "app".into(),
                offset: 0x10000,
                data: noise(seed, size).into(),
            },
        ],
    }
}

struct JsonLoader;
impl ManifestLoader for JsonLoader {
    fn load(&self, path: &Path) -> Result<LoadedManifest, String> {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let m: JsonManifest =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(LoadedManifest {
            file: String::new(),
            name: m.name,
            chip: m.chip,
            rules: m.rules,
            image: Arc::new(image_for(m.chip, m.seed, m.size)),
            extends: Vec::new(),
        })
    }
}

fn write_manifest(dir: &Path, file: &str, chip: Chip, rules: &str, seed: u32, size: usize) {
    let text = format!(
        r#"{{"name": "{file}", "chip": "{chip}", "match": {rules}, "seed": {seed}, "size": {size}}}"#
    );
    // Atomic replace, as an editor or `git pull` would.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(file)).unwrap();
}

struct Bench {
    _dir: tempfile::TempDir,
    manifests: PathBuf,
    journal: PathBuf,
    socket: PathBuf,
    devices: mpsc::Sender<DeviceEvent>,
    events: mpsc::Sender<Event>,
    daemon: Option<std::thread::JoinHandle<Result<(), espfleet::daemon::DaemonError>>>,
}

struct Board {
    sim: SimHandle,
    port: SerialPort,
}

const MAC_BASE: [u8; 6] = [0x84, 0xf7, 0x03, 0x00, 0x00, 0x00];

impl Bench {
    fn start(setup: impl FnOnce(&Path)) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let manifests = dir.path().join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        setup(&manifests);
        let journal = dir.path().join("state/journal.jsonl");
        let socket = dir.path().join("run/status.sock");
        let config = DaemonConfig {
            manifest_dir: manifests.clone(),
            journal: journal.clone(),
            socket: Some(socket.clone()),
            flash_present: false,
            retry: RetryPolicy {
                max_attempts: 3,
                first_backoff: Duration::from_millis(50),
                max_backoff: Duration::from_millis(200),
            },
            debounce: Duration::from_millis(50),
            http: None,
        };
        let connector: Arc<dyn BoardConnector> = Arc::new(SerialConnector::new(921_600));
        let daemon = Daemon::new(config, connector, Arc::new(JsonLoader)).unwrap();
        let events = daemon.sender();
        let (source, devices) = ChannelSource::new();
        let handle = std::thread::spawn(move || daemon.run(Box::new(source)));
        let bench = Bench {
            _dir: dir,
            manifests,
            journal,
            socket,
            devices,
            events,
            daemon: Some(handle),
        };
        bench.wait_until("the status socket answers", |b| {
            status::query(&b.socket).is_ok()
        });
        bench
    }

    #[allow(clippy::unused_self)] // reads as "a board on this bench"
    fn board(&self, n: u8, chip: Chip, tweak: impl FnOnce(&mut SimConfig)) -> Board {
        let mut config = SimConfig::new(chip);
        config.pacing = Pacing::OFF;
        let mut mac = MAC_BASE;
        mac[5] = n;
        config.mac = Some(mac);
        tweak(&mut config);
        let sim = Simulator::spawn(config).unwrap();
        let port = SerialPort {
            syspath: PathBuf::from(format!(
                "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.{n}/1-1.{n}:1.0/ttyUSB{n}/tty/ttyUSB{n}"
            )),
            devnode: sim.path().to_owned(),
            usb: UsbFacts {
                vid: Some(0x10c4),
                pid: Some(0xea60),
                serial: Some(format!("SIM{n:04}")),
                ports: vec![
                    sim.path().display().to_string(),
                    format!("/dev/espfleet/1-1.{n}"),
                ],
                usb_path: Some(format!("1-1.{n}")),
            },
        };
        Board { sim, port }
    }

    fn plug(&self, board: &Board) {
        self.devices
            .send(DeviceEvent::Added(board.port.clone()))
            .unwrap();
    }

    fn unplug(&self, board: &Board) {
        board.sim.unplug();
        self.devices
            .send(DeviceEvent::Removed {
                syspath: board.port.syspath.clone(),
                devnode: Some(board.port.devnode.clone()),
            })
            .unwrap();
    }

    fn records(&self) -> Vec<Record> {
        journal::read(&self.journal).unwrap().records
    }

    fn wait_until(&self, what: &str, mut ok: impl FnMut(&Bench) -> bool) {
        let end = Instant::now() + Duration::from_secs(90);
        while !ok(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting until {what}; journal: {:#?}",
                self.records()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the journal holds `n` records for the board's slot, and returns them.
    /// (Slots, not device nodes: a re-plugged simulator may get the pty number of the old one.)
    fn wait_records(&self, board: &Board, n: usize) -> Vec<Record> {
        let slot = board.port.usb.usb_path.clone();
        let mut out = Vec::new();
        self.wait_until(&format!("{n} records for slot {slot:?}"), |b| {
            out = b.records().into_iter().filter(|r| r.slot == slot).collect();
            out.len() >= n
        });
        out
    }

    fn stop(mut self) {
        self.events.send(Event::Shutdown).unwrap();
        self.daemon.take().unwrap().join().unwrap().unwrap();
    }
}

fn assert_holds(board: &Board, image: &FlashImage) {
    let flash = board.sim.flash_contents();
    for s in &image.segments {
        let at = s.offset as usize;
        assert!(
            flash[at..at + s.data.len()] == s.data[..],
            "{}: segment {} differs",
            board.port.devnode.display(),
            s.name
        );
    }
}

const CP210X: &str = r#"[{"vid": 4292, "pid": 60000}]"#;

#[test]
fn eight_boards_at_once_get_their_manifests_and_a_replug_only_verifies() {
    let bench = Bench::start(|dir| {
        write_manifest(
            dir,
            "generic-c3.json.kdl",
            Chip::Esp32c3,
            CP210X,
            1,
            48 * 1024,
        );
        write_manifest(
            dir,
            "generic-esp32.json.kdl",
            Chip::Esp32,
            CP210X,
            2,
            48 * 1024,
        );
        // Slot 1-1.4 gets its own manifest: a usb_path rule outranks vid/pid.
        write_manifest(
            dir,
            "slot4.json.kdl",
            Chip::Esp32c3,
            r#"[{"usb_path": "1-1.4"}]"#,
            3,
            32 * 1024,
        );
    });
    let boards: Vec<Board> = (1..=8)
        .map(|n| {
            bench.board(
                n,
                if n % 2 == 0 {
                    Chip::Esp32c3
                } else {
                    Chip::Esp32
                },
                |_| {},
            )
        })
        .collect();
    for b in &boards {
        bench.plug(b);
    }
    for (i, b) in boards.iter().enumerate() {
        let n = i + 1;
        let recs = bench.wait_records(b, 1);
        assert_eq!(recs.len(), 1, "{recs:#?}");
        let r = &recs[0];
        let (file, seed, size, chip) = match n {
            4 => ("slot4.json.kdl", 3, 32 * 1024, Chip::Esp32c3),
            _ if n % 2 == 0 => ("generic-c3.json.kdl", 1, 48 * 1024, Chip::Esp32c3),
            _ => ("generic-esp32.json.kdl", 2, 48 * 1024, Chip::Esp32),
        };
        assert_eq!(r.outcome, Outcome::Flashed, "{r:#?}");
        assert_eq!(r.manifest.as_deref(), Some(file));
        assert_eq!(r.chip.as_deref(), Some(chip.name()));
        assert_eq!(
            r.mac.as_deref(),
            Some(format!("84:f7:03:00:00:{n:02x}").as_str())
        );
        assert_eq!(r.slot.as_deref(), Some(format!("1-1.{n}").as_str()));
        assert_eq!(r.bytes, (size + 0x1000) as u64);
        assert_eq!(r.images.len(), 2);
        assert_holds(b, &image_for(chip, seed, size));
    }
    // Status shows every port flashed.
    let snap = status::query(&bench.socket).unwrap();
    assert_eq!(snap.ports.len(), 8);
    assert!(snap.ports.iter().all(|p| p.state == "flashed"), "{snap:#?}");

    // Re-plug board 2: it already holds its images, so it is verified, not rewritten.
    let b2 = &boards[1];
    bench.unplug(b2);
    let again = bench.board(2, Chip::Esp32c3, |_| {});
    again.sim.preload_flash(0, &b2.sim.flash_contents());
    bench.plug(&again);
    let recs = bench.wait_records(&again, 2);
    let last = recs.last().unwrap();
    assert_eq!(last.outcome, Outcome::Verified, "{last:#?}");
    assert_eq!(last.bytes, 0);
    bench.stop();
}

#[test]
fn unplugged_mid_flash_is_recorded_and_the_next_plug_in_flashes() {
    let bench = Bench::start(|dir| {
        write_manifest(dir, "c3.json.kdl", Chip::Esp32c3, CP210X, 7, 128 * 1024);
    });
    let flash_file = bench.manifests.parent().unwrap().join("board5.flash");
    // The board vanishes when the stub receives its third FLASH_DATA block (the images are
    // incompressible, so espflash sends them uncompressed): mfg_nvs is written, app half.
    let b = bench.board(5, Chip::Esp32c3, |c| {
        c.flash_file = Some(flash_file.clone());
        c.faults.unplug = Some(Trigger::Opcode { op: 0x03, nth: 3 });
    });
    bench.plug(&b);
    bench.wait_until("the simulator unplugged itself", |_| b.sim.is_unplugged());
    bench
        .devices
        .send(DeviceEvent::Removed {
            syspath: b.port.syspath.clone(),
            devnode: Some(b.port.devnode.clone()),
        })
        .unwrap();
    let recs = bench.wait_records(&b, 1);
    assert_eq!(recs[0].outcome, Outcome::Failed, "{recs:#?}");
    assert!(recs[0].error.is_some());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        bench.wait_records(&b, 1).len(),
        1,
        "an unplugged board is not retried"
    );

    // Plugged in again (same board: its flash file keeps what was written so far).
    let again = bench.board(5, Chip::Esp32c3, |c| {
        c.flash_file = Some(flash_file.clone());
    });
    bench.plug(&again);
    let recs = bench.wait_records(&again, 2);
    assert_eq!(recs[1].outcome, Outcome::Flashed, "{recs:#?}");
    assert_holds(&again, &image_for(Chip::Esp32c3, 7, 128 * 1024));
    bench.stop();
}

#[test]
fn manifest_edits_apply_to_the_next_board_and_a_broken_edit_keeps_the_last_good_version() {
    let bench = Bench::start(|dir| {
        write_manifest(dir, "c3.json.kdl", Chip::Esp32c3, CP210X, 10, 16 * 1024);
    });
    let b1 = bench.board(1, Chip::Esp32c3, |_| {});
    bench.plug(&b1);
    assert_eq!(bench.wait_records(&b1, 1)[0].outcome, Outcome::Flashed);
    assert_holds(&b1, &image_for(Chip::Esp32c3, 10, 16 * 1024));

    // Edit: new images.
    write_manifest(
        &bench.manifests,
        "c3.json.kdl",
        Chip::Esp32c3,
        CP210X,
        11,
        20 * 1024,
    );
    bench.wait_until("the edit is in force", |b| {
        let snap = status::query(&b.socket).unwrap();
        snap.manifests.len() == 1 && snap.manifests[0].error.is_none() && {
            let recs = journal::read(&b.journal).unwrap().records;
            recs.len() == 1
        }
    });
    std::thread::sleep(Duration::from_millis(300)); // debounce + rescan
    let b2 = bench.board(2, Chip::Esp32c3, |_| {});
    bench.plug(&b2);
    assert_eq!(bench.wait_records(&b2, 1)[0].outcome, Outcome::Flashed);
    assert_holds(&b2, &image_for(Chip::Esp32c3, 11, 20 * 1024));

    // Break it: the daemon reports the error and keeps the last good version.
    std::fs::write(bench.manifests.join("c3.json.kdl"), "{ this is not json").unwrap();
    bench.wait_until("the broken manifest is reported", |b| {
        let snap = status::query(&b.socket).unwrap();
        snap.manifests
            .first()
            .is_some_and(|m| m.error.is_some() && m.in_force)
    });
    let b3 = bench.board(3, Chip::Esp32c3, |_| {});
    bench.plug(&b3);
    let r = &bench.wait_records(&b3, 1)[0];
    assert_eq!(r.outcome, Outcome::Flashed);
    assert_holds(&b3, &image_for(Chip::Esp32c3, 11, 20 * 1024));
    bench.stop();
}

#[test]
fn boards_matching_nothing_or_two_manifests_equally_are_left_alone() {
    let bench = Bench::start(|dir| {
        // Two manifests claim slot 1-1.2 equally; nothing claims ESP32 boards elsewhere.
        write_manifest(
            dir,
            "a.json.kdl",
            Chip::Esp32c3,
            r#"[{"usb_path": "1-1.2"}]"#,
            20,
            8 * 1024,
        );
        write_manifest(
            dir,
            "b.json.kdl",
            Chip::Esp32c3,
            r#"[{"usb_path": "1-1.2"}]"#,
            21,
            8 * 1024,
        );
        write_manifest(
            dir,
            "c.json.kdl",
            Chip::Esp32c3,
            r#"[{"usb_path": "1-1.3", "chip": "esp32c3"}]"#,
            22,
            8 * 1024,
        );
    });
    let nothing = bench.board(1, Chip::Esp32c3, |_| {});
    let tie = bench.board(2, Chip::Esp32c3, |_| {});
    let wrong_chip = bench.board(3, Chip::Esp32, |_| {});
    for b in [&nothing, &tie, &wrong_chip] {
        bench.plug(b);
    }
    let r = &bench.wait_records(&nothing, 1)[0];
    assert_eq!(r.outcome, Outcome::LeftAlone);
    assert!(
        r.chip.is_none(),
        "a board matching no USB rule is never opened: {r:#?}"
    );
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("usb path 1-1.2 wanted"),
        "{r:#?}"
    );
    let r = &bench.wait_records(&tie, 1)[0];
    assert_eq!(r.outcome, Outcome::LeftAlone);
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("a.json.kdl and b.json.kdl equally"),
        "{r:#?}"
    );
    let r = &bench.wait_records(&wrong_chip, 1)[0];
    assert_eq!(r.outcome, Outcome::LeftAlone);
    assert_eq!(r.chip.as_deref(), Some("esp32"));
    // Nothing was written to any of them.
    for b in [&nothing, &tie, &wrong_chip] {
        assert!(
            b.sim.flash_contents()[0x9000..0x9000 + 0x1000]
                .iter()
                .all(|&x| x == 0xff)
        );
    }
    bench.stop();
}

#[test]
fn a_board_that_keeps_failing_is_retried_with_backoff_then_reported_not_looped_on() {
    let bench =
        Bench::start(|dir| write_manifest(dir, "c3.json.kdl", Chip::Esp32c3, CP210X, 30, 8 * 1024));
    // A bad cable: every 200th byte from the host arrives corrupted, on every attempt.
    let b = bench.board(6, Chip::Esp32c3, |c| {
        c.faults.bytes.push(ByteFault {
            direction: Direction::ToDevice,
            kind: ByteFaultKind::Corrupt,
            first: 100,
            every: Some(200),
        });
    });
    bench.plug(&b);
    let recs = bench.wait_records(&b, 3);
    let attempts: Vec<_> = recs.iter().map(|r| (r.attempt, r.outcome)).collect();
    assert_eq!(
        attempts,
        [
            (1, Outcome::Failed),
            (2, Outcome::Failed),
            (3, Outcome::Failed)
        ],
        "{recs:#?}"
    );
    std::thread::sleep(Duration::from_millis(800)); // longer than the whole backoff schedule
    assert_eq!(
        bench.records().len(),
        3,
        "no fourth attempt on the same plug-in"
    );
    let snap = status::query(&bench.socket).unwrap();
    assert_eq!(snap.ports[0].state, "failed", "{snap:#?}");
    assert!(
        snap.ports[0]
            .detail
            .as_deref()
            .unwrap()
            .starts_with("failed after 3 attempt(s)"),
        "{snap:#?}"
    );
    bench.stop();
}
