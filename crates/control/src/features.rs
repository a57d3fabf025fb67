//! The live loop's feature inputs: each `[control.features]` query evaluated on Prometheus
//! every interval (its latest value), for a forecaster trained with those features.

use std::time::Duration;

use crate::PromSource;

/// One feature's reading in an interval, as `GET /control` shows it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FeatureReading {
    /// The feature's name (the training file's column).
    pub name: String,
    /// Its PromQL query.
    pub query: String,
    /// Its latest value, when the query gave one.
    pub value: Option<f64>,
    /// Why it gave none (an unknown metric, a PromQL error, Prometheus unreachable).
    pub error: Option<String>,
}

/// The queries of a service's features, in the forecaster's order.
pub struct FeatureReader {
    sources: Vec<(String, String, PromSource)>,
    failing: Vec<bool>,
}

impl FeatureReader {
    /// `features` as (name, query), on the Prometheus at `url`.
    pub fn new(url: &str, features: &[(String, String)]) -> FeatureReader {
        FeatureReader {
            sources: features
                .iter()
                .map(|(n, q)| (n.clone(), q.clone(), PromSource::new(url, q)))
                .collect(),
            failing: vec![false; features.len()],
        }
    }

    /// The queries, in order (for a warm start's range queries).
    pub fn sources(&self) -> Vec<&PromSource> {
        self.sources.iter().map(|s| &s.2).collect()
    }

    /// Every feature's latest value within `window`; a feature that starts or stops failing
    /// is logged once.
    pub async fn read(&mut self, window: Duration) -> Vec<FeatureReading> {
        let mut out = Vec::with_capacity(self.sources.len());
        for ((name, query, source), failing) in self.sources.iter().zip(&mut self.failing) {
            let (value, error) = match source.latest(window).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e)),
            };
            match (&error, *failing) {
                (Some(e), false) => {
                    tracing::warn!(feature = %name, %query, error = %e, "feature unavailable; the forecaster carries its last value, or waits for a first one")
                }
                (None, true) => tracing::info!(feature = %name, "feature available again"),
                _ => {}
            }
            *failing = error.is_some();
            out.push(FeatureReading {
                name: name.clone(),
                query: query.clone(),
                value,
                error,
            });
        }
        out
    }
}
