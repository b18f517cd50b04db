//! A `gatts "table.csv"` file checked row by row and column by column before it is used
//! ([`crate::esp_at::ble_data::check`]); each problem points at the `gatts` node and names
//! the line and column.

use std::path::Path;

use super::Resolver;
use crate::esp_at::ble_data::check;
use crate::manifest::error::{ErrorKind, ManifestError};
use crate::manifest::source::Place;

/// Problems reported per file at most (then a count).
const MAX_REPORTED: usize = 20;

impl Resolver<'_> {
    /// `None` (after reporting) when the table has problems.
    pub(super) fn check_gatts_rows(
        &mut self,
        path: &Path,
        bytes: &[u8],
        place: &Place,
    ) -> Option<()> {
        let Ok(text) = std::str::from_utf8(bytes) else {
            return Some(()); // reported by the reader
        };
        let problems = check::check_csv(text);
        for p in problems.iter().take(MAX_REPORTED) {
            let at = match &p.column {
                Some(c) => format!("line {}, column {c}", p.line),
                None => format!("line {}", p.line),
            };
            self.err(
                ManifestError::new(
                    ErrorKind::GattsInvalid,
                    format!("{} {at}: {}", path.display(), p.message),
                )
                .at(place, "invalid GATTS row")
                .help("rows are index,uuid_len,uuid,perm,val_max_len,val_cur_len,value; values are whole bytes of hex (\"0A\", not \"A\"); see docs/value-rules.md"),
            );
        }
        if problems.len() > MAX_REPORTED {
            self.err(
                ManifestError::new(
                    ErrorKind::GattsInvalid,
                    format!(
                        "{}: {} more GATTS problems not shown",
                        path.display(),
                        problems.len() - MAX_REPORTED
                    ),
                )
                .at(place, "invalid GATTS table"),
            );
        }
        problems.is_empty().then_some(())
    }
}
