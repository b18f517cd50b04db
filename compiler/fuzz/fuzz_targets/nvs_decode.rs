#![no_main]
// Placeholder until the decoder exists; the owning issue replaces this body.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    std::hint::black_box(data);
});
