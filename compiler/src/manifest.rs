//! The manifest language: parse (KDL with spans) and resolve (a validated plan).
