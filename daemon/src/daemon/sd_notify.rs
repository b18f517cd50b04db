//! systemd's notify protocol (`sd_notify(3)`): READY, STATUS, WATCHDOG and STOPPING messages
//! as datagrams to `$NOTIFY_SOCKET`.
//!
//! Written here rather than taken from a crate because it is a dozen lines and we want
//! abstract-namespace sockets (`@name`) too, which the common crate lacks. Without
//! `$NOTIFY_SOCKET` (not started by systemd, or in tests) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// A connection to the service manager, if there is one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID` from the environment.
    pub fn from_env() -> std::io::Result<Self> {
        let socket = match std::env::var_os("NOTIFY_SOCKET") {
            None => None,
            Some(path) => Some(connect(&path)?),
        };
        let pid_ok = std::env::var("WATCHDOG_PID")
            .ok()
            .is_none_or(|pid| pid.parse::<u32>().ok() == Some(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|us| us.parse::<u64>().ok())
            .filter(|&us| us > 0 && pid_ok)
            .map(Duration::from_micros);
        Ok(Notifier { socket, watchdog })
    }

    /// The watchdog timeout systemd expects us to beat, when enabled.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends raw `KEY=VALUE` lines.
    pub fn send(&self, state: &str) -> std::io::Result<()> {
        match &self.socket {
            Some((sock, addr)) => match sock.send_to_addr(state.as_bytes(), addr) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(()),
                other => other.map(drop),
            },
            None => Ok(()),
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) -> std::io::Result<()> {
        self.send(&format!("STATUS={}\nREADY=1\n", one_line(status)))
    }

    /// `STATUS=...`: one line shown by `systemctl status`.
    pub fn status(&self, status: &str) -> std::io::Result<()> {
        self.send(&format!("STATUS={}\n", one_line(status)))
    }

    /// `WATCHDOG=1`: we are alive.
    pub fn watchdog(&self) -> std::io::Result<()> {
        if self.watchdog.is_some() {
            self.send("WATCHDOG=1\n")
        } else {
            Ok(())
        }
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) -> std::io::Result<()> {
        self.send("STOPPING=1\n")
    }
}

/// An unbound, non-blocking datagram socket aimed at the service manager's socket. Never let a
/// slow or stuck reader block the event loop: a notification that does not fit is dropped
/// (the next one says the same or more).
fn connect(
    path: &std::ffi::OsStr,
) -> std::io::Result<(UnixDatagram, std::os::unix::net::SocketAddr)> {
    let addr = address(path)?;
    let sock = UnixDatagram::unbound()?;
    sock.set_nonblocking(true)?;
    Ok((sock, addr))
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

fn address(path: &std::ffi::OsStr) -> std::io::Result<std::os::unix::net::SocketAddr> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt as _;
            return std::os::unix::net::SocketAddr::from_abstract_name(name);
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "abstract sockets need Linux",
            ));
        }
    }
    std::os::unix::net::SocketAddr::from_pathname(std::path::Path::new(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_arrive_on_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some((
                UnixDatagram::unbound().unwrap(),
                address(path.as_os_str()).unwrap(),
            )),
            watchdog: Some(Duration::from_secs(1)),
        };
        n.ready("scanning\n2 manifests").unwrap();
        n.watchdog().unwrap();
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=scanning 2 manifests\nREADY=1\n");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1\n");
    }

    #[test]
    fn a_reader_that_never_reads_does_not_block_us() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.sock");
        let _server = UnixDatagram::bind(&path).unwrap();
        let n = Notifier {
            socket: Some(connect(path.as_os_str()).unwrap()),
            watchdog: Some(Duration::from_secs(1)),
        };
        for _ in 0..10_000 {
            n.watchdog().unwrap();
        }
    }

    #[test]
    fn without_a_socket_everything_is_a_no_op() {
        let n = Notifier {
            socket: None,
            watchdog: None,
        };
        n.ready("x").unwrap();
        n.watchdog().unwrap();
        n.stopping().unwrap();
    }
}
