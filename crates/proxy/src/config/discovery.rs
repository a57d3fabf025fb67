//! `[discovery]` (or a service's `discovery`): where a service's instances come from when they
//! are not listed in `backends`: a DNS name re-resolved every interval (every A/AAAA record is
//! an instance on one port; in Kubernetes, a headless Service's name is such a name), or a
//! Kubernetes Service's EndpointSlices, watched (the watch itself lives in `foresight-kube`,
//! built with the `kubernetes` feature), or an EC2 Auto Scaling group's instances, polled (in
//! `foresight-aws`, the `aws` feature).

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
    pub namespace: Option<String>,
    pub url: Option<String>,
    pub group: Option<String>,
    pub aws_endpoint: Option<String>,
    pub max_instances: Option<i64>,
    pub allow_link_local: Option<bool>,
}

/// A service's discovery, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// A DNS name's A and AAAA records.
    Dns(DnsDiscovery),
    /// A Kubernetes Service's EndpointSlices.
    Kubernetes(KubernetesDiscovery),
    /// An EC2 Auto Scaling group's instances.
    AwsAsg(AwsAsgDiscovery),
}

/// `type = "aws-asg"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsAsgDiscovery {
    /// The Auto Scaling group.
    pub group: String,
    /// Every instance's port (on its private address).
    pub port: u16,
    /// How often the group is read.
    pub interval: Duration,
    /// The API endpoint (an emulator); `None`: `AWS_ENDPOINT_URL` or AWS's own.
    pub endpoint: Option<String>,
    /// `https`: TLS to the instances (see `[upstream_tls]`).
    pub tls: bool,
    /// Every instance's weight.
    pub weight: u32,
}

/// How often an Auto Scaling group is read when not told.
pub const DEFAULT_ASG_INTERVAL: Duration = Duration::from_secs(10);

/// `type = "kubernetes"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KubernetesDiscovery {
    /// The Service whose EndpointSlices (label `kubernetes.io/service-name`) list the instances.
    pub service: String,
    /// Its namespace; `None` is the client configuration's (the pod's own namespace in a
    /// cluster).
    pub namespace: Option<String>,
    /// Which of the slices' ports the instances listen on.
    pub port: KubePort,
    /// The API server at a plain URL (e.g. `kubectl proxy`'s `http://127.0.0.1:8001`);
    /// `None` finds the cluster the usual way (in-cluster service account, `KUBECONFIG`).
    pub url: Option<String>,
    /// `https`: TLS to the instances (see `[upstream_tls]`).
    pub tls: bool,
    /// Every instance's weight.
    pub weight: u32,
}

/// A port of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KubePort {
    /// The port with this name (the Service port's name).
    Named(String),
    /// This port number on every endpoint.
    Number(u16),
    /// The slices' only port (a Service with one port).
    Only,
}

/// Whether `s` is a DNS-1123 label, as Kubernetes names Services and namespaces.
fn kube_name(s: &str) -> bool {
    (1..=63).contains(&s.len())
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
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
    /// The most instances one answer may give (the lowest addresses are kept).
    pub max_instances: usize,
    /// Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata services) are refused
    /// unless this is set.
    pub allow_link_local: bool,
}

/// The default [`DnsDiscovery::max_instances`].
pub const DNS_MAX_INSTANCES: usize = 256;

/// A polled source's required `port` and its `interval` (1 s..=1 h, `default` when absent).
fn port_and_interval(
    p: &str,
    raw: &RawDiscovery,
    default: Duration,
) -> Result<(u16, Duration), ConfigError> {
    let k = |key: &str| format!("{p}discovery.{key}");
    let port = raw
        .port
        .as_ref()
        .ok_or_else(|| invalid(k("port"), "(none)", "the instances' port, 1..=65535"))?;
    let port = port
        .as_integer()
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| invalid(k("port"), port, "a port, 1..=65535"))?;
    let interval = duration(&k("interval"), &raw.interval, default)?;
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(invalid(
            k("interval"),
            humantime::format_duration(interval),
            "1s..=1h",
        ));
    }
    Ok((port, interval))
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
    if raw.kind.as_deref() != Some("dns")
        && (raw.max_instances.is_some() || raw.allow_link_local.is_some())
    {
        let key = if raw.max_instances.is_some() {
            "max_instances"
        } else {
            "allow_link_local"
        };
        return Err(invalid(k(key), "(set)", "nothing unless type = \"dns\""));
    }
    if raw.kind.as_deref() != Some("aws-asg") && (raw.group.is_some() || raw.aws_endpoint.is_some())
    {
        let key = if raw.group.is_some() {
            "group"
        } else {
            "aws_endpoint"
        };
        return Err(invalid(
            k(key),
            "(set)",
            "nothing unless type = \"aws-asg\"",
        ));
    }
    match raw.kind.as_deref() {
        Some("dns") => {
            if raw.namespace.is_some() || raw.url.is_some() {
                let key = if raw.namespace.is_some() {
                    "namespace"
                } else {
                    "url"
                };
                return Err(invalid(
                    k(key),
                    "(set)",
                    "nothing with type = \"dns\" (a key of type = \"kubernetes\")",
                ));
            }
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
            let (port, interval) = port_and_interval(p, raw, DEFAULT_INTERVAL)?;
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
            let max_instances = match raw.max_instances {
                None => DNS_MAX_INSTANCES,
                Some(n @ 1..=10_000) => n as usize,
                Some(n) => return Err(invalid(k("max_instances"), n, "1..=10000")),
            };
            Ok(Discovery::Dns(DnsDiscovery {
                name,
                port,
                tls,
                interval,
                nameserver,
                weight,
                max_instances,
                allow_link_local: raw.allow_link_local.unwrap_or(false),
            }))
        }
        Some("kubernetes") => {
            if raw.interval.is_some() || raw.nameserver.is_some() {
                let key = if raw.interval.is_some() {
                    "interval"
                } else {
                    "nameserver"
                };
                return Err(invalid(
                    k(key),
                    "(set)",
                    "nothing with type = \"kubernetes\" (EndpointSlices are watched, not polled)",
                ));
            }
            let service = raw.name.clone().ok_or_else(|| {
                invalid(
                    k("name"),
                    "(none)",
                    "the Service whose EndpointSlices list the instances",
                )
            })?;
            if !kube_name(&service) {
                return Err(invalid(
                    k("name"),
                    &service,
                    "a Service name such as api (a DNS-1123 label)",
                ));
            }
            let namespace = match &raw.namespace {
                Some(n) if !kube_name(n) => {
                    return Err(invalid(
                        k("namespace"),
                        n,
                        "a namespace such as default (a DNS-1123 label)",
                    ))
                }
                n => n.clone(),
            };
            let port = match &raw.port {
                None => KubePort::Only,
                Some(toml::Value::String(name)) if kube_name(name) && name.len() <= 15 => {
                    KubePort::Named(name.clone())
                }
                Some(v) => KubePort::Number(port_number(v).ok_or_else(|| {
                    invalid(
                        k("port"),
                        v,
                        "a port name such as http, or a number 1..=65535",
                    )
                })?),
            };
            let url = match &raw.url {
                Some(u)
                    if !(u.starts_with("http://") || u.starts_with("https://"))
                        || u.parse::<http::Uri>().is_err() =>
                {
                    return Err(invalid(
                        k("url"),
                        u,
                        "the API server's URL, e.g. http://127.0.0.1:8001",
                    ))
                }
                u => u.clone(),
            };
            Ok(Discovery::Kubernetes(KubernetesDiscovery {
                service,
                namespace,
                port,
                url,
                tls,
                weight,
            }))
        }
        Some("aws-asg") => {
            let foreign = [
                ("name", raw.name.is_some()),
                ("namespace", raw.namespace.is_some()),
                ("url", raw.url.is_some()),
                ("nameserver", raw.nameserver.is_some()),
            ];
            if let Some((key, _)) = foreign.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    k(key),
                    "(set)",
                    "nothing with type = \"aws-asg\" (its keys: group, port, interval, \
                     aws_endpoint, scheme, weight)",
                ));
            }
            let group = raw
                .group
                .clone()
                .ok_or_else(|| invalid(k("group"), "(none)", "an Auto Scaling group's name"))?;
            if group.is_empty() || group.len() > 255 || group.chars().any(char::is_control) {
                return Err(invalid(
                    k("group"),
                    &group,
                    "an Auto Scaling group's name (1 to 255 characters)",
                ));
            }
            let (port, interval) = port_and_interval(p, raw, DEFAULT_ASG_INTERVAL)?;
            let endpoint = match &raw.aws_endpoint {
                Some(u)
                    if !(u.starts_with("http://") || u.starts_with("https://"))
                        || u.parse::<http::Uri>().is_err() =>
                {
                    return Err(invalid(
                        k("aws_endpoint"),
                        u,
                        "an endpoint URL, e.g. http://127.0.0.1:5000",
                    ))
                }
                u => u.clone(),
            };
            Ok(Discovery::AwsAsg(AwsAsgDiscovery {
                group,
                port,
                interval,
                endpoint,
                tls,
                weight,
            }))
        }
        Some(other) => Err(invalid(k("type"), other, "dns, kubernetes or aws-asg")),
        None => Err(invalid(k("type"), "(none)", "dns, kubernetes or aws-asg")),
    }
}
