//! `[upstream_tls]`: TLS to `https://` instances: the CA bundle that verifies them (default:
//! the system's roots), the name their certificates are verified against and sent as SNI
//! (default: the address's host), and a client certificate for instances that ask for one.
//! A service takes the top level's keys, with its own over them.

use std::sync::Arc;

use foresight_http::tls::{
    client_config, ClientConfig, ClientFiles, ServerNameOwned, TlsConnector,
};
use http::uri::Authority;
use serde::Deserialize;

use super::{invalid, ConfigError};

/// `[upstream_tls]`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamTls {
    pub ca: Option<String>,
    pub server_name: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
}

impl RawUpstreamTls {
    /// The service's keys over the top level's.
    pub(crate) fn over(&self, base: &RawUpstreamTls) -> RawUpstreamTls {
        RawUpstreamTls {
            ca: self.ca.clone().or_else(|| base.ca.clone()),
            server_name: self
                .server_name
                .clone()
                .or_else(|| base.server_name.clone()),
            cert: self.cert.clone().or_else(|| base.cert.clone()),
            key: self.key.clone().or_else(|| base.key.clone()),
        }
    }
}

/// A service's TLS to its `https://` instances, loaded.
#[derive(Clone)]
pub struct UpstreamTls {
    /// The files it was loaded from.
    pub files: ClientFiles,
    /// The name to verify and send as SNI instead of each address's host.
    pub server_name: Option<String>,
    client: Arc<ClientConfig>,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.files == other.files && self.server_name == other.server_name
    }
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("files", &self.files)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl UpstreamTls {
    /// Verification against the system's roots, no client certificate: for `https://`
    /// instances of a service without `[upstream_tls]`.
    pub fn system() -> Result<UpstreamTls, String> {
        let files = ClientFiles::default();
        Ok(UpstreamTls {
            client: client_config(&files).map_err(|e| e.to_string())?,
            files,
            server_name: None,
        })
    }

    /// The connector and the name to verify for an instance at `authority`, offering HTTP/1.1
    /// by ALPN, or with `h2` only HTTP/2.
    pub fn target(
        &self,
        authority: &Authority,
        h2: bool,
    ) -> Result<(TlsConnector, ServerNameOwned<'static>), String> {
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = self.server_name.as_deref().unwrap_or(host);
        let name = ServerNameOwned::try_from(name.to_string())
            .map_err(|_| format!("`{name}` is not a name a certificate can be verified for"))?;
        let client = if h2 {
            let mut c = (*self.client).clone();
            c.alpn_protocols = vec![b"h2".to_vec()];
            Arc::new(c)
        } else {
            self.client.clone()
        };
        Ok((TlsConnector::from(client), name))
    }
}

/// Validates a service's `[upstream_tls]` (`p` prefixes the keys in errors); `None` when no
/// key is set.
pub(super) fn upstream_tls(
    p: &str,
    raw: &RawUpstreamTls,
) -> Result<Option<UpstreamTls>, ConfigError> {
    let k = |key: &str| format!("{p}upstream_tls.{key}");
    if raw.ca.is_none() && raw.server_name.is_none() && raw.cert.is_none() && raw.key.is_none() {
        return Ok(None);
    }
    let identity = match (&raw.cert, &raw.key) {
        (None, None) => None,
        (Some(c), Some(key)) => Some((c.into(), key.into())),
        (Some(_), None) => {
            return Err(invalid(
                k("key"),
                "(missing)",
                "the client certificate's key",
            ))
        }
        (None, Some(_)) => {
            return Err(invalid(
                k("cert"),
                "(missing)",
                "the certificate chain for the key",
            ))
        }
    };
    if let Some(n) = &raw.server_name {
        if ServerNameOwned::try_from(n.clone()).is_err() {
            return Err(invalid(k("server_name"), n, "a DNS name or an IP address"));
        }
    }
    let files = ClientFiles {
        ca: raw.ca.as_ref().map(Into::into),
        identity,
    };
    let client = client_config(&files).map_err(|e| {
        invalid(
            k(e.which),
            &e.file,
            format!("a usable PEM file ({})", e.message),
        )
    })?;
    Ok(Some(UpstreamTls {
        files,
        server_name: raw.server_name.clone(),
        client,
    }))
}
