//! Error types of the crate.

use std::path::PathBuf;

/// Why [`serve`](crate::serve) could not start.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address from the configuration.
        addr: std::net::SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A TLS PEM file could not be read or parsed.
    #[error("cannot load TLS file {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls::pki_types::pem::Error,
    },
    /// The certificate file holds no certificate.
    #[error("no certificate found in {0}")]
    NoCertificate(PathBuf),
    /// rustls refused the certificate/key pair.
    #[error("invalid TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// `serve` was called outside a tokio runtime.
    #[error("serve() must be called inside a tokio runtime")]
    NoRuntime,
}

/// Why a request sent to a peer with [`PeerHandle::request`](crate::PeerHandle::request)
/// produced no successful response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtooError {
    /// The peer did not answer in time (protoo: "request timeout").
    #[error("request timeout")]
    Timeout,
    /// The peer was closed before it answered, or was already closed (protoo: "peer closed").
    #[error("peer closed")]
    PeerClosed,
    /// The peer answered with an error response.
    #[error("error response {code}: {reason}")]
    Response {
        /// `errorCode` of the response (500 when the peer sent none or a non-u16 value).
        code: u16,
        /// `errorReason` of the response ("" when absent).
        reason: String,
    },
    /// Too many requests to this peer are in flight; the request was not sent.
    #[error("too many pending requests")]
    TooManyPending,
}
