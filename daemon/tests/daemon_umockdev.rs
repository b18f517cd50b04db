//! End to end, on real components: umockdev delivers udev `add`/`remove` events for simulated
//! boards whose device nodes are simulator ptys, and the real `espfleetd` binary handles them
//! (udev monitor, manifest watcher, compiler, flasher, journal, status socket, sd_notify).
//!
//! How: this test binary re-executes itself under `umockdev-wrapper` (the preload must be there
//! from exec), creates a umockdev testbed in-process through libumockdev's C API, and spawns
//! `espfleetd` as a child, which inherits the mocked `/sys` and `/dev`. Each board is a
//! usb_device → interface → usb-serial port → tty description (parents first, so the daemon's
//! parent lookup sees the USB facts), an ioctl pass-through handler (umockdev 0.17 answers
//! ENOTTY to termios ioctls otherwise), and an `espfleet-sim` board running on the master end
//! of the pty umockdev made for the node. See `docs/testing-hotplug.md` §2.
//!
//! Needs the Debian packages `umockdev` and `libumockdev-dev` (tests/apt-packages.txt).
// The C API of libumockdev and GObject is only reachable through FFI.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_long, c_ulong, c_void};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use espfleet::daemon::journal::{self, Outcome, Record};
use espfleet::daemon::status;
use espfleet_compiler::target::Chip;
use espfleet_sim::{Pacing, SimConfig, SimHandle, Simulator, Trigger};

// The bench page in a real headless Chromium (uses the helpers below).
#[path = "daemon_umockdev/bench_page.rs"]
mod bench_page;

#[link(name = "umockdev")]
unsafe extern "C" {
    fn umockdev_testbed_new() -> *mut c_void;
    fn umockdev_testbed_add_from_string(
        tb: *mut c_void,
        data: *const c_char,
        err: *mut *mut c_void,
    ) -> c_int;
    fn umockdev_testbed_uevent(tb: *mut c_void, devpath: *const c_char, action: *const c_char);
    fn umockdev_testbed_remove_device(tb: *mut c_void, syspath: *const c_char);
    fn umockdev_testbed_get_dev_fd(tb: *mut c_void, devnode: *const c_char) -> c_int;
    fn umockdev_testbed_attach_ioctl(
        tb: *mut c_void,
        dev: *const c_char,
        h: *mut c_void,
        err: *mut *mut c_void,
    ) -> c_int;
    fn umockdev_ioctl_base_new() -> *mut c_void;
    fn umockdev_ioctl_client_execute(
        client: *mut c_void,
        errno_: *mut c_int,
        err: *mut *mut c_void,
    ) -> c_int;
    fn umockdev_ioctl_client_complete(client: *mut c_void, res: c_long, errno_: c_int);
}
#[link(name = "gobject-2.0")]
unsafe extern "C" {
    fn g_object_unref(obj: *mut c_void);
    fn g_signal_connect_data(
        inst: *mut c_void,
        sig: *const c_char,
        cb: *const c_void,
        data: *mut c_void,
        destroy: *const c_void,
        flags: c_int,
    ) -> c_ulong;
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Runs every ioctl on the mocked node for real, on the client's own fd (the pty slave).
unsafe extern "C" fn passthrough(_h: *mut c_void, client: *mut c_void, _ud: *mut c_void) -> c_int {
    unsafe {
        let mut e: c_int = 0;
        let r = umockdev_ioctl_client_execute(client, &raw mut e, std::ptr::null_mut());
        umockdev_ioctl_client_complete(client, c_long::from(r), if r == -1 { e } else { 0 });
    }
    1
}

/// Re-runs this one test under `umockdev-wrapper` unless the preload is already active.
/// Returns true in the preloaded process, where the test body runs.
fn ensure_mock_env(test_name: &str) -> bool {
    if std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("libumockdev-preload")) {
        return true;
    }
    assert!(
        std::env::var_os("UMOCKDEV_REEXEC").is_none(),
        "preload not active after re-exec"
    );
    let st = Command::new("umockdev-wrapper")
        .env("UMOCKDEV_REEXEC", "1")
        .arg(std::env::current_exe().unwrap())
        .args([
            test_name,
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .status()
        .expect("umockdev-wrapper missing: apt-get install umockdev (see tests/apt-packages.txt)");
    assert!(st.success(), "test under umockdev-wrapper failed: {st}");
    false
}

struct Testbed(*mut c_void);

impl Testbed {
    fn new() -> Testbed {
        Testbed(unsafe { umockdev_testbed_new() })
    }
    fn add(&self, desc: &str) {
        let d = c(desc);
        assert!(
            unsafe { umockdev_testbed_add_from_string(self.0, d.as_ptr(), std::ptr::null_mut()) }
                != 0,
            "bad description"
        );
    }
    fn attach_passthrough(&self, devnode: &str) {
        unsafe {
            let h = umockdev_ioctl_base_new();
            g_signal_connect_data(
                h,
                c"handle-ioctl".as_ptr(),
                passthrough as *const c_void,
                std::ptr::null_mut(),
                std::ptr::null(),
                0,
            );
            assert!(
                umockdev_testbed_attach_ioctl(self.0, c(devnode).as_ptr(), h, std::ptr::null_mut())
                    != 0
            );
        }
    }
    /// A duplicate of the pty master behind `devnode` (the testbed keeps its own).
    fn master(&self, devnode: &str) -> OwnedFd {
        let fd = unsafe { umockdev_testbed_get_dev_fd(self.0, c(devnode).as_ptr()) };
        assert!(fd >= 0, "no pty behind {devnode}");
        unsafe { BorrowedFd::borrow_raw(fd) }
            .try_clone_to_owned()
            .unwrap()
    }
    /// Unplug: `remove` for the tty while its sysfs dir exists (umockdev 0.17 sends no event
    /// from `remove_device`; the daemon only watches ttys), then delete the devices bottom-up
    /// as the kernel does, so the same USB path can be plugged again.
    fn remove(&self, devices_bottom_up: &[String]) {
        unsafe {
            umockdev_testbed_uevent(
                self.0,
                c(&devices_bottom_up[0]).as_ptr(),
                c("remove").as_ptr(),
            );
            for d in devices_bottom_up {
                umockdev_testbed_remove_device(self.0, c(d).as_ptr());
            }
        }
    }
}

impl Drop for Testbed {
    fn drop(&mut self) {
        unsafe { g_object_unref(self.0) }; // deletes the testbed directory
    }
}

/// A CP210x-style board on hub port `1-1.<slot>`: usb_device → interface → usb-serial port →
/// tty, parents first. Only the kernel's own facts plus the `ID_*` udev would add.
fn usb_serial_desc(slot: u8, tty: u32, vid: &str, pid: &str, serial: &str) -> String {
    let usb = format!("/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.{slot}");
    let port = format!("1-1.{slot}");
    format!(
        "P: {usb}
E: DEVTYPE=usb_device
E: SUBSYSTEM=usb
A: idVendor={vid}
A: idProduct={pid}
A: serial={serial}

P: {usb}/{port}:1.0
E: DEVTYPE=usb_interface
E: DRIVER=cp210x
E: SUBSYSTEM=usb
A: bInterfaceNumber=00

P: {usb}/{port}:1.0/ttyUSB{tty}
E: DRIVER=cp210x
E: SUBSYSTEM=usb-serial

P: {usb}/{port}:1.0/ttyUSB{tty}/tty/ttyUSB{tty}
N: ttyUSB{tty}
E: DEVNAME=/dev/ttyUSB{tty}
E: MAJOR=188
E: MINOR={tty}
E: SUBSYSTEM=tty
E: ID_BUS=usb
E: ID_VENDOR_ID={vid}
E: ID_MODEL_ID={pid}
E: ID_SERIAL_SHORT={serial}
E: ID_USB_DRIVER=cp210x
E: ID_USB_INTERFACE_NUM=00
E: ID_PATH=pci-0000:00:14.0-usb-0:1.{slot}:1.0
A: dev=188:{tty}

"
    )
}

fn tty_syspath(slot: u8, tty: u32) -> String {
    format!(
        "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.{slot}/1-1.{slot}:1.0/ttyUSB{tty}/tty/ttyUSB{tty}"
    )
}

/// A simulated board behind a mocked node.
struct Board {
    slot: u8,
    tty: u32,
    sim: SimHandle,
}

struct Bench {
    tb: Testbed,
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    next_tty: u32,
    /// More `espfleetd` arguments (`--http ...`).
    extra_args: Vec<String>,
    /// `ESPFLEET_LOG` for the daemon.
    log_filter: &'static str,
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// A manifest for one of the example firmware sets, with the given extra lines.
fn manifest(name: &str, chip: Chip, extra: &str) -> String {
    let examples = repo_root().join("manifests/examples");
    let (module, release) = match chip {
        Chip::Esp32 => (
            "module \"WROOM-32\" chip=\"esp32\"",
            examples.join("firmware/esp32"),
        ),
        Chip::Esp32c3 => (
            "module \"MINI-1\" chip=\"esp32c3\"",
            examples.join("firmware/esp32c3"),
        ),
    };
    format!(
        "espfleet 1\nname \"{name}\"\n{module}\nesp-at \"v4.1.1.0\"\nfirmware {{\n    release \"{}\"\n}}\n{extra}\n",
        release.display()
    )
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

impl Bench {
    fn new() -> Bench {
        let tb = Testbed::new(); // exports UMOCKDEV_DIR for the daemon
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("manifests")).unwrap();
        Bench {
            tb,
            dir,
            daemon: None,
            next_tty: 0,
            extra_args: Vec::new(),
            log_filter: "info,espflash=error",
        }
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }
    fn journal(&self) -> PathBuf {
        self.dir.path().join("state/journal.jsonl")
    }
    fn socket(&self) -> PathBuf {
        self.dir.path().join("status.sock")
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("espfleetd.log")).unwrap_or_default()
    }

    /// Starts espfleetd with a notify socket; returns once READY=1 arrived.
    fn start_daemon(&mut self) -> UnixDatagram {
        let notify_path = self.dir.path().join("notify.sock");
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let log = std::fs::File::create(self.dir.path().join("espfleetd.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_espfleetd"))
            .arg("--manifests")
            .arg(self.manifests())
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .arg("--socket")
            .arg(self.socket())
            .args([
                "--baud",
                "921600",
                "--backoff-ms",
                "100",
                "--debounce-ms",
                "100",
            ])
            .args(&self.extra_args)
            .env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "2000000")
            .env("ESPFLEET_LOG", self.log_filter)
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        let mut buf = [0u8; 1024];
        loop {
            let n = notify.recv(&mut buf).expect("READY=1 within 60 s");
            if String::from_utf8_lossy(&buf[..n]).contains("READY=1") {
                break;
            }
        }
        notify
    }

    /// Plugs a simulated board into hub port `slot`.
    fn plug(&mut self, slot: u8, chip: Chip, tweak: impl FnOnce(&mut SimConfig)) -> Board {
        let tty = self.next_tty;
        self.next_tty += 1; // umockdev 0.17 cannot re-add a pty node name: a replug gets a new one
        let node = format!("/dev/ttyUSB{tty}");
        self.tb.attach_passthrough(&node);
        self.tb.add(&usb_serial_desc(
            slot,
            tty,
            "10c4",
            "ea60",
            &format!("SIM{slot:04}"),
        ));
        let mut config = SimConfig::new(chip);
        config.pacing = Pacing::OFF;
        config.mac = Some([0x84, 0xf7, 0x03, 0x00, 0x00, slot]);
        tweak(&mut config);
        let sim = Simulator::spawn_on_master(self.tb.master(&node), config).unwrap();
        Board { slot, tty, sim }
    }

    fn unplug(&self, board: &Board) {
        board.sim.unplug();
        let usb = format!(
            "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1.{}",
            board.slot
        );
        let intf = format!("{usb}/1-1.{}:1.0", board.slot);
        self.tb.remove(&[
            tty_syspath(board.slot, board.tty),
            format!("{intf}/ttyUSB{}", board.tty),
            intf,
            usb,
        ]);
    }

    fn records(&self) -> Vec<Record> {
        journal::read(&self.journal()).unwrap().records
    }

    fn wait_until(&self, what: &str, mut ok: impl FnMut(&Bench) -> bool) {
        let end = Instant::now() + Duration::from_secs(120);
        while !ok(self) {
            assert!(
                Instant::now() < end,
                "timed out waiting until {what}\nstatus: {:#?}\njournal: {:#?}\nlog:\n{}",
                status::query(&self.socket()),
                self.records(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the journal has `n` records for `slot`; returns them.
    fn wait_records(&self, slot: u8, n: usize) -> Vec<Record> {
        let want = format!("1-1.{slot}");
        let mut out = Vec::new();
        self.wait_until(&format!("{n} records for slot {want}"), |b| {
            out = b
                .records()
                .into_iter()
                .filter(|r| r.slot.as_deref() == Some(want.as_str()))
                .collect();
            out.len() >= n
        });
        out
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "espfleetd exited with {status}\n{}",
                self.log()
            );
        }
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What the compiler builds for a manifest, to compare flash contents with.
fn expected_image(path: &Path) -> espfleet_compiler::image::FlashImage {
    use espfleet::daemon::manifests::ManifestLoader as _;
    let loader = espfleet::daemon::integration::CompilerLoader::new(
        std::env::temp_dir().join("espfleet-e2e-cache"),
    );
    (*loader.load(path).unwrap_or_else(|e| panic!("{e}")).image).clone()
}

fn assert_holds(board: &Board, image: &espfleet_compiler::image::FlashImage) {
    let flash = board.sim.flash_contents();
    for s in &image.segments {
        let at = s.offset as usize;
        assert!(
            flash[at..at + s.data.len()] == s.data[..],
            "slot 1-1.{}: {} differs",
            board.slot,
            s.name
        );
    }
}

#[test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
fn hotplug_end_to_end_with_umockdev_simulators_and_the_real_daemon() {
    if !ensure_mock_env("hotplug_end_to_end_with_umockdev_simulators_and_the_real_daemon") {
        return;
    }
    let mut bench = Bench::new();
    let m = bench.manifests();
    // Generic manifests per chip for CP210x bridges; slot 1-1.4 has its own (usb-path outranks vid/pid).
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest(
            "bench-c3",
            Chip::Esp32c3,
            "match vid=0x10c4 pid=0xea60\nwifi country=\"DE\"",
        ),
    );
    write_atomically(
        &m.join("bench-esp32.kdl"),
        &manifest("bench-esp32", Chip::Esp32, "match vid=0x10c4 pid=0xea60"),
    );
    write_atomically(
        &m.join("slot4.kdl"),
        &manifest(
            "slot4",
            Chip::Esp32c3,
            "match usb-path=\"1-1.4\"\nwifi country=\"US\"",
        ),
    );
    // Two manifests claim slot 1-1.20 equally.
    write_atomically(
        &m.join("tie-a.kdl"),
        &manifest("tie-a", Chip::Esp32c3, "match usb-path=\"1-1.20\""),
    );
    write_atomically(
        &m.join("tie-b.kdl"),
        &manifest("tie-b", Chip::Esp32c3, "match usb-path=\"1-1.20\""),
    );
    let notify = bench.start_daemon();

    // --- 8 boards at once.
    let boards: Vec<Board> = (1..=8)
        .map(|n| {
            bench.plug(
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
        let r = &bench.wait_records(b.slot, 1)[0];
        let file = match b.slot {
            4 => "slot4.kdl",
            n if n % 2 == 0 => "bench-c3.kdl",
            _ => "bench-esp32.kdl",
        };
        assert_eq!(r.outcome, Outcome::Flashed, "{r:#?}");
        assert_eq!(r.manifest.as_deref(), Some(file), "{r:#?}");
        assert_eq!(
            r.mac.as_deref(),
            Some(format!("84:f7:03:00:00:{:02x}", b.slot).as_str())
        );
        assert_eq!(r.vid.as_deref(), Some("10c4"));
        assert!(
            !r.images.is_empty() && r.bytes > 0 && r.duration_ms > 0,
            "{r:#?}"
        );
        assert_holds(b, &expected_image(&m.join(file)));
    }
    let snap = status::query(&bench.socket()).unwrap();
    assert_eq!(
        snap.ports.iter().filter(|p| p.state == "flashed").count(),
        8,
        "{snap:#?}"
    );

    // --- Unplugged mid-flash (the stub's 2nd compressed data block of 4+ parts), then plugged again.
    let flash_file = bench.dir.path().join("slot9.flash");
    let b9 = bench.plug(9, Chip::Esp32c3, |c| {
        c.flash_file = Some(flash_file.clone());
        c.faults.unplug = Some(Trigger::Opcode { op: 0x11, nth: 2 });
    });
    bench.wait_until("slot 9 unplugs itself mid-flash", |_| b9.sim.is_unplugged());
    bench.unplug(&b9);
    let r = &bench.wait_records(9, 1)[0];
    assert_eq!(r.outcome, Outcome::Failed, "{r:#?}");
    let b9 = bench.plug(9, Chip::Esp32c3, |c| {
        c.flash_file = Some(flash_file.clone());
    });
    let r = &bench.wait_records(9, 2)[1];
    assert_eq!(r.outcome, Outcome::Flashed, "{r:#?}");
    assert_holds(&b9, &expected_image(&m.join("bench-c3.kdl")));

    // --- A manifest edited while running: the next board gets the new images.
    let before = expected_image(&m.join("bench-c3.kdl"));
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest(
            "bench-c3",
            Chip::Esp32c3,
            "match vid=0x10c4 pid=0xea60\nwifi country=\"JP\"",
        ),
    );
    let after = expected_image(&m.join("bench-c3.kdl"));
    assert_ne!(before, after, "the edit changes the images");
    bench.wait_until("the edited manifest is reloaded", |b| {
        b.log().contains("manifest bench-c3.kdl reloaded")
    });
    let b10 = bench.plug(10, Chip::Esp32c3, |_| {});
    assert_eq!(bench.wait_records(10, 1)[0].outcome, Outcome::Flashed);
    assert_holds(&b10, &after);

    // --- A manifest broken while running: the last good version stays in force.
    write_atomically(
        &m.join("bench-c3.kdl"),
        "espfleet 1\nmodule \"NO-SUCH-MODULE\"\nmatch vid=0x10c4 pid=0xea60\n",
    );
    bench.wait_until("the broken manifest is reported", |b| {
        b.log()
            .contains("manifest bench-c3.kdl fails to build; its last good version stays in force")
    });
    let b11 = bench.plug(11, Chip::Esp32c3, |_| {});
    assert_eq!(bench.wait_records(11, 1)[0].outcome, Outcome::Flashed);
    assert_holds(&b11, &after);

    // --- A board that matches nothing (a CH340 no manifest names) and one that matches two equally.
    bench
        .tb
        .attach_passthrough(&format!("/dev/ttyUSB{}", bench.next_tty));
    bench.tb.add(&usb_serial_desc(
        12,
        bench.next_tty,
        "1a86",
        "7523",
        "CH340SIM",
    ));
    bench.next_tty += 1;
    let r = &bench.wait_records(12, 1)[0];
    assert_eq!(r.outcome, Outcome::LeftAlone, "{r:#?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .starts_with("matches no manifest"),
        "{r:#?}"
    );
    let tie = bench.plug(20, Chip::Esp32c3, |_| {});
    let r = &bench.wait_records(20, 1)[0];
    assert_eq!(r.outcome, Outcome::LeftAlone, "{r:#?}");
    assert!(
        r.error
            .as_deref()
            .unwrap()
            .contains("tie-a.kdl and tie-b.kdl equally"),
        "{r:#?}"
    );
    assert!(
        tie.sim.flash_contents().iter().all(|&b| b == 0xff),
        "nothing written to the tied board"
    );
    let log = bench.log();
    assert!(
        log.contains("slot 1-1.12  board  left alone: matches no manifest"),
        "{log}"
    );
    assert!(log.contains("slot 1-1.20  esp32c3 84:f7:03:00:00:14  left alone: matches tie-a.kdl and tie-b.kdl equally"), "{log}");

    // --- The journal is complete: one record per attempt above, all well-formed.
    let all = bench.records();
    assert_eq!(all.len(), 8 + 2 + 1 + 1 + 1 + 1, "{all:#?}");
    // --- sd_notify: READY was seen at start; WATCHDOG keeps coming.
    let mut buf = [0u8; 1024];
    let end = Instant::now() + Duration::from_secs(5);
    let mut watchdog = false;
    while !watchdog && Instant::now() < end {
        let n = notify.recv(&mut buf).unwrap();
        watchdog = &buf[..n] == b"WATCHDOG=1\n";
    }
    assert!(watchdog, "no WATCHDOG=1");

    bench.stop_daemon();
    drop(boards);
}

/// The benchmark behind `tests/bench/hotplug.sh` (ignored in normal runs): time from the plug
/// event to "flashed" for 1, 8 and 16 boards plugged at once, with simulators paced like real
/// boards at 921,600 baud (UART bytes at line rate, typical flash erase/program times).
#[test]
#[ignore = "benchmark: run tests/bench/hotplug.sh"]
#[allow(clippy::cast_precision_loss)] // board counts
fn bench_hotplug_throughput() {
    if !ensure_mock_env("bench_hotplug_throughput") {
        return;
    }
    let mut bench = Bench::new();
    let m = bench.manifests();
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest("bench-c3", Chip::Esp32c3, "match vid=0x10c4 pid=0xea60"),
    );
    let _notify = bench.start_daemon();
    let bytes: usize = expected_image(&m.join("bench-c3.kdl"))
        .segments
        .iter()
        .map(|s| s.data.len())
        .sum();
    println!("image: {bytes} bytes; simulators paced at 921600 baud with typical flash timings");
    let mut next_slot = 1u8;
    let mut one_board_rate = None;
    for n in [1usize, 8, 16] {
        let start = Instant::now();
        let mut boards = Vec::new();
        for _ in 0..n {
            boards.push(bench.plug(next_slot, Chip::Esp32c3, |c| c.pacing = Pacing::REALISTIC));
            next_slot += 1;
        }
        let mut latencies = Vec::new();
        for b in &boards {
            let r = &bench.wait_records(b.slot, 1)[0];
            assert_eq!(r.outcome, Outcome::Flashed, "{r:#?}");
            latencies.push(start.elapsed());
        }
        let total = start.elapsed();
        let rate = n as f64 / total.as_secs_f64();
        let base = *one_board_rate.get_or_insert(rate);
        let mean = latencies.iter().map(Duration::as_secs_f64).sum::<f64>() / n as f64;
        println!(
            "boards={n:>2}  all flashed in {:>6.2} s  mean plug-to-flashed {mean:>6.2} s  throughput {rate:>5.2} boards/s  = {:>5.2}x one board",
            total.as_secs_f64(),
            rate / base
        );
        for b in &boards {
            assert_holds(b, &expected_image(&m.join("bench-c3.kdl")));
        }
    }
    bench.stop_daemon();
}

/// The benchmark behind the per-chip line of `tests/bench/hotplug.sh` (ignored in normal runs):
/// one board of each chip, paced like a real one at 921,600 baud, plugged into the real daemon:
/// the time from the plug event to "flashed" on an erased board, then to "verified" when the
/// same board (same flash) is plugged again. The ESP32 ROM refuses GET_SECURITY_INFO the way
/// the real one does (`daemon/sim/README.md`), so a flasher that waits on it shows here.
#[test]
#[ignore = "benchmark: run tests/bench/hotplug.sh"]
fn bench_plug_to_flashed_one_board_per_chip() {
    if !ensure_mock_env("bench_plug_to_flashed_one_board_per_chip") {
        return;
    }
    let mut bench = Bench::new();
    let m = bench.manifests();
    write_atomically(
        &m.join("bench-esp32.kdl"),
        &manifest("bench-esp32", Chip::Esp32, "match usb-path=\"1-1.1\""),
    );
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest("bench-c3", Chip::Esp32c3, "match usb-path=\"1-1.2\""),
    );
    let _notify = bench.start_daemon();
    for (slot, chip, file) in [
        (1u8, Chip::Esp32, "bench-esp32.kdl"),
        (2, Chip::Esp32c3, "bench-c3.kdl"),
    ] {
        let flash_file = bench.dir.path().join(format!("slot{slot}.flash"));
        let mut times = Vec::new();
        for (round, want) in [(1, Outcome::Flashed), (2, Outcome::Verified)] {
            let start = Instant::now();
            let board = bench.plug(slot, chip, |c| {
                c.pacing = Pacing::REALISTIC;
                c.flash_file = Some(flash_file.clone());
            });
            let r = &bench.wait_records(slot, round)[round - 1];
            times.push(start.elapsed());
            assert_eq!(r.outcome, want, "{r:#?}");
            assert_holds(&board, &expected_image(&m.join(file)));
            bench.unplug(&board);
            drop(board);
        }
        println!(
            "chip={chip}  plug-to-flashed {:>6.2} s (erased board)  plug-to-verified {:>6.2} s (unchanged board)",
            times[0].as_secs_f64(),
            times[1].as_secs_f64()
        );
    }
    bench.stop_daemon();
}

/// No key material in the daemon's log at its highest verbosity (`ESPFLEET_LOG=trace`, which is
/// what would reach journald): one ESP32 and one ESP32-C3 flashed with the example manifests'
/// private keys in `mfg_nvs`; every byte of the log is searched for every line of every key, as
/// text and as byte lists (the CLI's side is `tests/secrets_in_logs.rs`).
#[test]
fn daemon_logs_no_key_material_at_trace() {
    if !ensure_mock_env("daemon_logs_no_key_material_at_trace") {
        return;
    }
    let mut bench = Bench::new();
    bench.log_filter = "trace";
    let m = bench.manifests();
    let examples = repo_root().join("manifests/examples");
    for (file, base, slot) in [
        ("keys-esp32.kdl", "wroom-32.kdl", 1),
        ("keys-c3.kdl", "mini-1-c3.kdl", 2),
    ] {
        write_atomically(
            &m.join(file),
            &format!(
                "espfleet 1\nname \"{file}\"\nextends \"{}\"\nmatch usb-path=\"1-1.{slot}\"\n",
                examples.join(base).display()
            ),
        );
    }
    let _notify = bench.start_daemon();
    let boards = [
        bench.plug(1, Chip::Esp32, |_| {}),
        bench.plug(2, Chip::Esp32c3, |_| {}),
    ];
    let mut keys = Vec::new();
    for (b, file, base) in [
        (&boards[0], "keys-esp32.kdl", "wroom-32.kdl"),
        (&boards[1], "keys-c3.kdl", "mini-1-c3.kdl"),
    ] {
        let r = &bench.wait_records(b.slot, 1)[0];
        assert_eq!(r.outcome, Outcome::Flashed, "{r:#?}");
        assert_holds(b, &expected_image(&m.join(file)));
        let text = std::fs::read_to_string(examples.join(base)).unwrap();
        for line in text.lines().filter(|l| {
            l.trim_start()
                .split(' ')
                .next()
                .is_some_and(|w| w.ends_with("-key"))
        }) {
            keys.extend(line.split('"').skip(1).step_by(2).map(|p| examples.join(p)));
        }
    }
    bench.stop_daemon();
    let log = bench.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not at trace:\n{log}"
    );
    assert!(keys.len() >= 4, "{keys:?}");
    for key in &keys {
        let text = std::fs::read(key).unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| l.len() >= 8) {
            for piece in std::iter::once(line).chain(line.chunks(16).filter(|c| c.len() >= 8)) {
                let hex = |sep: &str| {
                    piece
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(sep)
                };
                let dec = piece
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ");
                for r in [
                    String::from_utf8_lossy(piece).into_owned(),
                    hex(""),
                    hex(", "),
                    dec,
                ] {
                    assert!(
                        !log.contains(&r),
                        "the daemon's log holds part of {}",
                        key.display()
                    );
                }
            }
        }
    }
}
