//! A separately running ringsfu, set up through its HTTP broadcaster API (README, "HTTP
//! broadcaster API"): the same fan-out [`Plan`] as the in-process server, built from broadcasters
//! with SRTP PlainTransports. Either a server the user started (`--server-url`, CPU from
//! `--server-pid`) or one the bench starts itself on free ports (`--spawn-server`).
//!
//! Every request is plain HTTP/1.1 over a std `TcpStream` (one request per connection) and goes
//! to loopback only.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringsfu_core::io::IoBackend;
use ringsfu_core::srtp::SrtpProfile;
use serde_json::{json, Value};

use crate::plan::{check_loopback, ConsumerSpec, Plan, PlanError, ProducerSpec, SrtpParams};
use crate::server::{consumer_caps_json, producer_params_json, TRANSPORT_CC_URI};

/// How long one HTTP request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a spawned server may take to answer HTTP.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors talking to (or starting) a ringsfu server.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL is not `http://IP:PORT` on loopback.
    #[error("bad server URL {0:?}: expected http://127.0.0.1:PORT (loopback only)")]
    Url(String),
    /// A socket or process call failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The server answered a request with an error status.
    #[error("{method} {path}: HTTP {status}: {body}")]
    Status {
        /// Request method.
        method: String,
        /// Request path.
        path: String,
        /// Answer status.
        status: u16,
        /// Answer body (the API's error text).
        body: String,
    },
    /// An answer did not have the expected shape.
    #[error("unexpected answer to {0}: {1}")]
    Shape(String, String),
    /// The spawned server did not come up.
    #[error("ringsfu server did not start: {0}")]
    Start(String),
    /// The plan built from the answers is unusable (non-loopback address, bad key).
    #[error("plan: {0}")]
    Plan(#[from] PlanError),
}

/// A ringsfu server reached over HTTP, optionally a child process of the bench.
pub struct RemoteServer {
    http: SocketAddr,
    room: String,
    /// Process whose CPU counts as server CPU (the child, or `--server-pid`).
    pub pid: Option<u32>,
    child: Option<Child>,
    log: Option<PathBuf>,
    /// Broadcasters created so far (deleted by [`RemoteServer::cleanup`]).
    broadcasters: Vec<String>,
}

/// Parses `http://HOST:PORT[/]` where HOST is a loopback IP literal or `localhost`.
pub fn parse_url(url: &str) -> Result<SocketAddr, RemoteError> {
    let bad = || RemoteError::Url(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let rest = rest.trim_end_matches('/');
    let addr: SocketAddr = match rest.strip_prefix("localhost:") {
        Some(port) => SocketAddr::from(([127, 0, 0, 1], port.parse().map_err(|_| bad())?)),
        None => rest.parse().map_err(|_| bad())?,
    };
    check_loopback(addr).map_err(|_| bad())?;
    Ok(addr)
}

impl RemoteServer {
    /// A server already running at `url`; `pid` (optional) is charged as server CPU.
    pub fn connect(url: &str, room: String, pid: Option<u32>) -> Result<Self, RemoteError> {
        let http = parse_url(url)?;
        let s = Self {
            http,
            room,
            pid,
            child: None,
            log: None,
            broadcasters: Vec::new(),
        };
        // The router's capabilities: also proves the API is there.
        s.request("GET", &s.room_path(""), None)?;
        Ok(s)
    }

    /// Starts `binary` with `workers` workers and `backend` on a free HTTP port (media ports: any
    /// free port per worker; PlainTransports use the binary's `rtcPortRange`), all on 127.0.0.1,
    /// and waits (bounded) until its HTTP API answers. The process is killed on drop.
    pub fn spawn(
        binary: &Path,
        room: String,
        workers: usize,
        backend: IoBackend,
    ) -> Result<Self, RemoteError> {
        let port = free_tcp_port()?;
        let log = std::env::temp_dir().join(format!(
            "ringsfu-bench-server-{}-{port}.log",
            std::process::id()
        ));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| RemoteError::Io(log.display().to_string(), e))?;
        let child = Command::new(binary)
            .env("RINGSFU_HTTP_PORT", port.to_string())
            .env("RINGSFU_RTC_PORT", "0")
            .env("RINGSFU_WORKERS", workers.to_string())
            .env("RINGSFU_IO_BACKEND", backend.name())
            .env("RINGSFU_LISTEN_IP", "127.0.0.1")
            .env("RINGSFU_ANNOUNCED_ADDRESS", "127.0.0.1")
            .env("RINGSFU_LOG_LEVEL", "warn")
            .env_remove("RINGSFU_TLS_CERT")
            .env_remove("RINGSFU_TLS_KEY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| RemoteError::Io(format!("start {}", binary.display()), e))?;
        let mut s = Self {
            http: SocketAddr::from(([127, 0, 0, 1], port)),
            room,
            pid: Some(child.id()),
            child: Some(child),
            log: Some(log),
            broadcasters: Vec::new(),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = s.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(RemoteError::Start(format!(
                        "exited with {status}; log:\n{}",
                        s.log_tail()
                    )));
                }
            }
            match s.request("GET", &s.room_path(""), None) {
                Ok(_) => return Ok(s),
                Err(e) if Instant::now() >= deadline => {
                    return Err(RemoteError::Start(format!(
                        "no HTTP answer within {START_TIMEOUT:?} ({e}); log:\n{}",
                        s.log_tail()
                    )))
                }
                // Polling a starting process: nothing to wait on but time.
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The server's HTTP address.
    pub fn url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The room the broadcasters live in.
    pub fn room(&self) -> &str {
        &self.room
    }

    /// Whether the bench started this server.
    pub fn spawned(&self) -> bool {
        self.child.is_some()
    }

    fn room_path(&self, rest: &str) -> String {
        format!("/rooms/{}{rest}", self.room)
    }

    fn log_tail(&self) -> String {
        let Some(p) = &self.log else {
            return String::new();
        };
        let text = std::fs::read_to_string(p).unwrap_or_default();
        let start = text
            .char_indices()
            .rev()
            .nth(2000)
            .map(|(i, _)| i)
            .unwrap_or(0);
        text[start..].to_string()
    }

    /// One HTTP/1.1 request; the JSON body of a 2xx answer (`Null` when empty or not JSON).
    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, RemoteError> {
        let io = |e| RemoteError::Io(format!("{method} {path}"), e);
        let mut s = TcpStream::connect_timeout(&self.http, REQUEST_TIMEOUT).map_err(io)?;
        s.set_read_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        s.set_write_timeout(Some(REQUEST_TIMEOUT)).map_err(io)?;
        let text = body.map(Value::to_string).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            self.http,
            text.len()
        );
        s.write_all(req.as_bytes()).map_err(io)?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).map_err(io)?;
        let answer = String::from_utf8_lossy(&buf);
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| RemoteError::Shape(format!("{method} {path}"), head.to_string()))?;
        if !(200..300).contains(&status) {
            return Err(RemoteError::Status {
                method: method.into(),
                path: path.into(),
                status,
                body: body.trim().to_string(),
            });
        }
        Ok(serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn post(&self, rest: &str, body: Value) -> Result<Value, RemoteError> {
        self.request("POST", &self.room_path(rest), Some(&body))
    }

    /// Creates broadcaster `id`; a consumer (`Some(transport_cc)`) sends receive capabilities.
    fn broadcaster(&mut self, id: &str, consumes: Option<bool>) -> Result<(), RemoteError> {
        let mut body = json!({"id": id, "displayName": id, "device": {"name": "ringsfu-bench"}});
        if let Some(transport_cc) = consumes {
            body["rtpCapabilities"] = consumer_caps_json(transport_cc);
        }
        self.post("/broadcasters", body)?;
        self.broadcasters.push(id.to_string());
        Ok(())
    }

    /// An SRTP PlainTransport of broadcaster `b` connected to `remote`, the remote encrypting with
    /// `remote_key`; returns the transport id, where it receives, and its outbound key.
    fn plain_transport(
        &self,
        b: &str,
        remote: SocketAddr,
        remote_key: &SrtpParams,
    ) -> Result<(String, SocketAddr, SrtpParams), RemoteError> {
        let what = format!("create transport of {b}");
        let t = self.post(
            &format!("/broadcasters/{b}/transports"),
            json!({"type": "plain", "comedia": false, "rtcpMux": true,
                   "enableSrtp": true, "srtpCryptoSuite": remote_key.suite}),
        )?;
        let shape = || RemoteError::Shape(what.clone(), t.to_string());
        let id = t["id"].as_str().ok_or_else(shape)?.to_string();
        let ip: IpAddr = t["ip"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(shape)?;
        // A server listening on 0.0.0.0 answers with that address: it is reached on loopback.
        let ip = if ip.is_unspecified() {
            IpAddr::from([127, 0, 0, 1])
        } else {
            ip
        };
        let port = t["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(shape)?;
        let sp = &t["srtpParameters"];
        let server_key = SrtpParams {
            suite: sp["cryptoSuite"].as_str().ok_or_else(shape)?.to_string(),
            key_base64: sp["keyBase64"].as_str().ok_or_else(shape)?.to_string(),
        };
        self.post(
            &format!("/broadcasters/{b}/transports/{id}/plain/connect"),
            json!({"ip": remote.ip().to_string(), "port": remote.port(),
                   "srtpParameters": {"cryptoSuite": remote_key.suite,
                                      "keyBase64": remote_key.key_base64}}),
        )?;
        Ok((id, SocketAddr::new(ip, port), server_key))
    }

    /// Sets up fan-out like [`crate::server::InProcessServer::setup_fanout`], in one room:
    /// broadcaster `bench-p<i>` produces stream i from `producer_addrs[i]`; broadcaster
    /// `bench-c<i>-<k>` consumes it into the next address of `consumer_addrs`.
    pub fn setup_fanout(
        &mut self,
        producer_addrs: &[SocketAddr],
        consumer_addrs: &[SocketAddr],
        consumers_per_producer: usize,
        video: bool,
        profile: SrtpProfile,
        transport_cc: bool,
    ) -> Result<Plan, RemoteError> {
        let mut twcc_consumers = 0usize;
        let mut plan = Plan {
            producers: Vec::new(),
            consumers: Vec::new(),
            server_pid: self.pid,
        };
        let kind = if video { "video" } else { "audio" };
        for (i, paddr) in producer_addrs.iter().enumerate() {
            let b = format!("bench-p{i}");
            self.broadcaster(&b, None)?;
            let gen_key = SrtpParams::random(profile);
            let (tid, send_to, _) = self.plain_transport(&b, *paddr, &gen_key)?;
            let ssrc = 0x1000_0000 + i as u32;
            let p = self.post(
                &format!("/broadcasters/{b}/transports/{tid}/producers"),
                json!({"kind": kind, "rtpParameters": producer_params_json(video, ssrc)}),
            )?;
            let producer = p["id"]
                .as_str()
                .ok_or_else(|| RemoteError::Shape(format!("produce of {b}"), p.to_string()))?
                .to_string();
            plan.producers.push(ProducerSpec {
                send_to,
                bind: Some(*paddr),
                ssrc,
                payload_type: if video { 96 } else { 111 },
                vp8: video,
                srtp: gen_key,
            });
            for k in 0..consumers_per_producer {
                let Some(caddr) = consumer_addrs.get(i * consumers_per_producer + k) else {
                    return Err(RemoteError::Shape(
                        "setup".into(),
                        "fewer consumer sockets than consumers".into(),
                    ));
                };
                let b = format!("bench-c{i}-{k}");
                self.broadcaster(&b, Some(transport_cc))?;
                // The bench sends no RTCP to consumers, but connect needs the key it would use.
                let unused_key = SrtpParams::random(profile);
                let (tid, _, server_key) = self.plain_transport(&b, *caddr, &unused_key)?;
                let c = self.request(
                    "POST",
                    &self.room_path(&format!(
                        "/broadcasters/{b}/transports/{tid}/consume?producerId={producer}"
                    )),
                    None,
                )?;
                let rtp = &c["rtpParameters"];
                if !rtp.is_object() {
                    return Err(RemoteError::Shape(format!("consume of {b}"), c.to_string()));
                }
                let has_twcc = rtp["headerExtensions"]
                    .as_array()
                    .is_some_and(|h| h.iter().any(|e| e["uri"] == TRANSPORT_CC_URI));
                twcc_consumers += usize::from(has_twcc);
                plan.consumers.push(ConsumerSpec {
                    listen: *caddr,
                    producer: i,
                    ssrc: rtp["encodings"][0]["ssrc"].as_u64().map(|s| s as u32),
                    payload_type: rtp["codecs"][0]["payloadType"].as_u64().map(|p| p as u8),
                    srtp: server_key,
                });
            }
        }
        if transport_cc {
            // Said, not enforced: an older server may not offer the extension, and the A B A B
            // runs compare exactly such a server.
            eprintln!(
                "  {twcc_consumers} of {} consumers negotiated transport-cc",
                plan.consumers.len()
            );
        }
        plan.check()?;
        Ok(plan)
    }

    /// Deletes every broadcaster this bench created (their transports, producers and consumers
    /// close with them). Returns how many deletions failed.
    pub fn cleanup(&mut self) -> usize {
        let mut failed = 0;
        for b in std::mem::take(&mut self.broadcasters) {
            if self
                .request(
                    "DELETE",
                    &self.room_path(&format!("/broadcasters/{b}")),
                    None,
                )
                .is_err()
            {
                failed += 1;
            }
        }
        failed
    }
}

impl Drop for RemoteServer {
    fn drop(&mut self) {
        let failed = self.cleanup();
        if failed > 0 && self.child.is_none() {
            eprintln!(
                "warning: {failed} broadcaster(s) in room {} could not be deleted",
                self.room
            );
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(p) = self.log.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A TCP port free on 127.0.0.1 right now (the kernel's pick; released for the server to take).
fn free_tcp_port() -> Result<u16, RemoteError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| RemoteError::Io("find a free port".into(), e))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| RemoteError::Io("find a free port".into(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_urls_are_accepted() {
        assert_eq!(
            parse_url("http://127.0.0.1:4443").unwrap(),
            "127.0.0.1:4443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_url("http://localhost:80/").unwrap(),
            "127.0.0.1:80".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_url("http://[::1]:9000").unwrap(),
            "[::1]:9000".parse::<SocketAddr>().unwrap()
        );
        for bad in [
            "https://127.0.0.1:4443",
            "http://10.0.0.1:4443",
            "http://example.com:80",
            "127.0.0.1:4443",
            "http://127.0.0.1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
