//! TLS termination with rustls (ring as the crypto provider: it builds without cmake): PEM
//! certificate chains and keys, the certificate chosen by the client's SNI among those whose
//! names (subject alternative names) cover it, else the first; ALPN `h2` and `http/1.1`; TLS 1.2
//! and 1.3 only (rustls has nothing older).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

pub use rustls_pki_types::ServerName as ServerNameOwned;
pub use tokio_rustls::client::TlsStream as ClientStream;
pub use tokio_rustls::rustls::{ClientConfig, ServerConfig};
pub use tokio_rustls::TlsConnector;

/// A certificate that could not be used: which file, and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{file}: {message}")]
pub struct TlsError {
    /// Which pair of files (0-based).
    pub index: usize,
    /// The file.
    pub file: String,
    /// Why.
    pub message: String,
}

fn err(file: &Path, message: impl Into<String>) -> TlsError {
    TlsError {
        index: 0,
        file: file.display().to_string(),
        message: message.into(),
    }
}

/// One certificate chain and its key, loaded.
struct Loaded {
    chain: Vec<CertificateDer<'static>>,
    key: Arc<CertifiedKey>,
}

/// Chooses the certificate by SNI.
#[derive(Debug)]
struct BySni {
    certs: Vec<(CertificateDer<'static>, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|sni| {
            let name = ServerName::try_from(sni).ok()?;
            self.certs.iter().find(|(leaf, _)| {
                webpki::EndEntityCert::try_from(leaf)
                    .is_ok_and(|c| c.verify_is_valid_for_subject_name(&name).is_ok())
            })
        });
        chosen.or(self.certs.first()).map(|(_, k)| k.clone())
    }
}

fn load(cert: &Path, key: &Path) -> Result<Loaded, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| err(cert, format!("cannot read certificates: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(cert, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(err(
            cert,
            "no certificate in the file (expected PEM `BEGIN CERTIFICATE`)",
        ));
    }
    let leaf = webpki::EndEntityCert::try_from(&chain[0])
        .map_err(|e| err(cert, format!("the first certificate does not parse: {e}")))?;
    drop(leaf);
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| err(key, format!("not a PEM private key: {e}")))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| err(key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain.clone(), signing);
    ck.keys_match().map_err(|e| {
        err(
            key,
            format!("does not match the certificate {}: {e}", cert.display()),
        )
    })?;
    Ok(Loaded {
        chain,
        key: Arc::new(ck),
    })
}

/// A warning when a leaf certificate has expired or is not valid yet (clients will refuse it).
fn validity_warning(cert: &Path, leaf: &CertificateDer<'_>) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(leaf).ok()?;
    // Validity is the first thing checked, before any issuer is looked for (there is none
    // here): the outcome says only whether the certificate is valid now.
    let checked = ee.verify_for_usage(
        &[],
        &[],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    );
    match checked {
        Err(webpki::Error::CertExpired { .. }) => Some(format!(
            "{}: the certificate has expired; clients will refuse it",
            cert.display()
        )),
        Err(webpki::Error::CertNotValidYet { .. }) => Some(format!(
            "{}: the certificate is not valid yet; clients will refuse it",
            cert.display()
        )),
        _ => None,
    }
}

/// The certificates a listener serves, chosen by SNI; replaceable while it runs, so that a
/// configuration reload re-reads the files without closing a connection (a handshake uses
/// the certificates current when it starts).
#[derive(Debug)]
pub struct Certificates(ArcSwap<BySni>);

impl Certificates {
    /// Serves `other`'s certificates from now on.
    pub fn replace_with(&self, other: &Certificates) {
        self.0.store(other.0.load_full());
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.load().resolve(hello)
    }
}

/// A listener's TLS, loaded.
pub struct Server {
    /// The server configuration.
    pub config: Arc<rustls::ServerConfig>,
    /// Its certificates, which a reload replaces.
    pub certificates: Arc<Certificates>,
    /// Certificates that are not valid now (expired or not yet valid).
    pub warnings: Vec<String>,
}

/// The server for `pairs` of (certificate chain, key) PEM files (the first is the default
/// when no SNI matches).
pub fn server_config(pairs: &[(PathBuf, PathBuf)]) -> Result<Server, TlsError> {
    let mut certs = Vec::with_capacity(pairs.len());
    let mut warnings = Vec::new();
    for (i, (cert, key)) in pairs.iter().enumerate() {
        let l = load(cert, key).map_err(|e| TlsError { index: i, ..e })?;
        warnings.extend(validity_warning(cert, &l.chain[0]));
        certs.push((l.chain[0].clone(), l.key));
    }
    let certificates = Arc::new(Certificates(ArcSwap::from_pointee(BySni { certs })));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError {
            index: 0,
            file: "(tls)".into(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Server {
        config: Arc::new(cfg),
        certificates,
        warnings,
    })
}

/// Where TLS to instances gets its trust and identity (all files PEM).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientFiles {
    /// CA certificates that sign the instances' certificates (default: the system's roots).
    pub ca: Option<PathBuf>,
    /// A client certificate chain and its key, for instances that ask for one (mutual TLS).
    pub identity: Option<(PathBuf, PathBuf)>,
}

/// Which of [`ClientFiles`] could not be used, and why.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{file}: {message}")]
pub struct ClientTlsError {
    /// `ca`, `cert` or `key`.
    pub which: &'static str,
    /// The file.
    pub file: String,
    /// Why.
    pub message: String,
}

/// The system's root certificates, loaded once per process (a root that does not parse is
/// skipped; none at all leaves every instance unverifiable, which its handshake then says).
fn system_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<rustls::RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::warn!(errors = ?found.errors, "no system root certificates found: TLS to instances needs `upstream_tls.ca`");
            }
            Arc::new(store)
        })
        .clone()
}

/// A client configuration for TLS to instances: TLS 1.2/1.3, ALPN `http/1.1` (the proxy
/// speaks HTTP/1.1 to instances), server certificates verified against `files.ca` or the
/// system's roots, and the client certificate if one is given.
pub fn client_config(files: &ClientFiles) -> Result<Arc<rustls::ClientConfig>, ClientTlsError> {
    let fail = |which, file: &Path, message: String| ClientTlsError {
        which,
        file: file.display().to_string(),
        message,
    };
    let roots = match &files.ca {
        None => system_roots(),
        Some(ca) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca)
                .map_err(|e| fail("ca", ca, format!("cannot read certificates: {e}")))?
                .collect::<Result<_, _>>()
                .map_err(|e| fail("ca", ca, format!("not PEM certificates: {e}")))?;
            let mut store = rustls::RootCertStore::empty();
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(fail(
                    "ca",
                    ca,
                    "no usable CA certificate in the file (expected PEM `BEGIN CERTIFICATE`)"
                        .into(),
                ));
            }
            Arc::new(store)
        }
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| fail("ca", Path::new("(tls)"), e.to_string()))?
        .with_root_certificates(roots);
    let mut cfg = match &files.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let l = load(cert, key).map_err(|e| ClientTlsError {
                which: if e.file == key.display().to_string() {
                    "key"
                } else {
                    "cert"
                },
                file: e.file,
                message: e.message,
            })?;
            let der = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| fail("key", key, format!("not a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(l.chain, der)
                .map_err(|e| fail("key", key, e.to_string()))?
        }
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, not_after: (i32, u8, u8)) -> (PathBuf, PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec![format!("{name}.test")]).unwrap();
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (c, k) = (
            dir.join(format!("{name}.pem")),
            dir.join(format!("{name}.key")),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    #[test]
    fn an_expired_certificate_is_warned_about_not_refused() {
        let dir = std::env::temp_dir().join(format!("foresight-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fresh = write(&dir, "fresh", (2090, 1, 1));
        let old = write(&dir, "old", (2020, 1, 1));
        let warnings = server_config(std::slice::from_ref(&fresh))
            .unwrap()
            .warnings;
        assert!(warnings.is_empty(), "{warnings:?}");
        let warnings = server_config(&[fresh, old]).unwrap().warnings;
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("old.pem: the certificate has expired"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
