//! The live bench page: what every slot is doing, the day's counters, recent history and the
//! flash map of each manifest in force, served by [`super::http`] when `espfleetd --http` is
//! given. docs/bench-page.md describes the page, its JSON API and its security.
//!
//! Sources, all read-only from here:
//! - the status snapshot the loop publishes ([`status::Shared`]): the slot tiles, served as
//!   `GET /api/status` with the very bytes `espfleet status --json` prints ([`status::to_json`]);
//! - the journal file, tailed ([`JournalTail`]): history and counters, across daemon restarts;
//! - [`FlashMaps`], which the loop refreshes whenever the manifests in force change. It holds
//!   names, offsets and sizes only, never image bytes, so no key material can reach a page.
//!
//! Live updates are Server-Sent Events on `/api/events`, coalesced to one batch per server
//! tick (100 ms): `status` (the snapshot), `clock` (server time, for elapsed times), `counters`,
//! `history` (the recent records, newest first, on connect) and `records` (new ones), `maps`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash as _, Hasher as _};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use espfleet_compiler::flash_map::FlashMap;
use serde::Serialize;

use super::http::{self, Reply, Request, Response, Site};
use super::journal::{Outcome, Record};
use super::manifests::LoadedManifest;
use super::status::{self, Snapshot};

const INDEX_HTML: &str = include_str!("page/index.html");
const PAGE_JS: &str = include_str!("page/page.js");
const PAGE_CSS: &str = include_str!("page/page.css");

/// The page as one document: style and script inline (one request, nothing render-blocking to
/// fetch), allowed by their SHA-256 in the page's Content-Security-Policy and nothing else.
struct Document {
    /// Everything before the initial-state block.
    head: String,
    /// Everything after it.
    tail: String,
    csp: String,
}

static DOCUMENT: std::sync::LazyLock<Document> = std::sync::LazyLock::new(|| {
    use base64::Engine as _;
    use sha2::Digest as _;
    let hash = |s: &str| base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s));
    let html = INDEX_HTML
        .replace("<!--page-css-->", &format!("<style>{PAGE_CSS}</style>"))
        .replace("<!--page-js-->", &format!("<script>{PAGE_JS}</script>"));
    let (head, tail) = html
        .split_once("<!--initial-state-->")
        .expect("index.html has the initial-state marker");
    Document {
        head: head.to_owned(),
        tail: tail.to_owned(),
        csp: format!(
            "default-src 'none'; script-src 'sha256-{}'; style-src 'sha256-{}'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(PAGE_JS),
            hash(PAGE_CSS)
        ),
    }
});

/// Records kept for the history list and `/api/history`.
const HISTORY_KEPT: usize = 500;
/// Records sent with a new event stream.
const HISTORY_ON_CONNECT: usize = 200;
/// The journal's tail read at start: enough for days of a busy bench, bounded whatever the
/// journal's size.
const JOURNAL_BACKLOG: u64 = 8 * 1024 * 1024;
/// Bytes read from the journal per tick at most.
const JOURNAL_READ_PER_TICK: u64 = 4 * 1024 * 1024;
/// A journal line longer than this is not a record the daemon wrote; it is skipped.
const MAX_LINE: usize = 64 * 1024;
/// Counter entries kept (25 hours of a very busy bench).
const COUNTER_ENTRIES_KEPT: usize = 200_000;
const HOUR_MS: u64 = 3_600_000;

/// The flash map of one manifest in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestMap {
    /// Manifest file name.
    pub file: String,
    /// The manifest's `name`.
    pub name: String,
    /// Where the page finds the drawing.
    pub svg_url: String,
    /// The map itself.
    pub map: FlashMap,
    /// The drawing (served at `svg_url`).
    #[serde(skip)]
    pub svg: String,
}

#[derive(Debug, Default)]
struct MapSet {
    generation: u64,
    maps: Vec<ManifestMap>,
}

/// The flash maps of the manifests in force, shared between the loop (which refreshes them)
/// and the page (which serves them).
#[derive(Debug, Clone, Default)]
pub struct FlashMaps(Arc<Mutex<MapSet>>);

impl FlashMaps {
    /// Recomputes the maps of `manifests` (the loop calls this after every rescan). Only
    /// names, offsets and sizes are kept.
    pub fn update<'a>(&self, manifests: impl Iterator<Item = &'a Arc<LoadedManifest>>) {
        let maps: Vec<ManifestMap> = manifests
            .map(|m| {
                let map = FlashMap::of_image(&m.image);
                ManifestMap {
                    svg_url: format!("/api/flash-map/{}.svg", url_encode(&m.file)),
                    svg: map.to_svg(&format!("{} ({})", m.name, m.file)),
                    file: m.file.clone(),
                    name: m.name.clone(),
                    map,
                }
            })
            .collect();
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if set.maps != maps {
            set.maps = maps;
            set.generation += 1;
        }
    }

    fn generation(&self) -> u64 {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .generation
    }

    fn maps(&self) -> Vec<ManifestMap> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .maps
            .clone()
    }
}

/// Percent-encodes everything but unreserved characters (for a file name in a URL path).
fn url_encode(s: &str) -> String {
    use std::fmt::Write as _;
    s.bytes().fold(String::new(), |mut out, b| {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
        out
    })
}

/// What the page reads. The loop keeps `status` and `maps` current; the journal is read from
/// its file.
#[derive(Debug, Clone)]
pub struct PageSources {
    /// The status snapshot.
    pub status: status::Shared,
    /// The flash maps of the manifests in force.
    pub maps: FlashMaps,
    /// The journal file.
    pub journal: PathBuf,
}

/// Reads records appended to the journal since the last call, without ever holding more than
/// a bounded amount: at start only the last [`JOURNAL_BACKLOG`] bytes, per call at most
/// [`JOURNAL_READ_PER_TICK`], and lines longer than [`MAX_LINE`] are skipped. A journal
/// replaced or truncated (moved aside, as its corruption help says) is read from its start.
#[derive(Debug)]
pub struct JournalTail {
    path: PathBuf,
    offset: u64,
    file_id: Option<(u64, u64)>,
    partial: Vec<u8>,
    /// Discarding up to the next newline (after a jump into the middle of the file or an
    /// overlong line).
    skipping: bool,
}

impl JournalTail {
    /// A tail that starts with the last part of the journal at `path`.
    pub fn new(path: PathBuf) -> Self {
        JournalTail {
            path,
            offset: 0,
            file_id: None,
            partial: Vec::new(),
            skipping: false,
        }
    }

    /// Records appended since the last call, oldest first.
    pub fn poll(&mut self) -> Vec<Record> {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        let Ok(meta) = file.metadata() else {
            return Vec::new();
        };
        let id = (meta.dev(), meta.ino());
        if self.file_id != Some(id) || meta.len() < self.offset {
            let first = self.file_id.is_none();
            self.file_id = Some(id);
            self.partial.clear();
            self.offset = if first {
                meta.len().saturating_sub(JOURNAL_BACKLOG)
            } else {
                0
            };
            self.skipping = self.offset > 0;
        }
        let want = meta
            .len()
            .saturating_sub(self.offset)
            .min(JOURNAL_READ_PER_TICK);
        if want == 0 || file.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut chunk = Vec::new();
        let Ok(n) = file.take(want).read_to_end(&mut chunk) else {
            return Vec::new();
        };
        self.offset += n as u64;
        let mut records = Vec::new();
        let mut rest = &chunk[..];
        while let Some(nl) = memchr(b'\n', rest) {
            let piece = &rest[..nl];
            rest = &rest[nl + 1..];
            if std::mem::take(&mut self.skipping) {
                self.partial.clear();
                continue;
            }
            let line: &[u8] = if self.partial.is_empty() {
                piece
            } else {
                self.partial.extend_from_slice(piece);
                &self.partial
            };
            if let Ok(r) = serde_json::from_slice::<Record>(line) {
                records.push(r);
            }
            self.partial.clear();
        }
        if !self.skipping {
            if self.partial.len() + rest.len() > MAX_LINE {
                self.partial.clear();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
        records
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|b| *b == needle)
}

/// Milliseconds since the Unix epoch of a journal time (`2026-11-21T02:19:16.123Z`, the
/// form [`super::journal::rfc3339`] writes); `None` for anything else.
#[allow(clippy::many_single_char_names)] // y, m, d: the civil-date algorithm's own names
pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss, ms) = (num(11..13)?, num(14..16)?, num(17..19)?, num(20..23)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm), the inverse of journal::rfc3339.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs * 1000 + ms).ok()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One hour's (or the last hour's) outcomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    /// Start of the hour, ms since the Unix epoch (UTC-aligned).
    pub start: u64,
    /// Boards written and verified.
    pub flashed: u64,
    /// Boards that already held their images (verified, nothing written).
    pub verified: u64,
    /// Boards whose latest attempt failed (a board retried or re-plugged into success is not
    /// counted; one that keeps failing counts once, at its latest failure).
    pub failed: u64,
    /// Boards left alone (no manifest matched, or two equally).
    pub left_alone: u64,
}

/// The counters the page's header shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Server time, ms since the Unix epoch.
    pub now: u64,
    /// The last 25 UTC-aligned hours, oldest first; the last one is the current hour. A page
    /// sums those from its local midnight for "today".
    pub hours: Vec<Tally>,
    /// The last 60 minutes (`start` is now − 1 h): boards per hour.
    pub last_hour: Tally,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    time: u64,
    outcome: Outcome,
    board: u64,
}

fn board_key(r: &Record) -> u64 {
    let mut h = DefaultHasher::new();
    match (&r.mac, &r.slot) {
        (Some(mac), _) => ("mac", mac).hash(&mut h),
        (None, Some(slot)) => ("slot", slot).hash(&mut h),
        (None, None) => ("port", &r.port).hash(&mut h),
    }
    h.finish()
}

/// The last 25 hours of outcomes, compactly (time, outcome, board).
#[derive(Debug, Default)]
struct Window {
    entries: VecDeque<Entry>,
}

impl Window {
    fn push(&mut self, r: &Record) {
        if let Some(time) = parse_rfc3339_ms(&r.time) {
            self.entries.push_back(Entry {
                time,
                outcome: r.outcome,
                board: board_key(r),
            });
            if self.entries.len() > COUNTER_ENTRIES_KEPT {
                self.entries.pop_front();
            }
        }
    }

    fn counters(&mut self, now: u64) -> Counters {
        let current = now - now % HOUR_MS;
        let first = current.saturating_sub(24 * HOUR_MS);
        while self.entries.front().is_some_and(|e| e.time < first) {
            self.entries.pop_front();
        }
        let mut hours: Vec<Tally> = (0..25)
            .map(|k| Tally {
                start: first + k * HOUR_MS,
                ..Tally::default()
            })
            .collect();
        let mut last_hour = Tally {
            start: now.saturating_sub(HOUR_MS),
            ..Tally::default()
        };
        // A failure counts only when it is the board's latest record.
        let mut latest: HashMap<u64, usize> = HashMap::new();
        for (i, e) in self.entries.iter().enumerate() {
            latest.insert(e.board, i);
        }
        for (i, e) in self.entries.iter().enumerate() {
            let count = |t: &mut Tally| match e.outcome {
                Outcome::Flashed => t.flashed += 1,
                Outcome::Verified => t.verified += 1,
                Outcome::LeftAlone => t.left_alone += 1,
                Outcome::Failed if latest.get(&e.board) == Some(&i) => t.failed += 1,
                Outcome::Failed => {}
            };
            // Entries are in journal order, which is time order up to clock steps; place
            // each by its own time and ignore any from the future.
            if e.time > now {
                continue;
            }
            let k = usize::try_from((e.time - first) / HOUR_MS).unwrap_or(usize::MAX);
            if let Some(t) = hours.get_mut(k) {
                count(t);
            }
            if e.time > last_hour.start {
                count(&mut last_hour);
            }
        }
        Counters {
            now,
            hours,
            last_hour,
        }
    }
}

/// The bench page: answers requests and produces the live event stream.
pub struct Page {
    sources: PageSources,
    tail: JournalTail,
    history: VecDeque<Record>,
    window: Window,
    last_status: Option<Snapshot>,
    counters: Option<Counters>,
    maps_generation: u64,
    last_counters_at: Instant,
    last_clock_at: Instant,
}

fn sse(out: &mut Vec<u8>, event: &str, data: &impl Serialize) {
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(event.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    // Compact JSON has no raw newlines (they are escaped inside strings).
    if serde_json::to_writer(&mut *out, data).is_err() {
        out.extend_from_slice(b"null");
    }
    out.extend_from_slice(b"\n\n");
}

impl Page {
    /// A page over `sources`; reads the journal's recent tail at once.
    pub fn new(sources: PageSources) -> Self {
        let mut page = Page {
            tail: JournalTail::new(sources.journal.clone()),
            sources,
            history: VecDeque::new(),
            window: Window::default(),
            last_status: None,
            counters: None,
            maps_generation: 0,
            last_counters_at: Instant::now(),
            last_clock_at: Instant::now(),
        };
        page.read_journal();
        page
    }

    fn snapshot(&self) -> Snapshot {
        self.sources
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn read_journal(&mut self) -> Vec<Record> {
        let new = self.tail.poll();
        for r in &new {
            self.window.push(r);
            self.history.push_back(r.clone());
            if self.history.len() > HISTORY_KEPT {
                self.history.pop_front();
            }
        }
        // Only the newest HISTORY_KEPT records can be news for a page.
        let skip = new.len().saturating_sub(HISTORY_KEPT);
        new.into_iter().skip(skip).collect()
    }

    fn counters(&mut self) -> Counters {
        let c = self.window.counters(now_ms());
        self.last_counters_at = Instant::now();
        self.counters = Some(c.clone());
        c
    }

    fn history(&self, slot: Option<&str>, outcome: Option<&str>, limit: usize) -> Vec<&Record> {
        self.history
            .iter()
            .rev()
            .filter(|r| slot.is_none_or(|s| r.slot.as_deref() == Some(s)))
            .filter(|r| outcome.is_none_or(|o| outcome_name(r.outcome) == o))
            .take(limit)
            .collect()
    }

    /// The page with the current state inside, so the first frame needs no second request.
    /// A JSON data block is not script (CSP does not apply); every `<` in it is escaped, so no
    /// value can close the element.
    fn index(&mut self) -> String {
        #[derive(Serialize)]
        struct Initial {
            now: u64,
            status: Snapshot,
            counters: Counters,
            maps: Vec<ManifestMap>,
        }
        self.read_journal();
        let initial = Initial {
            now: now_ms(),
            status: self.snapshot(),
            counters: self.counters(),
            maps: self.sources.maps.maps(),
        };
        let json = serde_json::to_string(&initial)
            .unwrap_or_else(|_| "null".to_owned())
            .replace('<', "\\u003c");
        format!(
            "{}<script type=\"application/json\" id=\"initial\">{json}</script>{}",
            DOCUMENT.head, DOCUMENT.tail
        )
    }

    fn clock(out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct Clock {
            now: u64,
        }
        sse(out, "clock", &Clock { now: now_ms() });
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Flashed => "flashed",
        Outcome::Verified => "verified",
        Outcome::Failed => "failed",
        Outcome::LeftAlone => "left-alone",
    }
}

fn json(body: &impl Serialize) -> Response {
    let mut bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"null".to_vec());
    bytes.push(b'\n');
    Response::ok("application/json", bytes)
}

impl Site for Page {
    fn handle(&mut self, req: &Request<'_>) -> Reply {
        let param = |k: &str| http::query_param(req.query, k).filter(|v| !v.is_empty());
        let resp = match req.path {
            "/" | "/index.html" => Response {
                csp: Some(DOCUMENT.csp.clone()),
                ..Response::ok("text/html; charset=utf-8", self.index())
            },
            "/api/events" => return Reply::Stream,
            "/api/status" => Response::ok(
                "application/json",
                status::to_json(&self.snapshot()).into_bytes(),
            ),
            "/api/counters" => {
                self.read_journal();
                json(&self.counters())
            }
            "/api/history" => {
                self.read_journal();
                let limit = param("limit")
                    .and_then(|l| l.parse::<usize>().ok())
                    .unwrap_or(100)
                    .min(HISTORY_KEPT);
                let (slot, outcome) = (param("slot"), param("outcome"));
                json(&self.history(slot.as_deref(), outcome.as_deref(), limit))
            }
            "/api/flash-maps" => json(&self.sources.maps.maps()),
            path => match path
                .strip_prefix("/api/flash-map/")
                .and_then(|f| f.strip_suffix(".svg"))
                .and_then(http::percent_decode)
                .and_then(|file| {
                    self.sources
                        .maps
                        .maps()
                        .into_iter()
                        .find(|m| m.file == file)
                }) {
                Some(m) => Response::ok("image/svg+xml; charset=utf-8", m.svg),
                None => Response::error(404, "no such page"),
            },
        };
        Reply::Full(resp)
    }

    fn stream_start(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        Page::clock(&mut out);
        let snap = self.snapshot();
        sse(&mut out, "status", &snap);
        self.read_journal();
        let counters = self.counters();
        sse(&mut out, "counters", &counters);
        let recent: Vec<&Record> = self.history(None, None, HISTORY_ON_CONNECT);
        sse(&mut out, "history", &recent);
        sse(&mut out, "maps", &self.sources.maps.maps());
        out
    }

    fn tick(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        let snap = self.snapshot();
        if self.last_status.as_ref() != Some(&snap) {
            Page::clock(&mut out);
            sse(&mut out, "status", &snap);
            self.last_status = Some(snap);
            self.last_clock_at = Instant::now();
        }
        let new = self.read_journal();
        if !new.is_empty() {
            sse(&mut out, "records", &new);
        }
        // Counters change with new records and as the hour window slides.
        if !new.is_empty() || self.last_counters_at.elapsed().as_secs() >= 10 {
            let before = self.counters.clone();
            let after = self.counters();
            if before.map(|c| (c.hours, c.last_hour))
                != Some((after.hours.clone(), after.last_hour))
            {
                sse(&mut out, "counters", &after);
            }
        }
        let generation = self.sources.maps.generation();
        if generation != self.maps_generation {
            self.maps_generation = generation;
            sse(&mut out, "maps", &self.sources.maps.maps());
        }
        if out.is_empty() && self.last_clock_at.elapsed().as_secs() >= 5 {
            // Heartbeat: keeps the clock right and finds streams whose reader is gone.
            Page::clock(&mut out);
            self.last_clock_at = Instant::now();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::journal::{self, Journal};

    fn record(time: &str, mac: &str, outcome: Outcome) -> Record {
        Record {
            time: time.into(),
            port: "/dev/ttyUSB0".into(),
            slot: Some("1-1.3".into()),
            vid: None,
            pid: None,
            usb_serial: None,
            chip: Some("esp32c3".into()),
            mac: Some(mac.into()),
            manifest: Some("bench.kdl".into()),
            images: Vec::new(),
            outcome,
            attempt: 1,
            bytes: 10,
            duration_ms: 5,
            error: None,
        }
    }

    #[test]
    fn journal_times_parse_back_to_what_rfc3339_wrote() {
        // Known instants from GNU date (as in journal's own tests), then a sweep of instants
        // through the formatter and back.
        assert_eq!(parse_rfc3339_ms("1970-01-01T00:00:00.000Z"), Some(0));
        assert_eq!(
            parse_rfc3339_ms("2000-02-29T00:00:00.000Z"),
            Some(951_782_400_000)
        );
        assert_eq!(
            parse_rfc3339_ms("2026-11-21T02:19:16.250Z"),
            Some(1_795_227_556_250)
        );
        let mut t = 0u64;
        while t < 4_102_444_800_000 {
            let s = journal::rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(t));
            assert_eq!(parse_rfc3339_ms(&s), Some(t), "{s}");
            t += 7_777_777_777;
        }
        for bad in [
            "",
            "2026-11-21 02:19:16.250Z",
            "2026-13-21T02:19:16.250Z",
            "2026-11-21T02:19:16.250+01:00",
            "+026-11-21T02:19:16.250Z",
            "2026-11-21T02:19:16.2a0Z",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn counters_count_boards_by_hour_and_a_failure_only_when_it_is_the_boards_last_word() {
        let base = parse_rfc3339_ms("2026-11-21T10:00:00.000Z").unwrap();
        let at = |min: u64| {
            journal::rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(base + min * 60_000))
        };
        let mut w = Window::default();
        for r in [
            record(&at(5), "aa", Outcome::Failed),  // retried ...
            record(&at(6), "aa", Outcome::Flashed), // ... into success
            record(&at(7), "bb", Outcome::Failed),  // fails,
            record(&at(8), "bb", Outcome::Failed),  // and again: one failed board
            record(&at(65), "cc", Outcome::Verified),
            record(&at(66), "dd", Outcome::LeftAlone),
            record(&at(70), "ee", Outcome::Flashed),
            record("not a time", "ff", Outcome::Flashed),
        ] {
            w.push(&r);
        }
        let c = w.counters(base + 80 * 60_000);
        assert_eq!(c.hours.len(), 25);
        let h10 = c.hours[23];
        assert_eq!(h10.start, base);
        assert_eq!((h10.flashed, h10.failed, h10.verified), (1, 1, 0));
        let h11 = c.hours[24];
        assert_eq!((h11.flashed, h11.verified, h11.left_alone), (1, 1, 1));
        // The last 60 minutes: 10:20 .. 11:20.
        assert_eq!(
            (
                c.last_hour.flashed,
                c.last_hour.verified,
                c.last_hour.failed
            ),
            (1, 1, 0)
        );
        // A day later everything has slid out of the window.
        let later = w.counters(base + 26 * HOUR_MS);
        assert!(later.hours.iter().all(|t| t.flashed + t.failed == 0));
        assert!(w.entries.is_empty());
    }

    #[test]
    fn the_journal_tail_reads_appends_skips_torn_and_foreign_lines_and_follows_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut tail = JournalTail::new(path.clone());
        assert!(tail.poll().is_empty(), "no journal yet");
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("2026-11-21T10:00:00.000Z", "aa", Outcome::Flashed))
            .unwrap();
        assert_eq!(tail.poll().len(), 1);
        assert!(tail.poll().is_empty());
        // A torn write: half a line, completed later.
        let line =
            serde_json::to_string(&record("2026-11-21T10:01:00.000Z", "bb", Outcome::Failed))
                .unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, &line.as_bytes()[..10]).unwrap();
        assert!(tail.poll().is_empty());
        std::io::Write::write_all(&mut f, format!("{}\n", &line[10..]).as_bytes()).unwrap();
        assert_eq!(tail.poll()[0].mac.as_deref(), Some("bb"));
        // Junk and an overlong line are skipped; the next good line is read.
        std::io::Write::write_all(&mut f, b"{\"not\": \"a record\"}\n").unwrap();
        std::io::Write::write_all(&mut f, &vec![b'x'; MAX_LINE + 10]).unwrap();
        assert!(tail.poll().is_empty());
        std::io::Write::write_all(&mut f, b"\n").unwrap();
        j.append(&record("2026-11-21T10:02:00.000Z", "cc", Outcome::Flashed))
            .unwrap();
        let got = tail.poll();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].mac.as_deref(), Some("cc"));
        // Moved aside and a new journal started: read from its beginning.
        drop(j);
        std::fs::rename(&path, dir.path().join("old.jsonl")).unwrap();
        let mut j = Journal::open(&path).unwrap();
        j.append(&record("2026-11-21T10:03:00.000Z", "dd", Outcome::Flashed))
            .unwrap();
        assert_eq!(tail.poll()[0].mac.as_deref(), Some("dd"));
    }

    #[test]
    fn a_big_journal_is_read_from_its_last_part_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut j = Journal::open(&path).unwrap();
        let line = serde_json::to_vec(&record("2026-11-21T10:00:00.000Z", "aa", Outcome::Flashed))
            .unwrap();
        let n = usize::try_from(JOURNAL_BACKLOG).unwrap() / line.len() * 2;
        let mut big = Vec::new();
        for _ in 0..n {
            big.extend_from_slice(&line);
            big.push(b'\n');
        }
        std::fs::write(&path, &big).unwrap();
        j.append(&record("2026-11-21T11:00:00.000Z", "zz", Outcome::Failed))
            .unwrap();
        let mut tail = JournalTail::new(path);
        let mut got = Vec::new();
        for _ in 0..4 {
            got.extend(tail.poll());
        }
        assert!(got.len() < n / 2 + 2, "{} of {}", got.len(), n);
        assert!(got.len() > n / 3);
        assert_eq!(got.last().unwrap().mac.as_deref(), Some("zz"));
    }

    /// A manifest whose images hold a private key: nothing the page serves may show any of it.
    #[test]
    fn no_route_and_no_event_carries_key_material() {
        use espfleet_compiler::image::{FlashImage, Segment};
        use espfleet_compiler::partition_table::{Flags, Partition, PartitionTable};
        use espfleet_compiler::target::{Chip, FlashFreq, FlashMode, FlashSettings, FlashSize};

        let key_file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../manifests/examples/esp-at-data/master/client_key/client_key_00.key");
        let key = std::fs::read_to_string(&key_file).unwrap();
        assert!(key.contains("PRIVATE KEY"));
        let table = PartitionTable::new(vec![Partition {
            name: "mfg_nvs".into(),
            ty: 1,
            subtype: 2,
            offset: 0x21000,
            size: 0x1c000,
            flags: Flags::default(),
        }]);
        let image = FlashImage {
            chip: Chip::Esp32,
            flash: FlashSettings {
                mode: FlashMode::Dio,
                freq: FlashFreq::F40m,
                size: FlashSize::from_bytes(4 << 20).unwrap(),
            },
            segments: vec![
                Segment {
                    name: "partition-table".into(),
                    offset: 0x8000,
                    data: table.to_bytes(false).unwrap().into(),
                },
                Segment {
                    name: "mfg_nvs".into(),
                    offset: 0x21000,
                    data: key.as_bytes().to_vec().into(),
                },
            ],
        };
        let manifest = Arc::new(LoadedManifest {
            file: "bench.kdl".into(),
            name: "bench".into(),
            chip: Chip::Esp32,
            rules: Vec::new(),
            extends: Vec::new(),
            image: Arc::new(image),
        });
        let dir = tempfile::tempdir().unwrap();
        let journal_path = dir.path().join("journal.jsonl");
        Journal::open(&journal_path)
            .unwrap()
            .append(&record("2026-11-21T10:00:00.000Z", "aa", Outcome::Flashed))
            .unwrap();
        let sources = PageSources {
            status: status::Shared::default(),
            maps: FlashMaps::default(),
            journal: journal_path,
        };
        sources.maps.update(std::iter::once(&manifest));
        let mut page = Page::new(sources);
        let mut served = String::new();
        for path in [
            "/",
            "/api/status",
            "/api/counters",
            "/api/history",
            "/api/flash-maps",
            "/api/flash-map/bench.kdl.svg",
        ] {
            let req = Request {
                head: false,
                path,
                query: "",
            };
            let Reply::Full(resp) = page.handle(&req) else {
                panic!("{path} streams");
            };
            assert_eq!(resp.status, 200, "{path}");
            served.push_str(&String::from_utf8(resp.body).unwrap());
        }
        served.push_str(&String::from_utf8(page.stream_start()).unwrap());
        served.push_str(&String::from_utf8(page.tick()).unwrap());
        assert!(served.contains("mfg_nvs"), "the map names the partition");
        assert!(!served.contains("PRIVATE KEY"));
        for line in key
            .lines()
            .filter(|l| l.len() > 16 && !l.starts_with("-----"))
        {
            assert!(!served.contains(line), "key line served: {line}");
        }
        // Files are found by name among the maps, never on disk.
        for path in [
            "/api/flash-map/..%2F..%2Fetc%2Fpasswd.svg",
            "/etc/passwd",
            "/api/flash-map/.svg",
        ] {
            let Reply::Full(resp) = page.handle(&Request {
                head: false,
                path,
                query: "",
            }) else {
                panic!();
            };
            assert_eq!(resp.status, 404, "{path}");
        }
    }

    #[test]
    fn the_initial_state_in_the_page_cannot_close_its_element() {
        let dir = tempfile::tempdir().unwrap();
        let sources = PageSources {
            status: status::Shared::default(),
            maps: FlashMaps::default(),
            journal: dir.path().join("journal.jsonl"),
        };
        sources
            .status
            .lock()
            .unwrap()
            .manifests
            .push(status::ManifestStatus {
                file: "</script><script>alert(1)</script><!--.kdl".into(),
                name: None,
                error: None,
                in_force: false,
                pool: None,
            });
        let mut page = Page::new(sources);
        let html = page.index();
        let start = html
            .find("<script type=\"application/json\" id=\"initial\">")
            .unwrap();
        let block = &html[start..];
        let end = block.find("</script>").unwrap();
        let json = &block[block.find('>').unwrap() + 1..end];
        assert!(!json.contains('<'), "{json}");
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(
            v["status"]["manifests"][0]["file"],
            "</script><script>alert(1)</script><!--.kdl"
        );
        assert_eq!(
            html.matches("<script").count(),
            2,
            "page.js and the data block only"
        );
    }

    /// The page's CSP allows its own inline script and style by hash, and nothing else: the
    /// hashes are those of what the page carries (the way a browser computes them).
    #[test]
    fn the_page_csp_names_the_hashes_of_its_inline_script_and_style() {
        use base64::Engine as _;
        use sha2::Digest as _;
        let dir = tempfile::tempdir().unwrap();
        let mut page = Page::new(PageSources {
            status: status::Shared::default(),
            maps: FlashMaps::default(),
            journal: dir.path().join("journal.jsonl"),
        });
        let Reply::Full(resp) = page.handle(&Request {
            head: false,
            path: "/",
            query: "",
        }) else {
            panic!()
        };
        let html = String::from_utf8(resp.body).unwrap();
        let csp = resp.csp.unwrap();
        let between = |open: &str, close: &str| {
            let start = html.find(open).unwrap() + open.len();
            html[start..start + html[start..].find(close).unwrap()].to_owned()
        };
        let digest = |s: &str| {
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(s.as_bytes()))
        };
        let script = between("<script>", "</script>");
        let style = between("<style>", "</style>");
        assert!(script.contains("EventSource") && style.contains(".tile"));
        assert!(
            csp.contains(&format!("script-src 'sha256-{}';", digest(&script))),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src 'sha256-{}';", digest(&style))),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"));
        assert!(
            !html.contains("src=\"/page.js\""),
            "one document, nothing else to fetch"
        );
    }
}
