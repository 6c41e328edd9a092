//! Shared by the bench crate's integration tests (smoke.rs, soak.rs).

/// The ringsfu server binary beside this test's ringsfu-bench (same profile directory), or
/// `RINGSFU_BIN`. `cargo test --workspace` builds it; `cargo test -p ringsfu-bench` alone does not.
pub fn ringsfu_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("RINGSFU_BIN") {
        return p.into();
    }
    let bench = std::path::Path::new(env!("CARGO_BIN_EXE_ringsfu-bench"));
    let bin = bench.with_file_name("ringsfu");
    assert!(
        bin.is_file(),
        "the ringsfu server binary is missing at {}: build it with the same profile \
         (`cargo build --profile ci --bin ringsfu`, or run `cargo test --workspace`), \
         or set RINGSFU_BIN",
        bin.display()
    );
    bin
}
