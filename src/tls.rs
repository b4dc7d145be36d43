//! rustls configuration for `wss://` (client) and for the simulator's TLS listener (server).
//!
//! Certificate verification is always on: the client trusts the web PKI roots (webpki-roots,
//! so the container image needs no CA bundle) plus, optionally, one extra CA file, which is how
//! tests trust the simulator's self-signed certificate without turning verification off.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read CA file `{path}`: {source}")]
    ReadCa { path: String, source: std::io::Error },
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

/// Client configuration for Binance WebSocket connections.
pub fn client_config(extra_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_ca {
        let shown = path.display().to_string();
        let pem = std::fs::read(path).map_err(|source| TlsError::ReadCa { path: shown.clone(), source })?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .map_err(|source| TlsError::ReadCa { path: shown.clone(), source })?;
        if certs.is_empty() {
            return Err(TlsError::EmptyCa(shown));
        }
        for c in certs {
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

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`: (certificate PEM, server config).
pub fn self_signed_server() -> Result<(String, Arc<rustls::ServerConfig>), TlsError> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
        .map_err(|e| TlsError::Rustls(rustls::Error::General(e.to_string())))?;
    let cert_pem = ck.cert.pem();
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cert_pem, Arc::new(cfg)))
}
