//! Emit: from a resolved plan to images.
