//! Manifest diagnostics: one error type with a stable code per rule, a label on the exact span
//! and a `help` that says what to do; and [`Diagnostics`], all of a manifest's problems at once.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, Severity, SourceCode};

use super::source::Place;

/// The rule a manifest breaks. Each has a stable diagnostic code `espfleet::manifest::<code>`
/// that scripts and documentation may rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The manifest (or a file it names) could not be read.
    FileUnreadable,
    /// The text is not valid KDL.
    SyntaxInvalid,
    /// A node name the language does not have here.
    NodeUnknown,
    /// A property name the node does not take.
    PropertyUnknown,
    /// More positional arguments than the node takes.
    ArgumentUnexpected,
    /// A required argument or property is missing.
    ArgumentMissing,
    /// A value of the wrong KDL type (a string where a number is needed, ...).
    ValueTypeWrong,
    /// A value of the right type but outside what is allowed.
    ValueInvalid,
    /// A node that may appear once appears again.
    NodeDuplicate,
    /// A node the manifest must have is missing.
    NodeMissing,
    /// The `espfleet` language version is not one this build understands.
    LanguageVersionUnsupported,
    /// The module is not in the catalogue.
    ModuleUnknown,
    /// The module name exists for several chips; `chip=` is needed.
    ModuleAmbiguous,
    /// The module is not shipped by the requested ESP-AT release.
    ModuleUnavailable,
    /// The ESP-AT release is not one espfleet knows.
    ReleaseUnknown,
    /// A UART pin the module cannot use.
    PinUnusable,
    /// A feature (Kconfig symbol) espfleet does not know.
    FeatureUnknown,
    /// Data given for a feature the firmware is built without.
    FeatureDisabled,
    /// A feature needs a partition that the at_customize table lacks.
    PartitionMissing,
    /// A partition table problem (overlap, alignment, name length, ...).
    PartitionInvalid,
    /// A file named by the manifest does not exist.
    FileMissing,
    /// `extends` forms a cycle.
    ExtendsCycle,
    /// Two bases set the same value differently and the manifest does not decide.
    OverrideConflict,
    /// BLE GATTS data that ESP-AT cannot use.
    GattsInvalid,
    /// Firmware parts that do not fit together.
    FirmwareInvalid,
    /// A certificate or key problem.
    CertificateInvalid,
    /// A named file is a FIFO, device, socket or directory (read only from regular files).
    FileNotRegular,
    /// A named file is larger than its kind may be (`docs/input-limits.md`).
    FileTooLarge,
    /// A file that should be a manifest or a table holds a private key; it is not quoted.
    FileHoldsKey,
    /// Blocks (or comments) nested deeper than the parser is allowed to go.
    NestingTooDeep,
    /// A property given twice on one node (the last one wins, as in KDL): a warning.
    PropertyRepeated,
}

impl ErrorKind {
    /// Every rule, for documentation and for the test that each has a fixture.
    pub const ALL: &'static [ErrorKind] = &[
        ErrorKind::FileUnreadable,
        ErrorKind::SyntaxInvalid,
        ErrorKind::NodeUnknown,
        ErrorKind::PropertyUnknown,
        ErrorKind::ArgumentUnexpected,
        ErrorKind::ArgumentMissing,
        ErrorKind::ValueTypeWrong,
        ErrorKind::ValueInvalid,
        ErrorKind::NodeDuplicate,
        ErrorKind::NodeMissing,
        ErrorKind::LanguageVersionUnsupported,
        ErrorKind::ModuleUnknown,
        ErrorKind::ModuleAmbiguous,
        ErrorKind::ModuleUnavailable,
        ErrorKind::ReleaseUnknown,
        ErrorKind::PinUnusable,
        ErrorKind::FeatureUnknown,
        ErrorKind::FeatureDisabled,
        ErrorKind::PartitionMissing,
        ErrorKind::PartitionInvalid,
        ErrorKind::FileMissing,
        ErrorKind::ExtendsCycle,
        ErrorKind::OverrideConflict,
        ErrorKind::GattsInvalid,
        ErrorKind::FirmwareInvalid,
        ErrorKind::CertificateInvalid,
        ErrorKind::FileNotRegular,
        ErrorKind::FileTooLarge,
        ErrorKind::FileHoldsKey,
        ErrorKind::NestingTooDeep,
        ErrorKind::PropertyRepeated,
    ];

    /// The stable diagnostic code.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::FileUnreadable => "espfleet::manifest::file_unreadable",
            ErrorKind::SyntaxInvalid => "espfleet::manifest::syntax_invalid",
            ErrorKind::NodeUnknown => "espfleet::manifest::node_unknown",
            ErrorKind::PropertyUnknown => "espfleet::manifest::property_unknown",
            ErrorKind::ArgumentUnexpected => "espfleet::manifest::argument_unexpected",
            ErrorKind::ArgumentMissing => "espfleet::manifest::argument_missing",
            ErrorKind::ValueTypeWrong => "espfleet::manifest::value_type_wrong",
            ErrorKind::ValueInvalid => "espfleet::manifest::value_invalid",
            ErrorKind::NodeDuplicate => "espfleet::manifest::node_duplicate",
            ErrorKind::NodeMissing => "espfleet::manifest::node_missing",
            ErrorKind::LanguageVersionUnsupported => {
                "espfleet::manifest::language_version_unsupported"
            }
            ErrorKind::ModuleUnknown => "espfleet::manifest::module_unknown",
            ErrorKind::ModuleAmbiguous => "espfleet::manifest::module_ambiguous",
            ErrorKind::ModuleUnavailable => "espfleet::manifest::module_unavailable",
            ErrorKind::ReleaseUnknown => "espfleet::manifest::release_unknown",
            ErrorKind::PinUnusable => "espfleet::manifest::pin_unusable",
            ErrorKind::FeatureUnknown => "espfleet::manifest::feature_unknown",
            ErrorKind::FeatureDisabled => "espfleet::manifest::feature_disabled",
            ErrorKind::PartitionMissing => "espfleet::manifest::partition_missing",
            ErrorKind::PartitionInvalid => "espfleet::manifest::partition_invalid",
            ErrorKind::FileMissing => "espfleet::manifest::file_missing",
            ErrorKind::ExtendsCycle => "espfleet::manifest::extends_cycle",
            ErrorKind::OverrideConflict => "espfleet::manifest::override_conflict",
            ErrorKind::GattsInvalid => "espfleet::manifest::gatts_invalid",
            ErrorKind::FirmwareInvalid => "espfleet::manifest::firmware_invalid",
            ErrorKind::CertificateInvalid => "espfleet::manifest::certificate_invalid",
            ErrorKind::FileNotRegular => "espfleet::manifest::file_not_regular",
            ErrorKind::FileTooLarge => "espfleet::manifest::file_too_large",
            ErrorKind::FileHoldsKey => "espfleet::manifest::file_holds_key",
            ErrorKind::NestingTooDeep => "espfleet::manifest::nesting_too_deep",
            ErrorKind::PropertyRepeated => "espfleet::manifest::property_repeated",
        }
    }
}

/// One problem in a manifest, pointing at the place that causes it. Boxed inside, so that
/// `Result<T, ManifestError>` stays small.
#[derive(Debug, Clone)]
pub struct ManifestError(Box<Inner>);

#[derive(Debug, Clone)]
struct Inner {
    kind: ErrorKind,
    message: String,
    label: String,
    help: Option<String>,
    place: Option<Place>,
    /// Further labelled places in the same file (`first defined here`, ...).
    notes: Vec<(Place, String)>,
    severity: Severity,
}

impl ManifestError {
    /// A new error of `kind` with its message; add the place, label and help with the builders.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ManifestError(Box::new(Inner {
            kind,
            message: message.into(),
            label: String::from("here"),
            help: None,
            place: None,
            notes: Vec::new(),
            severity: Severity::Error,
        }))
    }

    /// Points the error at `place` with a short label.
    #[must_use]
    pub fn at(mut self, place: &Place, label: impl Into<String>) -> Self {
        self.0.place = Some(place.clone());
        self.0.label = label.into();
        self
    }

    /// Says what to do about it.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// Adds a second labelled place (shown when it is in the same file).
    #[must_use]
    pub fn note(mut self, place: &Place, label: impl Into<String>) -> Self {
        self.0.notes.push((place.clone(), label.into()));
        self
    }

    /// Turns the error into a warning: reported, but the manifest still builds.
    #[must_use]
    pub fn warning(mut self) -> Self {
        self.0.severity = Severity::Warning;
        self
    }

    /// Which rule is broken.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// Where, if the problem has a place in a manifest.
    pub fn place(&self) -> Option<&Place> {
        self.0.place.as_ref()
    }

    /// The same problem as an error (`--deny-warnings`).
    #[must_use]
    pub fn denied(mut self) -> Self {
        self.0.severity = Severity::Error;
        self
    }

    /// True for warnings, which do not stop a build.
    pub fn is_warning(&self) -> bool {
        self.0.severity == Severity::Warning
    }

    /// The one-line message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl std::error::Error for ManifestError {}

impl Diagnostic for ManifestError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.0.kind.code()))
    }

    fn severity(&self) -> Option<Severity> {
        Some(self.0.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.0.place.as_ref().map(|p| p.file.source_code())
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let place = self.0.place.as_ref()?;
        let primary = LabeledSpan::new_primary_with_span(Some(self.0.label.clone()), place.span);
        let notes = self
            .0
            .notes
            .iter()
            .filter(|(p, _)| p.file == place.file)
            .map(|(p, l)| LabeledSpan::new_with_span(Some(l.clone()), p.span));
        Some(Box::new(std::iter::once(primary).chain(notes)))
    }
}

/// Every problem found in one manifest (and the files it extends), reported together.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    /// What was checked (the manifest path), for the headline.
    pub subject: String,
    /// Errors and warnings in the order they were found.
    pub errors: Vec<ManifestError>,
}

impl Diagnostics {
    /// An empty collection for `subject`.
    pub fn new(subject: impl Into<String>) -> Self {
        Diagnostics {
            subject: subject.into(),
            errors: Vec::new(),
        }
    }
    /// Adds one problem.
    pub fn push(&mut self, e: ManifestError) {
        self.errors.push(e);
    }
    /// True when there is at least one error (warnings do not count).
    pub fn has_errors(&self) -> bool {
        self.errors.iter().any(|e| !e.is_warning())
    }
    /// Number of errors (not warnings).
    pub fn error_count(&self) -> usize {
        self.errors.iter().filter(|e| !e.is_warning()).count()
    }
    /// The warnings only.
    pub fn warnings(&self) -> impl Iterator<Item = &ManifestError> {
        self.errors.iter().filter(|e| e.is_warning())
    }

    /// Applies `--deny-warnings` to a load result: with `deny`, a manifest that resolved with
    /// warnings fails, its warnings reported as errors (expired certificates, repeated
    /// properties, settings a release ignores). CI uses it to keep warnings from piling up.
    pub fn deny_warnings<T>(
        result: Result<(T, Diagnostics), Diagnostics>,
        deny: bool,
    ) -> Result<(T, Diagnostics), Diagnostics> {
        match result {
            Ok((_, warnings)) if deny && !warnings.errors.is_empty() => Err(Diagnostics {
                subject: warnings.subject,
                errors: warnings
                    .errors
                    .into_iter()
                    .map(ManifestError::denied)
                    .collect(),
            }),
            other => other,
        }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.error_count();
        let w = self.errors.len() - n;
        match (n, w) {
            (0, 0) => write!(f, "{}: no problems", self.subject),
            (0, w) => write!(f, "{}: {w} warning{}", self.subject, plural(w)),
            (n, 0) => write!(f, "{}: {n} error{}", self.subject, plural(n)),
            (n, w) => write!(
                f,
                "{}: {n} error{} and {w} warning{}",
                self.subject,
                plural(n),
                plural(w)
            ),
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

impl std::error::Error for Diagnostics {}

impl Diagnostic for Diagnostics {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("espfleet::manifest::invalid"))
    }
    fn severity(&self) -> Option<Severity> {
        Some(if self.has_errors() {
            Severity::Error
        } else {
            Severity::Warning
        })
    }
    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

/// "did you mean `x`?" for a misspelt name, from the names that are valid in that position.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(name, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}
