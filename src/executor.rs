//! Where room work runs: a worker thread that accepts `Send` closures and runs them on its
//! single-threaded runtime (with a LocalSet, so they may `spawn_local` Lua coroutines).
//!
//! Two implementations: [`EngineWorker`] wraps a media worker of ringsfu-core (the room's
//! handlers then run next to its media, and the Lua engine bindings are available), and
//! [`LocalThread`] is a bare thread with no media engine (for embedders and tests of the
//! signaling logic alone).

use std::thread::JoinHandle;

use tokio::sync::mpsc;

/// A unit of work for a worker thread.
pub type Task = Box<dyn FnOnce() + Send>;

/// A thread that runs tasks on a current-thread runtime inside a LocalSet.
pub trait WorkerExec: Send + Sync + 'static {
    /// Worker index (0-based).
    fn index(&self) -> usize;
    /// Queues `task`; false when the thread is gone.
    fn post(&self, task: Task) -> bool;
}

/// A worker thread with no media engine.
#[derive(Debug)]
pub struct LocalThread {
    index: usize,
    tasks: Option<mpsc::UnboundedSender<Task>>,
    thread: Option<JoinHandle<()>>,
}

impl LocalThread {
    /// Starts the thread.
    pub fn spawn(index: usize) -> std::io::Result<LocalThread> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Task>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("ringsfu-local-{index}"))
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                local.block_on(&rt, async move {
                    while let Some(task) = rx.recv().await {
                        task();
                    }
                });
            })?;
        Ok(LocalThread {
            index,
            tasks: Some(tx),
            thread: Some(thread),
        })
    }
}

impl WorkerExec for LocalThread {
    fn index(&self) -> usize {
        self.index
    }
    fn post(&self, task: Task) -> bool {
        self.tasks.as_ref().is_some_and(|t| t.send(task).is_ok())
    }
}

impl Drop for LocalThread {
    fn drop(&mut self) {
        // Closing the channel ends the loop; then the thread (and its LocalSet) ends.
        self.tasks.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A media worker of ringsfu-core: room handlers run on its thread, next to its media.
pub struct EngineWorker {
    worker: ringsfu_core::worker::Worker,
}

impl EngineWorker {
    /// Wraps a started worker.
    pub fn new(worker: ringsfu_core::worker::Worker) -> EngineWorker {
        EngineWorker { worker }
    }

    /// The wrapped worker.
    pub fn worker(&self) -> &ringsfu_core::worker::Worker {
        &self.worker
    }
}

impl WorkerExec for EngineWorker {
    fn index(&self) -> usize {
        self.worker.index()
    }
    fn post(&self, task: Task) -> bool {
        self.worker
            .post(move |ctx| {
                crate::lua_host::engine_api::install(ctx);
                task()
            })
            .is_ok()
    }
}
