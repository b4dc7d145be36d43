//! The simulator's `wss://` side: a self-signed certificate and the rustls server configuration
//! that presents it. Clients trust it through the PEM (the ingester's `TLS_CA_FILE`), so their
//! verification stays on.

use std::io;
use std::sync::Arc;

use rustls::pki_types::PrivateKeyDer;

/// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`: (certificate PEM, server config).
pub fn self_signed_server() -> io::Result<(String, Arc<rustls::ServerConfig>)> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
        .map_err(io::Error::other)?;
    let cert_pem = ck.cert.pem();
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(vec![ck.cert.der().clone()], key)
        .map_err(io::Error::other)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cert_pem, Arc::new(cfg)))
}
