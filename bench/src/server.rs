//! The in-process ringsfu: workers started through the engine API, each on its own pinned thread,
//! set up for fan-out over SRTP PlainTransports. Only the worker threads' CPU is charged to the
//! server. `--server-url` / `--spawn-server` build the same [`Plan`] over HTTP instead
//! (crate::remote).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use ringsfu_core::dtls::DtlsCertificate;
use ringsfu_core::engine::{ConsumeOptions, ProduceOptions, WebRtcTransportOptions};
use ringsfu_core::io::IoBackend;
use ringsfu_core::rtp_parameters::{MediaKind, RtpCapabilities, RtpCodecCapability, RtpParameters};
use ringsfu_core::srtp::SrtpProfile;
use ringsfu_core::worker::{Worker, WorkerSettings};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::plan::{ConsumerSpec, Plan, ProducerSpec, SrtpParams};
use crate::procstat;

/// Errors setting up the in-process server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A worker could not start or answer.
    #[error("worker: {0}")]
    Worker(#[from] ringsfu_core::worker::WorkerError),
    /// The engine refused a call.
    #[error("engine: {0}")]
    Engine(#[from] ringsfu_core::engine::EngineError),
    /// The certificate could not be made.
    #[error("dtls: {0}")]
    Dtls(#[from] ringsfu_core::dtls::DtlsError),
    /// Something the engine returned did not have the expected shape.
    #[error("unexpected engine answer: {0}")]
    Shape(String),
    /// The async runtime could not start.
    #[error("runtime: {0}")]
    Runtime(#[from] std::io::Error),
}

/// Workers of an in-process server and the tids of their threads.
pub struct InProcessServer {
    rt: tokio::runtime::Runtime,
    workers: Vec<Arc<Worker>>,
    /// Kernel thread ids of the worker threads.
    pub tids: Vec<u32>,
    /// Backend the engine actually uses.
    pub backend_used: IoBackend,
}

/// The router's media codecs: opus and VP8 (what the scenarios send).
fn media_codecs() -> Result<Vec<RtpCodecCapability>, ServerError> {
    serde_json::from_value(json!([
        {"kind": "audio", "mimeType": "audio/opus", "clockRate": 48000, "channels": 2},
        {"kind": "video", "mimeType": "video/VP8", "clockRate": 90000}
    ]))
    .map_err(|e| ServerError::Shape(e.to_string()))
}

/// Receive capabilities of the benchmark's consumers (like a browser's, without RTX).
fn consumer_caps(transport_cc: bool) -> Result<RtpCapabilities, ServerError> {
    serde_json::from_value(consumer_caps_json(transport_cc))
        .map_err(|e| ServerError::Shape(e.to_string()))
}

/// [`consumer_caps`] as JSON (what the HTTP mode sends as a broadcaster's `rtpCapabilities`).
/// With `transport_cc` both codecs take transport-cc feedback and the transport-wide-cc header
/// extension is offered, as a browser's capabilities do.
pub(crate) fn consumer_caps_json(transport_cc: bool) -> Value {
    let mut caps = json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000,
             "channels": 2, "rtcpFeedback": []},
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}]}
        ],
        "headerExtensions": [
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
            {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1}
        ]
    });
    if transport_cc {
        for codec in caps["codecs"].as_array_mut().into_iter().flatten() {
            if let Some(fb) = codec["rtcpFeedback"].as_array_mut() {
                fb.push(json!({"type": "transport-cc"}));
            }
        }
        if let Some(exts) = caps["headerExtensions"].as_array_mut() {
            for kind in ["audio", "video"] {
                exts.push(json!({"kind": kind, "uri": TRANSPORT_CC_URI, "preferredId": 5}));
            }
        }
    }
    caps
}

/// The transport-wide-cc header extension (draft-holmer-rmcat-transport-wide-cc-extensions-01).
pub(crate) const TRANSPORT_CC_URI: &str =
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";

fn producer_params(video: bool, ssrc: u32) -> Result<RtpParameters, ServerError> {
    serde_json::from_value(producer_params_json(video, ssrc))
        .map_err(|e| ServerError::Shape(e.to_string()))
}

/// The producers' RTP parameters as JSON: VP8 PT 96 or opus PT 111, one encoding with `ssrc`.
pub(crate) fn producer_params_json(video: bool, ssrc: u32) -> Value {
    if video {
        json!({
            "codecs": [{"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
                        "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}],
            "headerExtensions": [], "encodings": [{"ssrc": ssrc}], "rtcp": {"cname": "bench"}
        })
    } else {
        json!({
            "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2}],
            "headerExtensions": [], "encodings": [{"ssrc": ssrc}], "rtcp": {"cname": "bench"}
        })
    }
}

fn uuid_of(v: &Value) -> Result<Uuid, ServerError> {
    v["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ServerError::Shape(format!("no id in {v}")))
}

impl InProcessServer {
    /// Starts `workers` workers, worker i pinned to core i (mod `cores`).
    pub fn start(
        workers: usize,
        backend: IoBackend,
        cores: usize,
        with_udp_port: bool,
    ) -> Result<Self, ServerError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let cert = DtlsCertificate::generate()?;
        let mut ws = Vec::new();
        let mut tids = Vec::new();
        for i in 0..workers.max(1) {
            let w = Arc::new(Worker::spawn(WorkerSettings {
                index: i,
                pin_core: Some(i % cores.max(1)),
                listen_ip: IpAddr::from([127, 0, 0, 1]),
                announced_address: None,
                udp_port: with_udp_port.then_some(0),
                tcp_port: None,
                rtc_port_range: (40000, 59999),
                backend,
                cert: cert.clone(),
            })?);
            let tid = rt.block_on(w.run(|_| procstat::current_tid()))?;
            tids.extend(tid);
            ws.push(w);
        }
        let backend_used = ws[0].backend();
        Ok(Self {
            rt,
            workers: ws,
            tids,
            backend_used,
        })
    }

    /// CPU time used so far by the worker threads.
    pub fn cpu(&self) -> Duration {
        procstat::threads_cpu(&self.tids)
    }

    /// Sets up fan-out: producer i (sending from `producer_addrs[i]`) lives on worker i mod W with
    /// its `consumers_per_producer` consumers, each delivering to the next address of
    /// `consumer_addrs`. Returns the traffic plan.
    pub fn setup_fanout(
        &self,
        producer_addrs: &[SocketAddr],
        consumer_addrs: &[SocketAddr],
        consumers_per_producer: usize,
        video: bool,
        profile: SrtpProfile,
        transport_cc: bool,
    ) -> Result<Plan, ServerError> {
        let codecs = media_codecs()?;
        let caps = consumer_caps(transport_cc)?;
        let mut routers = Vec::new();
        for w in &self.workers {
            let c = codecs.clone();
            routers.push(
                self.rt
                    .block_on(w.with_engine(move |e| e.create_router(&c, Instant::now())))??,
            );
        }
        let mut plan = Plan {
            producers: Vec::new(),
            consumers: Vec::new(),
            server_pid: None,
        };
        let suite = profile.name();
        for (i, paddr) in producer_addrs.iter().enumerate() {
            let wi = i % self.workers.len();
            let w = &self.workers[wi];
            let router = routers[wi];
            let gen_key = SrtpParams::random(profile);
            let ptransport = self.plain_transport(w, router, *paddr, &gen_key, suite)?;
            let ssrc = 0x1000_0000 + i as u32;
            let params = producer_params(video, ssrc)?;
            let kind = if video {
                MediaKind::Video
            } else {
                MediaKind::Audio
            };
            let pv = self.rt.block_on(w.with_engine(move |e| {
                e.produce(
                    &ptransport.0,
                    ProduceOptions {
                        kind,
                        rtp_parameters: params,
                        paused: false,
                    },
                    Instant::now(),
                )
                .map(|v| serde_json::to_value(v).unwrap())
            }))??;
            let producer = uuid_of(&pv)?;
            // The engine's inbound key for the producer transport is the one we connected with.
            plan.producers.push(ProducerSpec {
                send_to: ptransport.1,
                bind: Some(*paddr),
                ssrc,
                payload_type: if video { 96 } else { 111 },
                vp8: video,
                srtp: gen_key,
            });
            for k in 0..consumers_per_producer {
                let Some(caddr) = consumer_addrs.get(i * consumers_per_producer + k) else {
                    return Err(ServerError::Shape(
                        "fewer consumer sockets than consumers".into(),
                    ));
                };
                let unused_key = SrtpParams::random(profile);
                let (ct, _, server_key) =
                    self.plain_transport(w, router, *caddr, &unused_key, suite)?;
                let caps = caps.clone();
                let cv = self.rt.block_on(w.with_engine(move |e| {
                    e.consume(
                        &ct,
                        ConsumeOptions {
                            producer_id: producer,
                            rtp_capabilities: caps,
                            paused: false,
                            enable_rtx: false,
                        },
                        Instant::now(),
                    )
                    .map(|v| serde_json::to_value(v).unwrap())
                }))??;
                let enc = &cv["rtpParameters"]["encodings"][0];
                plan.consumers.push(ConsumerSpec {
                    listen: *caddr,
                    producer: i,
                    ssrc: enc["ssrc"].as_u64().map(|s| s as u32),
                    payload_type: cv["rtpParameters"]["codecs"][0]["payloadType"]
                        .as_u64()
                        .map(|p| p as u8),
                    srtp: server_key.ok_or_else(|| {
                        ServerError::Shape("plain transport has no srtpParameters".into())
                    })?,
                });
            }
        }
        Ok(plan)
    }

    /// Creates a non-comedia SRTP PlainTransport connected to `remote` with `remote_key`; returns
    /// its id, local address and the server's outbound SRTP parameters.
    fn plain_transport(
        &self,
        w: &Arc<Worker>,
        router: Uuid,
        remote: SocketAddr,
        remote_key: &SrtpParams,
        suite: &str,
    ) -> Result<(Uuid, SocketAddr, Option<SrtpParams>), ServerError> {
        let suite_owned = suite.to_string();
        let data = self.rt.block_on(w.run(move |ctx| {
            let s = ctx.bind_rtc_port()?;
            Ok::<_, ServerError>(ctx.with_engine(|e| {
                e.create_plain_transport(
                    &router,
                    s,
                    None,
                    false,
                    true,
                    Some(&suite_owned),
                    Instant::now(),
                )
                .map(|v| serde_json::to_value(v).unwrap())
            })?)
        }))??;
        let id = uuid_of(&data)?;
        let port = data["tuple"]["localPort"]
            .as_u64()
            .ok_or_else(|| ServerError::Shape(format!("no tuple.localPort in {data}")))?;
        let local = SocketAddr::from(([127, 0, 0, 1], port as u16));
        let server_key = data["srtpParameters"].as_object().and_then(|o| {
            Some(SrtpParams {
                suite: o.get("cryptoSuite")?.as_str()?.into(),
                key_base64: o.get("keyBase64")?.as_str()?.into(),
            })
        });
        let params = json!({
            "ip": remote.ip().to_string(), "port": remote.port(),
            "srtpParameters": {"cryptoSuite": remote_key.suite, "keyBase64": remote_key.key_base64}
        });
        self.rt.block_on(w.with_engine(move |e| {
            e.connect_plain_transport(
                &id,
                &serde_json::from_value(serde_json::Value::clone(&params)).unwrap(),
                Instant::now(),
            )
            .map(|v| serde_json::to_value(v).unwrap())
        }))??;
        Ok((id, local, server_key))
    }

    /// Worker `i` (for scenarios that drive the engine from their own async clients).
    pub fn worker(&self, i: usize) -> Option<Arc<Worker>> {
        self.workers.get(i).cloned()
    }

    /// Creates a router with the scenarios' codecs (opus, VP8) on worker `i`.
    pub fn create_router(&self, i: usize) -> Result<Uuid, ServerError> {
        let codecs = media_codecs()?;
        let w = self
            .workers
            .get(i)
            .ok_or_else(|| ServerError::Shape(format!("no worker {i}")))?;
        Ok(self
            .rt
            .block_on(w.with_engine(move |e| e.create_router(&codecs, Instant::now())))??)
    }

    /// Closes a router on worker `i` (and with it every transport, producer and consumer in it).
    pub fn close_router(&self, i: usize, router: Uuid) -> Result<(), ServerError> {
        let w = self
            .workers
            .get(i)
            .ok_or_else(|| ServerError::Shape(format!("no worker {i}")))?;
        Ok(self
            .rt
            .block_on(w.with_engine(move |e| e.close_router(&router, Instant::now())))??)
    }

    /// Creates `count` idle WebRtcTransports on worker 0 (in chunks, so the worker stays responsive).
    pub fn create_idle_webrtc(&self, count: usize) -> Result<(), ServerError> {
        let codecs = media_codecs()?;
        let w = &self.workers[0];
        let router = self
            .rt
            .block_on(w.with_engine(move |e| e.create_router(&codecs, Instant::now())))??;
        let mut left = count;
        while left > 0 {
            let n = left.min(200);
            self.rt.block_on(w.with_engine(move |e| {
                for _ in 0..n {
                    e.create_webrtc_transport(
                        &router,
                        WebRtcTransportOptions {
                            enable_tcp: false,
                            ..Default::default()
                        },
                        Instant::now(),
                    )
                    .map(|v| serde_json::to_value(v).unwrap())?;
                }
                Ok::<_, ringsfu_core::engine::EngineError>(())
            }))??;
            left -= n;
        }
        Ok(())
    }
}
