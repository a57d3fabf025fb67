//! TLS termination with rustls (ring as the crypto provider: it builds without cmake): PEM
//! certificate chains and keys, the certificate chosen by the client's SNI among those whose
//! names (subject alternative names) cover it, else the first; ALPN `h2` and `http/1.1`; TLS 1.2
//! and 1.3 only (rustls has nothing older).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

pub use tokio_rustls::rustls::ServerConfig;

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

/// The server configuration for `pairs` of (certificate chain, key) PEM files (the first is
/// the default when no SNI matches), and warnings about certificates that are not valid now.
pub fn server_config(
    pairs: &[(PathBuf, PathBuf)],
) -> Result<(Arc<rustls::ServerConfig>, Vec<String>), TlsError> {
    let mut certs = Vec::with_capacity(pairs.len());
    let mut warnings = Vec::new();
    for (i, (cert, key)) in pairs.iter().enumerate() {
        let l = load(cert, key).map_err(|e| TlsError { index: i, ..e })?;
        warnings.extend(validity_warning(cert, &l.chain[0]));
        certs.push((l.chain[0].clone(), l.key));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError {
            index: 0,
            file: "(tls)".into(),
            message: e.to_string(),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni { certs }));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(cfg), warnings))
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
        let (_, warnings) = server_config(std::slice::from_ref(&fresh)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let (_, warnings) = server_config(&[fresh, old]).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("old.pem: the certificate has expired"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
