//! The bench page's HTTP server: one thread, one `mio` poll, fixed bounds on everything a
//! client can make it hold.
//!
//! Why not a server crate: the daemon is threads + `mio`, not async, so hyper/axum (tokio)
//! are out; tiny_http, the usual threaded choice, starts one thread per connection with no
//! upper bound and sets no read timeout (tiny_http 0.12, `util/task_pool.rs`), so a client that
//! opens connections and never finishes a request ties up a thread each. Here requests are
//! parsed by `httparse` (the parser under hyper: zero-copy, no allocation, fuzzed) and this
//! module does the rest — GET and HEAD only, no bodies, `Connection: close` — in about as
//! many lines as wrapping a server crate in limits would take. docs/bench-page.md has the
//! full account.
//!
//! Bounds ([`Limits`]): connections open at once, event-stream clients, request head size,
//! a deadline to send the request, a deadline to take a response, and the bytes an event
//! stream may fall behind before it is dropped (the browser reconnects and gets a fresh
//! full state). Every request is checked for its `Host` header so a DNS-rebinding web page
//! cannot read the bench through a visitor's browser.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

/// What one client may cost the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (event streams included). Beyond this, new connections get
    /// a short 503 and are closed.
    pub max_connections: usize,
    /// Event-stream (live page) clients at once.
    pub max_streams: usize,
    /// Bytes of request line and headers.
    pub max_request_bytes: usize,
    /// Time a client has to send its whole request after connecting.
    pub request_timeout: Duration,
    /// Time a client has to take a whole response, and the longest an event stream may make
    /// no progress while data waits for it.
    pub write_timeout: Duration,
    /// Bytes an event stream may fall behind before it is dropped.
    pub max_stream_backlog: usize,
    /// How often event streams get news (updates are coalesced to this rate).
    pub tick: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 64,
            max_streams: 16,
            max_request_bytes: 8 * 1024,
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(10),
            max_stream_backlog: 1024 * 1024,
            tick: Duration::from_millis(100),
        }
    }
}

/// Where and how the bench page is served (`espfleetd --http`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// The address to listen on (`127.0.0.1:8420` by default).
    pub addr: SocketAddr,
    /// Host names (besides IP literals and `localhost`) the page answers to.
    pub allowed_hosts: Vec<String>,
    /// The bounds.
    pub limits: Limits,
}

/// The address `--http` without a value listens on: loopback only.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8420";

/// Errors starting the server.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum HttpError {
    /// The address could not be bound.
    #[error("bench page address {addr}: {source}")]
    #[diagnostic(
        code(espfleet::http::bind),
        help(
            "another program may use the port, or the address is not one of this machine's; pass another with --http ADDR (default 127.0.0.1:8420)"
        )
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A request the server accepted: GET or HEAD, no body, `Host` checked.
#[derive(Debug)]
pub struct Request<'a> {
    /// True for HEAD (the server drops the body).
    pub head: bool,
    /// The path, still percent-encoded (`/api/history`).
    pub path: &'a str,
    /// The query string without `?`, still percent-encoded.
    pub query: &'a str,
}

/// A complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// A Content-Security-Policy replacing [`DEFAULT_CSP`] (a page with inline script and
    /// style names their hashes).
    pub csp: Option<String>,
}

impl Response {
    /// A 200 response.
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            content_type,
            body: body.into(),
            csp: None,
        }
    }

    /// A plain-text error response.
    pub fn error(status: u16, message: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
            csp: None,
        }
    }
}

/// What the site answers.
#[derive(Debug)]
pub enum Reply {
    /// A complete response; the connection closes after it.
    Full(Response),
    /// Turn the connection into a Server-Sent Events stream.
    Stream,
}

/// The application behind the server (the bench page).
pub trait Site {
    /// Answers one request.
    fn handle(&mut self, request: &Request<'_>) -> Reply;
    /// The first bytes of a new event stream: the full current state, as SSE events.
    fn stream_start(&mut self) -> Vec<u8>;
    /// Called once per tick: what changed since the last tick, as SSE events for every stream
    /// (empty when nothing changed).
    fn tick(&mut self) -> Vec<u8>;
}

/// The security headers every answer carries; it may not be framed, sniffed or read by other
/// origins.
const COMMON_HEADERS: &str = "Cache-Control: no-store\r\n\
X-Content-Type-Options: nosniff\r\n\
Referrer-Policy: no-referrer\r\n\
X-Frame-Options: DENY\r\n\
Cross-Origin-Resource-Policy: same-origin\r\n\
Connection: close\r\n";

/// The Content-Security-Policy of every answer that names no other: nothing runs, nothing
/// loads but from this server.
pub const DEFAULT_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Serialises a response (HEAD: headers only, with the body's length).
pub fn encode(response: &Response, head: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n{COMMON_HEADERS}Content-Security-Policy: {}\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        response.csp.as_deref().unwrap_or(DEFAULT_CSP),
        match response.status {
            405 => "Allow: GET, HEAD\r\n",
            503 => "Retry-After: 5\r\n",
            _ => "",
        }
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(&response.body);
    }
    out
}

fn stream_head() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n{COMMON_HEADERS}Content-Security-Policy: {DEFAULT_CSP}\r\n\r\n"
    )
    .into_bytes()
}

/// Whether a `Host` header names this server in a way no DNS-rebinding page can: an IP
/// literal, `localhost`, or a name the operator allowed.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        return match rest.split_once(']') {
            Some((v6, "")) => v6.parse::<IpAddr>().is_ok(),
            Some((v6, port)) => {
                port.strip_prefix(':').is_some_and(is_port) && v6.parse::<IpAddr>().is_ok()
            }
            None => false,
        };
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.parse::<IpAddr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(name))
}

fn is_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

enum State {
    /// Reading the request head.
    Reading(Vec<u8>),
    /// Sending a complete response, then closing.
    Writing { out: Vec<u8>, pos: usize },
    /// An event stream: `out[pos..]` waits to be sent.
    Streaming {
        out: Vec<u8>,
        pos: usize,
        last_progress: Instant,
    },
}

struct Conn {
    stream: TcpStream,
    state: State,
    /// When the current phase must be over (request read, response taken).
    deadline: Instant,
    /// Bytes the client sent after its request (ignored; too many closes the connection).
    extra: usize,
}

/// The running server's handle: stop it, or learn where it listens.
#[derive(Debug)]
pub struct HttpHandle {
    stop: Arc<AtomicBool>,
    addr: SocketAddr,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits for its thread (within one tick).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

const LISTENER: Token = Token(usize::MAX);

/// Binds `addr` now (so a bad address fails the daemon's start) and serves `site` on a new
/// thread. `on_exit` runs if the server fails (not when stopped).
pub fn start<S: Site + Send + 'static>(
    addr: SocketAddr,
    allowed_hosts: Vec<String>,
    limits: Limits,
    site: S,
    on_exit: impl FnOnce(std::io::Error) + Send + 'static,
) -> Result<HttpHandle, HttpError> {
    let bind = |source| HttpError::Bind { addr, source };
    let std_listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    std_listener.set_nonblocking(true).map_err(bind)?;
    let local = std_listener.local_addr().map_err(bind)?;
    let mut listener = TcpListener::from_std(std_listener);
    let poll = Poll::new().map_err(bind)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(bind)?;
    let stop = Arc::new(AtomicBool::new(false));
    let server = Server {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        live: 0,
        streams: 0,
        limits,
        allowed_hosts,
        site,
        stop: stop.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("bench page".into())
        .spawn(move || {
            if let Err(e) = server.run() {
                on_exit(e);
            }
        })
        .map_err(bind)?;
    Ok(HttpHandle {
        stop,
        addr: local,
        thread: Some(thread),
    })
}

struct Server<S> {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    live: usize,
    streams: usize,
    limits: Limits,
    allowed_hosts: Vec<String>,
    site: S,
    stop: Arc<AtomicBool>,
}

impl<S: Site> Server<S> {
    fn run(mut self) -> std::io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut next_tick = Instant::now() + self.limits.tick;
        while !self.stop.load(Ordering::Relaxed) {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.poll.poll(&mut events, Some(wait)) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for ev in &events {
                if ev.token() == LISTENER {
                    self.accept();
                } else {
                    let i = ev.token().0;
                    if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                        self.on_readable(i);
                    }
                    if ev.is_writable() {
                        self.flush(i);
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                next_tick = now + self.limits.tick;
                let news = self.site.tick();
                if !news.is_empty() {
                    self.broadcast(&news);
                }
                self.expire(now);
            }
        }
        Ok(())
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _peer)) => {
                    if self.live >= self.limits.max_connections {
                        // Best effort: one non-blocking write of a short answer, then close.
                        let busy = encode(
                            &Response::error(503, "too many connections to the bench page"),
                            false,
                        );
                        let _ = stream.write(&busy);
                        continue;
                    }
                    let i = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(i),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.free.push(i);
                        continue;
                    }
                    self.conns[i] = Some(Conn {
                        stream,
                        state: State::Reading(Vec::new()),
                        deadline: Instant::now() + self.limits.request_timeout,
                        extra: 0,
                    });
                    self.live += 1;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept, ...: the
                    // listener stays; the next connection tries again.
                    tracing::debug!("bench page: accept: {e}");
                    return;
                }
            }
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.get_mut(i).and_then(Option::take) {
            if matches!(c.state, State::Streaming { .. }) {
                self.streams -= 1;
            }
            let _ = self.poll.registry().deregister(&mut c.stream);
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            self.live -= 1;
            self.free.push(i);
        }
    }

    fn on_readable(&mut self, i: usize) {
        enum Next {
            Wait,
            Close,
            Respond(Result<Accepted, Response>),
        }
        let max = self.limits.max_request_bytes;
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let mut scratch = [0u8; 2048];
        let next = loop {
            let n = match conn.stream.read(&mut scratch) {
                // The client closed its side. A request still being read is abandoned; an
                // event stream is over; a response being written goes on (a half-close is
                // legal) until it is taken or times out.
                Ok(0) if matches!(conn.state, State::Writing { .. }) => break Next::Wait,
                Ok(0) => break Next::Close,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break Next::Wait,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break Next::Close,
            };
            match &mut conn.state {
                State::Reading(buf) => {
                    buf.extend_from_slice(&scratch[..n]);
                    if let Parsed::Done(outcome) = parse(buf, max) {
                        break Next::Respond(outcome);
                    }
                }
                State::Writing { .. } | State::Streaming { .. } => {
                    conn.extra += n;
                    if conn.extra > 16 * 1024 {
                        break Next::Close;
                    }
                }
            }
        };
        match next {
            Next::Wait => {}
            Next::Close => self.close(i),
            Next::Respond(outcome) => self.respond(i, outcome),
        }
    }

    fn respond(&mut self, i: usize, outcome: Result<Accepted, Response>) {
        let reply = match outcome {
            Err(resp) => (Reply::Full(resp), false),
            Ok(head) if !host_allowed(&head.host, &self.allowed_hosts) => (
                Reply::Full(Response::error(
                    403,
                    "this bench page answers only to its IP address, localhost, or a name given with --http-host",
                )),
                head.head_only,
            ),
            Ok(head) => {
                let (path, query) = head.target.split_once('?').unwrap_or((&head.target, ""));
                let req = Request {
                    head: head.head_only,
                    path,
                    query,
                };
                (self.site.handle(&req), head.head_only)
            }
        };
        let now = Instant::now();
        let streams_full = self.streams >= self.limits.max_streams;
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        conn.deadline = now + self.limits.write_timeout;
        match reply {
            (Reply::Stream, true) => {
                conn.state = State::Writing {
                    out: stream_head(),
                    pos: 0,
                };
            }
            (Reply::Stream, false) if streams_full => {
                conn.state = State::Writing {
                    out: encode(
                        &Response::error(503, "too many live pages open; close one and reload"),
                        false,
                    ),
                    pos: 0,
                };
            }
            (Reply::Stream, false) => {
                let mut out = stream_head();
                out.extend_from_slice(b"retry: 2000\n\n");
                out.extend_from_slice(&self.site.stream_start());
                conn.state = State::Streaming {
                    out,
                    pos: 0,
                    last_progress: now,
                };
                self.streams += 1;
            }
            (Reply::Full(resp), head) => {
                conn.state = State::Writing {
                    out: encode(&resp, head),
                    pos: 0,
                };
            }
        }
        self.flush(i);
    }

    /// Writes what waits for connection `i`; closes it when a response is complete or the
    /// peer is gone.
    fn flush(&mut self, i: usize) {
        let Some(conn) = self.conns.get_mut(i).and_then(Option::as_mut) else {
            return;
        };
        let (out, pos) = match &mut conn.state {
            State::Reading(_) => return,
            State::Writing { out, pos } | State::Streaming { out, pos, .. } => (out, pos),
        };
        let mut progressed = false;
        while *pos < out.len() {
            match conn.stream.write(&out[*pos..]) {
                Ok(0) => break,
                Ok(n) => {
                    *pos += n;
                    progressed = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.close(i);
                    return;
                }
            }
        }
        let done = *pos >= out.len();
        match &mut conn.state {
            State::Writing { .. } if done => {
                let _ = conn.stream.shutdown(std::net::Shutdown::Write);
                self.close(i);
            }
            State::Streaming {
                out,
                pos,
                last_progress,
            } => {
                if progressed {
                    *last_progress = Instant::now();
                }
                if done {
                    out.clear();
                    *pos = 0;
                } else if *pos > 64 * 1024 {
                    out.drain(..*pos);
                    *pos = 0;
                }
            }
            _ => {}
        }
    }

    fn broadcast(&mut self, news: &[u8]) {
        let limit = self.limits.max_stream_backlog;
        for i in 0..self.conns.len() {
            let Some(Conn {
                state: State::Streaming { out, pos, .. },
                ..
            }) = self.conns[i].as_mut()
            else {
                continue;
            };
            if out.len() - *pos + news.len() > limit {
                // Too far behind: drop it; EventSource reconnects and gets a fresh state.
                self.close(i);
                continue;
            }
            out.extend_from_slice(news);
            self.flush(i);
        }
    }

    fn expire(&mut self, now: Instant) {
        let stall = self.limits.write_timeout;
        for i in 0..self.conns.len() {
            let Some(conn) = self.conns[i].as_mut() else {
                continue;
            };
            let expired = match &conn.state {
                State::Reading(_) => {
                    if now >= conn.deadline {
                        // Best effort; the client was too slow to send a request.
                        let _ = conn.stream.write(&encode(
                            &Response::error(408, "the request took too long"),
                            false,
                        ));
                        true
                    } else {
                        false
                    }
                }
                State::Writing { .. } => now >= conn.deadline,
                State::Streaming {
                    out,
                    pos,
                    last_progress,
                } => *pos < out.len() && now.duration_since(*last_progress) >= stall,
            };
            if expired {
                self.close(i);
            }
        }
    }
}

/// The parts of a request head the server needs.
#[derive(Debug, PartialEq, Eq)]
struct Accepted {
    /// HEAD rather than GET.
    head_only: bool,
    target: String,
    host: String,
}

enum Parsed {
    Partial,
    Done(Result<Accepted, Response>),
}

/// Parses a request head from `buf` (at most `max` bytes): a GET or HEAD without a body and
/// with one `Host` header, or the error response to send.
fn parse(buf: &[u8], max: usize) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf);
    let too_big = || Response::error(431, "request head too large");
    match status {
        Ok(httparse::Status::Partial) if buf.len() >= max => Parsed::Done(Err(too_big())),
        Ok(httparse::Status::Partial) => Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => Parsed::Done(Err(too_big())),
        Err(_) => Parsed::Done(Err(Response::error(400, "malformed request"))),
        Ok(httparse::Status::Complete(len)) if len > max => Parsed::Done(Err(too_big())),
        Ok(httparse::Status::Complete(_)) => Parsed::Done(head_of(&req)),
    }
}

fn head_of(req: &httparse::Request<'_, '_>) -> Result<Accepted, Response> {
    let head_only = match req.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => {
            return Err(Response::error(
                405,
                "the bench page is read-only: GET and HEAD only",
            ));
        }
    };
    let mut host = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            if h.value
                .iter()
                .any(|b| *b != b'0' && !b.is_ascii_whitespace())
            {
                return Err(Response::error(
                    413,
                    "the bench page takes no request bodies",
                ));
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(Response::error(
                413,
                "the bench page takes no request bodies",
            ));
        } else if h.name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return Err(Response::error(400, "more than one Host header"));
            }
            host = Some(
                std::str::from_utf8(h.value)
                    .map_err(|_| Response::error(400, "Host is not text"))?
                    .trim()
                    .to_owned(),
            );
        }
    }
    let host = host.ok_or_else(|| Response::error(400, "a Host header is required"))?;
    let target = req.path.unwrap_or("/");
    if !target.starts_with('/') {
        return Err(Response::error(400, "the request target must be a path"));
    }
    Ok(Accepted {
        head_only,
        target: target.to_owned(),
        host,
    })
}

/// Decodes `%XX` escapes and `+` (as in a query string) into text; `None` when the result is
/// not UTF-8 or an escape is malformed.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
                out.push(v);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The value of `key` in a query string, decoded.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| percent_decode(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &str) -> Result<Accepted, u16> {
        match parse(raw.as_bytes(), 8192) {
            Parsed::Partial => Err(0),
            Parsed::Done(r) => r.map_err(|resp| resp.status),
        }
    }

    #[test]
    fn requests_are_get_or_head_without_a_body_and_with_one_host() {
        assert_eq!(
            parsed("GET /api/status?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8420\r\n\r\n"),
            Ok(Accepted {
                head_only: false,
                target: "/api/status?x=1".into(),
                host: "127.0.0.1:8420".into()
            })
        );
        assert!(
            parsed("HEAD / HTTP/1.0\r\nHost: localhost\r\n\r\n")
                .unwrap()
                .head_only
        );
        assert_eq!(
            parsed("GET / HTTP/1.1\r\nHost: a\r\n"),
            Err(0),
            "incomplete"
        );
        assert_eq!(parsed("POST / HTTP/1.1\r\nHost: a\r\n\r\n"), Err(405));
        assert_eq!(
            parsed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
            Err(413)
        );
        assert!(parsed("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n").is_ok());
        assert_eq!(
            parsed("GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(413)
        );
        assert_eq!(parsed("GET / HTTP/1.1\r\n\r\n"), Err(400), "no Host");
        assert_eq!(
            parsed("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
            Err(400)
        );
        assert_eq!(
            parsed("GET http://x/ HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(400)
        );
        assert_eq!(parsed("GET / HTTP/1.1\r\nHo st: a\r\n\r\n"), Err(400));
        assert_eq!(parsed("\u{0}\u{1}garbage\r\n\r\n"), Err(400));
        let many: String = (0..40).fold(String::new(), |mut m, i| {
            use std::fmt::Write as _;
            let _ = write!(m, "X-{i}: y\r\n");
            m
        });
        assert_eq!(
            parsed(&format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n")),
            Err(431)
        );
    }

    #[test]
    fn an_endless_head_is_cut_off_at_the_limit() {
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert!(matches!(parse(long.as_bytes(), 64), Parsed::Done(Err(r)) if r.status == 431));
        assert!(matches!(parse(&long.as_bytes()[..50], 64), Parsed::Partial));
    }

    #[test]
    fn only_ip_literals_localhost_and_allowed_names_pass_the_host_check() {
        let allowed = vec!["bench-7.lab".to_owned()];
        for ok in [
            "127.0.0.1:8420",
            "127.0.0.1",
            "[::1]:8420",
            "[::1]",
            "localhost:8420",
            "LOCALHOST",
            "192.168.1.20:80",
            "bench-7.lab:8420",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for bad in [
            "evil.example:8420",
            "evil.example",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "[::1",
            "[::1]x",
            "127.0.0.1:",
            "127.0.0.1:99999999",
            "",
        ] {
            assert!(!host_allowed(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn responses_carry_length_and_security_headers_and_head_drops_the_body() {
        let r = Response::ok("application/json", b"{}".to_vec());
        let full = String::from_utf8(encode(&r, false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(full.contains("Content-Length: 2\r\n"));
        assert!(full.contains("Content-Security-Policy: default-src 'none'; script-src 'self';"));
        assert!(full.contains("X-Frame-Options: DENY\r\n"));
        assert!(full.ends_with("\r\n\r\n{}"));
        let head = String::from_utf8(encode(&r, true)).unwrap();
        assert!(head.contains("Content-Length: 2\r\n") && head.ends_with("\r\n\r\n"));
        let e = String::from_utf8(encode(&Response::error(405, "no"), false)).unwrap();
        assert!(e.contains("Allow: GET, HEAD\r\n"));
        let own = Response {
            csp: Some("script-src 'sha256-x'".into()),
            ..Response::ok("text/html", "")
        };
        let own = String::from_utf8(encode(&own, false)).unwrap();
        assert_eq!(own.matches("Content-Security-Policy").count(), 1);
        assert!(own.contains("Content-Security-Policy: script-src 'sha256-x'\r\n"));
    }

    #[test]
    fn query_values_are_decoded() {
        assert_eq!(
            query_param("slot=1-1.3&outcome=failed", "outcome").as_deref(),
            Some("failed")
        );
        assert_eq!(
            query_param("slot=1-1%2E3+x", "slot").as_deref(),
            Some("1-1.3 x")
        );
        assert_eq!(query_param("slot", "slot").as_deref(), Some(""));
        assert_eq!(query_param("slot=%zz", "slot"), None);
        assert_eq!(query_param("slot=%ff", "slot"), None, "not UTF-8");
        assert_eq!(query_param("a=1", "slot"), None);
    }

    /// A site for the server tests: `/stream` streams, anything else echoes its path; `news`
    /// goes to every stream on the next tick.
    struct Echo {
        news: Arc<std::sync::Mutex<Vec<u8>>>,
    }

    impl Site for Echo {
        fn handle(&mut self, request: &Request<'_>) -> Reply {
            if request.path == "/stream" {
                Reply::Stream
            } else {
                Reply::Full(Response::ok("text/plain", request.path.as_bytes().to_vec()))
            }
        }
        fn stream_start(&mut self) -> Vec<u8> {
            b"event: hello\ndata: 1\n\n".to_vec()
        }
        fn tick(&mut self) -> Vec<u8> {
            std::mem::take(&mut *self.news.lock().unwrap())
        }
    }

    fn serve(limits: Limits) -> (HttpHandle, Arc<std::sync::Mutex<Vec<u8>>>) {
        let news = Arc::new(std::sync::Mutex::new(Vec::new()));
        let site = Echo { news: news.clone() };
        let addr = "127.0.0.1:0".parse().unwrap();
        let h = start(addr, vec![], limits, site, |e| panic!("server died: {e}")).unwrap();
        (h, news)
    }

    fn connect(h: &HttpHandle) -> std::net::TcpStream {
        let s = std::net::TcpStream::connect(h.local_addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Sends `raw` and reads until the server closes.
    fn exchange(h: &HttpHandle, raw: &[u8]) -> String {
        let mut s = connect(h);
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    fn status_of(answer: &str) -> u16 {
        answer
            .get(9..12)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not a response: {answer:?}"))
    }

    #[test]
    fn serves_get_and_head_and_refuses_foreign_hosts_bodies_and_huge_heads() {
        let (h, _) = serve(Limits::default());
        let a = exchange(&h, b"GET /x?y=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(status_of(&a), 200);
        assert!(a.ends_with("\r\n\r\n/x"), "{a}");
        let a = exchange(&h, b"HEAD /x HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(
            a.contains("Content-Length: 2\r\n") && a.ends_with("\r\n\r\n"),
            "{a}"
        );
        let a = exchange(&h, b"GET / HTTP/1.1\r\nHost: attacker.example\r\n\r\n");
        assert_eq!(status_of(&a), 403);
        let a = exchange(
            &h,
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
        );
        assert_eq!(status_of(&a), 405);
        let huge = format!(
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: {}\r\n\r\n",
            "a".repeat(20_000)
        );
        assert_eq!(status_of(&exchange(&h, huge.as_bytes())), 431);
    }

    #[test]
    fn a_client_that_never_finishes_its_request_is_cut_off_and_its_slot_freed() {
        let limits = Limits {
            max_connections: 2,
            request_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (h, _) = serve(limits);
        let start = Instant::now();
        let mut slow = connect(&h);
        slow.write_all(b"GET / HTTP/1.1\r\nHost: 127").unwrap();
        let mut idle = connect(&h);
        // Both slots are taken: a third connection is told so and closed.
        let third = exchange(&h, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(status_of(&third), 503);
        let mut out = String::new();
        let _ = slow.read_to_string(&mut out);
        assert_eq!(status_of(&out), 408);
        let _ = idle.read_to_string(&mut out);
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        // The slots are free again.
        let a = exchange(&h, b"GET /again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(status_of(&a), 200, "{a}");
    }

    #[test]
    fn event_streams_are_limited_in_number_and_in_how_far_they_may_fall_behind() {
        let limits = Limits {
            max_streams: 1,
            max_stream_backlog: 256 * 1024,
            tick: Duration::from_millis(20),
            ..Limits::default()
        };
        let (h, news) = serve(limits);
        let mut first = connect(&h);
        first
            .write_all(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let mut got = String::new();
        while !got.contains("event: hello") {
            let n = first.read(&mut buf).unwrap();
            assert!(n > 0, "stream closed early: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(
            got.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"),
            "{got}"
        );
        assert!(got.contains("retry: 2000\n\n"));
        let second = exchange(&h, b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(status_of(&second), 503, "{second}");
        assert!(second.contains("Retry-After: 5\r\n"));

        // `first` stops reading; news keeps coming until the server gives up on it.
        let chunk = format!("event: x\ndata: {}\n\n", "z".repeat(200 * 1024));
        let end = Instant::now() + Duration::from_secs(30);
        let mut total = 0usize;
        let dropped = loop {
            assert!(Instant::now() < end, "never dropped after {total} bytes");
            news.lock().unwrap().extend_from_slice(chunk.as_bytes());
            total += chunk.len();
            std::thread::sleep(Duration::from_millis(25));
            // Once dropped, the stream slot is free again.
            let mut probe = connect(&h);
            probe
                .write_all(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            let mut head = [0u8; 12];
            probe.read_exact(&mut head).unwrap();
            if status_of(&String::from_utf8_lossy(&head)) == 200 {
                break true;
            }
        };
        assert!(dropped);
        // What the first client still reads ends: the server closed it.
        first
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut rest = Vec::new();
        let r = first.read_to_end(&mut rest);
        assert!(r.is_ok() || r.is_err_and(|e| e.kind() == ErrorKind::ConnectionReset));
    }
}
