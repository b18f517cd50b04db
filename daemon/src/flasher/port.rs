//! Serial ports: what kind of port a path is, and opening it with errors an operator can act on.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use espflash::connection::Port as SerialPort;
use serialport::SerialPort as _;

use super::error::FlashError;

/// USB product id of the ESP32-C3/S3/C6 built-in USB Serial/JTAG controller (vendor 303a).
pub const USB_SERIAL_JTAG_PID: u16 = 0x1001;

/// USB identity of a port, when it is a USB device.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsbIds {
    /// Vendor id (`10c4` Silicon Labs, `1a86` WCH, `0403` FTDI, `303a` Espressif).
    pub vid: u16,
    /// Product id.
    pub pid: u16,
    /// iSerial, if the device has one.
    pub serial_number: Option<String>,
    /// Manufacturer string.
    pub manufacturer: Option<String>,
    /// Product string.
    pub product: Option<String>,
}

impl UsbIds {
    /// Whether this is the chip's own USB Serial/JTAG controller, which resets through its
    /// own sequence rather than a bridge's DTR/RTS wiring.
    pub fn is_usb_serial_jtag(&self) -> bool {
        self.vid == 0x303a && self.pid == USB_SERIAL_JTAG_PID
    }
}

/// One serial port a board sits on. Cheap to clone and `Send`: the daemon keeps one per
/// plugged-in board and hands it to that port's worker thread; nothing is opened until a flash
/// starts, and the port is closed when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    path: PathBuf,
    usb: Option<UsbIds>,
}

impl Port {
    /// A port by path, with its USB identity looked up from the system (udev) when it is a USB
    /// device. Ptys and other non-USB ports get none.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let usb = lookup_usb(&path);
        Port { path, usb }
    }

    /// A port with a USB identity the caller already knows (the daemon gets it from the udev
    /// event that announced the port).
    pub fn with_usb(path: impl Into<PathBuf>, usb: Option<UsbIds>) -> Self {
        Port {
            path: path.into(),
            usb,
        }
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// USB identity, if known.
    pub fn usb(&self) -> Option<&UsbIds> {
        self.usb.as_ref()
    }

    /// The identity espflash wants for choosing a reset sequence (zeros for non-USB ports).
    pub(crate) fn espflash_info(&self) -> serialport::UsbPortInfo {
        let ids = self.usb.clone().unwrap_or(UsbIds {
            vid: 0,
            pid: 0,
            serial_number: None,
            manufacturer: None,
            product: None,
        });
        serialport::UsbPortInfo {
            vid: ids.vid,
            pid: ids.pid,
            serial_number: ids.serial_number,
            manufacturer: ids.manufacturer,
            product: ids.product,
            interface: None,
        }
    }

    /// Opens the port exclusively at 115200 baud (the ROM's speed), mapping failures to
    /// the errors an operator can act on.
    pub(crate) fn open(&self) -> Result<SerialPort, FlashError> {
        if !self.path.exists() {
            return Err(FlashError::PortMissing {
                port: self.path.clone(),
            });
        }
        serialport::new(self.path.to_string_lossy(), 115_200)
            .timeout(Duration::from_secs(3))
            .open_native()
            .map_err(|e| self.open_error(&e))
    }

    fn open_error(&self, e: &serialport::Error) -> FlashError {
        let port = self.path.clone();
        if !self.path.exists() {
            return FlashError::PortMissing { port };
        }
        match e.kind {
            // serialport reports EBUSY (TIOCEXCL held by another process) and a failed
            // exclusive flock as NoDevice.
            serialport::ErrorKind::NoDevice => FlashError::PortBusy { port },
            serialport::ErrorKind::Io(io::ErrorKind::NotFound) => FlashError::PortMissing { port },
            _ => FlashError::PortOpen {
                port,
                detail: e.description.clone(),
            },
        }
    }
}

/// Whether the opened port can drive DTR/RTS. Reading the modem status lines is harmless (it
/// toggles nothing) and fails on ports that have none, such as ptys.
pub(crate) fn can_toggle_lines(serial: &mut SerialPort) -> bool {
    serial.read_clear_to_send().is_ok()
}

fn lookup_usb(path: &Path) -> Option<UsbIds> {
    let want = std::fs::canonicalize(path).ok()?;
    let ports = serialport::available_ports().ok()?;
    ports.into_iter().find_map(|p| {
        let same = std::fs::canonicalize(&p.port_name).ok()? == want;
        match (same, p.port_type) {
            (true, serialport::SerialPortType::UsbPort(info)) => Some(UsbIds {
                vid: info.vid,
                pid: info.pid,
                serial_number: info.serial_number,
                manufacturer: info.manufacturer,
                product: info.product,
            }),
            _ => None,
        }
    })
}
