//! The pseudo-terminal that stands in for the USB-UART bridge (`docs/formats/serial-protocol.md` §1.1).
//!
//! No unsafe code: `rustix` wraps every call. The simulator holds the master; it also keeps one
//! slave fd open for its whole life (never locked), so reads on the master do not fail with EIO
//! while no client has the port open.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::path::PathBuf;

use rustix::fs::{Mode, OFlags};
use rustix::pty::OpenptFlags;
use rustix::termios::{OptionalActions, tcgetattr, tcsetattr};

/// A pty pair owned by the simulator.
#[derive(Debug)]
pub(crate) struct Pty {
    /// The device side: what the simulator reads and writes (non-blocking).
    pub master: OwnedFd,
    /// Our own slave fd, open so the line stays up with no client.
    pub _slave: Option<OwnedFd>,
    /// The slave's path, e.g. `/dev/pts/7`: what clients open.
    pub path: PathBuf,
}

impl Pty {
    /// Creates a fresh pair, raw mode at 115200 before any client can open it.
    pub fn open() -> io::Result<Pty> {
        let master =
            rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
        rustix::pty::grantpt(&master)?;
        rustix::pty::unlockpt(&master)?;
        Self::from_master(master)
    }

    /// Adopts an existing master (umockdev's mocked tty, or `TTYPort::pair()`).
    pub fn from_master(master: OwnedFd) -> io::Result<Pty> {
        let name = rustix::pty::ptsname(&master, Vec::new())?;
        let path = PathBuf::from(OsString::from_vec(name.into_bytes()));
        let slave = rustix::fs::open(
            &path,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok();
        // Raw mode on the slave side: no echo, no CR/LF translation (`docs/formats/serial-protocol.md` §1.1). Through the
        // master when we could not open the slave; on Linux that acts on the slave's termios.
        let fd = slave.as_ref().map_or(master.as_fd(), AsFd::as_fd);
        let mut t = tcgetattr(fd)?;
        t.make_raw();
        t.set_speed(115_200)?;
        tcsetattr(fd, OptionalActions::Now, &t)?;
        rustix::io::ioctl_fionbio(&master, true)?;
        Ok(Pty {
            master,
            _slave: slave,
            path,
        })
    }

    /// The speed the host last set on its end, in baud (a termios call on the master reads the
    /// slave's settings; rustix uses TCGETS2 so odd speeds come through exactly).
    pub fn host_baud(&self) -> Option<u32> {
        tcgetattr(&self.master)
            .ok()
            .map(|t| t.output_speed())
            .filter(|&b| b > 0)
    }
}
