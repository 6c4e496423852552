#![no_main]
// The checks live in hardrun::fuzz_entry, where tests/fuzz_regressions.rs replays saved inputs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| hardrun::fuzz_entry::verifier_reply(data));
