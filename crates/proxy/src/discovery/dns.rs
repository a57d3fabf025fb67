//! DNS discovery: a name resolved every interval (sooner when its records' TTL runs out
//! first) with hickory-resolver; every A and AAAA record is an instance on the configured
//! port. A failed lookup, or one with no records, keeps the last good set and is logged: a
//! resolver that hiccups does not empty a pool. A hostile or broken zone cannot point the proxy
//! anywhere it likes: unspecified, multicast and broadcast addresses, link-local ones (cloud
//! metadata services such as 169.254.169.254) unless allowed, and the proxy's own listeners are
//! refused, and one answer gives at most `max_instances` instances.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::TokioResolver;
use tokio::sync::watch;

use super::Endpoint;
use crate::config::DnsDiscovery;

/// The shortest wait between lookups, whatever the TTL (a TTL of 0 must not spin).
const MIN_WAIT: Duration = Duration::from_secs(1);

/// The resolver `cfg` asks: its nameserver, or the system's.
fn resolver(cfg: &DnsDiscovery) -> Result<TokioResolver, String> {
    let mut builder = match cfg.nameserver {
        Some(ns) => {
            let mut udp = ConnectionConfig::udp();
            udp.port = ns.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = ns.port();
            let server = NameServerConfig::new(ns.ip(), true, vec![udp, tcp]);
            let config = ResolverConfig::from_parts(None, Vec::new(), vec![server]);
            let mut b = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        }
        None => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's resolver configuration: {e}"))?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    opts.timeout = Duration::from_secs(2);
    opts.attempts = 2;
    builder
        .build()
        .map_err(|e| format!("cannot build a resolver: {e}"))
}

/// Why `ip` (on `port`) from an answer is not an instance, if it is not; `own` are the proxy's
/// listeners.
pub(crate) fn refused(
    ip: IpAddr,
    port: u16,
    own: &[SocketAddr],
    allow_link_local: bool,
) -> Option<&'static str> {
    let link_local = match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    if ip.is_unspecified() {
        Some("unspecified")
    } else if ip.is_multicast() || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) {
        Some("multicast or broadcast")
    } else if link_local && !allow_link_local {
        Some("link-local (a cloud metadata service lives there; discovery.allow_link_local = true allows it)")
    } else if own.iter().any(|a| {
        a.port() == port && (a.ip() == ip || (a.ip().is_unspecified() && ip.is_loopback()))
    }) {
        Some("one of the proxy's own listeners")
    } else {
        None
    }
}

/// The instances among `ips` (sorted): the refused ones left out with their reasons, at most
/// `cfg.max_instances` kept (the lowest addresses).
pub(crate) fn admit(
    ips: Vec<IpAddr>,
    cfg: &DnsDiscovery,
    own: &[SocketAddr],
) -> (Vec<IpAddr>, Vec<(IpAddr, &'static str)>, usize) {
    let mut kept = Vec::new();
    let mut refused_ips = Vec::new();
    for ip in ips {
        match refused(ip, cfg.port, own, cfg.allow_link_local) {
            Some(why) => refused_ips.push((ip, why)),
            None => kept.push(ip),
        }
    }
    let over = kept.len().saturating_sub(cfg.max_instances);
    kept.truncate(cfg.max_instances);
    (kept, refused_ips, over)
}

/// Every address `name` has now, sorted, and until when the answer is valid.
async fn lookup(r: &TokioResolver, name: &str) -> Result<(Vec<IpAddr>, Instant), String> {
    let answer = r.lookup_ip(name).await.map_err(|e| e.to_string())?;
    let mut ips: Vec<IpAddr> = answer.iter().collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        return Err("no A or AAAA records".into());
    }
    Ok((ips, answer.valid_until()))
}

/// Resolves `cfg.name` for `service` until `out` has no receiver left, publishing every
/// changed set of endpoints.
pub(crate) async fn resolve(
    service: String,
    cfg: DnsDiscovery,
    own: Vec<SocketAddr>,
    out: watch::Sender<Option<Vec<Endpoint>>>,
) {
    let mut resolver = None;
    // What was last said about refused and surplus addresses (said again only when it changes).
    let mut said: (Vec<(IpAddr, &'static str)>, usize) = (Vec::new(), 0);
    loop {
        let mut wait = cfg.interval;
        if resolver.is_none() {
            match self::resolver(&cfg) {
                Ok(r) => resolver = Some(r),
                Err(e) => tracing::warn!(%service, name = %cfg.name, error = %e, "DNS discovery"),
            }
        }
        if let Some(r) = &resolver {
            let admitted = lookup(r, &cfg.name).await.and_then(|(ips, valid_until)| {
                let (ips, refused, over) = admit(ips, &cfg, &own);
                if (&refused, over) != (&said.0, said.1) {
                    for (ip, why) in &refused {
                        tracing::warn!(%service, name = %cfg.name, %ip, reason = why, "DNS discovery: address refused");
                    }
                    if over > 0 {
                        tracing::warn!(%service, name = %cfg.name, over, max_instances = cfg.max_instances, "DNS discovery: more addresses than max_instances; the lowest kept");
                    }
                    said = (refused, over);
                }
                if ips.is_empty() {
                    return Err("every address refused".to_string());
                }
                Ok((ips, valid_until))
            });
            match admitted {
                Ok((ips, valid_until)) => {
                    let set: Vec<Endpoint> = ips
                        .into_iter()
                        .map(|ip| Endpoint::serving(ip, cfg.port))
                        .collect();
                    let ttl = valid_until.saturating_duration_since(Instant::now());
                    wait = wait.min(ttl).max(MIN_WAIT);
                    out.send_if_modified(|last| {
                        if last.as_ref() == Some(&set) {
                            return false;
                        }
                        tracing::info!(%service, name = %cfg.name, instances = set.len(), "DNS discovery: the set changed");
                        *last = Some(set);
                        true
                    });
                }
                Err(e) => {
                    let kept = out.borrow().as_ref().map_or(0, Vec::len);
                    tracing::warn!(%service, name = %cfg.name, error = %e, kept, "DNS lookup failed; keeping the last set");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize, allow_link_local: bool) -> DnsDiscovery {
        DnsDiscovery {
            name: "api.test".into(),
            port: 8080,
            tls: false,
            interval: Duration::from_secs(1),
            nameserver: None,
            weight: 100,
            max_instances: max,
            allow_link_local,
        }
    }

    #[test]
    fn hostile_addresses_are_refused_and_answers_bounded() {
        let own: Vec<SocketAddr> = vec![
            "127.0.0.1:8080".parse().unwrap(),
            "0.0.0.0:9090".parse().unwrap(),
        ];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let why = |s: &str, port: u16| refused(ip(s), port, &own, false);
        assert!(why("169.254.169.254", 8080).unwrap().contains("link-local"));
        assert!(why("fe80::1", 8080).unwrap().contains("link-local"));
        assert_eq!(refused(ip("169.254.169.254"), 8080, &own, true), None);
        assert_eq!(why("0.0.0.0", 8080), Some("unspecified"));
        assert_eq!(why("::", 8080), Some("unspecified"));
        assert_eq!(why("224.0.0.1", 8080), Some("multicast or broadcast"));
        assert_eq!(why("255.255.255.255", 8080), Some("multicast or broadcast"));
        assert_eq!(
            why("127.0.0.1", 8080),
            Some("one of the proxy's own listeners")
        );
        // Listening on every address: loopback on that port is the proxy itself.
        assert_eq!(
            why("127.0.0.9", 9090),
            Some("one of the proxy's own listeners")
        );
        // Another machine on the same port (every pod listens on 8080) is an instance.
        assert_eq!(why("10.0.0.5", 9090), None);
        assert_eq!(why("127.0.0.2", 8080), None);

        let ips: Vec<IpAddr> = (0..5000u32)
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
            .chain([ip("169.254.169.254"), ip("127.0.0.1")])
            .collect();
        let (kept, refused, over) = admit(ips, &cfg(256, false), &own);
        assert_eq!((kept.len(), refused.len(), over), (256, 2, 4744));
        assert_eq!(kept[0], ip("10.0.0.0"), "the lowest addresses kept");
    }
}
