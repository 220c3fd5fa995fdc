//! TLS material every role shares: server certificates from PEM files that can be reloaded
//! without a restart (SIGHUP), and client configurations that verify servers against the
//! system's roots or an operator's CA file.
//!
//! One crypto provider (ring) is used everywhere; with two compiled in, rustls refuses to pick.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::ClientConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or holds no certificate.
    #[error("certificate {path}: {reason}")]
    Cert {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The key file could not be read, holds no private key, or rustls cannot use it.
    #[error("private key {path}: {reason}")]
    Key {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The CA file could not be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    Ca {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The system's trust store holds no usable certificate.
    #[error("no trusted root certificates on this system; give a CA file")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The crypto provider of every TLS configuration.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a PEM certificate chain.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Cert {
        path: path.display().to_string(),
        reason,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate found".into()));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Key {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A certificate chain and key as rustls serves them.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: key_path.display().to_string(),
            reason: e.to_string(),
        })?;
    Ok(CertifiedKey::new(certs, signing))
}

/// A server certificate read from two PEM files, replaced in place by [`ReloadingCert::reload`]
/// (the binaries call it on SIGHUP) so renewed certificates apply to new connections without a
/// restart. A reload that fails keeps the certificate in use.
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    /// Loads `cert` and `key`; fails if either is unusable.
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let ck = Self::read(cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: ArcSwap::from_pointee(ck),
        }))
    }

    fn read(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
        let ck = certified_key(load_certs(cert)?, load_key(key)?, key)?;
        ck.keys_match().map_err(|e| TlsError::Key {
            path: key.display().to_string(),
            reason: format!("does not match the certificate: {e}"),
        })?;
        Ok(ck)
    }

    /// Reads the files again; on success new handshakes use the new certificate.
    pub fn reload(&self) -> Result<(), TlsError> {
        let ck = Self::read(&self.cert, &self.key)?;
        self.current.store(Arc::new(ck));
        Ok(())
    }

    /// Reloads on every SIGHUP until the runtime stops, logging the outcome.
    pub fn reload_on_sighup(self: &Arc<Self>) {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut hup) = signal(SignalKind::hangup()) else {
                tracing::warn!("cannot install a SIGHUP handler: certificates will not reload");
                return;
            };
            let me = self.clone();
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match me.reload() {
                        Ok(()) => tracing::info!(cert = %me.cert.display(), "certificate reloaded"),
                        Err(e) => {
                            tracing::error!(error = %e, "certificate reload failed; keeping the old one")
                        }
                    }
                }
            });
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A server configuration (TLS 1.2 and 1.3) with certificates from `certs`, offering `alpn`.
pub fn server_config(
    certs: Arc<dyn ResolvesServerCert>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A client configuration that verifies servers against the certificates in `ca_file`, or,
/// without one, against the system's trust store.
pub fn client_config(ca_file: Option<&Path>) -> Result<ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_err = |reason: String| TlsError::Ca {
                path: path.display().to_string(),
                reason,
            };
            let certs = load_certs(path).map_err(|e| ca_err(e.to_string()))?;
            for c in certs {
                roots.add(c).map_err(|e| ca_err(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::NoRoots);
            }
        }
    }
    let cfg = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(cfg)
}

/// A client configuration that trusts no server: for connectors that only ever dial plain
/// HTTP but share a type with ones that dial TLS.
pub fn trust_nothing() -> Result<ClientConfig, TlsError> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// A connector for `http://` and `https://` URLs (HTTP/1.1), verifying servers with `tls`.
pub fn connector(
    http: HttpConnector,
    tls: ClientConfig,
) -> hyper_rustls::HttpsConnector<HttpConnector> {
    let mut http = http;
    http.enforce_http(false);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http)
}

/// Whether a plain-HTTP listener on `addr` is exposed beyond this machine (the binaries warn
/// at start-up: bearer tokens and secrets would cross the network in clear text).
pub fn exposed(addr: &std::net::SocketAddr) -> bool {
    !addr.ip().is_loopback()
}

/// Whether `url` is plain `http://` to a host beyond this machine (tokens would cross the
/// network in clear text); `localhost` and loopback addresses are fine.
pub fn plain_http_off_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    if host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => !ip.is_loopback(),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    }

    #[test]
    fn certificates_load_reload_and_keep_the_old_one_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "a.example");
        let r = ReloadingCert::load(&cert, &key).unwrap();
        let first = r.current.load_full().cert[0].clone();
        let (cert2, key2) = self_signed(dir.path(), "b.example");
        std::fs::copy(&cert2, &cert).unwrap();
        // The key does not match the new certificate yet: refused, the old pair stays.
        let err = r.reload().unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert_eq!(r.current.load_full().cert[0], first);
        std::fs::copy(&key2, &key).unwrap();
        r.reload().unwrap();
        assert_ne!(r.current.load_full().cert[0], first);
    }

    #[test]
    fn bad_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let e = ReloadingCert::load(&empty, &empty).unwrap_err().to_string();
        assert!(
            e.starts_with("certificate ") && e.contains("empty.pem"),
            "{e}"
        );
        let e = client_config(Some(&empty)).unwrap_err().to_string();
        assert!(e.starts_with("CA file ") && e.contains("empty.pem"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = client_config(Some(&missing)).unwrap_err().to_string();
        assert!(e.contains("missing.pem"), "{e}");
    }

    #[test]
    fn plain_http_is_flagged_off_loopback_only() {
        for (url, want) in [
            ("http://127.0.0.1:7070", false),
            ("http://localhost:7070/x", false),
            ("http://[::1]:7070", false),
            ("https://purge.example:7070", false),
            ("http://10.0.0.1:7070", true),
            ("http://purge.example", true),
            ("http://[2001:db8::1]:7070", true),
        ] {
            assert_eq!(plain_http_off_loopback(url), want, "{url}");
        }
    }

    #[test]
    fn exposure_is_anything_but_loopback() {
        assert!(!exposed(&"127.0.0.1:1".parse().unwrap()));
        assert!(!exposed(&"[::1]:1".parse().unwrap()));
        assert!(exposed(&"0.0.0.0:1".parse().unwrap()));
        assert!(exposed(&"10.0.0.1:1".parse().unwrap()));
    }
}
