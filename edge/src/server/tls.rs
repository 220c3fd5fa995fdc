//! TLS for the `--tls-listen` listener: certificates from PEM files, or a self-signed one.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tiercel_cluster::service::RoutingTable;

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

/// A rustls server config (ring provider, TLS 1.2 and 1.3) offering `alpn`, its certificate
/// chosen by SNI.
pub fn server_config(certs: Arc<SniCerts>, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The certificate for each handshake: the service's whose host the client names (SNI), or
/// the node's own for any other name and for clients that name none. The table is swapped
/// whole when services change; handshakes in progress keep what they picked.
pub struct SniCerts {
    node: Arc<CertifiedKey>,
    by_host: ArcSwap<RoutingTable<Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for SniCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniCerts")
            .field("hosts", &self.by_host.load().len())
            .finish()
    }
}

impl SniCerts {
    /// The node's certificate, and no service ones yet.
    pub fn new(
        certs: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<Self>, TlsError> {
        let signing = tiercel_cluster::tls::provider()
            .key_provider
            .load_private_key(key)?;
        Ok(Arc::new(SniCerts {
            node: Arc::new(CertifiedKey::new(certs, signing)),
            by_host: ArcSwap::from_pointee(RoutingTable::default()),
        }))
    }

    /// Serves these service certificates from now on.
    pub fn set(&self, table: RoutingTable<Arc<CertifiedKey>>) {
        self.by_host.store(Arc::new(table));
    }

    /// The certificate for a server name (as the client sent it).
    pub fn for_name(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        name.map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .and_then(|n| self.by_host.load().route(&n).cloned())
            .unwrap_or_else(|| self.node.clone())
    }
}

impl ResolvesServerCert for SniCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.for_name(hello.server_name()))
    }
}
