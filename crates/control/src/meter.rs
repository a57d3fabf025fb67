//! Measuring one control interval: the client request rate (the proxy's counters, Prometheus
//! or the Kafka topic), the pool's utilisation (the instances' `/metrics`, or in-flight counts),
//! its queue and refusals, and the ready and starting instances (the actuator's view). The
//! I/O half of the loop; the autoscaler decides on what it returns.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use foresight_actuate::Actuator;
use foresight_autoscale::Sample;
use foresight_proxy::Pool;

use crate::{
    Consumer, ControlConfig, FeatureReader, FeatureReading, KafkaConfig, KafkaStatus, Load,
    MetricsSource, PromSource, Publisher, Scraper,
};

/// One interval's measurement.
#[derive(Clone, Debug)]
pub struct Measured {
    /// What the autoscaler is stepped with.
    pub sample: Sample,
    /// Where utilisation came from (`instances (n scraped)` or `proxy in-flight`).
    pub utilisation_source: String,
    /// Where the rate came from.
    pub metrics_source: String,
    /// The actuator's error when its state could not be read.
    pub actuator_error: Option<String>,
    /// The features read in the interval (none without `[control.features]`).
    pub features: Vec<FeatureReading>,
    /// Why the interval has no rate: a loop whose pool sees no traffic (in `foresight
    /// controller`) when neither Prometheus nor Kafka gave one. The loop then holds.
    pub blind: Option<String>,
    /// The configured rate source (Prometheus, Kafka) gave nothing usable this interval.
    pub degraded: bool,
}

/// The loop's instruments, kept across intervals.
pub struct Meter {
    interval: Duration,
    workers: u32,
    capacity_rps: f64,
    load: Load,
    /// Remote rates above this are refused as broken metrics (see [`plausible`]).
    implausible_rps: f64,
    scrape_instances: bool,
    sees_traffic: bool,
    kafka: Option<KafkaConfig>,
    pool: Arc<Pool>,
    actuator: Option<Arc<dyn Actuator>>,
    prom: Option<PromSource>,
    prom_failing: bool,
    features: Option<FeatureReader>,
    publisher: Option<Publisher>,
    consumer: Option<Consumer>,
    scraper: Scraper,
    started: Instant,
    tick: tokio::time::Interval,
    primed: bool,
    last_count: u64,
    last_refused: u64,
    last_period_end: f64,
}

impl Meter {
    /// Instruments for `pool` as the section says; the clock starts now.
    pub fn new(c: &ControlConfig, pool: Arc<Pool>, actuator: Option<Arc<dyn Actuator>>) -> Meter {
        let prom = match &c.metrics {
            MetricsSource::Builtin => None,
            MetricsSource::Prometheus { url, rate_query } => Some(PromSource::new(url, rate_query)),
        };
        let features = match &c.metrics {
            MetricsSource::Prometheus { url, .. } if !c.features.is_empty() => {
                Some(FeatureReader::new(url, &c.features))
            }
            _ => None,
        };
        let publisher = c.kafka.as_ref().and_then(|k| {
            k.publish
                .as_ref()
                .map(|t| Publisher::start(k.brokers.clone(), t.clone()))
        });
        let consumer = c.kafka.as_ref().and_then(|k| {
            k.consume
                .as_ref()
                .map(|t| Consumer::start(k.brokers.clone(), t.clone()))
        });
        let mut tick = tokio::time::interval(c.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Meter {
            interval: c.interval,
            workers: c.workers,
            capacity_rps: c.capacity_rps,
            load: c.load,
            implausible_rps: implausible_rps(c.max, c.capacity_rps),
            scrape_instances: c.scrape_instances,
            sees_traffic: c.sees_traffic,
            kafka: c.kafka.clone(),
            last_count: pool.client_requests(),
            last_refused: pool.refused(),
            pool,
            actuator,
            prom,
            prom_failing: false,
            features,
            publisher,
            consumer,
            scraper: Scraper::default(),
            started: Instant::now(),
            tick,
            primed: false,
            last_period_end: 0.0,
        }
    }

    /// Waits out the next interval, sampling utilisation ten times in it, and returns what it
    /// saw.
    pub async fn measure(&mut self) -> Measured {
        if !self.primed {
            // The first tick of a tokio interval completes at once.
            self.tick.tick().await;
            self.primed = true;
        }
        let sample_every = self.interval / 10;
        let (mut busy_sum, mut samples, mut open_sum) = (0.0, 0u32, 0u64);
        let (mut scraped_sum, mut scraped_samples, mut scraped_instances) = (0.0, 0u32, 0usize);
        let deadline = tokio::time::Instant::now() + self.interval;
        while tokio::time::Instant::now() + sample_every <= deadline {
            tokio::time::sleep(sample_every).await;
            let st = self.pool.status();
            let eligible = st.iter().filter(|b| b.eligible).count().max(1);
            let in_flight: u32 = st.iter().map(|b| b.in_flight).sum();
            open_sum += self.pool.open_upgraded();
            if self.scrape_instances && samples.is_multiple_of(2) {
                let addresses: Vec<String> = st
                    .iter()
                    .filter(|b| b.eligible)
                    .map(|b| b.address.clone())
                    .collect();
                if let (Some(u), n) = self.scraper.utilisation(&addresses).await {
                    scraped_sum += u;
                    scraped_samples += 1;
                    scraped_instances = n;
                }
            }
            busy_sum +=
                (f64::from(in_flight) / (eligible as f64 * f64::from(self.workers))).min(1.0);
            samples += 1;
        }
        self.tick.tick().await;
        let now = self.started.elapsed().as_secs_f64();
        let period = (now - self.last_period_end).max(1e-3);
        self.last_period_end = now;
        let count = self.pool.client_requests();
        let mut arrivals = count.saturating_sub(self.last_count);
        self.last_count = count;
        let mut source = "builtin".to_string();
        if self.load == Load::Connections {
            // The mean of the open connections seen, as a count over the period, so that the
            // autoscaler's rate (count ÷ period) is that mean.
            let open = if samples > 0 {
                open_sum as f64 / f64::from(samples)
            } else {
                self.pool.open_upgraded() as f64
            };
            arrivals = (open * period).round() as u64;
            source = "builtin (open connections)".into();
        }
        let refused = self.pool.refused();
        let dropped = refused.saturating_sub(self.last_refused);
        self.last_refused = refused;
        let mut degraded = false;
        // Whether the rate came from Prometheus or Kafka this interval.
        let mut remote = false;
        if let Some(p) = &self.prom {
            let rate = p.rate(self.interval.max(Duration::from_secs(2))).await;
            match rate.and_then(|r| plausible(r, self.implausible_rps)) {
                Ok(rps) => {
                    if self.prom_failing {
                        tracing::info!("prometheus answers again; using it");
                        self.prom_failing = false;
                    }
                    arrivals = (rps * self.interval.as_secs_f64()).round() as u64;
                    source = "prometheus".into();
                    remote = true;
                }
                Err(e) => {
                    degraded = true;
                    if !self.prom_failing {
                        if self.sees_traffic {
                            tracing::warn!(error = %e, "prometheus unavailable; using the proxy's own counters");
                        } else {
                            tracing::warn!(error = %e, "prometheus unavailable; holding until it answers");
                        }
                        self.prom_failing = true;
                    }
                    source = format!("builtin (prometheus: {e})");
                }
            }
        }
        let window = self.interval.max(Duration::from_secs(2));
        let features = match self.features.as_mut() {
            Some(f) => f.read(window).await,
            None => Vec::new(),
        };
        let (utilisation, utilisation_source) = if scraped_samples > 0 {
            (
                scraped_sum / f64::from(scraped_samples),
                format!("instances ({scraped_instances} scraped)"),
            )
        } else if samples > 0 {
            (busy_sum / f64::from(samples), "proxy in-flight".to_string())
        } else {
            (0.0, "proxy in-flight".to_string())
        };
        let members = self.pool.status();
        let eligible = members.iter().filter(|b| b.eligible).count();
        // Requests beyond the workers of each eligible instance wait in its queue.
        let queue: u32 = members
            .iter()
            .filter(|b| b.eligible)
            .map(|b| b.in_flight.saturating_sub(self.workers))
            .sum();
        if let (Some(p), Some(k)) = (&self.publisher, &self.kafka) {
            p.publish(crate::Sample {
                time: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                source: k.source.clone(),
                interval_s: self.interval.as_secs_f64(),
                requests: arrivals,
                utilisation,
                ready: eligible,
            });
        }
        if let Some(k) = &self.consumer {
            let got = k.drain();
            let total: u64 = got.iter().map(|s| s.requests).sum();
            let bad = plausible(
                total as f64 / self.interval.as_secs_f64(),
                self.implausible_rps,
            );
            if got.is_empty() {
                degraded = true;
                source = format!("{source} (kafka: no samples this interval)");
            } else if let Err(e) = bad {
                degraded = true;
                tracing::warn!(error = %e, "kafka samples refused");
                source = format!("{source} (kafka: {e})");
            } else {
                let mut sources: Vec<&str> = got.iter().map(|s| s.source.as_str()).collect();
                sources.sort_unstable();
                sources.dedup();
                arrivals = got.iter().map(|s| s.requests).sum();
                remote = true;
                source = format!(
                    "kafka ({} samples from {} proxies)",
                    got.len(),
                    sources.len()
                );
            }
        }
        let (ready, starting, actuator_error) = match &self.actuator {
            Some(a) => match a.state().await {
                Ok(s) => (s.ready.unwrap_or(eligible), s.starting.unwrap_or(0), None),
                Err(e) => (eligible, 0, Some(e.to_string())),
            },
            None => (eligible, 0, None),
        };
        let blind = (!self.sees_traffic && !remote)
            .then(|| format!("none, holding ({source}; the controller sees no traffic itself)"));
        Measured {
            blind,
            degraded,
            sample: Sample {
                now,
                period,
                arrivals,
                utilisation,
                queue: f64::from(queue),
                dropped,
                ready,
                starting,
            },
            utilisation_source,
            metrics_source: source,
            actuator_error,
            features,
        }
    }

    /// Forecast-aware balancing: the planned load split over the pool's instances by
    /// effective capacity ([`Pool::share_planned_load`]); `None` clears it.
    pub fn share_forecast(&self, planned: Option<f64>) {
        self.pool.share_planned_load(planned, self.capacity_rps);
    }

    /// Kafka publisher health, when publishing.
    pub fn publish_status(&self) -> Option<KafkaStatus> {
        self.publisher.as_ref().map(|p| p.status())
    }

    /// Kafka consumer health, when consuming.
    pub fn consume_status(&self) -> Option<KafkaStatus> {
        self.consumer.as_ref().map(|k| k.status())
    }
}

/// How many times what `max` instances serve a remote rate may be before it is taken for a
/// broken metric (a counter that jumped by 1e15, a wrong query): scaling to `max` could not
/// serve it anyway, and acting on it would. The loop falls back to the proxy's own counters,
/// or holds when it has none, as it does when Prometheus is unreachable.
pub const IMPLAUSIBLE_FACTOR: f64 = 100.0;

fn implausible_rps(max: usize, capacity_rps: f64) -> f64 {
    max.max(1) as f64 * capacity_rps * IMPLAUSIBLE_FACTOR
}

/// `rps` if it is a rate the pool could plausibly have been sent, else why not.
fn plausible(rps: f64, limit: f64) -> Result<f64, String> {
    if rps.is_finite() && (0.0..=limit).contains(&rps) {
        Ok(rps)
    } else {
        Err(format!(
            "implausible rate {rps:e} req/s (more than {IMPLAUSIBLE_FACTOR}× what max instances \
             serve, {limit:.0} req/s): ignored as a broken metric"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_beyond_a_hundred_fleets_are_broken_metrics() {
        let limit = implausible_rps(10, 50.0);
        assert_eq!(limit, 50_000.0);
        assert_eq!(plausible(1234.5, limit), Ok(1234.5));
        assert_eq!(plausible(0.0, limit), Ok(0.0));
        for bad in [1e15, f64::NAN, f64::INFINITY, -1.0, 50_001.0] {
            let e = plausible(bad, limit).unwrap_err();
            assert!(e.contains("implausible rate"), "{e}");
        }
        assert_eq!(implausible_rps(0, 50.0), 5_000.0);
    }
}
