//! Loader rules, frame by frame (spec sections 5 to 9).
