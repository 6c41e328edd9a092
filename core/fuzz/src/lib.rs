//! Fuzz targets of ringsfu (see README.md): the libFuzzer binaries in `fuzz_targets/` call
//! these functions.
pub mod targets;
