//! Device events as plain data, and the trait every device-event source implements.

use std::path::PathBuf;
use std::sync::mpsc;

use espfleet_compiler::device_match::UsbFacts;

use super::event::Event;

/// USB-serial bridges found on ESP32 / ESP32-C3 boards: a tty whose USB parent is one of these
/// is a board candidate even when no manifest names its VID/PID.
pub const KNOWN_BRIDGES: &[(u16, u16, &str)] = &[
    (0x10c4, 0xea60, "CP210x"),
    (0x1a86, 0x7523, "CH340"),
    (0x1a86, 0x55d4, "CH9102"),
    (0x0403, 0x6001, "FT232R"),
    (0x0403, 0x6010, "FT2232"),
    (0x0403, 0x6014, "FT232H"),
    (0x0403, 0x6015, "FT-X"),
    (0x303a, 0x1001, "Espressif USB Serial/JTAG"),
];

/// The bridge's name when VID:PID is a known ESP32 bridge.
pub fn known_bridge(vid: Option<u16>, pid: Option<u16>) -> Option<&'static str> {
    let (vid, pid) = (vid?, pid?);
    KNOWN_BRIDGES
        .iter()
        .find(|b| b.0 == vid && b.1 == pid)
        .map(|b| b.2)
}

/// A serial port with a USB parent, as the device source saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialPort {
    /// The kernel's sysfs path: stable for as long as the device exists, so the port's key.
    pub syspath: PathBuf,
    /// The device node to open (`/dev/ttyUSB0`).
    pub devnode: PathBuf,
    /// USB facts for matching (VID/PID, serial, names, USB path).
    pub usb: UsbFacts,
}

impl SerialPort {
    /// The bench slot for logs: the USB path when known, else the device node.
    pub fn slot(&self) -> String {
        self.usb
            .usb_path
            .clone()
            .unwrap_or_else(|| self.devnode.display().to_string())
    }
}

/// A device event, converted from udev (or a test) at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceEvent {
    /// The port was there when the daemon started.
    Present(SerialPort),
    /// The port was plugged in.
    Added(SerialPort),
    /// The port went away.
    Removed {
        /// Its sysfs path.
        syspath: PathBuf,
        /// Its device node, when known.
        devnode: Option<PathBuf>,
    },
}

/// Something that reports serial ports coming and going. Implementations run on their own
/// thread and send [`Event::Device`] into the loop, and [`Event::SourceDied`] if they fail.
pub trait DeviceSource: Send {
    /// A short name for logs ("udev").
    fn name(&self) -> &'static str;
    /// Starts reporting: first every port already present, then [`Event::DevicesEnumerated`],
    /// then changes, until `events` is closed. Runs on a thread of its own.
    fn run(self: Box<Self>, events: mpsc::Sender<Event>);
}

/// A device source fed by a test through a channel: the in-memory twin of the udev source.
pub struct ChannelSource {
    rx: mpsc::Receiver<DeviceEvent>,
}

impl ChannelSource {
    /// The source, and the sender a test pushes events into. Dropping the sender makes the
    /// source die, which the loop reports like a dead udev monitor.
    pub fn new() -> (Self, mpsc::Sender<DeviceEvent>) {
        let (tx, rx) = mpsc::channel();
        (ChannelSource { rx }, tx)
    }
}

impl DeviceSource for ChannelSource {
    fn name(&self) -> &'static str {
        "test channel"
    }
    fn run(self: Box<Self>, events: mpsc::Sender<Event>) {
        if events.send(Event::DevicesEnumerated).is_err() {
            return;
        }
        for ev in self.rx {
            if events.send(Event::Device(ev)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::SourceDied {
            source: "test channel",
            error: "sender dropped".into(),
        });
    }
}
