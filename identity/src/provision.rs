//! The front door of per-device identity: one [`Provisioner`] per resolved manifest, used by
//! every caller (`espfleet build --for-mac`, the daemon, the benchmark) to turn a MAC into the
//! board's identity. Building the board's images from it is
//! `espfleet_compiler::identity::device_images`.
//!
//! Preparing loads what allocation needs once per manifest: the fleet CA (mint), or the pool
//! folder, scanned and imported into the store (pairs already there are skipped).

use espfleet_compiler::identity::{Mac, SerialTemplate};
use espfleet_compiler::manifest::Plan;
use espfleet_compiler::manifest::identity::CredentialPlan;

use crate::mint::{MintError, PlanMinter};
use crate::pool::{self, PoolError, PoolProblem};
use crate::store::{
    Allocation, AllocationRequest, Credentials, IdentityStore, PoolImport, PoolStatus, StoreError,
};

/// Why a manifest's identities cannot be allocated.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProvisionError {
    /// The manifest has no `identity` section.
    #[error("manifest `{manifest}` has no identity section")]
    #[diagnostic(
        code(espfleet::identity::not_configured),
        help(
            "add an `identity {{ ... }}` section (see manifests/README.md), or build without --for-mac"
        )
    )]
    NotConfigured {
        /// Manifest name.
        manifest: String,
    },
    /// The fleet CA cannot be used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Mint(#[from] MintError),
    /// The pool folder cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pool(#[from] PoolError),
    /// The store failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Store(#[from] StoreError),
}

enum Source {
    Mint(Box<PlanMinter>),
    Pool {
        name: String,
        warn_below: Option<u32>,
    },
}

/// Allocates identities for one manifest.
pub struct Provisioner {
    manifest: String,
    serial: SerialTemplate,
    source: Source,
    /// What preparing found worth saying (pool files not imported, a CA key others can read).
    pub warnings: Vec<String>,
    /// What the pool import did (pool manifests).
    pub imported: Option<PoolImport>,
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("manifest", &self.manifest)
            .field("serial", &self.serial.text)
            .finish_non_exhaustive()
    }
}

fn problem_text(p: &PoolProblem) -> String {
    format!("pool: {}: {} (not imported)", p.file.display(), p.reason)
}

impl Provisioner {
    /// Prepares allocation for `plan`: loads its fleet CA, or scans its pool folder and imports
    /// the pairs into `store`.
    pub fn prepare(plan: &Plan, store: &dyn IdentityStore) -> Result<Self, ProvisionError> {
        let Some(id) = &plan.identity else {
            return Err(ProvisionError::NotConfigured {
                manifest: plan.name.clone(),
            });
        };
        let mut warnings = Vec::new();
        let mut imported = None;
        let source = match &id.credentials {
            CredentialPlan::Mint(m) => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt as _;
                    if let Ok(meta) = std::fs::metadata(&m.ca_key) {
                        let mode = meta.permissions().mode() & 0o777;
                        if mode & 0o077 != 0 {
                            warnings.push(format!(
                                "the fleet CA key {} is readable by other users (mode {mode:o}): chmod 600 it",
                                m.ca_key.display()
                            ));
                        }
                    }
                }
                Source::Mint(Box::new(PlanMinter::load(m)?))
            }
            CredentialPlan::Pool(p) => {
                let scan = pool::scan(&p.dir)?;
                warnings.extend(scan.problems.iter().map(problem_text));
                imported = Some(store.import_pool(&p.name, &scan.entries)?);
                Source::Pool {
                    name: p.name.clone(),
                    warn_below: p.warn_below,
                }
            }
        };
        Ok(Provisioner {
            manifest: plan.name.clone(),
            serial: id.serial.clone(),
            source,
            warnings,
            imported,
        })
    }

    /// The allocation request for `mac` at `station`.
    pub fn request<'a>(&'a self, mac: Mac, station: &'a str) -> AllocationRequest<'a> {
        AllocationRequest {
            mac,
            manifest: &self.manifest,
            station,
            serial: &self.serial,
            credentials: match &self.source {
                Source::Mint(m) => Credentials::Mint(&**m),
                Source::Pool { name, .. } => Credentials::Pool(name),
            },
        }
    }

    /// Allocates (or returns) `mac`'s identity.
    pub fn allocate(
        &self,
        store: &dyn IdentityStore,
        mac: Mac,
        station: &str,
    ) -> Result<Allocation, StoreError> {
        store.allocate(&self.request(mac, station))
    }

    /// Allocates for several boards in one transaction (all or none).
    pub fn allocate_many(
        &self,
        store: &dyn IdentityStore,
        macs: &[Mac],
        station: &str,
    ) -> Result<Vec<Allocation>, StoreError> {
        let reqs: Vec<_> = macs.iter().map(|m| self.request(*m, station)).collect();
        store.allocate_batch(&reqs)
    }

    /// The pool's counts and whether they are below the manifest's `warn-below` (pool
    /// manifests only).
    pub fn pool_status(
        &self,
        store: &dyn IdentityStore,
    ) -> Result<Option<(PoolStatus, bool)>, StoreError> {
        match &self.source {
            Source::Mint(_) => Ok(None),
            Source::Pool { name, warn_below } => {
                let st = store.pool_status(name)?;
                let low = warn_below.is_some_and(|w| st.remaining < u64::from(w));
                Ok(Some((st, low)))
            }
        }
    }

    /// The pool's name (pool manifests only).
    pub fn pool_name(&self) -> Option<&str> {
        match &self.source {
            Source::Mint(_) => None,
            Source::Pool { name, .. } => Some(name),
        }
    }
}
