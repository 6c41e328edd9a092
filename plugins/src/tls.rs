//! TLS setup: rustls with the `ring` provider chosen explicitly (no aws-lc build).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsFiles;
use crate::error::PluginError;

/// Builds the rustls server configuration from a PEM certificate chain and key.
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, PluginError> {
    let certs = CertificateDer::pem_file_iter(&files.cert_pem)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| PluginError::TlsFile {
            path: files.cert_pem.clone(),
            source,
        })?;
    if certs.is_empty() {
        return Err(PluginError::NoCertificate(files.cert_pem.clone()));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key_pem).map_err(|source| PluginError::TlsFile {
            path: files.key_pem.clone(),
            source,
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    // HTTP/1.1 only: WebSocket upgrades need it, and the REST API gains nothing from h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
