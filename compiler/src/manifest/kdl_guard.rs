//! Parsing manifest text with the `kdl` crate without letting a hostile file exhaust the stack
//! (a stack overflow aborts the whole process: `espfleet check`, a fleet build, the daemon).
//!
//! The `kdl` parser is recursive. Measured on kdl 6.7.1 (`docs/input-limits.md` has the
//! table): every level of `{ }` costs about 6.6 KB of stack in a release build (36 KB in a
//! debug build), every level of nested `/* */` comment about 2.3 KB, and — less obviously —
//! every syntax error the parser recovers from at the top level costs about 300–600 bytes,
//! as does every `*` or `/` inside a block comment. A 4 KB file of `=` signs overflows a
//! 2 MiB thread; 2,000 levels of `{ }` (an 8 KB file) overflow the 8 MiB main thread.
//!
//! Two bounds together make the parse safe for any input:
//!
//! 1. a pre-scan ([`scan`]), a small lexer that knows KDL's strings and comments, refuses
//!    blocks nested deeper than [`MAX_BLOCK_DEPTH`] and comments nested deeper than
//!    [`MAX_COMMENT_DEPTH`] with a diagnostic pointing at the first brace too deep — these cost
//!    the most stack per byte;
//! 2. the parse runs on its own thread whose stack grows with the text
//!    ([`stack_for`]): every remaining recursion consumes at least one byte of input per
//!    level, and the manifest size limit ([`crate::input::InputKind::MANIFEST`]) bounds the
//!    text. The stack is address space: only the pages a parse touches are ever used.
//!
//! At most [`MAX_SYNTAX_ERRORS`] syntax errors are reported, so that a file of garbage gives a
//! readable answer (and the daemon's log a short one).

use kdl::KdlDocument;
use miette::SourceSpan;

use super::error::{ErrorKind, ManifestError};
use super::source::{Place, SourceFile};

/// Deepest `{ }` nesting accepted. A manifest needs 4 (`ble`, `service`, `characteristic`,
/// `descriptor`); the margin is for tools that generate manifests.
pub const MAX_BLOCK_DEPTH: usize = 32;
/// Deepest `/* /* */ */` nesting accepted.
pub const MAX_COMMENT_DEPTH: usize = 8;
/// Syntax errors reported at most; the rest are counted.
pub const MAX_SYNTAX_ERRORS: usize = 20;

/// Stack for parsing `len` bytes: a base for the bounded nesting, plus a per-byte allowance
/// above the worst case measured per byte (see the module documentation), with margin for
/// unoptimised and sanitiser builds.
pub fn stack_for(len: usize) -> usize {
    const BASE: usize = 4 << 20;
    let per_byte = if cfg!(debug_assertions) { 8192 } else { 4096 };
    BASE.saturating_add(len.saturating_mul(per_byte))
}

/// Where the pre-scan refused the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    /// The opening `{` or `/*` that goes one level too deep.
    pub span: SourceSpan,
    /// True for a comment, false for a block.
    pub comment: bool,
}

/// The pre-scan: walks the text once, skipping strings and comments as KDL v2 defines them,
/// and reports the first block or comment opened beyond the limits. Stray or missing braces
/// are left to the parser, which reports them with better messages.
pub fn scan(text: &str) -> Result<(), TooDeep> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => i = skip_quoted(b, i),
            b'#' => i = skip_hashes(b, i),
            b'/' if b.get(i + 1) == Some(&b'/') => i = skip_line(b, i + 2),
            b'/' if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i)?,
            b'{' => {
                depth += 1;
                if depth > MAX_BLOCK_DEPTH {
                    return Err(TooDeep {
                        span: (i, 1).into(),
                        comment: false,
                    });
                }
                i += 1;
            }
            b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Past a quoted string starting at `i` (`"..."` or `"""..."""`), escapes honoured.
fn skip_quoted(b: &[u8], i: usize) -> usize {
    let multi = b[i..].starts_with(b"\"\"\"");
    let mut j = i + if multi { 3 } else { 1 };
    while j < b.len() {
        match b[j] {
            b'\\' => j += 2,
            // A single-line string ends at its quote, or at a newline (which it cannot hold:
            // the parser reports that; the scan resumes after it).
            b'"' | b'\n' if !multi => return j + 1,
            b'"' if b[j..].starts_with(b"\"\"\"") => return j + 3,
            _ => j += 1,
        }
    }
    b.len()
}

/// Past `#...#"raw"#...#` (or a keyword such as `#true`) starting at `i`.
fn skip_hashes(b: &[u8], i: usize) -> usize {
    let hashes = b[i..].iter().take_while(|&&c| c == b'#').count();
    let open = i + hashes;
    if b.get(open) != Some(&b'"') {
        return open; // a keyword (`#true`, `#null`, ...)
    }
    let quotes = if b[open..].starts_with(b"\"\"\"") {
        3
    } else {
        1
    };
    let close = quotes + hashes;
    let mut j = open + quotes;
    while j + close <= b.len() {
        if b[j..j + quotes].iter().all(|&c| c == b'"')
            && b[j + quotes..j + close].iter().all(|&c| c == b'#')
        {
            return j + close;
        }
        j += 1;
    }
    b.len()
}

/// Past the end of the line (KDL newlines: LF, CR, FF, NEL, LS, PS).
fn skip_line(b: &[u8], mut j: usize) -> usize {
    while j < b.len() {
        match b[j] {
            b'\n' | b'\r' | 0x0C => return j + 1,
            0xC2 if b.get(j + 1) == Some(&0x85) => return j + 2,
            0xE2 if b.get(j + 1) == Some(&0x80) && matches!(b.get(j + 2), Some(0xA8 | 0xA9)) => {
                return j + 3;
            }
            _ => j += 1,
        }
    }
    b.len()
}

/// Past a (nested) block comment starting at `i`.
fn skip_block_comment(b: &[u8], i: usize) -> Result<usize, TooDeep> {
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        if b[j..].starts_with(b"/*") {
            depth += 1;
            if depth > MAX_COMMENT_DEPTH {
                return Err(TooDeep {
                    span: (j, 2).into(),
                    comment: true,
                });
            }
            j += 2;
        } else if b[j..].starts_with(b"*/") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return Ok(j);
            }
        } else {
            j += 1;
        }
    }
    Ok(b.len())
}

/// Parses a manifest's text: the pre-scan, then the `kdl` parser on a stack sized for the
/// text. Problems come back as manifest diagnostics pointing into `file`.
pub fn parse(file: &SourceFile) -> Result<KdlDocument, Vec<ManifestError>> {
    let text = file.text();
    let place = |span: SourceSpan| Place {
        file: file.clone(),
        span,
    };
    if let Err(deep) = scan(text) {
        let (what, limit, help) = if deep.comment {
            (
                "comments",
                MAX_COMMENT_DEPTH,
                "close the comments; `/* */` comments may nest at most 8 deep",
            )
        } else {
            (
                "blocks",
                MAX_BLOCK_DEPTH,
                "a manifest needs at most 4 levels of `{ }`; is a closing brace missing?",
            )
        };
        return Err(vec![
            ManifestError::new(
                ErrorKind::NestingTooDeep,
                format!("{what} are nested more than {limit} deep"),
            )
            .at(&place(deep.span), format!("level {}", limit + 1))
            .help(help),
        ]);
    }
    let parsed = std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("espfleet-kdl".to_owned())
            .stack_size(stack_for(text.len()))
            .spawn_scoped(s, || text.parse::<KdlDocument>())
            .map(|h| match h.join() {
                Ok(r) => r,
                Err(panic) => std::panic::resume_unwind(panic),
            })
    });
    match parsed {
        Ok(Ok(doc)) => Ok(doc),
        Ok(Err(e)) => Err(syntax_errors(file, &e)),
        Err(e) => Err(vec![
            ManifestError::new(
                ErrorKind::FileUnreadable,
                format!("cannot start the manifest parser: {e}"),
            )
            .at(&place((0, 0).into()), "not parsed")
            .help("the system is out of memory or threads; try again"),
        ]),
    }
}

/// Whether a problem of this kind means the text was not parsed at all (nothing else about
/// the file can be checked).
pub fn stops_parsing(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::SyntaxInvalid | ErrorKind::NestingTooDeep | ErrorKind::FileUnreadable
    )
}

fn syntax_errors(file: &SourceFile, e: &kdl::KdlError) -> Vec<ManifestError> {
    let place = |span: SourceSpan| Place {
        file: file.clone(),
        span,
    };
    let mut out: Vec<ManifestError> = e
        .diagnostics
        .iter()
        .take(MAX_SYNTAX_ERRORS)
        .map(|d| {
            let msg = d.message.clone().unwrap_or_else(|| "invalid KDL".to_owned());
            ManifestError::new(ErrorKind::SyntaxInvalid, format!("KDL syntax: {msg}"))
                .at(
                    &place(d.span),
                    d.label.clone().unwrap_or_else(|| "here".to_owned()),
                )
                .help(d.help.clone().unwrap_or_else(|| {
                    "manifests are KDL v2 documents: strings in double quotes, booleans as #true/#false".to_owned()
                }))
        })
        .collect();
    if e.diagnostics.len() > MAX_SYNTAX_ERRORS {
        let rest = e.diagnostics.len() - MAX_SYNTAX_ERRORS;
        out.push(
            ManifestError::new(
                ErrorKind::SyntaxInvalid,
                format!("{rest} more KDL syntax errors not shown"),
            )
            .help("fix the first errors and check again; is this file a manifest?"),
        );
    }
    if out.is_empty() {
        out.push(
            ManifestError::new(ErrorKind::SyntaxInvalid, "KDL syntax error")
                .at(&place((0, 0).into()), "here"),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_counts_blocks_outside_strings_and_comments() {
        assert_eq!(scan("a { b { c { } } }"), Ok(()));
        let deep = format!("{}{}", "a {".repeat(33), "}".repeat(33));
        assert_eq!(
            scan(&deep),
            Err(TooDeep {
                span: (3 * 32 + 2, 1).into(),
                comment: false
            })
        );
        // Braces in strings, raw strings and comments do not count.
        let braces = "{".repeat(40);
        for hidden in [
            format!("a \"{braces}\""),
            format!("a \"\"\"\n{braces}\n\"\"\""),
            format!("a #\"{braces}\"#"),
            format!("a ##\"x\"# {braces}\"##"),
            format!("a \"\\\"{braces}\""),
            format!("// {braces}\na"),
            format!("/* {braces} /* {braces} */ */ a"),
        ] {
            assert_eq!(scan(&hidden), Ok(()), "{hidden}");
        }
        // ... but after a string ends they do.
        assert!(scan(&format!("a \"x\" {braces}")).is_err());
        assert!(scan(&format!("a #\"x\"# {braces}")).is_err());
        assert!(scan(&format!("// x\n{braces}")).is_err());
    }

    #[test]
    fn scan_limits_comment_nesting() {
        assert_eq!(
            scan(&format!("{}{}", "/*".repeat(8), "*/".repeat(8))),
            Ok(())
        );
        assert_eq!(
            scan(&format!("a\n{}{}", "/*".repeat(9), "*/".repeat(9))),
            Err(TooDeep {
                span: (2 + 16, 2).into(),
                comment: true
            })
        );
    }

    #[test]
    fn recursion_heavy_garbage_parses_on_the_sized_stack() {
        // Each of these recurses once per few bytes inside the kdl parser; 16 KiB of them
        // overflow the default 2 MiB (spawned threads) and 8 MiB (main thread) stacks.
        for unit in ["=", ")", "}", "a{}", "\"", "/* ", "a /- /- b\n"] {
            let text = unit.repeat(16 * 1024 / unit.len());
            let file = SourceFile::new("garbage.kdl", text);
            let errs = parse(&file).unwrap_err();
            assert!(
                errs.len() <= MAX_SYNTAX_ERRORS + 1,
                "{unit}: {}",
                errs.len()
            );
        }
        let stars = format!("/*{}*/ a", "*".repeat(16 * 1024));
        assert!(parse(&SourceFile::new("stars.kdl", stars)).is_ok());
    }
}
