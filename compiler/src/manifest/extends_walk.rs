//! Bounds on the `extends` walk. Cycles are caught by the chain itself; these bound the rest:
//! a chain of distinct files nested deeper than [`MAX_EXTENDS_DEPTH`] (each level is a frame
//! of recursion), and the total number of files loaded, [`MAX_EXTENDS_LOADS`] (bases that each
//! extend the next one twice would otherwise load 2^depth files).
//!
//! A base must also be a manifest by name (`*.kdl`): a syntax error quotes the lines around
//! it, and `extends "certs/client.key"` or `extends "/etc/shadow"` must not put a key or a
//! password hash into an error message, a log or a status page.

use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use super::error::{ErrorKind, ManifestError};
use super::source::Place;

/// Deepest chain of `extends` accepted (a manifest, its base, the base's base, ...).
pub const MAX_EXTENDS_DEPTH: usize = 16;
/// Most manifest files loaded for one manifest, counting a base each time it is extended.
pub const MAX_EXTENDS_LOADS: usize = 64;

/// The files being loaded, outermost first, as (canonical path, path as written), and how
/// many files were loaded so far.
#[derive(Debug, Default)]
pub struct ExtendsWalk {
    chain: Vec<(PathBuf, PathBuf)>,
    loads: usize,
}

impl ExtendsWalk {
    /// Counts one more file to load; refuses a base that is not a `*.kdl` file, and a chain or
    /// a total over its bound.
    pub fn admit(&mut self, path: &Path, named_at: Option<&Place>) -> Result<(), ManifestError> {
        self.loads += 1;
        if let Some(p) = named_at {
            if path.extension().is_none_or(|e| e != "kdl") {
                return Err(ManifestError::new(
                    ErrorKind::ValueInvalid,
                    format!(
                        "`extends` names {}, which is not a manifest (`*.kdl`)",
                        path.display()
                    ),
                )
                .at(p, "not a .kdl file")
                .help("a base is another manifest; certificates and keys go in `certificates { ... }` (the file was not read)"));
            }
        }
        let (message, help) = if self.chain.len() >= MAX_EXTENDS_DEPTH {
            (
                format!("`extends` chain is deeper than {MAX_EXTENDS_DEPTH} manifests"),
                "flatten the bases: a base may extend another, but not 16 levels deep",
            )
        } else if self.loads > MAX_EXTENDS_LOADS {
            (
                format!("`extends` loads more than {MAX_EXTENDS_LOADS} manifests"),
                "a manifest and its bases may load at most 64 files in all; do bases extend the same files again and again?",
            )
        } else {
            return Ok(());
        };
        let err = ManifestError::new(ErrorKind::NestingTooDeep, message).help(help);
        Err(match named_at {
            Some(p) => err.at(p, "one base too many"),
            None => err,
        })
    }
}

impl Deref for ExtendsWalk {
    type Target = Vec<(PathBuf, PathBuf)>;
    fn deref(&self) -> &Self::Target {
        &self.chain
    }
}

impl DerefMut for ExtendsWalk {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.chain
    }
}
