//! libFuzzer entry of the `protoo_frame` target; the body is `ringsfu_core_fuzz::targets::protoo_frame`
//! (shared with the corpus replay in tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsfu_core_fuzz::targets::protoo_frame(data));
