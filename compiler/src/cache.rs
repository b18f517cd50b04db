//! Content-addressed image cache (blake3 keys). (Issue #5 fills this module in.)
