//! libFuzzer entry of the `engineio_payload` target; the body is `ringsfu_core_fuzz::targets::engineio_payload`
//! (shared with the corpus replay in tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsfu_core_fuzz::targets::engineio_payload(data));
