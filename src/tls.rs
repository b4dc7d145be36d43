//! rustls configuration for `wss://` and `https://` (client).
//!
//! Certificate verification is always on: the client trusts the web PKI roots (webpki-roots,
//! so the container image needs no CA bundle) plus, optionally, one extra CA file, which is how
//! tests trust the simulator's self-signed certificate without turning verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;

/// Largest CA file read: Mozilla's whole root bundle is about 220 KB.
pub const MAX_CA_FILE_BYTES: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("CA file `{path}` {source}")]
    ReadCa { path: String, source: crate::small_file::SmallFileError },
    #[error("CA file `{path}` is not valid PEM: {source}")]
    PemCa { path: String, source: std::io::Error },
    #[error("CA file `{0}` holds no PEM certificate")]
    EmptyCa(String),
    #[error("CA file `{path}` has a certificate rustls refuses: {source}")]
    BadCa { path: String, source: rustls::Error },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a CA file: a regular file of at most [`MAX_CA_FILE_BYTES`], PEM, with at
/// least one certificate, each of which rustls accepts as a trust anchor. Configuration checks
/// it at start-up through this same function, whatever uses TLS.
pub fn load_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let shown = path.display().to_string();
    let pem = crate::small_file::read(path, MAX_CA_FILE_BYTES)
        .map_err(|source| TlsError::ReadCa { path: shown.clone(), source })?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::PemCa { path: shown.clone(), source })?;
    if certs.is_empty() {
        return Err(TlsError::EmptyCa(shown));
    }
    let mut scratch = rustls::RootCertStore::empty();
    for c in &certs {
        scratch.add(c.clone()).map_err(|source| TlsError::BadCa { path: shown.clone(), source })?;
    }
    Ok(certs)
}

/// Client configuration for Binance WebSocket connections.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let shown = path.display().to_string();
        for c in load_ca_file(path)? {
            roots.add(c).map_err(|source| TlsError::BadCa { path: shown.clone(), source })?;
        }
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
