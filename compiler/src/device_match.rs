//! Match rules: which manifest a plugged-in board gets (manifest `match` nodes).
//!
//! A manifest may have several `match` nodes; a board matches the manifest when it satisfies
//! every property of at least one node. The most specific satisfied node wins across manifests.

use serde::{Deserialize, Serialize};

use crate::target::Chip;

/// One `match` node of a manifest: every property that is set must hold.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct MatchRule {
    /// USB vendor id of the USB-serial bridge (`0x10c4`).
    pub vid: Option<u16>,
    /// USB product id of the USB-serial bridge (`0xea60`).
    pub pid: Option<u16>,
    /// USB serial number string of the bridge.
    pub serial: Option<String>,
    /// Device node as the daemon sees it (`/dev/ttyUSB0`, `/dev/espfleet/slot-3`).
    pub port: Option<String>,
    /// USB topology path of the port (`1-1.3`): a physical bench slot.
    pub usb_path: Option<String>,
    /// Chip family; known only after connecting to the ROM bootloader.
    pub chip: Option<Chip>,
    /// Factory MAC address (base MAC from eFuse); known only after connecting.
    pub mac: Option<[u8; 6]>,
}

// ---------------------------------------------------------------------------------------------
// Matching logic: which manifest a board gets.
//
// Matching runs in two phases because a board tells us different things at different times:
//
// 1. **Before connecting** only the USB facts udev reports are known (VID/PID, serial number,
//    device node and its links, USB topology path). A board whose USB facts satisfy no rule of
//    any manifest is never opened: it is left alone.
// 2. **After connecting** to the ROM bootloader (which reads, never writes) the chip and the
//    factory MAC are known too. Every rule is then checked in full, the manifest's own chip is
//    required to be the board's chip, and the most specific satisfied rule wins. Only then is
//    anything written.
//
// Specificity is a weight per property that is set, summed over the rule. The weights make a
// property that names one board outrank any combination of properties that name many:
//
// | property | weight | names |
// |---|---|---|
// | `mac` | 64 | one chip |
// | `serial` | 32 | one USB bridge |
// | `usb_path`, `port` | 16 each | one bench slot |
// | `pid` | 4 | one bridge model |
// | `vid` | 2 | one bridge vendor |
// | `chip` | 1 | one chip family |
//
// When the best satisfied rules of two or more manifests have the same weight, the board is
// left alone: guessing between two manifests could flash the wrong firmware.
// ---------------------------------------------------------------------------------------------

use std::fmt;

/// What udev tells us about a board before anyone talks to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsbFacts {
    /// USB vendor id of the bridge.
    pub vid: Option<u16>,
    /// USB product id of the bridge.
    pub pid: Option<u16>,
    /// USB serial number string of the bridge; cheap CH340s have none.
    pub serial: Option<String>,
    /// Every name the port is known by: the device node and its links (`/dev/ttyUSB0`,
    /// `/dev/espfleet/1-1.3`, `/dev/serial/by-path/...`). A `port` rule matches any of them.
    pub ports: Vec<String>,
    /// USB topology path of the bridge (`1-1.3`): the bench slot.
    pub usb_path: Option<String>,
}

/// What the ROM bootloader tells us once connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChipFacts {
    /// The chip family the bootloader reported.
    pub chip: Chip,
    /// The factory (base) MAC address from eFuse.
    pub mac: [u8; 6],
}

/// The first property of a rule a board does not satisfy, for the "left alone because" log line.
///
/// In every variant `want` is what the rule asks for and `got` what the board has.
#[allow(missing_docs)] // the fields are described once, above
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The bridge's VID is not the rule's (`None` when udev reported none).
    Vid { want: u16, got: Option<u16> },
    /// The bridge's PID is not the rule's.
    Pid { want: u16, got: Option<u16> },
    /// The bridge's USB serial number is not the rule's.
    Serial { want: String, got: Option<String> },
    /// No name of the port is the rule's port.
    Port { want: String },
    /// The USB topology path is not the rule's.
    UsbPath { want: String, got: Option<String> },
    /// The chip is not the rule's.
    Chip { want: Chip, got: Chip },
    /// The MAC is not the rule's.
    Mac { want: [u8; 6], got: [u8; 6] },
    /// The manifest builds for another chip than the board's.
    ManifestChip { want: Chip, got: Chip },
    /// The manifest has no `match` node at all, so it matches no board.
    NoRules,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opt<T: fmt::Display>(v: Option<T>) -> String {
            v.map_or_else(|| "none".to_owned(), |v| v.to_string())
        }
        match self {
            Mismatch::Vid { want, got } => write!(
                f,
                "vid {want:#06x} wanted, board has {}",
                opt(got.map(|v| format!("{v:#06x}")))
            ),
            Mismatch::Pid { want, got } => write!(
                f,
                "pid {want:#06x} wanted, board has {}",
                opt(got.map(|v| format!("{v:#06x}")))
            ),
            Mismatch::Serial { want, got } => write!(
                f,
                "serial {want:?} wanted, board has {}",
                opt(got.as_ref().map(|s| format!("{s:?}")))
            ),
            Mismatch::Port { want } => write!(f, "port {want} wanted, board is not on it"),
            Mismatch::UsbPath { want, got } => write!(
                f,
                "usb path {want} wanted, board is at {}",
                opt(got.as_deref())
            ),
            Mismatch::Chip { want, got } => write!(f, "chip {want} wanted, board is {got}"),
            Mismatch::Mac { want, got } => write!(
                f,
                "mac {} wanted, board has {}",
                format_mac(*want),
                format_mac(*got)
            ),
            Mismatch::ManifestChip { want, got } => {
                write!(f, "manifest builds for {want}, board is {got}")
            }
            Mismatch::NoRules => f.write_str("manifest has no match rules"),
        }
    }
}

/// Formats a MAC the usual way (`84:f7:03:12:34:56`).
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `84:f7:03:12:34:56` or `84-F7-03-12-34-56` (any case).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in &mut out {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

impl MatchRule {
    /// The rule's weight in "most specific wins" (see the table at the top of this section).
    pub fn specificity(&self) -> u32 {
        let w = |set: bool, weight: u32| if set { weight } else { 0 };
        w(self.mac.is_some(), 64)
            + w(self.serial.is_some(), 32)
            + w(self.usb_path.is_some(), 16)
            + w(self.port.is_some(), 16)
            + w(self.pid.is_some(), 4)
            + w(self.vid.is_some(), 2)
            + w(self.chip.is_some(), 1)
    }

    /// Whether the rule needs facts only a connection gives (chip or MAC).
    pub fn needs_chip_facts(&self) -> bool {
        self.chip.is_some() || self.mac.is_some()
    }

    /// Checks the USB properties only; `Ok` when every USB property that is set holds.
    pub fn check_usb(&self, usb: &UsbFacts) -> Result<(), Mismatch> {
        if let Some(want) = self.vid {
            if usb.vid != Some(want) {
                return Err(Mismatch::Vid { want, got: usb.vid });
            }
        }
        if let Some(want) = self.pid {
            if usb.pid != Some(want) {
                return Err(Mismatch::Pid { want, got: usb.pid });
            }
        }
        if let Some(want) = &self.serial {
            if !usb
                .serial
                .as_deref()
                .is_some_and(|got| got.eq_ignore_ascii_case(want))
            {
                return Err(Mismatch::Serial {
                    want: want.clone(),
                    got: usb.serial.clone(),
                });
            }
        }
        if let Some(want) = &self.port {
            if !usb.ports.iter().any(|p| p == want) {
                return Err(Mismatch::Port { want: want.clone() });
            }
        }
        if let Some(want) = &self.usb_path {
            if usb.usb_path.as_deref() != Some(want.as_str()) {
                return Err(Mismatch::UsbPath {
                    want: want.clone(),
                    got: usb.usb_path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Checks every property, with the facts a connection gave.
    pub fn check(&self, usb: &UsbFacts, facts: &ChipFacts) -> Result<(), Mismatch> {
        self.check_usb(usb)?;
        if let Some(want) = self.chip {
            if want != facts.chip {
                return Err(Mismatch::Chip {
                    want,
                    got: facts.chip,
                });
            }
        }
        if let Some(want) = self.mac {
            if want != facts.mac {
                return Err(Mismatch::Mac {
                    want,
                    got: facts.mac,
                });
            }
        }
        Ok(())
    }
}

/// One manifest as matching sees it: a key the caller chooses (a file name), the chip it
/// builds for, and its rules.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a, K> {
    /// The caller's name for the manifest.
    pub key: K,
    /// The chip the manifest builds for.
    pub chip: Chip,
    /// The manifest's `match` rules.
    pub rules: &'a [MatchRule],
}

/// Why one manifest does not take a board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<K> {
    /// The manifest.
    pub key: K,
    /// The first unmet property of its closest rule.
    pub why: Mismatch,
}

/// The outcome of matching a board against every manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<K> {
    /// One manifest's rule is the most specific satisfied rule.
    Matched {
        /// The manifest.
        key: K,
        /// Index of the winning rule among the manifest's rules.
        rule: usize,
        /// Its weight.
        specificity: u32,
    },
    /// Before connecting: some manifest may take the board once chip and MAC are known.
    Connect,
    /// No manifest takes the board; one rejection per manifest says why.
    NoMatch(Vec<Rejection<K>>),
    /// Two or more manifests match with the same weight; the board is left alone.
    Tie {
        /// The tied manifests.
        keys: Vec<K>,
        /// The shared weight.
        specificity: u32,
    },
}

/// The closest rule's mismatch: the one that failed on the property checked last, which is a
/// decent stand-in for "nearly matched".
fn best_mismatch(
    rules: &[MatchRule],
    mut check: impl FnMut(&MatchRule) -> Result<(), Mismatch>,
) -> Result<(usize, u32), Mismatch> {
    let mut best: Option<(usize, u32)> = None;
    let mut first_err = None;
    for (i, rule) in rules.iter().enumerate() {
        match check(rule) {
            Ok(()) => {
                let s = rule.specificity();
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((i, s));
                }
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    best.ok_or_else(|| first_err.unwrap_or(Mismatch::NoRules))
}

/// Phase 1, with USB facts only: `Connect` when some manifest may take the board, else
/// `NoMatch` with the reasons. Never `Matched`: the manifest's chip must be checked first.
pub fn before_connect<K: Clone>(candidates: &[Candidate<'_, K>], usb: &UsbFacts) -> Decision<K> {
    let mut rejections = Vec::new();
    for c in candidates {
        match best_mismatch(c.rules, |r| r.check_usb(usb)) {
            Ok(_) => return Decision::Connect,
            Err(why) => rejections.push(Rejection {
                key: c.key.clone(),
                why,
            }),
        }
    }
    Decision::NoMatch(rejections)
}

/// Phase 2, with every fact: the most specific satisfied rule wins; a tie or no match leaves
/// the board alone.
pub fn after_connect<K: Clone>(
    candidates: &[Candidate<'_, K>],
    usb: &UsbFacts,
    facts: &ChipFacts,
) -> Decision<K> {
    let mut rejections = Vec::new();
    let mut matched: Vec<(K, usize, u32)> = Vec::new();
    for c in candidates {
        let result = if c.chip == facts.chip {
            best_mismatch(c.rules, |r| r.check(usb, facts))
        } else {
            Err(Mismatch::ManifestChip {
                want: c.chip,
                got: facts.chip,
            })
        };
        match result {
            Ok((rule, specificity)) => matched.push((c.key.clone(), rule, specificity)),
            Err(why) => rejections.push(Rejection {
                key: c.key.clone(),
                why,
            }),
        }
    }
    let Some(top) = matched.iter().map(|m| m.2).max() else {
        return Decision::NoMatch(rejections);
    };
    let mut best: Vec<_> = matched.into_iter().filter(|m| m.2 == top).collect();
    if best.len() > 1 {
        return Decision::Tie {
            keys: best.into_iter().map(|m| m.0).collect(),
            specificity: top,
        };
    }
    let (key, rule, specificity) = best.remove(0);
    Decision::Matched {
        key,
        rule,
        specificity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x84, 0xf7, 0x03, 0x12, 0x34, 0x56];

    fn cp2102(serial: &str, path: &str) -> UsbFacts {
        UsbFacts {
            vid: Some(0x10c4),
            pid: Some(0xea60),
            serial: Some(serial.to_owned()),
            ports: vec!["/dev/ttyUSB0".to_owned(), format!("/dev/espfleet/{path}")],
            usb_path: Some(path.to_owned()),
        }
    }
    fn c3() -> ChipFacts {
        ChipFacts {
            chip: Chip::Esp32c3,
            mac: MAC,
        }
    }
    fn vidpid() -> MatchRule {
        MatchRule {
            vid: Some(0x10c4),
            pid: Some(0xea60),
            ..MatchRule::default()
        }
    }

    #[test]
    fn specificity_follows_the_documented_weights() {
        assert_eq!(MatchRule::default().specificity(), 0);
        assert_eq!(vidpid().specificity(), 6);
        let slot = MatchRule {
            usb_path: Some("1-1.3".into()),
            ..MatchRule::default()
        };
        assert_eq!(slot.specificity(), 16);
        // A MAC outranks serial + slot + vid/pid + chip together.
        let everything_but_mac = MatchRule {
            vid: Some(1),
            pid: Some(2),
            serial: Some("s".into()),
            usb_path: Some("p".into()),
            port: None,
            chip: Some(Chip::Esp32),
            mac: None,
        };
        let mac_only = MatchRule {
            mac: Some(MAC),
            ..MatchRule::default()
        };
        assert!(mac_only.specificity() > everything_but_mac.specificity() - 16);
        assert!(
            MatchRule {
                serial: Some("s".into()),
                ..MatchRule::default()
            }
            .specificity()
                > 16 + 6 + 1
        );
    }

    #[test]
    fn usb_properties_are_checked_one_by_one() {
        let usb = cp2102("7c8e2f0a1b2c", "1-1.3");
        assert_eq!(vidpid().check_usb(&usb), Ok(()));
        let ch340 = MatchRule {
            vid: Some(0x1a86),
            ..MatchRule::default()
        };
        assert_eq!(
            ch340.check_usb(&usb),
            Err(Mismatch::Vid {
                want: 0x1a86,
                got: Some(0x10c4)
            })
        );
        let serial = MatchRule {
            serial: Some("7C8E2F0A1B2C".into()),
            ..MatchRule::default()
        };
        assert_eq!(
            serial.check_usb(&usb),
            Ok(()),
            "USB serials compare case-insensitively"
        );
        let port = MatchRule {
            port: Some("/dev/espfleet/1-1.3".into()),
            ..MatchRule::default()
        };
        assert_eq!(
            port.check_usb(&usb),
            Ok(()),
            "a port rule matches any link of the node"
        );
        let other_slot = MatchRule {
            usb_path: Some("1-1.4".into()),
            ..MatchRule::default()
        };
        assert_eq!(
            other_slot.check_usb(&usb),
            Err(Mismatch::UsbPath {
                want: "1-1.4".into(),
                got: Some("1-1.3".into())
            })
        );
        let no_serial = UsbFacts {
            serial: None,
            ..usb
        };
        assert!(matches!(
            MatchRule {
                serial: Some("x".into()),
                ..MatchRule::default()
            }
            .check_usb(&no_serial),
            Err(Mismatch::Serial { got: None, .. })
        ));
    }

    #[test]
    fn chip_and_mac_are_checked_after_connecting() {
        let usb = cp2102("s", "1-1");
        let rule = MatchRule {
            mac: Some(MAC),
            ..vidpid()
        };
        assert!(rule.needs_chip_facts());
        assert_eq!(rule.check_usb(&usb), Ok(()));
        assert_eq!(rule.check(&usb, &c3()), Ok(()));
        let other = ChipFacts {
            chip: Chip::Esp32c3,
            mac: [0; 6],
        };
        assert!(matches!(
            rule.check(&usb, &other),
            Err(Mismatch::Mac { .. })
        ));
        let esp32 = MatchRule {
            chip: Some(Chip::Esp32),
            ..MatchRule::default()
        };
        assert_eq!(
            esp32.check(&usb, &c3()),
            Err(Mismatch::Chip {
                want: Chip::Esp32,
                got: Chip::Esp32c3
            })
        );
    }

    #[test]
    fn most_specific_manifest_wins() {
        let generic = [vidpid()];
        let slot = [MatchRule {
            usb_path: Some("1-1.3".into()),
            ..MatchRule::default()
        }];
        let by_mac = [MatchRule {
            mac: Some(MAC),
            ..MatchRule::default()
        }];
        let usb = cp2102("s", "1-1.3");
        let cands = [
            Candidate {
                key: "generic",
                chip: Chip::Esp32c3,
                rules: &generic,
            },
            Candidate {
                key: "slot",
                chip: Chip::Esp32c3,
                rules: &slot,
            },
        ];
        assert_eq!(before_connect(&cands, &usb), Decision::Connect);
        assert_eq!(
            after_connect(&cands, &usb, &c3()),
            Decision::Matched {
                key: "slot",
                rule: 0,
                specificity: 16
            }
        );
        let cands = [
            cands[0],
            cands[1],
            Candidate {
                key: "mac",
                chip: Chip::Esp32c3,
                rules: &by_mac,
            },
        ];
        assert_eq!(
            after_connect(&cands, &usb, &c3()),
            Decision::Matched {
                key: "mac",
                rule: 0,
                specificity: 64
            }
        );
        // Another board in another slot: the generic manifest takes it.
        let usb = cp2102("s", "1-1.4");
        let other = ChipFacts {
            chip: Chip::Esp32c3,
            mac: [2; 6],
        };
        assert_eq!(
            after_connect(&cands, &usb, &other),
            Decision::Matched {
                key: "generic",
                rule: 0,
                specificity: 6
            }
        );
    }

    #[test]
    fn best_rule_within_a_manifest_counts() {
        let rules = [
            vidpid(),
            MatchRule {
                serial: Some("abc".into()),
                ..MatchRule::default()
            },
        ];
        let slot = [MatchRule {
            usb_path: Some("1-1".into()),
            ..MatchRule::default()
        }];
        let cands = [
            Candidate {
                key: "two-rules",
                chip: Chip::Esp32c3,
                rules: &rules,
            },
            Candidate {
                key: "slot",
                chip: Chip::Esp32c3,
                rules: &slot,
            },
        ];
        let decision = after_connect(&cands, &cp2102("abc", "1-1"), &c3());
        assert_eq!(
            decision,
            Decision::Matched {
                key: "two-rules",
                rule: 1,
                specificity: 32
            }
        );
    }

    #[test]
    fn a_tie_leaves_the_board_alone() {
        let a = [vidpid()];
        let b = [vidpid()];
        let cands = [
            Candidate {
                key: "a.kdl",
                chip: Chip::Esp32c3,
                rules: &a,
            },
            Candidate {
                key: "b.kdl",
                chip: Chip::Esp32c3,
                rules: &b,
            },
        ];
        assert_eq!(
            after_connect(&cands, &cp2102("s", "1-1"), &c3()),
            Decision::Tie {
                keys: vec!["a.kdl", "b.kdl"],
                specificity: 6
            }
        );
    }

    #[test]
    fn the_manifest_chip_breaks_what_would_be_a_tie() {
        let a = [vidpid()];
        let b = [vidpid()];
        let cands = [
            Candidate {
                key: "esp32.kdl",
                chip: Chip::Esp32,
                rules: &a,
            },
            Candidate {
                key: "c3.kdl",
                chip: Chip::Esp32c3,
                rules: &b,
            },
        ];
        assert_eq!(
            after_connect(&cands, &cp2102("s", "1-1"), &c3()),
            Decision::Matched {
                key: "c3.kdl",
                rule: 0,
                specificity: 6
            }
        );
    }

    #[test]
    fn no_match_says_why_and_is_decided_before_connecting() {
        let ch340 = [MatchRule {
            vid: Some(0x1a86),
            pid: Some(0x7523),
            ..MatchRule::default()
        }];
        let none: [MatchRule; 0] = [];
        let cands = [
            Candidate {
                key: "ch340.kdl",
                chip: Chip::Esp32,
                rules: &ch340,
            },
            Candidate {
                key: "empty.kdl",
                chip: Chip::Esp32,
                rules: &none,
            },
        ];
        let decision = before_connect(&cands, &cp2102("s", "1-1"));
        let Decision::NoMatch(why) = decision else {
            panic!("{decision:?}")
        };
        assert_eq!(
            why[0].why.to_string(),
            "vid 0x1a86 wanted, board has 0x10c4"
        );
        assert_eq!(why[1].why, Mismatch::NoRules);
        assert_eq!(
            before_connect::<&str>(&[], &UsbFacts::default()),
            Decision::NoMatch(vec![])
        );
    }

    #[test]
    fn mac_round_trips() {
        assert_eq!(parse_mac("84:F7:03:12:34:56"), Some(MAC));
        assert_eq!(parse_mac("84-f7-03-12-34-56"), Some(MAC));
        assert_eq!(format_mac(MAC), "84:f7:03:12:34:56");
        assert_eq!(parse_mac("84:f7:03:12:34"), None);
        assert_eq!(parse_mac("84:f7:03:12:34:56:78"), None);
        assert_eq!(parse_mac("84:f7:03:12:34:5"), None);
    }
}
