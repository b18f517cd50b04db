//! Reading KDL nodes into typed values while recording every problem with its span.
//!
//! A [`NodeReader`] hands out a node's arguments and properties by position and name and
//! remembers what was taken; [`NodeReader::finish`] then reports every property and argument
//! nobody asked for, with a "did you mean" suggestion.

use std::cell::RefCell;
use std::collections::BTreeSet;

use kdl::{KdlNode, KdlValue};
use miette::SourceSpan;

use super::error::{ErrorKind, ManifestError, did_you_mean};
use super::source::{Place, SourceFile, Spanned};

/// Collects the problems found while reading one file.
#[derive(Debug, Default)]
pub struct Problems(pub Vec<ManifestError>);

impl Problems {
    /// Records a problem.
    pub fn push(&mut self, e: ManifestError) {
        self.0.push(e);
    }
}

/// Reads one KDL node of a manifest.
pub struct NodeReader<'a> {
    node: &'a KdlNode,
    file: &'a SourceFile,
    taken_props: RefCell<BTreeSet<String>>,
    taken_args: RefCell<usize>,
}

/// The KDL type name of a value, for "expected a number, found a string" messages.
pub fn type_name(v: &KdlValue) -> &'static str {
    match v {
        KdlValue::String(_) => "a string",
        KdlValue::Integer(_) => "an integer",
        KdlValue::Float(_) => "a float",
        KdlValue::Bool(_) => "a boolean",
        KdlValue::Null => "#null",
    }
}

impl<'a> NodeReader<'a> {
    /// Starts reading `node` of `file`.
    pub fn new(node: &'a KdlNode, file: &'a SourceFile) -> Self {
        NodeReader {
            node,
            file,
            taken_props: RefCell::default(),
            taken_args: RefCell::new(0),
        }
    }

    /// The node's name.
    pub fn name(&self) -> &'a str {
        self.node.name().value()
    }

    /// The place of the node's name (what labels point at for node-level problems).
    pub fn place(&self) -> Place {
        self.place_of(self.node.name().span())
    }

    /// The place of the whole node.
    pub fn node_place(&self) -> Place {
        self.place_of(self.node.span())
    }

    /// Makes a place in this node's file.
    pub fn place_of(&self, span: SourceSpan) -> Place {
        Place {
            file: self.file.clone(),
            span,
        }
    }

    /// The file this node is in.
    pub fn file(&self) -> &'a SourceFile {
        self.file
    }

    /// The node's children, if it has a block.
    pub fn children(&self) -> Option<&'a kdl::KdlDocument> {
        self.node.children()
    }

    /// The positional arguments, all of them (marks them taken).
    pub fn args(&self) -> Vec<Spanned<&'a KdlValue>> {
        let args: Vec<_> = self
            .node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| Spanned::new(e.value(), self.place_of(e.span())))
            .collect();
        *self.taken_args.borrow_mut() = args.len();
        args
    }

    /// Positional argument `i` (marks arguments up to `i` taken).
    pub fn arg(&self, i: usize) -> Option<Spanned<&'a KdlValue>> {
        let e = self
            .node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .nth(i)?;
        let mut taken = self.taken_args.borrow_mut();
        *taken = (*taken).max(i + 1);
        Some(Spanned::new(e.value(), self.place_of(e.span())))
    }

    /// Property `key` (the last one wins, as in KDL).
    pub fn prop(&self, key: &str) -> Option<Spanned<&'a KdlValue>> {
        self.taken_props.borrow_mut().insert(key.to_owned());
        self.node
            .entries()
            .iter()
            .rev()
            .find(|e| e.name().is_some_and(|n| n.value() == key))
            .map(|e| Spanned::new(e.value(), self.place_of(e.span())))
    }

    /// Reports every property and argument that was not taken, and children if `allow_children`
    /// is false. `allowed` lists the property names this node takes, for suggestions.
    pub fn finish(&self, allowed: &[&str], allow_children: bool, problems: &mut Problems) {
        let taken = self.taken_props.borrow();
        for e in self.node.entries() {
            if let Some(name) = e.name() {
                if !taken.contains(name.value()) {
                    let mut err = ManifestError::new(
                        ErrorKind::PropertyUnknown,
                        format!(
                            "`{}` does not take a property `{}`",
                            self.name(),
                            name.value()
                        ),
                    )
                    .at(&self.place_of(e.span()), "unknown property");
                    err = match did_you_mean(name.value(), allowed.iter().copied()) {
                        Some(s) => err.help(format!("did you mean `{s}`?")),
                        None if allowed.is_empty() => {
                            err.help(format!("`{}` takes no properties", self.name()))
                        }
                        None => {
                            err.help(format!("`{}` takes: {}", self.name(), allowed.join(", ")))
                        }
                    };
                    problems.push(err);
                }
            }
        }
        self.repeated_properties(problems);
        let taken_args = *self.taken_args.borrow();
        for e in self
            .node
            .entries()
            .iter()
            .filter(|e| e.name().is_none())
            .skip(taken_args)
        {
            problems.push(
                ManifestError::new(
                    ErrorKind::ArgumentUnexpected,
                    format!("`{}` does not take this argument", self.name()),
                )
                .at(&self.place_of(e.span()), "unexpected argument")
                .help("remove it, or write it as a property (`name=value`)"),
            );
        }
        if !allow_children {
            if let Some(children) = self.node.children() {
                problems.push(
                    ManifestError::new(
                        ErrorKind::NodeUnknown,
                        format!("`{}` does not take a block", self.name()),
                    )
                    .at(&self.place_of(children.span()), "unexpected block")
                    .help("remove the `{ ... }` block"),
                );
            }
        }
    }
}

impl NodeReader<'_> {
    /// Warns about a property given more than once: KDL keeps the last, which silently drops
    /// the others (`uart baud=115200 baud=9600`).
    fn repeated_properties(&self, problems: &mut Problems) {
        let entries = self.node.entries();
        for (i, e) in entries.iter().enumerate() {
            let Some(name) = e.name() else { continue };
            let later = entries[i + 1..]
                .iter()
                .find(|l| l.name().is_some_and(|n| n.value() == name.value()));
            if let Some(later) = later {
                problems.push(
                    ManifestError::new(
                        ErrorKind::PropertyRepeated,
                        format!(
                            "`{}` is given more than once on `{}`; only the last one is used",
                            name.value(),
                            self.name()
                        ),
                    )
                    .at(&self.place_of(e.span()), "ignored")
                    .note(&self.place_of(later.span()), "this one is used")
                    .help("remove the repeated property")
                    .warning(),
                );
            }
        }
    }
}

/// Reports an unknown node name, suggesting the closest valid one.
pub fn unknown_node(reader: &NodeReader<'_>, context: &str, allowed: &[&str]) -> ManifestError {
    let err = ManifestError::new(
        ErrorKind::NodeUnknown,
        format!("unknown node `{}` in {context}", reader.name()),
    )
    .at(&reader.place(), "unknown node");
    match did_you_mean(reader.name(), allowed.iter().copied()) {
        Some(s) => err.help(format!("did you mean `{s}`?")),
        None => err.help(format!("{context} takes: {}", allowed.join(", "))),
    }
}

/// Converts KDL values to typed values, reporting type and range problems.
pub mod value {
    use super::{ErrorKind, KdlValue, ManifestError, Spanned, type_name};

    fn wrong(v: &Spanned<&KdlValue>, expected: &str) -> ManifestError {
        ManifestError::new(
            ErrorKind::ValueTypeWrong,
            format!("expected {expected}, found {}", type_name(v.value)),
        )
        .at(&v.place, format!("expected {expected}"))
    }

    /// A string.
    pub fn string(v: &Spanned<&KdlValue>) -> Result<Spanned<String>, ManifestError> {
        match v.value {
            KdlValue::String(s) => Ok(Spanned::new(s.clone(), v.place.clone())),
            _ => Err(wrong(v, "a string").help("write it in double quotes")),
        }
    }

    /// A boolean (`#true` / `#false`).
    pub fn boolean(v: &Spanned<&KdlValue>) -> Result<Spanned<bool>, ManifestError> {
        match v.value {
            KdlValue::Bool(b) => Ok(Spanned::new(*b, v.place.clone())),
            _ => Err(wrong(v, "a boolean").help("write #true or #false")),
        }
    }

    /// An integer in `min..=max`. Strings holding an integer literal (`"0x1000"`) are accepted
    /// too, since people copy values from CSV files.
    pub fn int(
        v: &Spanned<&KdlValue>,
        min: i128,
        max: i128,
    ) -> Result<Spanned<i128>, ManifestError> {
        let n = match v.value {
            KdlValue::Integer(n) => *n,
            KdlValue::String(s) => parse_int_literal(s).ok_or_else(|| {
                wrong(v, "an integer")
                    .help("write a number such as 17, 0x1000 or 0o17, without quotes")
            })?,
            _ => return Err(wrong(v, "an integer")),
        };
        if n < min || n > max {
            return Err(ManifestError::new(
                ErrorKind::ValueInvalid,
                format!("{n} is out of range ({min}..={max})"),
            )
            .at(&v.place, "out of range")
            .help(format!("use a value from {min} to {max}")));
        }
        Ok(Spanned::new(n, v.place.clone()))
    }

    /// A byte size: an integer, or a string with an optional K/M suffix (`"112K"`, `"0x1000"`,
    /// `"2M"`), as partition CSVs write them. Returns the value and its text form.
    pub fn size(v: &Spanned<&KdlValue>) -> Result<Spanned<(u32, String)>, ManifestError> {
        let (n, text) = match v.value {
            KdlValue::Integer(n) => (Some(*n), format!("{n:#x}")),
            KdlValue::String(s) => (parse_size_literal(s), s.trim().to_owned()),
            _ => (None, String::new()),
        };
        match n.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Ok(Spanned::new((n, text), v.place.clone())),
            None => Err(
                ManifestError::new(ErrorKind::ValueInvalid, "not a valid size")
                    .at(&v.place, "expected a size")
                    .help("write a byte count such as 0x1000, 4096, \"4K\" or \"1M\""),
            ),
        }
    }

    /// Parses `17`, `0x11`, `0o21`, `0b10001`, `-1`, with `_` separators.
    pub fn parse_int_literal(s: &str) -> Option<i128> {
        let s = s.trim().replace('_', "");
        let (neg, body) = match s.strip_prefix('-') {
            Some(b) => (true, b.to_owned()),
            None => (false, s.strip_prefix('+').unwrap_or(&s).to_owned()),
        };
        let lower = body.to_ascii_lowercase();
        let n = if let Some(h) = lower.strip_prefix("0x") {
            i128::from_str_radix(h, 16).ok()?
        } else if let Some(o) = lower.strip_prefix("0o") {
            i128::from_str_radix(o, 8).ok()?
        } else if let Some(b) = lower.strip_prefix("0b") {
            i128::from_str_radix(b, 2).ok()?
        } else {
            lower.parse().ok()?
        };
        Some(if neg { -n } else { n })
    }

    /// Parses a size with an optional `K`/`M` suffix (case-insensitive).
    pub fn parse_size_literal(s: &str) -> Option<i128> {
        let t = s.trim();
        let lower = t.to_ascii_lowercase();
        if let Some(k) = lower.strip_suffix('k') {
            return parse_size_literal(k).map(|n| n * 1024);
        }
        if let Some(m) = lower.strip_suffix('m') {
            return parse_size_literal(m).map(|n| n * 1024 * 1024);
        }
        parse_int_literal(&lower)
    }
}
