//! DNS discovery: a name resolved every interval (sooner when its records' TTL runs out
//! first) with hickory-resolver; every A and AAAA record is an instance on the configured
//! port. A failed lookup, or one with no records, keeps the last good set and is logged: a
//! resolver that hiccups does not empty a pool.

use std::net::IpAddr;
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
    out: watch::Sender<Option<Vec<Endpoint>>>,
) {
    let mut resolver = None;
    loop {
        let mut wait = cfg.interval;
        if resolver.is_none() {
            match self::resolver(&cfg) {
                Ok(r) => resolver = Some(r),
                Err(e) => tracing::warn!(%service, name = %cfg.name, error = %e, "DNS discovery"),
            }
        }
        if let Some(r) = &resolver {
            match lookup(r, &cfg.name).await {
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
