//! The manifest's `identity` section: per-device serial numbers, certificates and a user NVS
//! partition, allocated when a board is plugged in (or with `espfleet build --for-mac`).
//!
//! ```kdl
//! identity {
//!     serial "ACME-{n:06}" start=1000
//!     mint ca-cert="pki/fleet-ca.crt" ca-key="pki/fleet-ca.key" subject="CN={serial},serialNumber={mac}" key-type="p256" validity-days=3650
//!     // or: pool "pool/" warn-below=10
//!     slot "client" index=0
//!     nvs "device_info" {
//!         namespace "device" {
//!             serial "string" "{serial}"
//!             hw_rev "u8" 3
//!         }
//!     }
//! }
//! ```
//!
//! Parse ([`parse`]) keeps spans; [`resolve`] checks everything that can be checked before a
//! board exists (templates, the fleet CA, the slot against the release and features, the NVS
//! partition against the at_customize table, by encoding it for a worst-case device) and
//! yields an [`IdentityPlan`]. The language is documented in `manifests/README.md`, the design in
//! `docs/identity.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kdl::{KdlDocument, KdlValue};
use schemars::JsonSchema;
use serde::Serialize;

use super::document::{PkiKind, PkiRole};
use super::error::{ErrorKind, ManifestError};
use super::plan::{PkiPlan, TablePlan};
use super::reader::{NodeReader, Problems, unknown_node, value};
use super::source::{Place, Spanned};
use crate::esp_at::pki::check;
use crate::identity::{Field, Fields, Mac, SerialTemplate, TemplateError, TextTemplate};
use crate::nvs::Value;
use crate::release::{Era, Release};

// ---------------------------------------------------------------------------------------------
// Document (stage 1)
// ---------------------------------------------------------------------------------------------

/// `identity { serial ... mint ... | pool ... slot ... nvs ... }`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default)]
pub struct IdentityNode {
    /// `serial "ACME-{n:06}" start=1000`: serial numbers from a template and a counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<SerialNode>,
    /// `mint ca-cert= ca-key= subject= key-type= validity-days=`: certificates made at plug time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mint: Option<MintNode>,
    /// `pool "dir" name= warn-below=`: ready-made certificate/key pairs, one per device.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolNode>,
    /// `slot "client" index=0`: the ESP-AT certificate/key pair that receives them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<SlotNode>,
    /// `nvs "partition" { namespace "ns" { KEY "ENCODING" VALUE } }`: a user NVS partition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvs: Option<UserNvsNode>,
    /// Where `identity` is written.
    #[serde(skip)]
    #[schemars(skip)]
    pub place: Option<Place>,
}

/// `serial "ACME-{n:06}" start=1000`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SerialNode {
    /// Literal text (`A-Z a-z 0-9 - _ . /`) around one counter: `{n}` or `{n:06}` (zero-padded).
    pub template: Spanned<String>,
    /// First counter value (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Spanned<u64>>,
}

/// Device key algorithm of minted certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
pub enum KeyType {
    /// ECDSA on NIST P-256 (the default).
    #[serde(rename = "p256")]
    P256,
    /// RSA, 2048 bits.
    #[serde(rename = "rsa2048")]
    Rsa2048,
}

impl KeyType {
    fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "p256" | "ecp256" | "secp256r1" | "prime256v1" => Some(KeyType::P256),
            "rsa2048" => Some(KeyType::Rsa2048),
            _ => None,
        }
    }
}

/// `mint ca-cert="ca.crt" ca-key="ca.key" subject="CN={serial}" key-type="p256" validity-days=3650`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(default, rename_all = "kebab-case")]
pub struct MintNode {
    /// The fleet CA certificate (PEM or DER), relative to the manifest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<Spanned<PathBuf>>,
    /// The fleet CA private key (PEM or DER; PKCS#8, PKCS#1 or SEC1; RSA, P-256 or P-384).
    /// Keep it mode 0600, readable by the service user only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_key: Option<Spanned<PathBuf>>,
    /// Subject distinguished name (RFC 4514) with `{serial}`, `{mac}`, `{mac_hex}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Spanned<String>>,
    /// `p256` (default) or `rsa2048`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_type: Option<Spanned<KeyType>>,
    /// Days the certificate is valid from its issue (default 3650).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validity_days: Option<Spanned<u32>>,
    /// Where `mint` is written.
    #[serde(skip)]
    #[schemars(skip)]
    pub place: Option<Place>,
}

/// `pool "dir" name="acme-2025" warn-below=10`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub struct PoolNode {
    /// Folder of certificate and key files (paired by public key), relative to the manifest.
    pub dir: Spanned<PathBuf>,
    /// The pool's name in the identity store (default: the folder's absolute path). Stations
    /// that share a store and a pool use the same name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// Warn when fewer unassigned pairs remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warn_below: Option<Spanned<u32>>,
}

/// `slot "client" index=0`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SlotNode {
    /// `client`, `mqtt`, `https`, `wss`, `eap` or `server`: the `<slot>-cert`/`<slot>-key` pair.
    #[schemars(regex(pattern = "^(client|mqtt|https|wss|eap|server)$"))]
    pub slot: Spanned<String>,
    /// Position among that role's files (`client_cert.0`, `.1`, ...); default 0. An index the
    /// `certificates` section fills is replaced by the device's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<Spanned<u8>>,
}

/// `nvs "device_info" { namespace "device" { ... } }`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserNvsNode {
    /// An at_customize partition of type `data`, subtype `nvs`, without `file=`.
    pub partition: Spanned<String>,
    /// Namespaces, in write order.
    pub namespaces: Vec<UserNvsNamespaceNode>,
}

/// `namespace "device" { KEY "ENCODING" VALUE ... }`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserNvsNamespaceNode {
    /// Namespace name (1–15 ASCII characters).
    pub name: Spanned<String>,
    /// Entries, in write order.
    pub entries: Vec<UserNvsEntryNode>,
}

/// `serial "string" "{serial}"`: the node name is the key.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct UserNvsEntryNode {
    /// Key (1–15 ASCII characters).
    pub key: Spanned<String>,
    /// `u8 i8 u16 i16 u32 i32 u64 i64 string hex2bin base64`, as in NVS CSV files.
    #[schemars(regex(pattern = "^(u8|i8|u16|i16|u32|i32|u64|i64|string|hex2bin|base64)$"))]
    pub encoding: Spanned<String>,
    /// A number for integer encodings; text (with `{serial}`, `{mac}`, `{mac_hex}`) otherwise.
    pub value: Spanned<UserNvsLiteral>,
}

/// An NVS value as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum UserNvsLiteral {
    /// A number.
    Integer(i128),
    /// Text.
    Text(String),
}

fn string_arg(
    r: &NodeReader<'_>,
    i: usize,
    what: &str,
    example: &str,
    problems: &mut Problems,
) -> Option<Spanned<String>> {
    if let Some(v) = r.arg(i) {
        return value::string(&v).map_err(|e| problems.push(e)).ok();
    }
    problems.push(
        ManifestError::new(
            ErrorKind::ArgumentMissing,
            format!("`{}` needs {what}", r.name()),
        )
        .at(&r.place(), format!("{what} missing"))
        .help(format!("write it like: {example}")),
    );
    None
}

fn string_prop(r: &NodeReader<'_>, key: &str, problems: &mut Problems) -> Option<Spanned<String>> {
    let v = r.prop(key)?;
    value::string(&v).map_err(|e| problems.push(e)).ok()
}

fn int_prop<T: TryFrom<i128>>(
    r: &NodeReader<'_>,
    key: &str,
    max: i128,
    problems: &mut Problems,
) -> Option<Spanned<T>> {
    let v = r.prop(key)?;
    let n = value::int(&v, 0, max).map_err(|e| problems.push(e)).ok()?;
    T::try_from(n.value).ok().map(|t| Spanned::new(t, n.place))
}

fn duplicate(c: &NodeReader<'_>, first: &Place) -> ManifestError {
    ManifestError::new(
        ErrorKind::NodeDuplicate,
        format!("`{}` is given twice in `identity`", c.name()),
    )
    .at(&c.place(), "given again here")
    .note(first, "first given here")
    .help(format!("keep one `{}` node", c.name()))
}

/// The nodes `identity` takes.
const CHILDREN: &[&str] = &["serial", "mint", "pool", "slot", "nvs"];

/// Parses an `identity` node (the hook in [`super::document::parse`]).
pub fn parse(r: &NodeReader<'_>, problems: &mut Problems) -> IdentityNode {
    r.finish(&[], true, problems);
    let mut node = IdentityNode {
        place: Some(r.place()),
        ..IdentityNode::default()
    };
    let mut seen: Vec<(String, Place)> = Vec::new();
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        if !CHILDREN.contains(&c.name()) {
            problems.push(unknown_node(&c, "`identity`", CHILDREN));
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(n, _)| n == c.name()) {
            problems.push(duplicate(&c, first));
            continue;
        }
        seen.push((c.name().to_owned(), c.place()));
        match c.name() {
            "serial" => {
                let template = string_arg(
                    &c,
                    0,
                    "a template",
                    "serial \"ACME-{n:06}\" start=1000",
                    problems,
                );
                let start = int_prop(&c, "start", i128::from(u64::MAX), problems);
                if let Some(template) = template {
                    node.serial = Some(SerialNode { template, start });
                }
                c.finish(&["start"], false, problems);
            }
            "mint" => {
                let key_type = string_prop(&c, "key-type", problems).and_then(|s| {
                    if let Some(k) = KeyType::parse(&s.value) {
                        return Some(Spanned::new(k, s.place));
                    }
                    problems.push(
                        ManifestError::new(ErrorKind::ValueInvalid, format!("unknown key type `{}`", s.value))
                            .at(&s.place, "expected p256 or rsa2048")
                            .help("write key-type=\"p256\" (ECDSA P-256, the default) or key-type=\"rsa2048\""),
                    );
                    None
                });
                node.mint = Some(MintNode {
                    ca_cert: string_prop(&c, "ca-cert", problems).map(|s| s.map(PathBuf::from)),
                    ca_key: string_prop(&c, "ca-key", problems).map(|s| s.map(PathBuf::from)),
                    subject: string_prop(&c, "subject", problems),
                    key_type,
                    validity_days: int_prop(&c, "validity-days", 36_500, problems),
                    place: Some(c.place()),
                });
                c.finish(
                    &["ca-cert", "ca-key", "subject", "key-type", "validity-days"],
                    false,
                    problems,
                );
            }
            "pool" => {
                let dir = string_arg(&c, 0, "a folder", "pool \"pool/\" warn-below=10", problems);
                let name = string_prop(&c, "name", problems);
                let warn_below = int_prop(&c, "warn-below", i128::from(u32::MAX), problems);
                if let Some(dir) = dir {
                    node.pool = Some(PoolNode {
                        dir: dir.map(PathBuf::from),
                        name,
                        warn_below,
                    });
                }
                c.finish(&["name", "warn-below"], false, problems);
            }
            "slot" => {
                let slot = string_arg(&c, 0, "a slot name", "slot \"client\" index=0", problems);
                let index = int_prop(&c, "index", 255, problems);
                if let Some(slot) = slot {
                    node.slot = Some(SlotNode { slot, index });
                }
                c.finish(&["index"], false, problems);
            }
            "nvs" => {
                if let Some(n) = parse_nvs(&c, problems) {
                    node.nvs = Some(n);
                }
            }
            _ => unreachable!("checked against CHILDREN"),
        }
    }
    node
}

/// The value (second argument) of an NVS entry node.
fn nvs_literal(er: &NodeReader<'_>, problems: &mut Problems) -> Option<Spanned<UserNvsLiteral>> {
    let Some(v) = er.arg(1) else {
        problems.push(
            ManifestError::new(
                ErrorKind::ArgumentMissing,
                format!("`{}` needs a value", er.name()),
            )
            .at(&er.place(), "value missing")
            .help("write the value after the encoding: hw_rev \"u8\" 3"),
        );
        return None;
    };
    match v.value {
        KdlValue::Integer(n) => Some(Spanned::new(UserNvsLiteral::Integer(*n), v.place)),
        KdlValue::String(s) => Some(Spanned::new(UserNvsLiteral::Text(s.clone()), v.place)),
        _ => {
            problems.push(
                ManifestError::new(
                    ErrorKind::ValueTypeWrong,
                    "an NVS value is a number or text",
                )
                .at(&v.place, "expected a number or a string")
                .help("write hw_rev \"u8\" 3 or serial \"string\" \"{serial}\""),
            );
            None
        }
    }
}

fn parse_nvs(r: &NodeReader<'_>, problems: &mut Problems) -> Option<UserNvsNode> {
    let partition = string_arg(
        r,
        0,
        "a partition name",
        "nvs \"device_info\" { ... }",
        problems,
    );
    r.finish(&[], true, problems);
    let mut namespaces = Vec::new();
    for child in r.children().map(KdlDocument::nodes).unwrap_or_default() {
        let c = NodeReader::new(child, r.file());
        if c.name() != "namespace" {
            problems.push(unknown_node(&c, "`nvs`", &["namespace"]));
            continue;
        }
        let name = string_arg(
            &c,
            0,
            "a namespace name",
            "namespace \"device\" { ... }",
            problems,
        );
        c.finish(&[], true, problems);
        let mut entries = Vec::new();
        for e in c.children().map(KdlDocument::nodes).unwrap_or_default() {
            let er = NodeReader::new(e, r.file());
            let key = Spanned::new(er.name().to_owned(), er.place());
            let encoding = string_arg(
                &er,
                0,
                "an encoding and a value",
                "serial \"string\" \"{serial}\"",
                problems,
            );
            let literal = if encoding.is_some() {
                nvs_literal(&er, problems)
            } else {
                None
            };
            er.finish(&[], false, problems);
            if let (Some(encoding), Some(value)) = (encoding, literal) {
                entries.push(UserNvsEntryNode {
                    key,
                    encoding,
                    value,
                });
            }
        }
        if let Some(name) = name {
            namespaces.push(UserNvsNamespaceNode { name, entries });
        }
    }
    Some(UserNvsNode {
        partition: partition?,
        namespaces,
    })
}

// ---------------------------------------------------------------------------------------------
// Plan (stage 2 output)
// ---------------------------------------------------------------------------------------------

/// The resolved `identity` section.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityPlan {
    /// Serial numbers.
    pub serial: SerialTemplate,
    /// Where certificates come from.
    pub credentials: CredentialPlan,
    /// Where they go.
    pub slot: SlotPlan,
    /// The user NVS partition.
    pub nvs: Option<UserNvsPlan>,
    /// Where the manifest writes `identity`.
    #[serde(skip)]
    pub place: Option<Place>,
}

/// Minted by a fleet CA, or taken from a pool.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialPlan {
    /// Made at allocation time.
    Mint(MintPlan),
    /// One ready-made pair per device.
    Pool(PoolPlan),
}

/// A fleet CA and what it mints.
#[derive(Debug, Clone, Serialize)]
pub struct MintPlan {
    /// CA certificate file (its bytes are in the plan's input files).
    pub ca_cert: PathBuf,
    /// CA private key file: read when minting, never kept in the plan.
    pub ca_key: PathBuf,
    /// Subject template (RFC 4514).
    pub subject: TextTemplate,
    /// Device key algorithm.
    pub key_type: KeyType,
    /// Validity in days from issue.
    pub validity_days: u32,
}

/// A folder of certificate/key pairs.
#[derive(Debug, Clone, Serialize)]
pub struct PoolPlan {
    /// The folder.
    pub dir: PathBuf,
    /// Its name in the store.
    pub name: String,
    /// Warning threshold.
    pub warn_below: Option<u32>,
}

/// The ESP-AT certificate/key pair that receives the device's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlotPlan {
    /// Certificate role (`client-cert`).
    pub cert_role: PkiRole,
    /// Key role (`client-key`).
    pub key_role: PkiRole,
    /// ESP-AT's name of the certificate role in this release (`client_cert`).
    pub cert_name: String,
    /// ESP-AT's name of the key role (`client_key`).
    pub key_name: String,
    /// Position among the role's files.
    pub index: usize,
}

/// The user NVS partition.
#[derive(Debug, Clone, Serialize)]
pub struct UserNvsPlan {
    /// at_customize partition name.
    pub partition: String,
    /// Its size (from the laid-out table).
    pub size: u32,
    /// Namespaces in order.
    pub namespaces: Vec<UserNvsNamespace>,
}

/// One namespace.
#[derive(Debug, Clone, Serialize)]
pub struct UserNvsNamespace {
    /// Name.
    pub name: String,
    /// Entries in order.
    pub entries: Vec<UserNvsEntry>,
}

/// One key.
#[derive(Debug, Clone, Serialize)]
pub struct UserNvsEntry {
    /// Key.
    pub key: String,
    /// Value.
    pub value: UserNvsValue,
}

/// A fixed value, or text filled in per device.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserNvsValue {
    /// The same for every device.
    Fixed(Value),
    /// Made from a template per device.
    Text(NvsText),
}

/// A per-device text value and how it is stored.
#[derive(Debug, Clone, Serialize)]
pub struct NvsText {
    /// How the filled-in text becomes the stored value.
    pub encoding: TextEncoding,
    /// The text.
    pub template: TextTemplate,
}

/// How text is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextEncoding {
    /// An NVS string (`nvs_get_str`).
    String,
    /// Hex digits stored as a blob.
    Hex2bin,
    /// Base64 stored as a blob.
    Base64,
}

// ---------------------------------------------------------------------------------------------
// Resolve (stage 2)
// ---------------------------------------------------------------------------------------------

/// The certificate slots a device identity can go into.
const SLOTS: &[&str] = &["client", "mqtt", "https", "wss", "eap", "server"];

/// Reads a file the plan names into its inputs (reporting a missing one itself).
pub type ReadFile<'a> = dyn FnMut(&Path, &Place) -> Option<Arc<[u8]>> + 'a;

/// What [`resolve`] needs from the rest of the plan.
pub struct ResolveContext<'a> {
    /// ESP-AT release.
    pub release: Release,
    /// Enabled features.
    pub features: &'a BTreeSet<String>,
    /// The at_customize table (laid out when it has no errors).
    pub at_customize: &'a TablePlan,
    /// The manifest's own PKI files.
    pub pki: &'a [PkiPlan],
    /// Where problems without a better place point (the manifest top).
    pub top: Place,
}

/// The identity worst case used to check the NVS partition before any device exists: the
/// longest serial the template can produce.
fn sample_fields(serial: &SerialTemplate) -> Fields {
    Fields {
        mac: Mac([0xff; 6]),
        serial: serial.format(u64::MAX),
    }
}

fn template_error(
    kind: ErrorKind,
    s: &Spanned<String>,
    what: &str,
    e: &TemplateError,
    help: &str,
) -> ManifestError {
    ManifestError::new(kind, format!("{what} `{}`: {e}", s.value))
        .at(&s.place, e.message.clone())
        .help(help.to_owned())
}

/// The role pair of a slot name.
fn slot_roles(name: &str) -> Option<(PkiRole, PkiRole)> {
    let cert = PkiRole::from_node_name(&format!("{name}-cert"))?;
    let key = PkiRole::from_node_name(&format!("{name}-key"))?;
    Some((cert, key))
}

/// Resolves the `identity` section. `read` reads a file into the plan's inputs (reporting a
/// missing one itself); every other problem goes to `errors`.
pub fn resolve(
    node: &IdentityNode,
    cx: &ResolveContext<'_>,
    read: &mut ReadFile<'_>,
    errors: &mut Vec<ManifestError>,
) -> Option<IdentityPlan> {
    let place = node.place.clone().unwrap_or_else(|| cx.top.clone());
    let serial = match &node.serial {
        None => {
            errors.push(
                ManifestError::new(ErrorKind::NodeMissing, "`identity` needs a serial template")
                    .at(&place, "no `serial`")
                    .help("add `serial \"ACME-{n:06}\" start=1000` inside identity"),
            );
            None
        }
        Some(s) => {
            match SerialTemplate::parse(&s.template.value, s.start.as_ref().map_or(1, |n| n.value))
            {
                Ok(t) => Some(t),
                Err(e) => {
                    errors.push(template_error(
                    ErrorKind::ValueInvalid,
                    &s.template,
                    "serial template",
                    &e,
                    "write literal text (A-Z a-z 0-9 - _ . /) around one counter, {n} or {n:06}: \"ACME-{n:06}\"",
                ));
                    None
                }
            }
        }
    };
    let credentials = match (&node.mint, &node.pool) {
        (Some(m), None) => resolve_mint(m, &place, read, errors).map(CredentialPlan::Mint),
        (None, Some(p)) => resolve_pool(p, errors).map(CredentialPlan::Pool),
        (Some(m), Some(p)) => {
            errors.push(
                ManifestError::new(
                    ErrorKind::ValueInvalid,
                    "`identity` has both `mint` and `pool`",
                )
                .at(&p.dir.place, "second source of certificates")
                .note(m.place.as_ref().unwrap_or(&place), "first here")
                .help(
                    "certificates are either minted by the fleet CA or taken from a pool: keep one",
                ),
            );
            None
        }
        (None, None) => {
            errors.push(
                ManifestError::new(ErrorKind::NodeMissing, "`identity` does not say where certificates come from")
                    .at(&place, "no `mint` or `pool`")
                    .help("add `mint ca-cert=\"ca.crt\" ca-key=\"ca.key\" subject=\"CN={serial}\"` or `pool \"certs/\"`"),
            );
            None
        }
    };
    let slot = resolve_slot(node, cx, &place, errors);
    let nvs = node.nvs.as_ref().and_then(|n| {
        let fields = serial.as_ref().map(sample_fields);
        resolve_nvs(n, cx, fields.as_ref(), errors)
    });
    Some(IdentityPlan {
        serial: serial?,
        credentials: credentials?,
        slot: slot?,
        nvs,
        place: Some(place),
    })
}

fn resolve_mint(
    m: &MintNode,
    place: &Place,
    read: &mut ReadFile<'_>,
    errors: &mut Vec<ManifestError>,
) -> Option<MintPlan> {
    let mint_place = m.place.clone().unwrap_or_else(|| place.clone());
    let (Some(ca_cert), Some(ca_key), Some(subject)) = (&m.ca_cert, &m.ca_key, &m.subject) else {
        for (absent, prop, example) in [
            (m.ca_cert.is_none(), "ca-cert", "\"pki/fleet-ca.crt\""),
            (m.ca_key.is_none(), "ca-key", "\"pki/fleet-ca.key\""),
            (
                m.subject.is_none(),
                "subject",
                "\"CN={serial},serialNumber={mac}\"",
            ),
        ] {
            if absent {
                errors.push(
                    ManifestError::new(
                        ErrorKind::ArgumentMissing,
                        format!("`mint` needs `{prop}`"),
                    )
                    .at(&mint_place, format!("{prop} missing"))
                    .help(format!("add {prop}={example}")),
                );
            }
        }
        return None;
    };
    let subject_t = check_subject(subject, errors);
    // The CA certificate is an input of the plan; the key is only checked here and read again
    // when minting, so that no plan, cache record or log ever holds it.
    let cert_path = ca_cert.place.file.dir().join(&ca_cert.value);
    let key_path = ca_key.place.file.dir().join(&ca_key.value);
    let cert = check_ca_cert(&cert_path, &ca_cert.place, read, errors);
    check_ca_key(&key_path, &cert_path, &ca_key.place, cert.as_ref(), errors);
    let validity_days = match &m.validity_days {
        Some(d) if d.value == 0 => {
            errors.push(
                ManifestError::new(ErrorKind::ValueInvalid, "validity-days must be at least 1")
                    .at(&d.place, "zero days")
                    .help("write validity-days=3650 for ten years"),
            );
            return None;
        }
        Some(d) => d.value,
        None => 3650,
    };
    Some(MintPlan {
        ca_cert: cert.map(|_| cert_path)?,
        ca_key: key_path,
        subject: subject_t?,
        key_type: m.key_type.as_ref().map_or(KeyType::P256, |k| k.value),
        validity_days,
    })
}

fn check_subject(
    subject: &Spanned<String>,
    errors: &mut Vec<ManifestError>,
) -> Option<TextTemplate> {
    let t = match TextTemplate::parse(&subject.value) {
        Ok(t) => t,
        Err(e) => {
            errors.push(template_error(
                ErrorKind::ValueInvalid,
                subject,
                "subject",
                &e,
                "placeholders are {serial}, {mac} and {mac_hex}; write {{ and }} for literal braces",
            ));
            return None;
        }
    };
    let sample = Fields {
        mac: Mac([0xff; 6]),
        serial: "S".to_owned(),
    };
    if t.render_with(&sample, rfc4514_escape)
        .parse::<x509_cert::name::Name>()
        .is_err()
    {
        errors.push(
            ManifestError::new(ErrorKind::ValueInvalid, format!("subject `{}` is not a distinguished name", subject.value))
                .at(&subject.place, "not RFC 4514")
                .help("write attribute=value pairs separated by commas: \"CN={serial},O=ACME,serialNumber={mac}\""),
        );
        return None;
    }
    if ![Field::Serial, Field::Mac, Field::MacHex]
        .iter()
        .any(|f| t.uses(*f))
    {
        errors.push(
            ManifestError::new(
                ErrorKind::ValueInvalid,
                "every device certificate would get the same subject",
            )
            .at(&subject.place, "no {serial}, {mac} or {mac_hex}")
            .help("put {serial} or {mac} in the subject, e.g. \"CN={serial}\"")
            .warning(),
        );
    }
    Some(t)
}

fn check_ca_cert(
    path: &Path,
    place: &Place,
    read: &mut ReadFile<'_>,
    errors: &mut Vec<ManifestError>,
) -> Option<check::CertInfo> {
    let bytes = read(path, place)?;
    let cert = check::parse(&bytes)
        .ok()
        .and_then(|m| m.into_iter().find_map(|m| m.certificate().cloned()));
    let Some(cert) = cert else {
        errors.push(
            ManifestError::new(
                ErrorKind::CertificateInvalid,
                format!("{} holds no certificate", path.display()),
            )
            .at(place, "not a certificate")
            .help("give the fleet CA certificate as PEM (-----BEGIN CERTIFICATE-----) or DER"),
        );
        return None;
    };
    if cert.is_ca == Some(false) {
        errors.push(
            ManifestError::new(ErrorKind::CertificateInvalid, format!("{} is not a CA certificate", path.display()))
                .at(place, "basicConstraints cA is false")
                .help("ca-cert must be the fleet CA's certificate, the one device certificates are verified against"),
        );
        return None;
    }
    if cert.not_after < std::time::SystemTime::now() {
        errors.push(
            ManifestError::new(
                ErrorKind::CertificateInvalid,
                format!(
                    "the fleet CA certificate expired (subject `{}`)",
                    cert.subject
                ),
            )
            .at(place, "expired")
            .help("renew the fleet CA: certificates it signs would not verify"),
        );
    }
    Some(cert)
}

fn check_ca_key(
    key_path: &Path,
    cert_path: &Path,
    place: &Place,
    cert: Option<&check::CertInfo>,
    errors: &mut Vec<ManifestError>,
) {
    // Bounded like every input (a regular file, at most 1 MiB); never kept in the plan.
    let bytes = match crate::input::read(key_path, crate::input::InputKind::CERTIFICATE) {
        Ok(b) => crate::secret::Secret::new(b),
        Err(crate::input::InputError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            errors.push(
                ManifestError::new(ErrorKind::FileUnreadable, format!("{} cannot be read by this user; it is checked again when minting", key_path.display()))
                    .at(place, "unreadable here")
                    .help("run as the service user (it must be able to read the CA key), or ignore this warning")
                    .warning(),
            );
            return;
        }
        Err(e) => {
            errors.push(super::inputs::refused(&e, Some(place)));
            return;
        }
    };
    let key = check::parse(bytes.expose())
        .ok()
        .and_then(|m| m.into_iter().find_map(|m| m.key().cloned()));
    match (key, cert) {
        (None, _) => errors.push(
            ManifestError::new(ErrorKind::CertificateInvalid, format!("{} holds no private key", key_path.display()))
                .at(place, "not a private key")
                .help("give the fleet CA's unencrypted private key (PEM PKCS#8, PKCS#1 or SEC1; RSA, P-256 or P-384)"),
        ),
        (Some(k), Some(c)) if !check::key_matches(&k, c) => errors.push(
            ManifestError::new(ErrorKind::CertificateInvalid, format!("{} is not the key of {}", key_path.display(), cert_path.display()))
                .at(place, "key does not match the CA certificate")
                .help("give the private key of the fleet CA certificate"),
        ),
        (Some(k), _)
            if !matches!(
                k.public_key,
                check::PublicKey::Rsa(_) | check::PublicKey::P256(_) | check::PublicKey::P384(_)
            ) =>
        {
            errors.push(
                ManifestError::new(ErrorKind::CertificateInvalid, format!("the fleet CA key is {}, which espfleet cannot sign with", k.public_key.algorithm()))
                    .at(place, "unsupported algorithm")
                    .help("use an RSA, P-256 or P-384 fleet CA"),
            );
        }
        _ => {}
    }
}

/// Escapes a value for an RFC 4514 distinguished-name string (section 2.4).
pub fn rfc4514_escape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let last = v.chars().count().saturating_sub(1);
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn resolve_pool(p: &PoolNode, errors: &mut Vec<ManifestError>) -> Option<PoolPlan> {
    let dir = p.dir.place.file.dir().join(&p.dir.value);
    match std::fs::metadata(&dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            errors.push(
                ManifestError::new(
                    ErrorKind::ValueInvalid,
                    format!("{} is not a folder", dir.display()),
                )
                .at(&p.dir.place, "not a folder")
                .help("pool names a folder of certificate and key files (one pair per device)"),
            );
            return None;
        }
        Err(_) => {
            errors.push(
                ManifestError::new(ErrorKind::FileMissing, format!("{} does not exist", dir.display()))
                    .at(&p.dir.place, "named here")
                    .help("paths are relative to the manifest that names them; create the folder and put the certificate/key pairs in it"),
            );
            return None;
        }
    }
    let name = match &p.name {
        Some(n) if !n.value.trim().is_empty() && n.value.len() <= 256 => n.value.clone(),
        Some(n) => {
            errors.push(
                ManifestError::new(
                    ErrorKind::ValueInvalid,
                    "a pool name is 1 to 256 characters",
                )
                .at(&n.place, "invalid name")
                .help("name the pool, e.g. name=\"acme-aws-2025\""),
            );
            return None;
        }
        None => fs_err::canonicalize(&dir)
            .unwrap_or(dir.clone())
            .display()
            .to_string(),
    };
    Some(PoolPlan {
        dir,
        name,
        warn_below: p.warn_below.as_ref().map(|w| w.value),
    })
}

fn resolve_slot(
    node: &IdentityNode,
    cx: &ResolveContext<'_>,
    place: &Place,
    errors: &mut Vec<ManifestError>,
) -> Option<SlotPlan> {
    let Some(s) = &node.slot else {
        errors.push(
            ManifestError::new(
                ErrorKind::NodeMissing,
                "`identity` does not say which ESP-AT slot receives the certificate",
            )
            .at(place, "no `slot`")
            .help("add `slot \"client\" index=0` (or mqtt, https, wss, eap, server)"),
        );
        return None;
    };
    let Some((cert_role, key_role)) =
        slot_roles(&s.slot.value).filter(|_| SLOTS.contains(&s.slot.value.as_str()))
    else {
        let mut e = ManifestError::new(
            ErrorKind::ValueInvalid,
            format!("unknown slot `{}`", s.slot.value),
        )
        .at(&s.slot.place, "not an ESP-AT certificate slot");
        e = match super::error::did_you_mean(&s.slot.value, SLOTS.iter().copied()) {
            Some(m) => e.help(format!("did you mean `{m}`?")),
            None => e.help("slots: client, mqtt, https, wss, eap, server"),
        };
        errors.push(e);
        return None;
    };
    debug_assert_eq!(cert_role.kind(), PkiKind::Cert);
    let release = cx.release;
    let cert_name = super::resolve::esp_at_name(cert_role, release);
    let key_name = super::resolve::esp_at_name(key_role, release);
    let feature = super::resolve::feature_of(cert_role);
    if matches!(s.slot.value.as_str(), "https" | "wss") && !release.has_https_wss() {
        errors.push(
            ManifestError::new(ErrorKind::FeatureDisabled, format!("ESP-AT {release} has no {} certificate slot", s.slot.value))
                .at(&s.slot.place, "not in this release")
                .help("HTTPS and WSS certificates arrived in ESP-AT v4.1.0.0; target a newer release or use another slot"),
        );
        return None;
    }
    if !cx.features.contains(feature) {
        errors.push(
            ManifestError::new(
                ErrorKind::FeatureDisabled,
                format!(
                    "slot `{}` is never read: the firmware is built without {feature}",
                    s.slot.value
                ),
            )
            .at(&s.slot.place, "never read by the firmware")
            .help(format!(
                "add `{feature} #true` to features, or pick another slot"
            )),
        );
        return None;
    }
    let needed: Vec<&str> = match release.era() {
        Era::A => vec![cert_name.as_str(), key_name.as_str()],
        Era::B => vec!["mfg_nvs"],
    };
    for n in needed {
        if cx.at_customize.row(n).is_none() {
            errors.push(
                ManifestError::new(
                    ErrorKind::PartitionMissing,
                    format!(
                        "slot `{}` needs the at_customize partition `{n}`",
                        s.slot.value
                    ),
                )
                .at(&s.slot.place, "no partition for it")
                .help(format!("add `partition \"{n}\" ...` to at-customize")),
            );
            return None;
        }
    }
    let index = s.index.as_ref().map_or(0, |i| usize::from(i.value));
    let given = cx
        .pki
        .iter()
        .find(|p| p.role == cert_role)
        .map_or(0, |p| p.files.len());
    if index > given {
        let place = s.index.as_ref().map_or(&s.slot.place, |i| &i.place);
        errors.push(
            ManifestError::new(ErrorKind::ValueInvalid, format!("index {index} would leave a gap: the manifest's certificates give {given} {} file(s)", cert_role.node_name()))
                .at(place, "gap before this index")
                .help(format!("use index={given} (after the manifest's own) or a lower one (replacing one of them)")),
        );
        return None;
    }
    Some(SlotPlan {
        cert_role,
        key_role,
        cert_name,
        key_name,
        index,
    })
}

fn nvs_name_ok(s: &str) -> bool {
    (1..=15).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

fn resolve_nvs(
    n: &UserNvsNode,
    cx: &ResolveContext<'_>,
    sample: Option<&Fields>,
    errors: &mut Vec<ManifestError>,
) -> Option<UserNvsPlan> {
    let name = &n.partition;
    let Some(row) = cx.at_customize.row(&name.value) else {
        errors.push(
            ManifestError::new(
                ErrorKind::PartitionMissing,
                format!("at_customize has no partition `{}`", name.value),
            )
            .at(&name.place, "no such partition")
            .help(format!(
                "add `partition \"{}\" type=\"data\" subtype=\"nvs\" size=\"16K\"` to at-customize",
                name.value
            )),
        );
        return None;
    };
    if row.file.is_some() {
        errors.push(
            ManifestError::new(
                ErrorKind::PartitionInvalid,
                format!(
                    "partition `{}` already has file=; identity fills it per device",
                    name.value
                ),
            )
            .at(row.place.as_ref().unwrap_or(&name.place), "has a file")
            .note(&name.place, "filled per device here")
            .help("remove file= from the at-customize row"),
        );
        return None;
    }
    let (namespaces, ok) = nvs_namespaces(n, errors);
    let Some(part) = cx.at_customize.partition(&name.value) else {
        return None; // the table has errors of its own, already reported
    };
    if (part.ty, part.subtype) != (1, 2) {
        errors.push(
            ManifestError::new(ErrorKind::PartitionInvalid, format!("partition `{}` is type {:#04x} subtype {:#04x}, not data/nvs", name.value, part.ty, part.subtype))
                .at(row.place.as_ref().unwrap_or(&name.place), "not an NVS partition")
                .note(&name.place, "used as NVS here")
                .help("write type=\"data\" subtype=\"nvs\" on the at-customize row: firmware opens it with nvs_flash_init_partition_ptr"),
        );
        return None;
    }
    let plan = UserNvsPlan {
        partition: name.value.clone(),
        size: part.size,
        namespaces,
    };
    if let (true, Some(fields)) = (ok, sample) {
        let result = crate::identity::user_nvs_entries(&plan, fields).and_then(|entries| {
            crate::nvs::encode(&entries, &crate::nvs::Options::new(u64::from(plan.size)))
                .map_err(|e| e.to_string())
        });
        if let Err(why) = result {
            errors.push(
                ManifestError::new(ErrorKind::PartitionInvalid, format!("user NVS partition `{}` cannot be encoded for the longest serial: {why}", name.value))
                    .at(&name.place, "does not encode")
                    .help("grow the partition (a multiple of 4K, at least 12K), shorten values, or fix hex2bin/base64 text"),
            );
            return None;
        }
    }
    ok.then_some(plan)
}

/// The namespaces and entries of a user NVS partition, checked; `false` when any is invalid.
fn nvs_namespaces(
    n: &UserNvsNode,
    errors: &mut Vec<ManifestError>,
) -> (Vec<UserNvsNamespace>, bool) {
    let mut ok = true;
    let mut namespaces = Vec::new();
    let mut ns_seen: Vec<&str> = Vec::new();
    for ns in &n.namespaces {
        if !nvs_name_ok(&ns.name.value) {
            ok = false;
            errors.push(
                ManifestError::new(
                    ErrorKind::ValueInvalid,
                    format!(
                        "NVS namespace `{}` is not 1–15 printable ASCII characters",
                        ns.name.value
                    ),
                )
                .at(&ns.name.place, "invalid namespace name")
                .help("NVS names hold at most 15 bytes"),
            );
        }
        if ns_seen.contains(&ns.name.value.as_str()) {
            ok = false;
            errors.push(
                ManifestError::new(
                    ErrorKind::NodeDuplicate,
                    format!("namespace `{}` is given twice", ns.name.value),
                )
                .at(&ns.name.place, "given again here")
                .help("put all its keys in one `namespace` block"),
            );
        }
        ns_seen.push(&ns.name.value);
        let mut keys: Vec<&str> = Vec::new();
        let mut entries = Vec::new();
        for e in &ns.entries {
            if !nvs_name_ok(&e.key.value) {
                ok = false;
                errors.push(
                    ManifestError::new(
                        ErrorKind::ValueInvalid,
                        format!(
                            "NVS key `{}` is not 1–15 printable ASCII characters",
                            e.key.value
                        ),
                    )
                    .at(&e.key.place, "invalid key")
                    .help("NVS keys hold at most 15 bytes"),
                );
            }
            if keys.contains(&e.key.value.as_str()) {
                ok = false;
                errors.push(
                    ManifestError::new(
                        ErrorKind::NodeDuplicate,
                        format!(
                            "key `{}` is given twice in namespace `{}`",
                            e.key.value, ns.name.value
                        ),
                    )
                    .at(&e.key.place, "given again here")
                    .help("keep one"),
                );
            }
            keys.push(&e.key.value);
            match entry_value(e) {
                Ok(value) => entries.push(UserNvsEntry {
                    key: e.key.value.clone(),
                    value,
                }),
                Err(err) => {
                    ok = false;
                    errors.push(err);
                }
            }
        }
        namespaces.push(UserNvsNamespace {
            name: ns.name.value.clone(),
            entries,
        });
    }
    (namespaces, ok)
}

fn entry_value(e: &UserNvsEntryNode) -> Result<UserNvsValue, ManifestError> {
    let enc = e.encoding.value.as_str();
    let bad_value = |msg: String, help: &str| {
        ManifestError::new(ErrorKind::ValueInvalid, msg)
            .at(&e.value.place, "invalid value")
            .help(help.to_owned())
    };
    let int_range: Option<(i128, i128)> = match enc {
        "u8" => Some((0, i128::from(u8::MAX))),
        "i8" => Some((i128::from(i8::MIN), i128::from(i8::MAX))),
        "u16" => Some((0, i128::from(u16::MAX))),
        "i16" => Some((i128::from(i16::MIN), i128::from(i16::MAX))),
        "u32" => Some((0, i128::from(u32::MAX))),
        "i32" => Some((i128::from(i32::MIN), i128::from(i32::MAX))),
        "u64" => Some((0, i128::from(u64::MAX))),
        "i64" => Some((i128::from(i64::MIN), i128::from(i64::MAX))),
        _ => None,
    };
    if let Some((lo, hi)) = int_range {
        let n = match &e.value.value {
            UserNvsLiteral::Integer(n) => Some(*n),
            UserNvsLiteral::Text(t) => value::parse_int_literal(t),
        };
        let Some(n) = n.filter(|n| (lo..=hi).contains(n)) else {
            return Err(bad_value(
                format!("`{}` needs a {enc} value ({lo}..={hi})", e.key.value),
                "write a number in range, without {placeholders}",
            ));
        };
        // In range by the check above.
        let v = match enc {
            "u8" => Value::U8(u8::try_from(n).unwrap_or_default()),
            "i8" => Value::I8(i8::try_from(n).unwrap_or_default()),
            "u16" => Value::U16(u16::try_from(n).unwrap_or_default()),
            "i16" => Value::I16(i16::try_from(n).unwrap_or_default()),
            "u32" => Value::U32(u32::try_from(n).unwrap_or_default()),
            "i32" => Value::I32(i32::try_from(n).unwrap_or_default()),
            "u64" => Value::U64(u64::try_from(n).unwrap_or_default()),
            _ => Value::I64(i64::try_from(n).unwrap_or_default()),
        };
        return Ok(UserNvsValue::Fixed(v));
    }
    let encoding = match enc {
        "string" => TextEncoding::String,
        "hex2bin" => TextEncoding::Hex2bin,
        "base64" => TextEncoding::Base64,
        _ => {
            let all = [
                "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "string", "hex2bin", "base64",
            ];
            let mut err = ManifestError::new(
                ErrorKind::ValueInvalid,
                format!("unknown NVS encoding `{enc}`"),
            )
            .at(&e.encoding.place, "unknown encoding");
            err = match super::error::did_you_mean(enc, all) {
                Some(s) => err.help(format!("did you mean `{s}`?")),
                None => err.help(format!("encodings: {}", all.join(" "))),
            };
            return Err(err);
        }
    };
    let UserNvsLiteral::Text(text) = &e.value.value else {
        return Err(bad_value(
            format!("`{}` is {enc}: its value is text", e.key.value),
            "write the value in double quotes",
        ));
    };
    let template = TextTemplate::parse(text).map_err(|t| {
        bad_value(
            format!("`{}`: {t}", e.key.value),
            "placeholders are {serial}, {mac} and {mac_hex}; write {{ and }} for literal braces",
        )
    })?;
    Ok(UserNvsValue::Text(NvsText { encoding, template }))
}
