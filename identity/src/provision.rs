//! The front door of per-device identity.
