//! `[discovery]` (or a service's `discovery`): where a service's instances come from when they
//! are not listed in `backends`: a DNS name re-resolved every interval (every A/AAAA record is
//! an instance on one port). In Kubernetes, a headless Service's name is such a name.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{duration, invalid, ConfigError};

/// Fastest and slowest re-resolution.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
const MAX_INTERVAL: Duration = Duration::from_secs(3600);
/// How often DNS discovery resolves when not told.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// `discovery`, as written.
#[allow(missing_docs)]
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDiscovery {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub port: Option<toml::Value>,
    pub scheme: Option<String>,
    pub interval: Option<String>,
    pub nameserver: Option<String>,
    pub weight: Option<i64>,
}

/// A service's discovery, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A DNS name's A and AAAA records.
    Dns(DnsDiscovery),
}

/// `type = "dns"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsDiscovery {
    /// The name to resolve.
    pub name: String,
    /// Every instance's port.
    pub port: u16,
    /// `https`: TLS to the instances (see `[upstream_tls]`).
    pub tls: bool,
    /// How often to resolve again; sooner when the records' TTL ends first.
    pub interval: Duration,
    /// A nameserver to ask instead of the system's (`/etc/resolv.conf`), e.g. Consul's
    /// `127.0.0.1:8600`.
    pub nameserver: Option<SocketAddr>,
    /// Every instance's weight.
    pub weight: u32,
}

/// Validates `raw`; `p` prefixes every key in errors (`services[1].`).
pub(crate) fn discovery(p: &str, raw: &RawDiscovery) -> Result<Discovery, ConfigError> {
    let k = |key: &str| format!("{p}discovery.{key}");
    let tls = match raw.scheme.as_deref().unwrap_or("http") {
        "http" => false,
        "https" => true,
        other => return Err(invalid(k("scheme"), other, "http or https")),
    };
    let weight = match raw.weight {
        None => 1,
        Some(w) if (1..=1000).contains(&w) => w as u32,
        Some(w) => return Err(invalid(k("weight"), w, "1..=1000")),
    };
    let port_number = |v: &toml::Value| -> Option<u16> {
        v.as_integer()
            .and_then(|n| u16::try_from(n).ok())
            .filter(|n| *n > 0)
    };
    match raw.kind.as_deref() {
        Some("dns") => {
            let name = raw
                .name
                .clone()
                .ok_or_else(|| invalid(k("name"), "(none)", "a DNS name to resolve"))?;
            if name.is_empty()
                || name.len() > 253
                || !name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_'))
            {
                return Err(invalid(k("name"), &name, "a DNS name such as api.internal"));
            }
            let port = raw
                .port
                .as_ref()
                .ok_or_else(|| invalid(k("port"), "(none)", "the instances' port, 1..=65535"))?;
            let port =
                port_number(port).ok_or_else(|| invalid(k("port"), port, "a port, 1..=65535"))?;
            let interval = duration(&k("interval"), &raw.interval, DEFAULT_INTERVAL)?;
            if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
                return Err(invalid(
                    k("interval"),
                    humantime::format_duration(interval),
                    "1s..=1h",
                ));
            }
            let nameserver = match &raw.nameserver {
                None => None,
                Some(s) => Some(
                    s.parse::<SocketAddr>()
                        .or_else(|_| {
                            s.parse::<std::net::IpAddr>()
                                .map(|ip| SocketAddr::new(ip, 53))
                        })
                        .map_err(|_| {
                            invalid(
                                k("nameserver"),
                                s,
                                "an IP address with an optional port, e.g. 127.0.0.1:8600",
                            )
                        })?,
                ),
            };
            Ok(Discovery::Dns(DnsDiscovery {
                name,
                port,
                tls,
                interval,
                nameserver,
                weight,
            }))
        }
        Some("kubernetes") => Err(invalid(
            k("type"),
            "kubernetes",
            "dns (EndpointSlice discovery is not built yet; in a cluster, a headless \
             Service's DNS name resolves to its ready pods: type = \"dns\", name = \
             \"SERVICE.NAMESPACE.svc.cluster.local\")",
        )),
        Some(other) => Err(invalid(k("type"), other, "dns")),
        None => Err(invalid(k("type"), "(none)", "dns")),
    }
}
