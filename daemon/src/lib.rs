//! espfleet: the command-line tool, the flasher and the hotplug daemon.
//!
//! The binaries in `src/bin/` only parse arguments, set up logging and call into [`cli`].

pub mod cli;
pub mod daemon;
pub mod flasher;
pub mod logging;
