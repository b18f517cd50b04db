//! `espfleet sim`: run a simulated ESP32 / ESP32-C3 on a pseudo-terminal until interrupted.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use espfleet_compiler::target::{Chip, FlashSize};
use espfleet_sim::protocol::op;
use espfleet_sim::{
    ByteFault, ByteFaultKind, Direction, Pacing, ReportedChip, SimConfig, SimEvent, Simulator,
    Stall, StubReboot, Trigger,
};
use miette::{IntoDiagnostic as _, WrapErr as _};

use super::GlobalOpts;

/// Arguments of `espfleet sim`.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "\
Prints the pty path (one line on stdout) and runs until Ctrl-C or SIGTERM. The board starts in \
the ROM loader. A pty has no DTR/RTS lines, so tell clients not to reset:

  esptool:  python -m esptool --chip esp32 --port \"$PORT\" --before no-reset --after no-reset \\
              write-flash 0x10000 app.bin
  espflash: ResetBeforeOperation::NoReset with ResetAfterOperation::NoReset or NoResetNoStub

Example:
  espfleet sim --chip esp32c3 --flash-file board.bin > /tmp/sim-port &
  sleep 0.5; PORT=$(cat /tmp/sim-port)     # or --link /tmp/esp32c3 for a fixed name

TRIGGER is bytes:N (after N bytes from the host), command:N (the Nth command) or OPCODE:N \
(the Nth command with that opcode, by name such as FLASH_DATA or as hex such as 0x03).
BYTES is FIRST or FIRST/EVERY: byte index FIRST (from 0), then every EVERY bytes.")]
pub struct SimArgs {
    /// Chip to simulate.
    #[arg(long, value_parser = parse_chip)]
    pub chip: Chip,
    /// Size of the flash array (1MB to 128MB).
    #[arg(long, default_value = "4MB", value_parser = parse_flash_size)]
    pub flash_size: FlashSize,
    /// eFuse MAC address, e.g. 24:0a:c4:12:34:56 (default: a fixed Espressif address).
    #[arg(long, value_parser = parse_mac)]
    pub mac: Option<[u8; 6]>,
    /// Keep the flash in this file: loaded at start (missing = erased chip), saved after each
    /// write, when idle and on exit.
    #[arg(long, value_name = "FILE")]
    pub flash_file: Option<PathBuf>,
    /// Also create a symlink to the pty at this path (removed on exit).
    #[arg(long, value_name = "PATH")]
    pub link: Option<PathBuf>,
    /// Pace bytes at the emulated baud rate (8N1, both directions), like a real UART.
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub baud_pacing: OnOff,
    /// Multiplier for flash erase/program times (1 = a typical SPI NOR chip, 0 = instant).
    #[arg(long, default_value_t = 1.0, value_name = "SCALE")]
    pub flash_timing: f64,
    /// What the stub does on FLASH_END with "reboot": go back to the ROM loader, or stay.
    #[arg(long, value_enum, default_value_t = RebootTo::Rom)]
    pub stub_reboot: RebootTo,
    /// Accept frames even when the host's line speed differs from the device's.
    #[arg(long)]
    pub no_baud_check: bool,
    /// Serve the pty master given as standard input instead of making a new pty (umockdev: pass
    /// the fd from `Testbed.get_dev_fd()` as the child's stdin). The slave path is printed as usual.
    #[arg(long)]
    pub master_from_stdin: bool,

    /// Fault: drop bytes from the host (BYTES).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Faults")]
    pub drop_rx: Vec<(u64, Option<u64>)>,
    /// Fault: corrupt (flip the low bit of) bytes from the host (BYTES).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Faults")]
    pub corrupt_rx: Vec<(u64, Option<u64>)>,
    /// Fault: drop bytes sent to the host (BYTES).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Faults")]
    pub drop_tx: Vec<(u64, Option<u64>)>,
    /// Fault: corrupt bytes sent to the host (BYTES).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes, help_heading = "Faults")]
    pub corrupt_tx: Vec<(u64, Option<u64>)>,
    /// Fault: stop answering at TRIGGER, for --stall-ms (default: until exit).
    #[arg(long, value_name = "TRIGGER", value_parser = parse_trigger, help_heading = "Faults")]
    pub stall_at: Option<Trigger>,
    /// Length of the stall in milliseconds.
    #[arg(
        long,
        value_name = "MS",
        requires = "stall_at",
        help_heading = "Faults"
    )]
    pub stall_ms: Option<u64>,
    /// Fault: vanish at TRIGGER (the pty hangs up and its path disappears), then exit.
    #[arg(long, value_name = "TRIGGER", value_parser = parse_trigger, help_heading = "Faults")]
    pub unplug_at: Option<Trigger>,
    /// Fault: identify as another chip: esp32, esp32c3, or a magic register value (0x...).
    #[arg(long, value_name = "CHIP|MAGIC", value_parser = parse_reported_chip, help_heading = "Faults")]
    pub report_chip: Option<ReportedChip>,
    /// Fault: the flash's JEDEC ID claims this size while the array has --flash-size
    /// (a mislabelled module; addresses wrap around).
    #[arg(long, value_name = "SIZE", value_parser = parse_flash_size, help_heading = "Faults")]
    pub jedec_flash_size: Option<FlashSize>,
}

/// A yes/no switch spelled `on`/`off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Where the stub goes on a reboot request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RebootTo {
    /// Back to the ROM loader at 115200 (esptool's model).
    Rom,
    /// Stay in the stub (esp-flasher-stub v1.1).
    Stay,
}

impl SimArgs {
    /// The library configuration these arguments describe.
    pub fn to_config(&self) -> SimConfig {
        let mut c = SimConfig::new(self.chip);
        c.flash_size = self.flash_size;
        c.mac = self.mac;
        c.flash_file.clone_from(&self.flash_file);
        c.link.clone_from(&self.link);
        c.pacing = Pacing {
            uart: self.baud_pacing == OnOff::On,
            flash_time_scale: self.flash_timing.max(0.0),
            ..Pacing::REALISTIC
        };
        c.stub_reboot = match self.stub_reboot {
            RebootTo::Rom => StubReboot::ToRomLoader,
            RebootTo::Stay => StubReboot::StayInStub,
        };
        c.detect_baud_mismatch = !self.no_baud_check;
        let groups = [
            (&self.drop_rx, Direction::ToDevice, ByteFaultKind::Drop),
            (
                &self.corrupt_rx,
                Direction::ToDevice,
                ByteFaultKind::Corrupt,
            ),
            (&self.drop_tx, Direction::ToHost, ByteFaultKind::Drop),
            (&self.corrupt_tx, Direction::ToHost, ByteFaultKind::Corrupt),
        ];
        for (list, direction, kind) in groups {
            for &(first, every) in list {
                c.faults.bytes.push(ByteFault {
                    direction,
                    kind,
                    first,
                    every,
                });
            }
        }
        c.faults.stall = self.stall_at.map(|trigger| Stall {
            trigger,
            duration: self.stall_ms.map(Duration::from_millis),
        });
        c.faults.unplug = self.unplug_at;
        c.faults.report_chip = self.report_chip;
        c.faults.jedec_flash_size = self.jedec_flash_size;
        c
    }
}

/// Runs `espfleet sim`.
#[allow(clippy::needless_pass_by_value)] // the signature every subcommand's `run` has
pub fn run(args: SimArgs, global: &GlobalOpts) -> miette::Result<ExitCode> {
    let mut config = args.to_config();
    config.on_event = Some(Arc::new(log_event));
    let sim = if args.master_from_stdin {
        use std::os::fd::AsFd as _;
        let master = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .into_diagnostic()?;
        Simulator::spawn_on_master(master, config)?
    } else {
        Simulator::spawn(config)?
    };
    // The path is the only thing on stdout, so `PORT=$(...)`-style capture works.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{}", sim.link().unwrap_or(sim.path()).display()).into_diagnostic()?;
    stdout.flush().into_diagnostic()?;
    if !global.quiet {
        eprintln!(
            "espfleet sim: simulated {} ({} flash) in the ROM loader on {}; Ctrl-C to stop.\n\
             Try: python -m esptool --port {} --before no-reset --after no-reset flash-id",
            args.chip,
            args.flash_size.name(),
            sim.path().display(),
            sim.path().display(),
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .into_diagnostic()
            .wrap_err("installing the signal handler")?;
    }
    while !stop.load(Ordering::SeqCst) && sim.is_running() {
        std::thread::sleep(Duration::from_millis(50));
    }
    let unplugged = sim.is_unplugged();
    sim.stop()?;
    if unplugged && !global.quiet {
        eprintln!("espfleet sim: the board was unplugged (fault injection); exiting");
    }
    Ok(ExitCode::SUCCESS)
}

fn log_event(event: &SimEvent) {
    match event {
        SimEvent::Command { name, op, state } => tracing::debug!("{state:?}: {name} ({op:#04x})"),
        SimEvent::StateChanged { from, to } => tracing::info!("loader state {from:?} -> {to:?}"),
        SimEvent::BaudChanged { baud } => tracing::info!("device UART now {baud} baud"),
        SimEvent::FlashSaveFailed { path, message } => {
            tracing::error!("saving {}: {message}", path.display());
        }
        SimEvent::FlashSaved { path } => tracing::debug!("saved flash to {}", path.display()),
        other => tracing::info!("{other:?}"),
    }
}

fn parse_chip(s: &str) -> Result<Chip, String> {
    s.parse()
        .map_err(|e: espfleet_compiler::target::UnknownChip| e.to_string())
}

fn parse_flash_size(s: &str) -> Result<FlashSize, String> {
    FlashSize::parse(s)
        .ok_or_else(|| format!("`{s}` is not a flash size (1MB, 2MB, 4MB, ... 128MB)"))
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split([':', '-']).collect();
    let bytes: Option<Vec<u8>> = parts
        .iter()
        .map(|p| u8::from_str_radix(p, 16).ok().filter(|_| p.len() == 2))
        .collect();
    match bytes {
        Some(b) if b.len() == 6 => Ok([b[0], b[1], b[2], b[3], b[4], b[5]]),
        _ => Err(format!("`{s}` is not a MAC address like 24:0a:c4:12:34:56")),
    }
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|_| format!("`{s}` is not a number"))
}

fn parse_bytes(s: &str) -> Result<(u64, Option<u64>), String> {
    match s.split_once('/') {
        Some((first, every)) => Ok((
            parse_u64(first)?,
            Some(parse_u64(every)?).filter(|&e| e > 0),
        )),
        None => Ok((parse_u64(s)?, None)),
    }
}

const OPCODES: [u8; 22] = [
    op::FLASH_BEGIN,
    op::FLASH_DATA,
    op::FLASH_END,
    op::MEM_BEGIN,
    op::MEM_END,
    op::MEM_DATA,
    op::SYNC,
    op::WRITE_REG,
    op::READ_REG,
    op::SPI_SET_PARAMS,
    op::SPI_ATTACH,
    op::READ_FLASH_SLOW,
    op::CHANGE_BAUDRATE,
    op::FLASH_DEFL_BEGIN,
    op::FLASH_DEFL_DATA,
    op::FLASH_DEFL_END,
    op::SPI_FLASH_MD5,
    op::GET_SECURITY_INFO,
    op::ERASE_FLASH,
    op::ERASE_REGION,
    op::READ_FLASH,
    op::RUN_USER_CODE,
];

fn parse_trigger(s: &str) -> Result<Trigger, String> {
    let (kind, n) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("`{s}`: expected bytes:N, command:N or OPCODE:N"))?;
    let n = parse_u64(n)?;
    match kind.to_ascii_lowercase().as_str() {
        "bytes" => Ok(Trigger::RxBytes(n)),
        "command" => Ok(Trigger::Command(n)),
        name => {
            let opcode = match name.strip_prefix("0x") {
                Some(hex) => u8::from_str_radix(hex, 16).ok(),
                None => OPCODES
                    .iter()
                    .copied()
                    .find(|&o| op::name(o).eq_ignore_ascii_case(name)),
            };
            let opcode = opcode
                .ok_or_else(|| format!("`{kind}` is not an opcode (FLASH_DATA, 0x03, ...)"))?;
            Ok(Trigger::Opcode { op: opcode, nth: n })
        }
    }
}

fn parse_reported_chip(s: &str) -> Result<ReportedChip, String> {
    if let Ok(chip) = s.parse::<Chip>() {
        return Ok(ReportedChip::Chip(chip));
    }
    let magic = parse_u64(s)?;
    u32::try_from(magic)
        .map(ReportedChip::Magic)
        .map_err(|_| format!("`{s}` does not fit in 32 bits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_and_byte_specs_parse() {
        assert_eq!(parse_trigger("bytes:100"), Ok(Trigger::RxBytes(100)));
        assert_eq!(parse_trigger("command:7"), Ok(Trigger::Command(7)));
        assert_eq!(
            parse_trigger("flash_data:3"),
            Ok(Trigger::Opcode { op: 0x03, nth: 3 })
        );
        assert_eq!(
            parse_trigger("0x11:2"),
            Ok(Trigger::Opcode { op: 0x11, nth: 2 })
        );
        assert!(parse_trigger("nonsense:2").is_err());
        assert_eq!(parse_bytes("10/100"), Ok((10, Some(100))));
        assert_eq!(parse_bytes("0x10"), Ok((16, None)));
        assert_eq!(
            parse_mac("24:0a:c4:12:34:56"),
            Ok([0x24, 0x0A, 0xC4, 0x12, 0x34, 0x56])
        );
        assert!(parse_mac("24:0a:c4").is_err());
        assert_eq!(
            parse_reported_chip("0x12345678"),
            Ok(ReportedChip::Magic(0x1234_5678))
        );
    }
}
