//! libFuzzer entry of the `turn_server` target; the body is `ringsfu_core_fuzz::targets::turn_server`
//! (shared with the corpus replay in tests/fuzz_replay.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ringsfu_core_fuzz::targets::turn_server(data));
