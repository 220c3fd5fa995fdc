//! TLS for the `--tls-listen` listener: certificates from PEM files, or a self-signed one.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or used.
    #[error(transparent)]
    Files(#[from] tiercel_cluster::tls::TlsError),
    /// Generating the self-signed certificate failed.
    #[error("self-signed certificate: {0}")]
    Generate(String),
    /// rustls refused the certificate and key.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// ALPN protocols offered on TCP, most preferred first.
pub const TCP_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Loads a certificate chain and key, or generates a self-signed certificate for `names` when
/// no files are given (good for a demo, and for tests; clients must then trust it explicitly).
pub fn certified_key(
    cert: Option<&Path>,
    key: Option<&Path>,
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok((
            tiercel_cluster::tls::load_certs(cert)?,
            tiercel_cluster::tls::load_key(key)?,
        )),
        _ => {
            let ck = rcgen::generate_simple_self_signed(names.to_vec())
                .map_err(|e| TlsError::Generate(e.to_string()))?;
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
            Ok((vec![ck.cert.der().clone()], key))
        }
    }
}

/// A rustls server config (ring provider, TLS 1.2 and 1.3) offering `alpn`.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
