//! libFuzzer entry of the `http_request` target; the body is `ringsfu_core_fuzz::targets::http_request`
//! (shared with the corpus replay in tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsfu_core_fuzz::targets::http_request(data));
