//! The manifest language: parse (KDL with spans) and resolve (a validated plan).
//!
//! The language is documented in `manifests/README.md`; its JSON form is described by
//! `schemas/manifest.schema.json`, generated from [`Document`].

pub mod discover;
pub mod document;
pub mod error;
pub mod extends_walk;
pub mod identity;
pub mod inputs;
pub mod kdl_guard;
pub mod reader;
pub mod source;

pub use document::{Document, parse};
pub use error::{Diagnostics, ErrorKind, ManifestError};
pub use source::{Place, SourceFile, Spanned};
pub mod plan;
pub mod resolve;
pub mod schema;

pub use plan::Plan;
pub use resolve::{load, load_text, load_with};
