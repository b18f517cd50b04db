//! Per-device identity for espfleet: every board leaves the bench with its own serial number and
//! client certificate, recorded so that it can be registered with a cloud and audited.
//!
//! - [`store`]: the identity store behind one interface ([`store::IdentityStore`]), with an
//!   embedded SQLite backend ([`store::sqlite::SqliteStore`]). Allocation is transactional and
//!   idempotent by MAC.
//! - [`mint`]: the fleet CA that mints device certificates at allocation time.
//! - [`pool`]: ready-made certificate/key pairs read from a folder, one per device.
//! - [`provision`]: the front door — a resolved plan and a MAC in, the board's identity (and,
//!   through `espfleet_compiler::identity::personalize`, its images) out.
//! - [`conformance`]: the one test suite every store backend must pass.
//!
//! Key material is held in [`espfleet_compiler::secret::Secret`] everywhere. The design, the
//! durability choices and the threat model are in `docs/identity.md`.

pub mod conformance;
pub mod mint;
pub mod pool;
pub mod provision;
pub mod store;
pub mod time;

pub use espfleet_compiler::identity::{DeviceIdentity, Mac};
pub use espfleet_compiler::secret::Secret;
