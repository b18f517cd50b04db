//! Manifest source files and spans into them.
//!
//! Every value parsed from a manifest keeps the file it came from and its byte span, so that a
//! problem found late (while resolving against the catalogue, or while emitting an image) can
//! still point at the exact place in the exact file, even through `extends`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{NamedSource, SourceSpan};
use serde::{Serialize, Serializer};

/// One manifest file's text, shared by every diagnostic that points into it.
#[derive(Clone)]
pub struct SourceFile {
    path: PathBuf,
    named: Arc<NamedSource<String>>,
}

impl SourceFile {
    /// Wraps already-read text. `path` is used for display and to resolve relative paths.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Self {
        let path = path.into();
        let named =
            Arc::new(NamedSource::new(path.display().to_string(), text).with_language("kdl"));
        SourceFile { path, named }
    }

    /// Path as given (relative paths inside the manifest resolve against its directory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory relative paths in this file resolve against.
    pub fn dir(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The text.
    pub fn text(&self) -> &str {
        self.named.inner()
    }

    /// The miette source for diagnostics.
    pub fn source_code(&self) -> &dyn miette::SourceCode {
        &*self.named
    }
}

impl fmt::Debug for SourceFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PartialEq for SourceFile {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.named, &other.named) || self.path == other.path
    }
}

/// A place in a manifest: a file and a byte span.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// The file.
    pub file: SourceFile,
    /// Byte span in that file.
    pub span: SourceSpan,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub place: Place,
}

impl<T> Spanned<T> {
    /// Pairs a value with a place.
    pub fn new(value: T, place: Place) -> Self {
        Spanned { value, place }
    }
    /// Maps the value, keeping the place.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Spanned<U> {
        Spanned {
            value: f(self.value),
            place: self.place,
        }
    }
    /// Borrows the value.
    pub fn get(&self) -> &T {
        &self.value
    }
}

impl<T: Serialize> Serialize for Spanned<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}

impl<T: schemars::JsonSchema> schemars::JsonSchema for Spanned<T> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
    fn inline_schema() -> bool {
        T::inline_schema()
    }
}
