//! Per-worker accounting of Lua handler invocations, kept in a thread local of the worker (no
//! lock, no atomic) and read by the `/metrics` scrape through a message to the worker.

use std::cell::Cell;
use std::time::Duration;

/// What the worker's Lua handlers did since it started.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LuaStats {
    /// Handler invocations started (requests, notifications, hooks, timers, HTTP calls).
    pub invocations: u64,
    /// Invocations that ended in an error (raised, budget or memory exceeded, refused).
    pub errors: u64,
    /// Time spent running Lua on the worker thread (sum of the coroutines' polls; waiting for
    /// a peer's answer or a sleep does not count).
    pub busy: Duration,
}

thread_local! {
    static STATS: Cell<LuaStats> = const { Cell::new(LuaStats {
        invocations: 0,
        errors: 0,
        busy: Duration::ZERO,
    }) };
}

/// Counts an invocation's start.
pub fn invoked() {
    STATS.with(|s| {
        let mut v = s.get();
        v.invocations += 1;
        s.set(v);
    });
}

/// Counts a failed invocation.
pub fn failed() {
    STATS.with(|s| {
        let mut v = s.get();
        v.errors += 1;
        s.set(v);
    });
}

/// Adds time spent running Lua.
pub fn busy(d: Duration) {
    STATS.with(|s| {
        let mut v = s.get();
        v.busy += d;
        s.set(v);
    });
}

/// This thread's counters.
pub fn snapshot() -> LuaStats {
    STATS.with(Cell::get)
}

/// A future wrapper that adds the time spent in each poll of `inner` to [`busy`].
pub struct Timed<F> {
    inner: std::pin::Pin<Box<F>>,
}

impl<F: std::future::Future> Timed<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> Self {
        Timed {
            inner: Box::pin(inner),
        }
    }
}

impl<F: std::future::Future> std::future::Future for Timed<F> {
    type Output = F::Output;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let t0 = std::time::Instant::now();
        let r = self.inner.as_mut().poll(cx);
        busy(t0.elapsed());
        r
    }
}
