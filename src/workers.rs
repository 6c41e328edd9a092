//! Starting the media workers described by the configuration.

use std::net::IpAddr;
use std::sync::Arc;

use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::io::IoBackend;
use ringsfu_core::worker::{Worker, WorkerSettings};

use crate::config::Config;
use crate::executor::{EngineWorker, WorkerExec};

/// Starts one pinned media worker per configured worker. Worker i binds the shared UDP and TCP
/// port `webRtc.port + i` (or any free port when the configured port is 0).
pub fn spawn_engine_workers(config: &Config) -> Result<Vec<Arc<dyn WorkerExec>>, String> {
    let n = config.worker_count();
    let cert = DtlsCertificate::generate().map_err(|e| format!("DTLS certificate: {e}"))?;
    let backend = if config.io_backend == "epoll" {
        IoBackend::Epoll
    } else {
        IoBackend::IoUring
    };
    let cores = std::thread::available_parallelism()
        .map(|c| c.get())
        .unwrap_or(1);
    let listen_ip: IpAddr = config.web_rtc.listen_ip;
    let mut out: Vec<Arc<dyn WorkerExec>> = Vec::with_capacity(n);
    for i in 0..n {
        let port = if config.web_rtc.port == 0 {
            0
        } else {
            config.web_rtc.port + i as u16
        };
        let settings = WorkerSettings {
            index: i,
            // Pin only when there is a core per worker; oversubscribed workers float.
            pin_core: (n <= cores).then_some(i),
            listen_ip,
            announced_address: config.web_rtc.announced_address.clone(),
            udp_port: config.web_rtc.enable_udp.then_some(port),
            tcp_port: config.web_rtc.enable_tcp.then_some(port),
            rtc_port_range: (config.rtc_port_range.min, config.rtc_port_range.max),
            backend,
            cert: cert.clone(),
        };
        let w = Worker::spawn(settings).map_err(|e| e.to_string())?;
        if let Some(max) = config.web_rtc_transport.max_sctp_message_size {
            let max = max as usize;
            w.post(move |ctx| ctx.with_engine(|e| e.set_max_message_size(max)))
                .map_err(|e| e.to_string())?;
        }
        out.push(Arc::new(EngineWorker::new(w)));
    }
    Ok(out)
}
