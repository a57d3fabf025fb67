//! Scaling inside the simulator: launches become ready after the provisioning delay, removals
//! drain without losing requests, and instance-hours are billed from launch to stop.

use std::time::Duration;

use foresight_balance::Algorithm;
use foresight_core::dist::Distribution;
use foresight_sim::{
    run_scaled, Controller, InstanceSpec, PoolView, RequestClass, Scaling, Scenario,
};
use foresight_workload::Profile;

/// Wants `n` instances from `at` on, 1 before.
struct Script {
    at: Duration,
    n: usize,
    views: Vec<PoolView>,
}

impl Controller for Script {
    fn interval(&self) -> Duration {
        Duration::from_secs(15)
    }
    fn decide(&mut self, view: &PoolView) -> usize {
        self.views.push(view.clone());
        if view.now >= self.at {
            self.n
        } else {
            2
        }
    }
}

fn scenario(profile: Profile, secs: u64) -> Scenario {
    let mut spec = InstanceSpec::new(4);
    spec.queue_limit = None;
    Scenario {
        instances: vec![spec.clone(), spec],
        profile,
        duration: Duration::from_secs(secs),
        warmup: Duration::ZERO,
        classes: vec![RequestClass {
            name: "/p".into(),
            share: 1.0,
            mean: Duration::from_millis(200),
            distribution: Distribution::Exponential,
            priority: 0,
            empirical: None,
        }],
        algorithm: Algorithm::LeastConnections,
        slow_start: None,
        seed: 9,
    }
}

#[test]
fn launches_wait_for_the_provisioning_delay_and_are_billed_from_launch() {
    let s = scenario(Profile::Constant { rate: 20.0 }, 600);
    let mut c = Script {
        at: Duration::from_secs(60),
        n: 6,
        views: Vec::new(),
    };
    let mut sc = Scaling {
        template: InstanceSpec::new(4),
        provision_delay: Duration::from_secs(120),
        controller: &mut c,
    };
    let (o, so) = run_scaled(&s, &mut sc, &mut |_| {}).unwrap();
    // At 75 s the four launched at 60 s are starting; at 195 s they are ready.
    let at = |secs: u64| {
        c.views
            .iter()
            .find(|v| v.now == Duration::from_secs(secs))
            .unwrap()
    };
    assert_eq!((at(75).ready, at(75).starting), (2, 4));
    assert_eq!((at(195).ready, at(195).starting), (6, 0));
    // 2 instances × 600 s + 4 × (600 − 60) s.
    let expected = (2.0 * 600.0 + 4.0 * 540.0) / 3600.0;
    assert!(
        (so.instance_hours - expected).abs() < 0.01,
        "{} vs {expected}",
        so.instance_hours
    );
    assert_eq!(so.actions, 4);
    assert_eq!(o.failed + o.dropped, 0);
    // Utilisation seen by the controller: 20 req/s × 0.2 s over 2 × 4 workers = 0.5.
    assert!((at(45).utilisation - 0.5).abs() < 0.1, "{:?}", at(45));
    assert!(
        (at(45).arrivals as f64 - 300.0).abs() < 60.0,
        "{:?}",
        at(45)
    );
}

#[test]
fn scale_in_drains_without_losing_requests() {
    // Heavy load on 6 instances, then scale in to 2 while requests are in flight.
    let s = scenario(Profile::Constant { rate: 35.0 }, 900);
    struct Down(Vec<PoolView>);
    impl Controller for Down {
        fn interval(&self) -> Duration {
            Duration::from_secs(15)
        }
        fn decide(&mut self, v: &PoolView) -> usize {
            self.0.push(v.clone());
            if v.now < Duration::from_secs(300) {
                6
            } else {
                2
            }
        }
    }
    let mut c = Down(Vec::new());
    let mut sc = Scaling {
        template: InstanceSpec::new(4),
        provision_delay: Duration::from_secs(30),
        controller: &mut c,
    };
    let (o, so) = run_scaled(&s, &mut sc, &mut |_| {}).unwrap();
    assert_eq!(o.failed, 0);
    assert_eq!(o.dropped, 0);
    assert_eq!(
        o.arrived, o.completed,
        "every request finishes (drained, not killed)"
    );
    let last = c.0.last().unwrap();
    assert_eq!((last.ready, last.starting), (2, 0));
    assert!(so.instance_hours < 6.0 * 900.0 / 3600.0);
}

#[test]
fn a_scaled_run_at_a_fixed_count_matches_an_unscaled_run() {
    let mut s = scenario(Profile::Constant { rate: 50.0 }, 1200);
    s.instances = vec![InstanceSpec::new(4); 4];
    let plain = foresight_sim::run(&s).unwrap();
    struct Fixed;
    impl Controller for Fixed {
        fn interval(&self) -> Duration {
            Duration::from_secs(15)
        }
        fn decide(&mut self, _v: &PoolView) -> usize {
            4
        }
    }
    let mut c = Fixed;
    let mut sc = Scaling {
        template: InstanceSpec::new(4),
        provision_delay: Duration::from_secs(60),
        controller: &mut c,
    };
    let (scaled, so) = run_scaled(&s, &mut sc, &mut |_| {}).unwrap();
    assert_eq!(so.actions, 0);
    assert_eq!(plain.completed, scaled.completed);
    assert_eq!(plain.quantile_ms(0.99), scaled.quantile_ms(0.99));
    assert!(
        scaled.quantile_ms(0.99) < 1500.0,
        "{}",
        scaled.quantile_ms(0.99)
    );
}

#[test]
fn flapping_pool_size_keeps_latency_sane_when_capacity_is_ample() {
    let mut s = scenario(Profile::Constant { rate: 40.0 }, 3600);
    s.instances = vec![InstanceSpec::new(4); 4];
    struct Flap;
    impl Controller for Flap {
        fn interval(&self) -> Duration {
            Duration::from_secs(15)
        }
        fn decide(&mut self, v: &PoolView) -> usize {
            if (v.now.as_secs() / 60).is_multiple_of(2) {
                6
            } else {
                4
            }
        }
    }
    let mut c = Flap;
    let mut sc = Scaling {
        template: InstanceSpec::new(4),
        provision_delay: Duration::from_secs(30),
        controller: &mut c,
    };
    let (o, so) = run_scaled(&s, &mut sc, &mut |_| {}).unwrap();
    assert!(so.actions > 50);
    // 40 req/s × 0.2 s = 8 busy workers of at least 16: queueing stays short.
    assert!(o.quantile_ms(0.99) < 1500.0, "p99 {}", o.quantile_ms(0.99));
    assert_eq!(o.dropped, 0);
}
