//! DTLS (RFC 5763/5764) for WebRtcTransports, on webrtc-rs's `dtls` crate (0.17).
//!
//! The crate is async and spawns tokio tasks; it runs on the worker's own current-thread runtime, so no
//! thread is started per connection and the packet loop never waits for a handshake. To the engine a
//! [`DtlsSession`] looks sans-IO: it is fed datagrams with [`DtlsSession::handle_input`], and everything
//! it produces (datagrams to send, the exported SRTP keys, failure, application data for SCTP) arrives as
//! [`DtlsOutput`] on the worker's DTLS channel, tagged with the transport key.
//!
//! Why `dtls` and not the sans-IO `rtc-dtls`: `dtls` 0.17 was measured working here (server handshake
//! over a channel-fed `Conn`, ~1.7 ms in memory); the handshake is not the hot path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dtls::config::{ClientAuthType, Config, ExtendedMasterSecretType};
use dtls::conn::DTLSConn;
use dtls::crypto::Certificate;
use dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use sha1::Digest as _;
use tokio::sync::mpsc;
use webrtc_util::conn::Conn;
use webrtc_util::KeyingMaterialExporter;

use crate::srtp::SrtpProfile;

/// How long a handshake may take before the transport's DTLS state becomes failed.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors creating or loading the DTLS certificate.
#[derive(Debug, thiserror::Error)]
pub enum DtlsError {
    /// The certificate could not be generated or parsed.
    #[error("DTLS certificate: {0}")]
    Certificate(String),
    /// The remote signaled no fingerprint or one we cannot check.
    #[error("DTLS fingerprint: {0}")]
    Fingerprint(String),
}

/// A certificate fingerprint as signaled in `dtlsParameters.fingerprints`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// `sha-1`, `sha-224`, `sha-256`, `sha-384` or `sha-512`.
    pub algorithm: String,
    /// Upper-case hex bytes separated by `:`.
    pub value: String,
}

/// Hashes DER bytes with the named algorithm into the SDP fingerprint form.
pub fn fingerprint_of(der: &[u8], algorithm: &str) -> Option<Fingerprint> {
    let digest: Vec<u8> = match algorithm {
        "sha-1" => sha1::Sha1::digest(der).to_vec(),
        "sha-224" => sha2::Sha224::digest(der).to_vec(),
        "sha-256" => sha2::Sha256::digest(der).to_vec(),
        "sha-384" => sha2::Sha384::digest(der).to_vec(),
        "sha-512" => sha2::Sha512::digest(der).to_vec(),
        _ => return None,
    };
    let value = digest
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":");
    Some(Fingerprint {
        algorithm: algorithm.to_string(),
        value,
    })
}

/// The process's DTLS certificate (ECDSA P-256), shared by every transport.
#[derive(Clone)]
pub struct DtlsCertificate {
    cert: Certificate,
    fingerprints: Vec<Fingerprint>,
}

impl DtlsCertificate {
    /// Generates a fresh self-signed ECDSA P-256 certificate.
    pub fn generate() -> Result<Self, DtlsError> {
        let cert = Certificate::generate_self_signed(vec!["ringsfu".to_string()])
            .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        Ok(Self::from_certificate(cert))
    }

    /// Loads a certificate and private key from PEM text (both in one string is fine).
    pub fn from_pem(cert_and_key_pem: &str) -> Result<Self, DtlsError> {
        let cert = Certificate::from_pem(cert_and_key_pem)
            .map_err(|e| DtlsError::Certificate(e.to_string()))?;
        Ok(Self::from_certificate(cert))
    }

    fn from_certificate(cert: Certificate) -> Self {
        let der = cert
            .certificate
            .first()
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_default();
        // mediasoup-client uses the LAST fingerprint for its SDP: keep sha-256 last.
        let fingerprints = ["sha-1", "sha-224", "sha-384", "sha-512", "sha-256"]
            .iter()
            .filter_map(|alg| fingerprint_of(&der, alg))
            .collect();
        Self { cert, fingerprints }
    }

    /// Fingerprints of the certificate, one per algorithm, sha-256 last.
    pub fn fingerprints(&self) -> &[Fingerprint] {
        &self.fingerprints
    }
}

/// Our DTLS role on a transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsRole {
    /// We send the ClientHello.
    Client,
    /// We wait for the ClientHello (what mediasoup-client peers get).
    Server,
}

/// What a DTLS session produces, delivered on the worker's DTLS channel.
#[derive(Debug)]
pub enum DtlsOutput {
    /// A datagram to send to the transport's selected tuple.
    Transmit(Vec<u8>),
    /// Handshake done: SRTP profile and keying material (RFC 5764 §4.2 layout).
    Connected {
        /// The negotiated protection profile.
        profile: SrtpProfile,
        /// Exported keying material for that profile.
        material: Vec<u8>,
        /// Whether we were the DTLS client (decides which half of the material is ours).
        we_are_client: bool,
    },
    /// The handshake failed (timeout, bad fingerprint, alert).
    Failed(String),
    /// The connection was closed by the peer after it was up.
    Closed,
    /// Application data (SCTP packets) received over the connection.
    ApplicationData(Vec<u8>),
}

/// A message on the worker's DTLS channel: which transport it concerns and what happened.
pub type DtlsEvent = (u64, DtlsOutput);

/// One DTLS connection of a transport.
pub struct DtlsSession {
    inbound: mpsc::UnboundedSender<Vec<u8>>,
    app_out: mpsc::UnboundedSender<Vec<u8>>,
    task: tokio::task::JoinHandle<()>,
}

impl DtlsSession {
    /// Starts a handshake in `role`. `remote` is the peer's first signaled fingerprint: its certificate
    /// must hash to it or the handshake fails. Outputs go to `events`, tagged with `key`.
    /// Must be called inside the worker's tokio runtime.
    pub fn start(
        role: DtlsRole,
        cert: &DtlsCertificate,
        remote: Fingerprint,
        key: u64,
        events: mpsc::UnboundedSender<DtlsEvent>,
    ) -> Self {
        let (inbound, inbound_rx) = mpsc::unbounded_channel();
        let (app_out, mut app_out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let conn = Arc::new(ChannelConn {
            rx: tokio::sync::Mutex::new(inbound_rx),
            key,
            events: events.clone(),
        });
        let expected = remote.clone();
        let config = Config {
            certificates: vec![cert.cert.clone()],
            srtp_protection_profiles: vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_256_Gcm,
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ],
            client_auth: ClientAuthType::RequireAnyClientCert,
            extended_master_secret: ExtendedMasterSecretType::Require,
            // WebRTC certificates are self-signed: trust comes from the signaled fingerprint.
            insecure_skip_verify: true,
            verify_peer_certificate: Some(Arc::new(move |certs: &[Vec<u8>], _| {
                let Some(der) = certs.first() else {
                    return Err(dtls::Error::Other("peer sent no certificate".into()));
                };
                match fingerprint_of(der, &expected.algorithm.to_ascii_lowercase()) {
                    Some(fp) if fp.value.eq_ignore_ascii_case(&expected.value) => Ok(()),
                    _ => Err(dtls::Error::Other(
                        "certificate fingerprint mismatch".into(),
                    )),
                }
            })),
            ..Default::default()
        };
        let is_client = role == DtlsRole::Client;
        let task = tokio::spawn(async move {
            let handshake = tokio::time::timeout(
                HANDSHAKE_TIMEOUT,
                DTLSConn::new(conn, config, is_client, None),
            )
            .await;
            let dtls_conn = match handshake {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    let _ = events.send((key, DtlsOutput::Failed(e.to_string())));
                    return;
                }
                Err(_) => {
                    let _ = events.send((key, DtlsOutput::Failed("handshake timeout".into())));
                    return;
                }
            };
            let profile_id = dtls_conn.selected_srtpprotection_profile() as u16;
            let Some(profile) = SrtpProfile::from_dtls_id(profile_id) else {
                let _ = events.send((
                    key,
                    DtlsOutput::Failed(format!("no usable SRTP profile ({profile_id:#x})")),
                ));
                return;
            };
            let state = dtls_conn.connection_state().await;
            let len = crate::srtp::keying_material_len(profile);
            let material = match state
                .export_keying_material("EXTRACTOR-dtls_srtp", &[], len)
                .await
            {
                Ok(m) => m,
                Err(e) => {
                    let _ = events.send((key, DtlsOutput::Failed(format!("key export: {e}"))));
                    return;
                }
            };
            let _ = events.send((
                key,
                DtlsOutput::Connected {
                    profile,
                    material,
                    we_are_client: is_client,
                },
            ));
            let mut buf = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = dtls_conn.read(&mut buf, None) => match r {
                        Ok(n) => {
                            let _ = events.send((key, DtlsOutput::ApplicationData(buf[..n].to_vec())));
                        }
                        Err(_) => {
                            let _ = events.send((key, DtlsOutput::Closed));
                            return;
                        }
                    },
                    m = app_out_rx.recv() => match m {
                        Some(data) => { let _ = dtls_conn.write(&data, None).await; }
                        None => { let _ = dtls_conn.close().await; return; }
                    },
                }
            }
        });
        Self {
            inbound,
            app_out,
            task,
        }
    }

    /// Feeds one DTLS record datagram received on the transport's selected tuple.
    pub fn handle_input(&self, datagram: &[u8]) {
        let _ = self.inbound.send(datagram.to_vec());
    }

    /// Sends application data (an SCTP packet) once connected.
    pub fn send_application_data(&self, data: Vec<u8>) {
        let _ = self.app_out.send(data);
    }
}

impl Drop for DtlsSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `Conn` the dtls crate reads and writes: datagrams come from the engine over a channel and go
/// back to it as [`DtlsOutput::Transmit`].
struct ChannelConn {
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Vec<u8>>>,
    key: u64,
    events: mpsc::UnboundedSender<DtlsEvent>,
}

fn placeholder_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

#[async_trait::async_trait]
impl Conn for ChannelConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Ok(())
    }
    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        match self.rx.lock().await.recv().await {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(webrtc_util::Error::ErrClosedListener),
        }
    }
    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let n = self.recv(buf).await?;
        Ok((n, placeholder_addr()))
    }
    async fn send(&self, buf: &[u8]) -> webrtc_util::Result<usize> {
        self.events
            .send((self.key, DtlsOutput::Transmit(buf.to_vec())))
            .map_err(|_| webrtc_util::Error::ErrClosedListener)?;
        Ok(buf.len())
    }
    async fn send_to(&self, buf: &[u8], _target: SocketAddr) -> webrtc_util::Result<usize> {
        self.send(buf).await
    }
    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(placeholder_addr())
    }
    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }
    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }
    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}
