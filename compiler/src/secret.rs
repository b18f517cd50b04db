//! Key material as a type: [`Secret`] holds private keys (device keys, the fleet CA key) so that
//! no `Debug`, `Display`, log line, diagnostic, status field or export can print them by
//! accident. Reading the value is explicit ([`Secret::expose`]) and greppable; the bytes are
//! wiped when the value is dropped. See `docs/identity.md` for where key material lives.

use std::fmt;

use zeroize::Zeroize;

/// A value that must never be printed: its `Debug` and `Display` say `<redacted>`, it has no
/// `Serialize`, and its memory is zeroed on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T: Zeroize>(T);

impl<T: Zeroize> Secret<T> {
    /// Wraps key material.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The key material itself, for the few places that must hand it on (an encoder, a
    /// signer, the store). Every call site is a place key material leaves this type.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T: Zeroize> Drop for Secret<T> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl<T: Zeroize> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T: Zeroize> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T: Zeroize> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Secret(value)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    const KEY_LINE: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg";

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new(format!("-----BEGIN PRIVATE KEY-----\n{KEY_LINE}\n"));
        let shown = format!("{s:?} {s} {s:#?} {:?}", Some(&s));
        assert!(!shown.contains(KEY_LINE), "{shown}");
        assert!(shown.contains("<redacted>"));
        assert_eq!(s.expose().lines().nth(1), Some(KEY_LINE));
    }

    #[test]
    fn redacts_inside_derived_debug() {
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        struct Holder {
            key: Secret<Vec<u8>>,
        }
        let h = Holder {
            key: Secret::new(KEY_LINE.as_bytes().to_vec()),
        };
        let shown = format!("{h:?}");
        assert!(!shown.contains(KEY_LINE));
        assert!(!shown.contains("77, 73, 71")); // the bytes as a Debug list ("MIG")
    }
}
