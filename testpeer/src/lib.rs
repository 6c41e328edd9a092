//! An independent WebRTC peer for ringsfu's tests and benchmarks, built only from webrtc-rs crates
//! (ICE agent, DTLS client, SRTP contexts): nothing of ringsfu's protocol code is used on this side,
//! so it checks the server against a second implementation. It deliberately does not depend on
//! ringsfu-core (core's tests use it as a dev-dependency).

#![warn(missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, Mutex};
use webrtc::dtls::config::{Config as DtlsConfig, ExtendedMasterSecretType};
use webrtc::dtls::conn::DTLSConn;
use webrtc::dtls::crypto::Certificate;
use webrtc::dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use webrtc::ice::agent::agent_config::AgentConfig;
use webrtc::ice::agent::Agent;
use webrtc::ice::candidate::candidate_base::unmarshal_candidate;
use webrtc::ice::candidate::Candidate;
use webrtc::ice::network_type::NetworkType;
use webrtc::srtp::context::Context as SrtpContext;
use webrtc::srtp::protection_profile::ProtectionProfile;
use webrtc::util::{Conn, KeyingMaterialExporter};

/// Recv capabilities a Chrome-like device reports (opus, VP8 + RTX, H264 + RTX), as mediasoup-client sends.
pub fn chrome_rtp_capabilities() -> Value {
    json!({
        "codecs": [
            {"kind": "audio", "mimeType": "audio/opus", "preferredPayloadType": 100, "clockRate": 48000,
             "channels": 2, "parameters": {"minptime": 10, "useinbandfec": 1},
             "rtcpFeedback": [{"type": "transport-cc"}]},
            {"kind": "video", "mimeType": "video/VP8", "preferredPayloadType": 101, "clockRate": 90000,
             "rtcpFeedback": [{"type": "goog-remb"}, {"type": "transport-cc"}, {"type": "ccm", "parameter": "fir"},
                              {"type": "nack"}, {"type": "nack", "parameter": "pli"}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 102, "clockRate": 90000,
             "parameters": {"apt": 101}},
            {"kind": "video", "mimeType": "video/H264", "preferredPayloadType": 107, "clockRate": 90000,
             "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"},
             "rtcpFeedback": [{"type": "goog-remb"}, {"type": "transport-cc"}, {"type": "ccm", "parameter": "fir"},
                              {"type": "nack"}, {"type": "nack", "parameter": "pli"}]},
            {"kind": "video", "mimeType": "video/rtx", "preferredPayloadType": 108, "clockRate": 90000,
             "parameters": {"apt": 107}}
        ],
        "headerExtensions": [
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
            {"kind": "video", "uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "preferredId": 1},
            {"kind": "audio", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4},
            {"kind": "video", "uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "preferredId": 4},
            {"kind": "audio", "uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "preferredId": 10},
            {"kind": "video", "uri": "urn:3gpp:video-orientation", "preferredId": 11}
        ]
    })
}

/// Producer parameters as a browser sends them for an opus track.
pub fn opus_producer_params(ssrc: u32, mid: &str) -> Value {
    json!({
        "mid": mid,
        "codecs": [{"mimeType": "audio/opus", "payloadType": 111, "clockRate": 48000, "channels": 2,
                    "parameters": {"minptime": 10, "useinbandfec": 1}, "rtcpFeedback": []}],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
            {"uri": "urn:ietf:params:rtp-hdrext:ssrc-audio-level", "id": 1}
        ],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "test-cname", "reducedSize": true}
    })
}

/// Producer parameters for a VP8 track with RTX.
pub fn vp8_producer_params(ssrc: u32, rtx_ssrc: u32, mid: &str) -> Value {
    json!({
        "mid": mid,
        "codecs": [
            {"mimeType": "video/VP8", "payloadType": 96, "clockRate": 90000,
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}, {"type": "ccm", "parameter": "fir"}]},
            {"mimeType": "video/rtx", "payloadType": 97, "clockRate": 90000, "parameters": {"apt": 96}}
        ],
        "headerExtensions": [
            {"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4},
            {"uri": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time", "id": 2},
            {"uri": "urn:3gpp:video-orientation", "id": 13}
        ],
        "encodings": [{"ssrc": ssrc, "rtx": {"ssrc": rtx_ssrc}}],
        "rtcp": {"cname": "test-cname", "reducedSize": true}
    })
}

/// Producer parameters for an H264 track.
pub fn h264_producer_params(ssrc: u32, mid: &str) -> Value {
    json!({
        "mid": mid,
        "codecs": [
            {"mimeType": "video/H264", "payloadType": 102, "clockRate": 90000,
             "parameters": {"level-asymmetry-allowed": 1, "packetization-mode": 1, "profile-level-id": "42e01f"},
             "rtcpFeedback": [{"type": "nack"}, {"type": "nack", "parameter": "pli"}]}
        ],
        "headerExtensions": [{"uri": "urn:ietf:params:rtp-hdrext:sdes:mid", "id": 4}],
        "encodings": [{"ssrc": ssrc}],
        "rtcp": {"cname": "test-cname", "reducedSize": true}
    })
}

/// A connected test peer: DTLS done, SRTP contexts in both directions.
pub struct TestPeer {
    /// Sends raw datagrams to the server's transport.
    pub conn: Arc<dyn Conn + Send + Sync>,
    /// SRTP/SRTCP packets received (already decrypted are not: raw datagrams).
    pub media_rx: Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    /// Outbound SRTP context.
    pub tx_ctx: Mutex<SrtpContext>,
    /// Inbound SRTP context.
    pub rx_ctx: Mutex<SrtpContext>,
    /// Our DTLS fingerprint (sha-256) to pass in connect().
    pub fingerprint: String,
    /// The DTLS connection (SCTP runs over it).
    pub dtls: Arc<DTLSConn>,
    /// The ICE agent (UDP peers); closing it stops consent checks.
    pub agent: Option<Arc<Agent>>,
    /// The DTLS-exported SRTP keys, for a caller that decrypts with its own SRTP code.
    pub keys: ExportedKeys,
}

/// SRTP keying material exported from the DTLS handshake (RFC 5764 §4.2).
#[derive(Clone)]
pub struct ExportedKeys {
    /// The negotiated profile, by its mediasoup/SDES name (`AEAD_AES_128_GCM`, `AES_CM_128_HMAC_SHA1_80`).
    pub profile: &'static str,
    /// client key ‖ server key ‖ client salt ‖ server salt; this peer is the DTLS client.
    pub material: Vec<u8>,
}

impl std::fmt::Debug for ExportedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keys stay out of logs.
        f.debug_struct("ExportedKeys")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

/// Builds `dtlsParameters` for connect() from a certificate.
pub fn dtls_parameters(fingerprint: &str) -> Value {
    json!({"role": "client", "fingerprints": [{"algorithm": "sha-256", "value": fingerprint}]})
}

fn sha256_fingerprint(cert: &Certificate) -> String {
    use sha2::Digest;
    let der = cert.certificate[0].as_ref();
    sha2::Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A test DTLS certificate and its sha-256 fingerprint.
pub fn test_certificate() -> (Certificate, String) {
    let cert = Certificate::generate_self_signed(vec!["test-peer".to_string()]).expect("cert");
    let fp = sha256_fingerprint(&cert);
    (cert, fp)
}

/// Copies the next datagram queued on `rx` into `buf` (truncating); an error once the sender is gone.
async fn recv_from_channel(
    rx: &Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    buf: &mut [u8],
) -> webrtc::util::Result<usize> {
    let d = rx
        .lock()
        .await
        .recv()
        .await
        .ok_or(webrtc::util::Error::ErrClosedListener)?;
    let n = d.len().min(buf.len());
    buf[..n].copy_from_slice(&d[..n]);
    Ok(n)
}

/// A Conn fed by a channel: what the demultiplexer routes to DTLS.
struct ChanConn {
    inner: Arc<dyn Conn + Send + Sync>,
    rx: Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
}

#[async_trait::async_trait]
impl Conn for ChanConn {
    async fn connect(&self, _a: SocketAddr) -> webrtc::util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        recv_from_channel(&self.rx, buf).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((
            n,
            self.inner
                .remote_addr()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
        ))
    }
    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        self.inner.send(buf).await
    }
    async fn send_to(&self, buf: &[u8], _t: SocketAddr) -> webrtc::util::Result<usize> {
        self.inner.send(buf).await
    }
    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        self.inner.local_addr()
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        self.inner.remote_addr()
    }
    async fn close(&self) -> webrtc::util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// Parameters the peer needs from the server's transport data.
pub struct RemoteTransport {
    /// ICE ufrag.
    pub ufrag: String,
    /// ICE password.
    pub pwd: String,
    /// The UDP candidate.
    pub udp: SocketAddr,
}

impl RemoteTransport {
    /// Reads them from mediasoup-shaped transport data.
    pub fn from_data(data: &Value) -> Self {
        let ice = &data["iceParameters"];
        let c = data["iceCandidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["protocol"] == "udp")
            .expect("udp candidate");
        Self {
            ufrag: ice["usernameFragment"].as_str().unwrap().to_string(),
            pwd: ice["password"].as_str().unwrap().to_string(),
            udp: format!("{}:{}", c["ip"].as_str().unwrap(), c["port"])
                .parse()
                .unwrap(),
        }
    }
}

/// Runs ICE (controlling, full agent) against the server candidate, then a DTLS client handshake,
/// and derives SRTP contexts. `connect` is called with our DTLS parameters before the handshake,
/// as mediasoup-client does. `password_override` lets a test use a wrong ICE password.
pub async fn connect_peer<F, Fut>(
    remote: &RemoteTransport,
    password_override: Option<&str>,
    connect: F,
    cert: Option<(Certificate, String)>,
) -> Result<TestPeer, String>
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // Against a loopback server gather only loopback candidates and leave mDNS off: checks from
    // other interfaces add nothing there, and the peer then never touches a real network interface.
    let loopback_only = remote.udp.ip().is_loopback();
    let ip_filter: Option<webrtc::ice::agent::agent_config::IpFilterFn> = if loopback_only {
        Some(Box::new(|ip: std::net::IpAddr| ip.is_loopback()))
    } else {
        None
    };
    let agent = Arc::new(
        Agent::new(AgentConfig {
            network_types: vec![NetworkType::Udp4],
            candidate_types: vec![webrtc::ice::candidate::CandidateType::Host],
            include_loopback: true,
            is_controlling: true,
            ip_filter: Arc::new(ip_filter),
            multicast_dns_mode: if loopback_only {
                webrtc::ice::mdns::MulticastDnsMode::Disabled
            } else {
                Default::default()
            },
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?,
    );
    let prio = 2130706431u32;
    let cand = unmarshal_candidate(&format!(
        "1 1 udp {prio} {} {} typ host",
        remote.udp.ip(),
        remote.udp.port()
    ))
    .map_err(|e| e.to_string())?;
    let cand: Arc<dyn Candidate + Send + Sync> = Arc::new(cand);
    agent
        .add_remote_candidate(&cand)
        .map_err(|e| e.to_string())?;
    agent.on_candidate(Box::new(|_c| Box::pin(async {})));
    agent.gather_candidates().map_err(|e| e.to_string())?;
    let (_cancel_tx, cancel_rx) = mpsc::channel(1);
    let pwd = password_override.unwrap_or(&remote.pwd).to_string();
    let ice_conn = tokio::time::timeout(
        Duration::from_secs(10),
        agent.dial(cancel_rx, remote.ufrag.clone(), pwd),
    )
    .await
    .map_err(|_| "ICE timeout".to_string())?
    .map_err(|e| e.to_string())?;
    let ice_conn: Arc<dyn Conn + Send + Sync> = ice_conn;

    let (cert, fp) = cert.unwrap_or_else(test_certificate);
    connect(dtls_parameters(&fp)).await;

    // Demultiplex what arrives: DTLS records to the DTLS client, the rest (SRTP/SRTCP) to the test.
    let (dtls_tx, dtls_rx) = mpsc::unbounded_channel();
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let reader = Arc::clone(&ice_conn);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok(n) = reader.recv(&mut buf).await {
            let d = buf[..n].to_vec();
            match d.first() {
                Some(20..=63) => {
                    let _ = dtls_tx.send(d);
                }
                Some(128..=191) => {
                    let _ = media_tx.send(d);
                }
                _ => {}
            }
        }
    });
    let chan: Arc<dyn Conn + Send + Sync> = Arc::new(ChanConn {
        inner: Arc::clone(&ice_conn),
        rx: Mutex::new(dtls_rx),
    });
    finish_dtls(chan, Some((ice_conn, agent)), media_rx, cert, fp).await
}

/// DTLS client handshake over `dtls_conn`, then SRTP contexts from the exported keys.
async fn finish_dtls(
    dtls_conn: Arc<dyn Conn + Send + Sync>,
    ice: Option<(Arc<dyn Conn + Send + Sync>, Arc<Agent>)>,
    media_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    cert: Certificate,
    fp: String,
) -> Result<TestPeer, String> {
    let chan = Arc::clone(&dtls_conn);
    let config = DtlsConfig {
        certificates: vec![cert],
        insecure_skip_verify: true,
        extended_master_secret: ExtendedMasterSecretType::Require,
        srtp_protection_profiles: vec![
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        ],
        ..Default::default()
    };
    let dtls = tokio::time::timeout(
        Duration::from_secs(10),
        DTLSConn::new(chan, config, true, None),
    )
    .await
    .map_err(|_| "DTLS timeout".to_string())?
    .map_err(|e| format!("DTLS: {e}"))?;
    let (profile, profile_name) = match dtls.selected_srtpprotection_profile() {
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => {
            (ProtectionProfile::AeadAes128Gcm, "AEAD_AES_128_GCM")
        }
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => (
            ProtectionProfile::Aes128CmHmacSha1_80,
            "AES_CM_128_HMAC_SHA1_80",
        ),
        p => return Err(format!("unexpected profile {p:?}")),
    };
    let (klen, slen) = (profile.key_len(), profile.salt_len());
    let state = dtls.connection_state().await;
    let km = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (klen + slen))
        .await
        .map_err(|e| e.to_string())?;
    let (ck, rest) = km.split_at(klen);
    let (sk, rest) = rest.split_at(klen);
    let (cs, ss) = rest.split_at(slen);
    let tx_ctx = SrtpContext::new(ck, cs, profile, None, None).map_err(|e| e.to_string())?;
    let rx_ctx = SrtpContext::new(sk, ss, profile, None, None).map_err(|e| e.to_string())?;
    let (conn, agent) = match ice {
        Some((c, a)) => (c, Some(a)),
        None => (dtls_conn, None),
    };
    Ok(TestPeer {
        conn,
        media_rx: Mutex::new(media_rx),
        tx_ctx: Mutex::new(tx_ctx),
        rx_ctx: Mutex::new(rx_ctx),
        fingerprint: fp,
        dtls: Arc::new(dtls),
        agent,
        keys: ExportedKeys {
            profile: profile_name,
            material: km,
        },
    })
}

impl TestPeer {
    /// Takes the raw SRTP/SRTCP datagram receiver (for a caller that decrypts itself with
    /// [`TestPeer::keys`]); afterwards `recv_rtp` / `recv_rtcp` return None.
    pub async fn take_media_rx(&self) -> mpsc::UnboundedReceiver<Vec<u8>> {
        let (_tx, closed) = mpsc::unbounded_channel();
        std::mem::replace(&mut *self.media_rx.lock().await, closed)
    }

    /// Sends one already-protected datagram to the server's transport.
    pub async fn send_raw(&self, datagram: &[u8]) -> Result<(), String> {
        self.conn
            .send(datagram)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Closes DTLS (close_notify) and the ICE agent, so consent checks and sockets stop.
    pub async fn close(&self) {
        let _ = self.dtls.close().await;
        if let Some(a) = &self.agent {
            let _ = a.close().await;
        }
    }

    /// Encrypts and sends one RTP packet.
    pub async fn send_rtp(&self, plain: &[u8]) {
        let enc = self
            .tx_ctx
            .lock()
            .await
            .encrypt_rtp(plain)
            .expect("encrypt");
        let _ = self.conn.send(&enc).await;
    }

    /// Encrypts and sends one RTCP packet.
    pub async fn send_rtcp(&self, plain: &[u8]) {
        let enc = self
            .tx_ctx
            .lock()
            .await
            .encrypt_rtcp(plain)
            .expect("encrypt rtcp");
        let _ = self.conn.send(&enc).await;
    }

    /// Next decrypted RTP packet (RTCP is skipped), or None after `timeout`.
    pub async fn recv_rtp(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = tokio::time::timeout_at(deadline, async {
                self.media_rx.lock().await.recv().await
            })
            .await
            .ok()??;
            let is_rtcp = d.len() > 1 && (192..=223).contains(&d[1]);
            if is_rtcp {
                let _ = self.rx_ctx.lock().await.decrypt_rtcp(&d);
                continue;
            }
            if let Ok(p) = self.rx_ctx.lock().await.decrypt_rtp(&d) {
                return Some(p.to_vec());
            }
        }
    }

    /// Next decrypted RTCP compound packet, or None after `timeout`.
    pub async fn recv_rtcp(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let d = tokio::time::timeout_at(deadline, async {
                self.media_rx.lock().await.recv().await
            })
            .await
            .ok()??;
            if d.len() > 1 && (192..=223).contains(&d[1]) {
                if let Ok(p) = self.rx_ctx.lock().await.decrypt_rtcp(&d) {
                    return Some(p.to_vec());
                }
            }
        }
    }
}

/// Builds a plain RTP packet with the `rtp` crate.
pub fn build_rtp(
    pt: u8,
    seq: u16,
    ts: u32,
    ssrc: u32,
    marker: bool,
    ext: &[(u8, Vec<u8>)],
    payload: &[u8],
) -> Vec<u8> {
    use webrtc::rtp::header::Header;
    use webrtc::rtp::packet::Packet;
    use webrtc::util::Marshal;
    let mut h = Header {
        version: 2,
        marker,
        payload_type: pt,
        sequence_number: seq,
        timestamp: ts,
        ssrc,
        ..Default::default()
    };
    for (id, v) in ext {
        h.set_extension(*id, bytes::Bytes::copy_from_slice(v))
            .expect("ext");
    }
    let p = Packet {
        header: h,
        payload: bytes::Bytes::copy_from_slice(payload),
    };
    p.marshal().expect("marshal").to_vec()
}

/// Parses an RTP packet with the `rtp` crate.
pub fn parse_rtp(data: &[u8]) -> webrtc::rtp::packet::Packet {
    use webrtc::util::Unmarshal;
    let mut b = data;
    webrtc::rtp::packet::Packet::unmarshal(&mut b).expect("rtp")
}

/// An RFC 4571-framed TCP connection as a `Conn` for the DTLS client.
struct TcpFramedConn {
    writer: Mutex<tokio::net::tcp::OwnedWriteHalf>,
    rx: Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    local: SocketAddr,
    remote: SocketAddr,
}

#[async_trait::async_trait]
impl Conn for TcpFramedConn {
    async fn connect(&self, _a: SocketAddr) -> webrtc::util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc::util::Result<usize> {
        recv_from_channel(&self.rx, buf).await
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc::util::Result<(usize, SocketAddr)> {
        Ok((self.recv(buf).await?, self.remote))
    }
    async fn send(&self, buf: &[u8]) -> webrtc::util::Result<usize> {
        use tokio::io::AsyncWriteExt;
        let mut w = self.writer.lock().await;
        let mut framed = (buf.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(buf);
        w.write_all(&framed)
            .await
            .map_err(|e| webrtc::util::Error::Other(e.to_string()))?;
        Ok(buf.len())
    }
    async fn send_to(&self, buf: &[u8], _t: SocketAddr) -> webrtc::util::Result<usize> {
        self.send(buf).await
    }
    fn local_addr(&self) -> webrtc::util::Result<SocketAddr> {
        Ok(self.local)
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        Some(self.remote)
    }
    async fn close(&self) -> webrtc::util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// ICE-TCP (RFC 6544 active side, RFC 4571 framing) done by hand with the `stun` crate, then the
/// same DTLS client and SRTP setup as over UDP.
pub async fn connect_peer_tcp<F, Fut>(data: &Value, connect: F) -> Result<TestPeer, String>
where
    F: FnOnce(Value) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    use tokio::io::AsyncReadExt;
    use webrtc::stun::message::{Message, BINDING_REQUEST, BINDING_SUCCESS};
    use webrtc::stun::textattrs::TextAttribute;
    let ice = &data["iceParameters"];
    let ufrag = ice["usernameFragment"].as_str().unwrap();
    let pwd = ice["password"].as_str().unwrap();
    let c = data["iceCandidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["protocol"] == "tcp")
        .ok_or("no tcp candidate")?;
    let addr: SocketAddr = format!("{}:{}", c["ip"].as_str().unwrap(), c["port"])
        .parse()
        .unwrap();
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let local = stream.local_addr().unwrap();
    let (mut rd, wr) = stream.into_split();
    let (dtls_tx, dtls_rx) = mpsc::unbounded_channel();
    let (media_tx, media_rx) = mpsc::unbounded_channel();
    let (stun_tx, mut stun_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    tokio::spawn(async move {
        loop {
            let mut len = [0u8; 2];
            if rd.read_exact(&mut len).await.is_err() {
                break;
            }
            let mut d = vec![0u8; u16::from_be_bytes(len) as usize];
            if rd.read_exact(&mut d).await.is_err() {
                break;
            }
            let _ = match d.first() {
                Some(0..=3) => stun_tx.send(d),
                Some(20..=63) => dtls_tx.send(d),
                _ => media_tx.send(d),
            };
        }
    });
    let conn = Arc::new(TcpFramedConn {
        writer: Mutex::new(wr),
        rx: Mutex::new(dtls_rx),
        local,
        remote: addr,
    });
    let mut m = Message::new();
    m.build(&[
        Box::new(webrtc::stun::agent::TransactionId::new()),
        Box::new(BINDING_REQUEST),
        Box::new(TextAttribute::new(
            webrtc::stun::attributes::ATTR_USERNAME,
            format!("{ufrag}:tcpclient"),
        )),
        Box::new(webrtc::ice::priority::PriorityAttr(1845501695)),
        Box::new(webrtc::ice::control::AttrControlling(42)),
        Box::new(webrtc::ice::use_candidate::UseCandidateAttr::new()),
        Box::new(
            webrtc::stun::integrity::MessageIntegrity::new_short_term_integrity(pwd.to_string()),
        ),
        Box::new(webrtc::stun::fingerprint::FINGERPRINT),
    ])
    .map_err(|e| e.to_string())?;
    conn.send(&m.raw).await.map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(Duration::from_secs(10), stun_rx.recv())
        .await
        .map_err(|_| "no STUN response over TCP")?
        .ok_or("tcp closed")?;
    let mut r = Message::new();
    r.raw = resp;
    r.decode().map_err(|e| e.to_string())?;
    if r.typ != BINDING_SUCCESS {
        return Err(format!("STUN over TCP answered {}", r.typ));
    }
    let (cert, fp) = test_certificate();
    connect(dtls_parameters(&fp)).await;
    let ice_conn: Arc<dyn Conn + Send + Sync> = conn;
    finish_dtls(ice_conn, None, media_rx, cert, fp).await
}

/// Data channel config for webrtc-data.
pub fn dc_config(label: &str, negotiated: bool) -> webrtc::data::data_channel::Config {
    webrtc::data::data_channel::Config {
        negotiated,
        label: label.into(),
        max_message_size: 262144,
        ..Default::default()
    }
}
