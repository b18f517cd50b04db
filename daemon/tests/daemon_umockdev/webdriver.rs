//! Just enough of the W3C WebDriver protocol to drive Debian's Chromium through its
//! `chromedriver` (packages `chromium` and `chromium-driver`, tests/apt-packages.txt): start a
//! session, open a URL, run scripts, take screenshots. HTTP/1.1 over a plain TCP socket to the
//! local chromedriver; no client library needed.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// A running chromedriver.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    profile: tempfile::TempDir,
}

/// The flags Chromium needs to run headless as root, without a network and without any
/// background traffic, in a profile of its own.
const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut s = TcpStream::connect(addr).map_err(|e| format!("chromedriver: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    // chromedriver may keep the connection open: read the head, then what it announces.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("chromedriver: connection closed before the answer".into());
        }
        raw.extend_from_slice(&buf[..n]);
    };
    let headers = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut payload = raw[split + 4..].to_vec();
    let length = headers
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    if let Some(len) = length {
        while payload.len() < len {
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            if n == 0 {
                break;
            }
            payload.extend_from_slice(&buf[..n]);
        }
    } else {
        s.read_to_end(&mut payload).map_err(|e| e.to_string())?;
        if headers.contains("transfer-encoding: chunked") {
            payload = dechunk(&payload);
        }
    }
    let v: Value = serde_json::from_slice(&payload).map_err(|e| {
        format!(
            "chromedriver answer: {e}: {}",
            String::from_utf8_lossy(&payload)
        )
    })?;
    let value = v.get("value").cloned().unwrap_or(Value::Null);
    if let Some(err) = value.get("error").and_then(Value::as_str) {
        return Err(format!(
            "webdriver {method} {path}: {err}: {}",
            value.get("message").and_then(Value::as_str).unwrap_or("")
        ));
    }
    Ok(value)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + size]);
        b = &b[nl + 2 + size + 2..];
    }
    out
}

impl Driver {
    /// Starts chromedriver on a free loopback port. The umockdev preload of the test process
    /// is removed from its environment: Chromium must see the real /sys and /dev.
    pub fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .env_remove("LD_PRELOAD")
            .env_remove("UMOCKDEV_DIR")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver missing: apt-get install chromium chromium-driver (tests/apt-packages.txt)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(v) = http(addr, "GET", "/status", None) {
                if v.get("ready") == Some(&Value::Bool(true)) {
                    break;
                }
            }
            assert!(Instant::now() < end, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Driver {
            child,
            addr,
            profile: tempfile::tempdir().unwrap(),
        }
    }

    /// Opens a headless Chromium window of the given size with a fresh profile.
    pub fn session(&self, width: u32, height: u32) -> Session {
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", self.profile.path().display()));
        args.push(format!("--window-size={width},{height}"));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let v = http(self.addr, "POST", "/session", Some(&caps)).unwrap();
        let id = v["sessionId"].as_str().expect("a session id").to_owned();
        Session {
            addr: self.addr,
            id,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser window.
pub struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        http(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Navigates and waits for the load event.
    pub fn open(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn eval(&self, script: &str, args: &[Value]) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// Runs `script`, which must call `done(value)` (the last argument) when finished.
    pub fn eval_async(&self, script: &str) -> Value {
        let wrapped = format!("const done = arguments[arguments.length - 1];\n{script}");
        self.call(
            "POST",
            "/execute/async",
            Some(&json!({"script": wrapped, "args": []})),
        )
    }

    /// Polls `script` (returning a truthy value when done) every 50 ms for up to `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, script: &str) -> Value {
        let end = Instant::now() + limit;
        loop {
            let v = self.eval(script, &[]);
            if !(v.is_null() || v == Value::Bool(false)) {
                return v;
            }
            assert!(Instant::now() < end, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        decode_png(&self.call("GET", "/screenshot", None))
    }

    /// A PNG of the first element matching `css` (scrolled into view).
    pub fn element_screenshot(&self, css: &str) -> Vec<u8> {
        let found = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        let id = found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("an element id")
            .to_owned();
        decode_png(&self.call("GET", &format!("/element/{id}/screenshot"), None))
    }
}

fn decode_png(v: &Value) -> Vec<u8> {
    let png = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().expect("base64 PNG"))
        .unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    png
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = http(self.addr, "DELETE", &format!("/session/{}", self.id), None);
    }
}

/// Writes a run artifact under `target/artifacts/` and returns its path.
pub fn save_artifact(name: &str, bytes: &[u8]) -> std::path::PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; artifacts go beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}
