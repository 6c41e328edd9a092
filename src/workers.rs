//! Starting the media workers described by the configuration.

use std::sync::Arc;

use crate::config::Config;
use crate::executor::{LocalThread, WorkerExec};

/// Starts one worker per configured worker (TEMPORARY: bare threads until the engine lands).
pub fn spawn_engine_workers(config: &Config) -> Result<Vec<Arc<dyn WorkerExec>>, String> {
    (0..config.worker_count())
        .map(|i| {
            LocalThread::spawn(i)
                .map(|t| Arc::new(t) as Arc<dyn WorkerExec>)
                .map_err(|e| format!("worker {i}: {e}"))
        })
        .collect()
}
