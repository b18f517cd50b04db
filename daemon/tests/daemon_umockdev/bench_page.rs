//! The bench page, end to end: the real `espfleetd --http` on a umockdev bench of simulated
//! boards, and a real headless Chromium (Debian's `chromium` + `chromium-driver`) reading the
//! page through its DOM, as an operator's browser would.
//!
//! `bench_page_in_headless_chromium` (in the test command) checks that a slot goes plugged →
//! flashing with rising progress → done, that a failing board shows its error, that
//! `/api/status` is byte for byte `espfleet status --json`, and that no private-key text is on
//! the page or behind any of its URLs; it saves screenshots of eight boards in different
//! states and of a flash map under `target/artifacts/`. `bench_page_16_boards` is the
//! benchmark behind tests/bench/page.sh.

mod webdriver;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use espfleet::daemon::status;
use espfleet_compiler::target::{Chip, FlashSize};
use espfleet_sim::{Pacing, SimEvent, Stall, Trigger};
use serde_json::{Value, json};

use super::{
    Bench, assert_holds, ensure_mock_env, expected_image, manifest, repo_root, usb_serial_desc,
    write_atomically,
};
use webdriver::{Driver, Session, save_artifact};

/// The example client certificate and key of ESP-AT (manifests/examples/esp-at-data), so the
/// images flashed hold a private key the page must never show.
fn with_key(extra: &str) -> String {
    let data = repo_root().join("manifests/examples/esp-at-data/master");
    format!(
        "{extra}\ncertificates {{\n    client-cert \"{}\"\n    client-key \"{}\"\n}}",
        data.join("client_cert/client_cert_00.crt").display(),
        data.join("client_key/client_key_00.key").display()
    )
}

/// The lines of the example key that are key material (not the PEM armour).
fn key_lines() -> Vec<String> {
    let key = std::fs::read_to_string(
        repo_root().join("manifests/examples/esp-at-data/master/client_key/client_key_00.key"),
    )
    .unwrap();
    key.lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 16)
        .map(str::to_owned)
        .collect()
}

/// Starts the daemon with the page on a free loopback port; returns the page's URL.
fn start_with_page(bench: &mut Bench) -> (std::os::unix::net::UnixDatagram, String) {
    bench.extra_args = vec!["--http".into(), "127.0.0.1:0".into()];
    let notify = bench.start_daemon();
    let log = bench.log();
    let url = log
        .lines()
        .find_map(|l| l.split("bench page on ").nth(1))
        .unwrap_or_else(|| panic!("no bench page address in the log:\n{log}"))
        .trim()
        .to_owned();
    (notify, url)
}

/// What a slot's tile shows, as a JavaScript function of the slot name.
const TILE_FN: &str = r"(slot) => {
  const t = document.querySelector('.tile[data-slot=' + JSON.stringify(slot) + ']');
  if (!t) return null;
  return {
    phase: t.dataset.phase, state: t.dataset.state,
    done: Number(t.dataset.done), total: Number(t.dataset.total),
    badge: t.querySelector('.badge').textContent,
    detail: t.querySelector('.detail').textContent,
    code: (t.querySelector('.detail .code') || {}).textContent || '',
    text: t.innerText,
  };
}";

fn tile(s: &Session, slot: &str) -> Value {
    s.eval(
        &format!("return ({TILE_FN})(arguments[0]);"),
        &[json!(slot)],
    )
}

fn wait_tile(s: &Session, slot: &str, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let t = tile(s, slot);
        if !t.is_null() && ok(&t) {
            return t;
        }
        assert!(
            Instant::now() < end,
            "slot {slot}: timed out waiting until {what}; tile: {t:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Everything the page shows and every URL it uses, as text: the DOM, the assets, the JSON
/// API and each flash map.
const EVERYTHING: &str = r"
(async () => {
  const urls = ['/', '/api/status', '/api/counters',
                '/api/history?limit=500', '/api/flash-maps'];
  const maps = await (await fetch('/api/flash-maps')).json();
  for (const m of maps) urls.push(m.svg_url);
  let out = document.documentElement.outerHTML + '\n' + document.body.innerText + '\n';
  for (const u of urls) out += '\n=== ' + u + '\n' + await (await fetch(u)).text();
  done({ text: out, maps: maps.length, urls: urls.length });
})().catch((e) => done({ error: String(e) }));";

#[test]
#[allow(clippy::too_many_lines)] // one scenario, told in order
fn bench_page_in_headless_chromium() {
    if !ensure_mock_env("bench_page::bench_page_in_headless_chromium") {
        return;
    }
    let mut bench = Bench::new();
    let m = bench.manifests();
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest(
            "bench-c3",
            Chip::Esp32c3,
            &with_key("match vid=0x10c4 pid=0xea60"),
        ),
    );
    write_atomically(
        &m.join("bench-esp32.kdl"),
        &manifest(
            "bench-esp32",
            Chip::Esp32,
            &with_key("match vid=0x10c4 pid=0xea60"),
        ),
    );
    // Plugged before the daemon starts: listed, left as is ("waiting").
    let b8 = bench.plug(8, Chip::Esp32c3, |_| {});
    let (_notify, url) = start_with_page(&mut bench);

    let driver = Driver::start();
    let s = driver.session(1440, 1180);
    s.open(&url);
    s.wait_for(
        "the page is live and shows the board present at start",
        Duration::from_secs(60),
        "return document.getElementById('conn').dataset.live === 'true' \
         && document.querySelector('.tile[data-slot=\"1-1.8\"]') !== null",
    );
    assert_eq!(tile(&s, "1-1.8")["phase"], "waiting");

    // --- Plugged → flashing, progress rising → done, all seen through the DOM.
    // Counts the board's MD5 commands, so a later board can be stalled in its last one.
    let md5s = Arc::new(AtomicU64::new(0));
    let counter = md5s.clone();
    let b1 = bench.plug(1, Chip::Esp32c3, |c| {
        c.pacing = Pacing::REALISTIC;
        c.on_event = Some(Arc::new(move |ev: &SimEvent| {
            if matches!(ev, SimEvent::Command { op: 0x13, .. }) {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    });
    let mut seen: Vec<(String, u64, u64)> = Vec::new();
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let t = tile(&s, "1-1.1");
        if !t.is_null() {
            let obs = (
                t["phase"].as_str().unwrap().to_owned(),
                t["done"].as_u64().unwrap(),
                t["total"].as_u64().unwrap(),
            );
            if seen.last() != Some(&obs) {
                seen.push(obs);
            }
            if t["phase"] == "done" {
                break;
            }
        }
        assert!(Instant::now() < end, "slot 1-1.1 never done: {seen:?}");
        std::thread::sleep(Duration::from_millis(25));
    }
    // The last attempt (a loaded machine can make the first one fail and be retried).
    let last_attempt = seen
        .iter()
        .rposition(|o| o.0 == "identifying")
        .map_or(0, |i| i + 1);
    let flashing: Vec<&(String, u64, u64)> = seen[last_attempt..]
        .iter()
        .filter(|o| o.0 == "flashing")
        .collect();
    let partial: Vec<u64> = flashing
        .iter()
        .filter(|o| o.1 > 0 && o.1 < o.2)
        .map(|o| o.1)
        .collect();
    assert!(
        partial.len() >= 3 && partial.windows(2).all(|w| w[0] < w[1]),
        "progress must rise through several values while flashing: {seen:?}"
    );
    assert!(
        matches!(seen[0].0.as_str(), "identifying" | "flashing"),
        "{seen:?}"
    );
    let verifying = seen.iter().position(|o| o.0 == "verifying");
    if let Some(v) = verifying {
        assert!(
            seen[v].1 == seen[v].2,
            "verifying comes once every byte is sent: {seen:?}"
        );
    }
    let last = seen.last().unwrap();
    assert!(last.1 == last.2 && last.2 > 0, "{seen:?}");
    let done = tile(&s, "1-1.1");
    assert_eq!(done["state"], "flashed");
    assert!(
        done["text"].as_str().unwrap().contains("84:f7:03:00:00:01"),
        "{done:#}"
    );
    s.wait_for(
        "the history lists the flash",
        Duration::from_secs(30),
        "return Array.from(document.querySelectorAll('#history tr')).some(
            (r) => r.dataset.outcome === 'flashed' && r.innerText.includes('1-1.1'))",
    );
    println!("slot 1-1.1 as the page showed it: {seen:?}");

    // --- A board that fails: its error in plain words, its code apart.
    let _b2 = bench.plug(2, Chip::Esp32, |c| {
        c.faults.jedec_flash_size = FlashSize::from_bytes(2 << 20);
    });
    let failed = wait_tile(&s, "1-1.2", "it failed", |t| t["phase"] == "failed");
    let detail = failed["detail"].as_str().unwrap();
    assert!(
        detail.contains("flash too small: the image needs 4 MB of flash")
            && detail.contains("has 2 MB"),
        "{failed:#}"
    );
    assert_eq!(failed["code"], "espfleet::flash::flash_too_small");

    // --- GET /api/status is what `espfleet status --json` prints, byte for byte.
    let mut same = false;
    for _ in 0..20 {
        let cli = std::process::Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .args(["status", "--json", "--socket"])
            .arg(bench.socket())
            .output()
            .unwrap();
        assert!(cli.status.success());
        let api = s.eval_async("fetch('/api/status').then((r) => r.text()).then(done)");
        if api.as_str() == Some(String::from_utf8_lossy(&cli.stdout).as_ref()) {
            same = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200)); // something published in between
    }
    assert!(same, "/api/status differs from `espfleet status --json`");

    // --- Eight boards in eight states for the screenshot.
    // Done, and up to date: flashed, unplugged, plugged again holding the same flash.
    let flash3 = bench.dir.path().join("slot3.flash");
    let b3 = bench.plug(3, Chip::Esp32, |c| c.flash_file = Some(flash3.clone()));
    wait_tile(&s, "1-1.3", "flashed", |t| t["state"] == "flashed");
    bench.unplug(&b3);
    s.wait_for(
        "the unplugged board's tile is gone",
        Duration::from_secs(30),
        "return document.querySelector('.tile[data-slot=\"1-1.3\"]') === null",
    );
    let _b3 = bench.plug(3, Chip::Esp32, |c| c.flash_file = Some(flash3.clone()));
    wait_tile(&s, "1-1.3", "verified", |t| t["state"] == "verified");
    // Left alone: a CH340 no manifest names.
    bench
        .tb
        .attach_passthrough(&format!("/dev/ttyUSB{}", bench.next_tty));
    bench.tb.add(&usb_serial_desc(
        6,
        bench.next_tty,
        "1a86",
        "7523",
        "CH340SIM",
    ));
    bench.next_tty += 1;
    wait_tile(&s, "1-1.6", "left alone", |t| t["phase"] == "left alone");
    // Verifying: the same images as slot 1-1.1, and the board takes 8 s over its last MD5
    // (espflash allows at least 10 s for one, so the flash still succeeds).
    let last_md5 = md5s.load(Ordering::Relaxed);
    assert!(last_md5 > 0, "the flash of 1-1.1 read back MD5s");
    let b4 = bench.plug(4, Chip::Esp32c3, |c| {
        c.pacing = Pacing::REALISTIC;
        c.faults.stall = Some(Stall {
            trigger: Trigger::Opcode {
                op: 0x13,
                nth: last_md5,
            },
            duration: Some(Duration::from_secs(8)),
        });
    });
    wait_tile(&s, "1-1.4", "its bytes are all sent", |t| {
        t["phase"] == "verifying"
    });
    // Flashing: a slow flash, so it is under way when the picture is taken. Identifying: a
    // board whose bootloader never answers (retried, then failed, after some seconds).
    let b5 = bench.plug(5, Chip::Esp32c3, |c| {
        c.pacing = Pacing::REALISTIC;
        c.pacing.flash_time_scale = 8.0;
    });
    let b7 = bench.plug(7, Chip::Esp32c3, |c| {
        c.faults.stall = Some(Stall {
            trigger: Trigger::Command(1),
            duration: None,
        });
    });
    s.wait_for(
        "eight states at once",
        Duration::from_secs(60),
        &format!(
            "const t = (n) => ({TILE_FN})('1-1.' + n);
             const f = t(5), v = t(4), i = t(7);
             return f && v && i && f.phase === 'flashing' && f.done > f.total / 10
                 && v.phase === 'verifying' && i.phase === 'identifying';"
        ),
    );
    s.eval("window.scrollTo(0, 0)", &[]);
    let shot = save_artifact("bench-page.png", &s.screenshot());
    let phases: std::collections::BTreeSet<String> = (1..=8)
        .map(|n| {
            tile(&s, &format!("1-1.{n}"))["phase"]
                .as_str()
                .unwrap_or("missing")
                .to_owned()
        })
        .collect();
    println!(
        "screenshot of 8 slots in phases {phases:?}: {}",
        shot.display()
    );
    for want in [
        "waiting",
        "identifying",
        "flashing",
        "verifying",
        "done",
        "failed",
        "left alone",
    ] {
        assert!(phases.contains(want), "{want} missing from {phases:?}");
    }
    s.eval(
        "document.querySelector('.map').scrollIntoView({block: 'start'})",
        &[],
    );
    let map = save_artifact("bench-page-flash-map.png", &s.element_screenshot(".map"));
    println!("flash map: {}", map.display());
    let maps = s.eval(
        "return Array.from(document.querySelectorAll('.map img')).map((i) => [i.naturalWidth, i.complete])",
        &[],
    );
    assert_eq!(maps, json!([[960, true], [960, true]]), "both maps drawn");

    // --- No private-key text anywhere: DOM, assets, API, maps. The board does hold the key.
    let everything = s.eval_async(EVERYTHING);
    assert!(everything.get("error").is_none(), "{everything:#}");
    let text = everything["text"].as_str().unwrap();
    assert_eq!(everything["maps"], 2);
    assert!(text.contains("bench-c3.kdl") && text.contains("mfg_nvs"));
    assert!(!text.contains("PRIVATE KEY"), "key armour on the page");
    let lines = key_lines();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            !text.contains(line.as_str()),
            "key line on the page: {line}"
        );
    }
    let flash = b1.sim.flash_contents();
    let expected = expected_image(&m.join("bench-c3.kdl"));
    assert_holds(&b1, &expected);
    assert!(
        flash
            .windows(lines[0].len())
            .any(|w| w == lines[0].as_bytes()),
        "the flashed board holds the key (so the check above means something)"
    );

    // --- Read-only: anything but GET/HEAD is refused.
    let post = s.eval_async(
        "fetch('/api/status', {method: 'POST', body: 'x'}).then((r) => done(r.status))",
    );
    assert_eq!(post, 405);

    // Boards that would keep workers busy go first, so the daemon stops promptly.
    for b in [&b7, &b5, &b4] {
        bench.unplug(b);
    }
    drop(s);
    drop(driver);
    bench.stop_daemon();
    drop(b8);
    let _ = status::Snapshot::default();
}

/// Per-slot gaps between progress changes, in ms, from per-slot lists of times.
fn gaps(times: &[Vec<f64>]) -> Vec<f64> {
    times
        .iter()
        .flat_map(|t| t.windows(2).map(|w| w[1] - w[0]))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// Samples the daemon's snapshots every 10 ms until 16 boards are done; returns, per slot, the
/// times (ms) at which its progress changed while flashing, and the times at which the
/// snapshot changed at all while any board was busy.
fn sample_source(socket: &std::path::Path) -> (Vec<Vec<f64>>, Vec<f64>) {
    let start = Instant::now();
    let mut previous: Option<status::Snapshot> = None;
    let mut any = Vec::new();
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut times: std::collections::HashMap<String, Vec<f64>> = std::collections::HashMap::new();
    while start.elapsed() < Duration::from_secs(600) {
        if let Ok(snap) = status::query(socket) {
            let now = start.elapsed().as_secs_f64() * 1000.0;
            let busy = snap
                .ports
                .iter()
                .any(|p| matches!(p.state.as_str(), "flashing" | "verifying"));
            if busy && previous.as_ref() != Some(&snap) {
                any.push(now);
            }
            previous = Some(snap.clone());
            for p in &snap.ports {
                if matches!(p.state.as_str(), "flashing" | "verifying")
                    && last.insert(p.slot.clone(), p.done) != Some(p.done)
                {
                    times.entry(p.slot.clone()).or_default().push(now);
                }
            }
            if snap.ports.len() == 16
                && snap
                    .ports
                    .iter()
                    .all(|p| matches!(p.state.as_str(), "flashed" | "failed"))
            {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (times.into_values().collect(), any)
}

/// What the page measured on itself: when the first frame with the bench was presented and
/// when each slot's progress changed on screen.
const FIRST_FRAME: &str = r"
const p = window.espfleetPerf;
if (!p || !(p.firstFrame > 0) || !(p.firstSlotPaint > 0)
    || document.querySelectorAll('.tile').length < 16) return null;
const fcp = performance.getEntriesByName('first-contentful-paint')[0];
const nav = performance.getEntriesByType('navigation')[0];
return { ff: p.firstFrame, painted: p.firstSlotPaint, fcp: fcp ? fcp.startTime : null,
         tiles: document.querySelectorAll('.tile').length,
         response: nav.responseEnd, interactive: nav.domInteractive,
         dcl: nav.domContentLoadedEventEnd };";

/// A trivial page (one line of text) from a bare loopback server, for Chromium's own floor:
/// the time to paint anything at all under the same load. Returns its URL.
fn trivial_page() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = "<!doctype html><meta charset=utf-8><title>floor</title>\
                <p elementtiming=floor>one line of text</p>";
            let _ = std::io::Write::write_all(
                &mut stream,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    format!("http://{addr}/")
}

/// When the trivial page's text was painted (Element Timing), once it was.
const FLOOR_PAINT: &str = r"
return new Promise((resolve) => {
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if (e.identifier === 'floor') resolve(e.renderTime || e.loadTime);
  }).observe({ type: 'element', buffered: true });
}).then(done);";

/// Like [`FIRST_FRAME`], whatever the number of tiles.
const FIRST_FRAME_ANY: &str = r"
const p = window.espfleetPerf;
return p && p.firstFrame > 0 ? { ff: p.firstFrame } : null;";

/// The benchmark behind tests/bench/page.sh (ignored in normal runs): 16 simulated boards
/// flashing at once, paced like real ones; the page is loaded five times while they flash
/// (time to the first frame showing the bench, from the navigation start, by the page's own
/// Performance API mark), then kept open until they are done, recording every progress change
/// per slot. The peer is the terminal way to watch a bench, `espfleet status --json` asked
/// back to back, which sees the same daemon's progress.
#[test]
#[ignore = "benchmark: run tests/bench/page.sh"]
#[allow(clippy::too_many_lines, clippy::cast_precision_loss)] // one benchmark, told in order
fn bench_page_16_boards() {
    if !ensure_mock_env("bench_page::bench_page_16_boards") {
        return;
    }
    let rounds: usize = std::env::var("ESPFLEET_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let scale: f64 = std::env::var("ESPFLEET_BENCH_FLASH_SCALE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1.0);
    let mut bench = Bench::new();
    let m = bench.manifests();
    write_atomically(
        &m.join("bench-c3.kdl"),
        &manifest(
            "bench-c3",
            Chip::Esp32c3,
            &with_key("match vid=0x10c4 pid=0xea60"),
        ),
    );
    let (_notify, url) = start_with_page(&mut bench);
    let driver = Driver::start();
    let s = driver.session(1440, 1180);
    let plug16 = |bench: &mut Bench| -> Vec<super::Board> {
        (1..=16)
            .map(|n| {
                bench.plug(n, Chip::Esp32c3, |c| {
                    c.pacing = Pacing::REALISTIC;
                    c.pacing.flash_time_scale = scale;
                })
            })
            .collect()
    };
    let all_flashing = |bench: &Bench| {
        bench.wait_until("16 boards flashing", |b| {
            status::query(&b.socket()).is_ok_and(|snap| {
                snap.ports
                    .iter()
                    .filter(|p| p.state == "flashing" && p.done > 0)
                    .count()
                    == 16
            })
        });
    };
    let unplug_all = |bench: &Bench, boards: &[super::Board]| {
        for b in boards {
            bench.unplug(b);
        }
        bench.wait_until("the bench is empty", |b| {
            status::query(&b.socket()).is_ok_and(|snap| snap.ports.is_empty())
        });
    };

    println!(
        "16 simulated ESP32-C3 boards at once, paced at 921600 baud, flash times x{scale}; {rounds} rounds"
    );
    // An operator's browser is already running: one load (not counted) starts Chromium's
    // renderer for the page's origin. Its time is printed apart.
    s.open(&url);
    let cold = s.wait_for("the first frame", Duration::from_secs(30), FIRST_FRAME_ANY);
    println!(
        "first load in a freshly started Chromium (not counted): first frame {:.0} ms",
        cold["ff"].as_f64().unwrap()
    );
    let floor_url = trivial_page();
    let mut floors = Vec::new();
    let mut first_frames = Vec::new();
    let mut fresh_max_gaps = Vec::new();
    let mut painted = Vec::new();
    let mut source_any_max = Vec::new();
    let mut fcps = Vec::new();
    let mut page_max_gaps = Vec::new();
    for round in 1..=rounds {
        let boards = plug16(&mut bench);
        all_flashing(&bench);
        for _ in 0..5 {
            s.open(&floor_url);
            floors.push(s.eval_async(FLOOR_PAINT).as_f64().unwrap());
        }
        for _ in 0..5 {
            s.open(&url);
            let v = s.wait_for("the first frame", Duration::from_secs(30), FIRST_FRAME);
            // The later of: the frame after the one that drew the bench began, and the
            // browser's own report of when a slot's name was painted.
            first_frames.push(
                v["ff"]
                    .as_f64()
                    .unwrap()
                    .max(v["painted"].as_f64().unwrap()),
            );
            painted.push(v["painted"].as_f64().unwrap());
            println!(
                "  load: document received {:.0} ms, parsed {:.0} ms, scripts done {:.0} ms, first paint {:.0} ms, \
                 frame after the bench {:.0} ms, slot name painted {:.0} ms",
                v["response"].as_f64().unwrap_or(f64::NAN),
                v["interactive"].as_f64().unwrap_or(f64::NAN),
                v["dcl"].as_f64().unwrap_or(f64::NAN),
                v["fcp"].as_f64().unwrap_or(f64::NAN),
                v["ff"].as_f64().unwrap_or(f64::NAN),
                v["painted"].as_f64().unwrap_or(f64::NAN),
            );
            if let Some(f) = v["fcp"].as_f64() {
                fcps.push(f);
            }
        }
        // From here on the page stays open: the daemon's own snapshots over the same stretch,
        // sampled every 10 ms in-process.
        let sampler = {
            let socket = bench.socket();
            std::thread::spawn(move || sample_source(&socket))
        };
        let still_flashing = status::query(&bench.socket())
            .unwrap()
            .ports
            .iter()
            .filter(|p| p.state == "flashing")
            .count();
        // Every board to its outcome. A board whose flash fails (retries used up) still had
        // its progress on the page; the failures are printed.
        bench.wait_until("16 boards done", |b| {
            status::query(&b.socket()).is_ok_and(|snap| {
                snap.ports.len() == 16
                    && snap
                        .ports
                        .iter()
                        .all(|p| matches!(p.state.as_str(), "flashed" | "failed"))
            })
        });
        let failed: Vec<String> = status::query(&bench.socket())
            .unwrap()
            .ports
            .iter()
            .filter(|p| p.state == "failed")
            .map(|p| format!("{}: {}", p.slot, p.detail.as_deref().unwrap_or("")))
            .collect();
        if !failed.is_empty() {
            println!("round {round}: boards that failed: {}", failed.join("; "));
        }
        let per_slot: Vec<Vec<f64>> = serde_json::from_value(s.eval(
            "return Object.values(window.espfleetPerf.updates).map((u) => u.times)",
            &[],
        ))
        .unwrap();
        let fresh: Vec<Vec<f64>> = serde_json::from_value(s.eval(
            "return Object.values(window.espfleetPerf.updates).map((u) => u.fresh)",
            &[],
        ))
        .unwrap();
        let fg = sorted(gaps(&fresh));
        let fresh_max = fg.last().copied().unwrap_or(f64::NAN);
        fresh_max_gaps.push(fresh_max);
        let latency: Vec<f64> =
            serde_json::from_value(s.eval("return window.espfleetPerf.latency", &[])).unwrap();
        let lat = sorted(latency);
        let g = sorted(gaps(&per_slot));
        let max = g.last().copied().unwrap_or(f64::NAN);
        page_max_gaps.push(max);
        let (src_slots, src_any) = sampler.join().unwrap();
        let src = sorted(gaps(&src_slots));
        let any = sorted(gaps(&[src_any]));
        source_any_max.push(any.last().copied().unwrap_or(f64::NAN));
        println!(
            "round {round}: {still_flashing} of 16 boards still flashing after 5 page loads; per busy slot, \
             time between tile redraws from a new status: median {:.0} / p95 {:.0} / max {fresh_max:.0} ms; \
             between progress changes on screen: median {:.0} / p95 {:.0} / max {max:.0} ms \
             (the daemon's own progress changes: median {:.0} / p95 {:.0} / max {:.0} ms; \
             longest the daemon published no change at all while boards were busy: {:.0} ms); \
             server tick to frame: median {:.0} / p95 {:.0} / max {:.0} ms over {} frames",
            percentile(&fg, 0.5),
            percentile(&fg, 0.95),
            percentile(&g, 0.5),
            percentile(&g, 0.95),
            percentile(&src, 0.5),
            percentile(&src, 0.95),
            src.last().copied().unwrap_or(f64::NAN),
            any.last().copied().unwrap_or(f64::NAN),
            percentile(&lat, 0.5),
            percentile(&lat, 0.95),
            lat.last().copied().unwrap_or(f64::NAN),
            lat.len(),
        );
        unplug_all(&bench, &boards);
    }

    // The peer: `espfleet status --json` back to back while 16 boards flash.
    let boards = plug16(&mut bench);
    let start = Instant::now();
    let mut last: std::collections::HashMap<String, (u64, f64)> = std::collections::HashMap::new();
    let mut peer_times: std::collections::HashMap<String, Vec<f64>> =
        std::collections::HashMap::new();
    let mut calls = 0u32;
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_espfleet"))
            .args(["status", "--json", "--socket"])
            .arg(bench.socket())
            .output()
            .unwrap();
        calls += 1;
        let now = start.elapsed().as_secs_f64() * 1000.0;
        let snap: status::Snapshot = serde_json::from_slice(&out.stdout).unwrap();
        for p in &snap.ports {
            if matches!(p.state.as_str(), "flashing" | "verifying")
                && last.get(&p.slot).is_none_or(|l| l.0 != p.done)
            {
                last.insert(p.slot.clone(), (p.done, now));
                peer_times.entry(p.slot.clone()).or_default().push(now);
            }
        }
        let finished = snap
            .ports
            .iter()
            .filter(|p| matches!(p.state.as_str(), "flashed" | "failed"))
            .count();
        if finished == 16 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "peer round never finished"
        );
    }
    let peer_slots: Vec<Vec<f64>> = peer_times.into_values().collect();
    let pg = sorted(gaps(&peer_slots));
    let peer_max = pg.last().copied().unwrap_or(f64::NAN);
    let call_ms = start.elapsed().as_secs_f64() * 1000.0 / f64::from(calls);
    println!(
        "peer: `espfleet status --json` back to back ({call_ms:.0} ms a call): gap between updates per slot: \
         median {:.0} ms, p95 {:.0} ms, max {peer_max:.0} ms",
        percentile(&pg, 0.5),
        percentile(&pg, 0.95)
    );
    unplug_all(&bench, &boards);

    let ff = sorted(first_frames);
    let fcps = sorted(fcps);
    let worst_gap = fresh_max_gaps.iter().copied().fold(f64::NAN, f64::max);
    let best_gap = fresh_max_gaps.iter().copied().fold(f64::NAN, f64::min);
    let worst_progress = page_max_gaps.iter().copied().fold(f64::NAN, f64::max);
    let painted = sorted(painted);
    let floors = sorted(floors);
    println!(
        "Chromium's floor, a one-line page from a bare loopback server under the same load: painted \
         min {:.0} / median {:.0} / max {:.0} ms; the bench page's median first frame = {:.2}x that",
        floors[0],
        percentile(&floors, 0.5),
        floors[floors.len() - 1],
        percentile(&ff, 0.5) / percentile(&floors, 0.5)
    );
    println!(
        "first frame showing the bench: min {:.0} / median {:.0} / max {:.0} ms over {} loads \
         (budget 200 ms; worst = {:.2}x budget); slot name painted (Element Timing): median {:.0} ms; \
         first contentful paint: median {:.0} ms",
        ff[0],
        percentile(&ff, 0.5),
        ff[ff.len() - 1],
        ff.len(),
        ff[ff.len() - 1] / 200.0,
        percentile(&painted, 0.5),
        percentile(&fcps, 0.5)
    );
    let source_worst = source_any_max.iter().copied().fold(f64::NAN, f64::max);
    println!(
        "longest a busy slot went without a redraw from a new status: {best_gap:.0}..{worst_gap:.0} ms across rounds \
         (budget 500 ms; worst = {:.2}x budget); longest the daemon itself published nothing new: {source_worst:.0} ms",
        worst_gap / 500.0,
    );
    println!(
        "longest a busy slot's progress stood still on screen: {worst_progress:.0} ms; \
         seen by the peer polling `espfleet status`: {peer_max:.0} ms (page/peer = {:.2})",
        worst_progress / peer_max
    );
    println!(
        "RESULT first_frame_max_ms={:.0} update_gap_max_ms={worst_gap:.0}",
        ff[ff.len() - 1]
    );
    bench.stop_daemon();
}
