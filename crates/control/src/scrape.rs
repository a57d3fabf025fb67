//! Utilisation as the instances see it: each instance's `/metrics` (busy workers over the
//! worker limit, `foresight_backend_in_flight / foresight_backend_workers`). This counts load
//! from every proxy in front of the instance, not only this one's.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

/// Scrapes instances.
#[derive(Clone)]
pub struct Scraper {
    client: Client<HttpConnector, Empty<Bytes>>,
}

impl Default for Scraper {
    fn default() -> Self {
        Scraper {
            client: Client::builder(TokioExecutor::new()).build(HttpConnector::new()),
        }
    }
}

/// `in_flight / workers` from a metrics text, if both are there.
pub fn utilisation_of(text: &str) -> Option<f64> {
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
    };
    let busy = value("foresight_backend_in_flight")?;
    let workers = value("foresight_backend_workers")?;
    (workers > 0.0 && busy.is_finite() && busy >= 0.0).then(|| (busy / workers).min(1.0))
}

impl Scraper {
    async fn one(&self, address: &str) -> Option<f64> {
        let uri: hyper::Uri = format!("{address}/metrics").parse().ok()?;
        let resp = tokio::time::timeout(Duration::from_millis(500), self.client.get(uri))
            .await
            .ok()?
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = tokio::time::timeout(Duration::from_millis(500), resp.into_body().collect())
            .await
            .ok()?
            .ok()?
            .to_bytes();
        utilisation_of(&String::from_utf8_lossy(&body))
    }

    /// Mean utilisation over the instances that answered, and how many did.
    pub async fn utilisation(&self, addresses: &[String]) -> (Option<f64>, usize) {
        let mut set = tokio::task::JoinSet::new();
        for a in addresses {
            let (s, a) = (self.clone(), a.clone());
            set.spawn(async move { s.one(&a).await });
        }
        let (mut sum, mut n) = (0.0, 0);
        while let Some(r) = set.join_next().await {
            if let Ok(Some(u)) = r {
                sum += u;
                n += 1;
            }
        }
        ((n > 0).then(|| sum / n as f64), n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_backend_exposition() {
        let text = "# HELP foresight_backend_in_flight Requests being served\n\
                    foresight_backend_in_flight 3\n\
                    foresight_backend_in_flight_total 99\n\
                    foresight_backend_workers 4\n";
        assert_eq!(super::utilisation_of(text), Some(0.75));
        assert_eq!(
            super::utilisation_of("foresight_backend_in_flight 3\n"),
            None
        );
        assert_eq!(
            super::utilisation_of("foresight_backend_in_flight 9\nforesight_backend_workers 4\n"),
            Some(1.0)
        );
    }
}
