//! Which I/O backend a test's worker must run (core tests only: it probes io_uring with the
//! `io-uring` crate, a dependency of ringsfu-core that the other test crates lack).

#![allow(dead_code)]

/// The I/O backend `RINGSFU_IO_BACKEND` asks for (epoll when unset); test.sh runs the engine
/// suites a second time with `io_uring`.
pub fn requested_backend() -> ringsfu_core::io::IoBackend {
    std::env::var("RINGSFU_IO_BACKEND")
        .ok()
        .and_then(|b| ringsfu_core::io::IoBackend::parse(&b))
        .unwrap_or(ringsfu_core::io::IoBackend::Epoll)
}

/// Asserts that a worker really runs the backend the environment asked for. io_uring may fall
/// back to epoll only where the kernel refuses a ring, which this checks independently of the
/// worker's own code (the `io-uring` crate directly); the fallback is then printed, so a run
/// meant to cover io_uring shows that it did not.
pub fn assert_backend_used(used: ringsfu_core::io::IoBackend) {
    use ringsfu_core::io::IoBackend;
    let requested = requested_backend();
    if requested == IoBackend::Epoll {
        assert_eq!(used, IoBackend::Epoll, "epoll requested");
        return;
    }
    match io_uring::IoUring::new(8) {
        Ok(_) => assert_eq!(
            used,
            IoBackend::IoUring,
            "io_uring requested and available here, but the worker runs {used:?}"
        ),
        Err(e) => {
            eprintln!(
                "io_uring requested but unavailable here ({e}): the worker fell back to epoll"
            );
            assert_eq!(used, IoBackend::Epoll, "fallback where io_uring is refused");
        }
    }
}
