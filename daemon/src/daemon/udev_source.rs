//! The production device source: a libudev monitor for `tty` devices with a USB parent.
//!
//! The monitor is created first and the enumeration done second, so no plug-in falls between
//! the two; the loop dedupes by sysfs path. Properties come from udev's database (`ID_*`) when
//! udevd has run, else from the parent `usb_device`'s sysfs attributes (a container with /dev
//! passed in has no udevd). Nothing is filtered here beyond "has a USB parent": which bridges
//! count is the loop's decision, because manifests can name bridges of their own.

use std::ffi::OsStr;
use std::sync::mpsc;
use std::time::Duration;

use espfleet_compiler::device_match::UsbFacts;

use super::device::{DeviceEvent, DeviceSource, SerialPort};
use super::event::Event;

/// Watches udev. See the module docs.
#[derive(Debug, Default)]
pub struct UdevSource;

impl DeviceSource for UdevSource {
    fn name(&self) -> &'static str {
        "udev"
    }

    fn run(self: Box<Self>, events: mpsc::Sender<Event>) {
        let error = match watch(&events) {
            Ok(()) => return, // the loop has gone away
            Err(e) => e.to_string(),
        };
        let _ = events.send(Event::SourceDied {
            source: "udev",
            error,
        });
    }
}

fn watch(events: &mpsc::Sender<Event>) -> std::io::Result<()> {
    let mut socket = udev::MonitorBuilder::new()?
        .match_subsystem("tty")?
        .listen()?;
    let mut poll = mio::Poll::new()?;
    poll.registry()
        .register(&mut socket, mio::Token(0), mio::Interest::READABLE)?;

    let mut enumerator = udev::Enumerator::new()?;
    enumerator.match_subsystem("tty")?;
    // Not `match_is_initialized()`: without udevd (or under umockdev) nothing is "initialized".
    for device in enumerator.scan_devices()? {
        if let Some(port) = describe(&device) {
            if events
                .send(Event::Device(DeviceEvent::Present(port)))
                .is_err()
            {
                return Ok(());
            }
        }
    }

    if events.send(Event::DevicesEnumerated).is_err() {
        return Ok(());
    }
    let mut ready = mio::Events::with_capacity(16);
    loop {
        match poll.poll(&mut ready, Some(Duration::from_secs(1))) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for event in socket.iter() {
            let converted = match event.event_type() {
                udev::EventType::Add => describe(&event).map(DeviceEvent::Added),
                udev::EventType::Remove => Some(DeviceEvent::Removed {
                    syspath: event.syspath().to_owned(),
                    devnode: event.devnode().map(ToOwned::to_owned),
                }),
                _ => None,
            };
            if let Some(ev) = converted {
                if events.send(Event::Device(ev)).is_err() {
                    return Ok(());
                }
            }
        }
    }
}

fn text(v: Option<&OsStr>) -> Option<String> {
    v.and_then(OsStr::to_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn hex16(v: Option<String>) -> Option<u16> {
    v.and_then(|s| u16::from_str_radix(&s, 16).ok())
}

/// Converts a udev device into plain data, or `None` when it is not a USB serial port.
pub fn describe(device: &udev::Device) -> Option<SerialPort> {
    let devnode = device.devnode()?.to_owned();
    let usb = device
        .parent_with_subsystem_devtype("usb", "usb_device")
        .ok()
        .flatten();
    if usb.is_none() && device.property_value("ID_BUS").is_none_or(|b| b != "usb") {
        return None;
    }
    let prop = |k: &str| text(device.property_value(k));
    let attr = |k: &str| usb.as_ref().and_then(|u| text(u.attribute_value(k)));
    let mut ports = vec![devnode.display().to_string()];
    if let Some(links) = prop("DEVLINKS") {
        ports.extend(links.split_whitespace().map(str::to_owned));
    }
    Some(SerialPort {
        syspath: device.syspath().to_owned(),
        devnode,
        usb: UsbFacts {
            vid: hex16(prop("ID_VENDOR_ID").or_else(|| attr("idVendor"))),
            pid: hex16(prop("ID_MODEL_ID").or_else(|| attr("idProduct"))),
            serial: prop("ID_SERIAL_SHORT").or_else(|| attr("serial")),
            ports,
            usb_path: usb.as_ref().and_then(|u| text(Some(u.sysname()))),
        },
    })
}
