//! libFuzzer entry of the `sdp_parse` target; the body is `ringsfu_core_fuzz::targets::sdp_parse`
//! (shared with the corpus replay in tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsfu_core_fuzz::targets::sdp_parse(data));
