//! The manifest language's JSON Schema, generated from [`Document`](super::Document).
//!
//! A manifest's JSON form is what [`Document`](super::Document) serialises to: one member per
//! top-level node, properties as members. `schemas/manifest.schema.json` is this function's
//! output, checked in; a test fails when the two drift apart.

/// The JSON Schema as pretty-printed JSON text with a trailing newline.
pub fn json_schema() -> String {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .into_generator()
        .into_root_schema_for::<super::Document>();
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
