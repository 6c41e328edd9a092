//! io_uring backend. Only the availability probe exists so far: the worker falls back to the epoll
//! backend (and says so once in the log) until the multishot-receive ring path is built.

/// Whether io_uring can be set up here (it is blocked by Docker's default seccomp profile and by
/// `kernel.io_uring_disabled`).
pub fn available() -> bool {
    io_uring::IoUring::new(8).is_ok()
}
