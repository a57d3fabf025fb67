//! The rules of every policy and of the governor.

use foresight_scale::*;

fn obs(now: f64, ready: usize, starting: usize, util: f64) -> Observation {
    Observation {
        now,
        ready,
        starting,
        utilisation: util,
        rate: 0.0,
        forecast: None,
        trusted: true,
        ..Observation::default()
    }
}

fn with_forecast(mut o: Observation, points: &[(f64, f64)]) -> Observation {
    o.forecast = Some(points.to_vec());
    o
}

const MODEL: InstanceModel = InstanceModel {
    workers: 4,
    mean_service: 0.2,
}; // 20 req/s per instance

/// The fast floor's default: the HPA rule at 90%.
const FLOOR: HpaConfig = HpaConfig {
    target: 0.9,
    tolerance: 0.1,
};

#[test]
fn hpa_follows_the_kubernetes_formula_and_tolerance() {
    let mut h = Hpa::new(HpaConfig {
        target: 0.6,
        tolerance: 0.1,
    });
    assert_eq!(h.recommend(&obs(0.0, 4, 0, 0.65)).replicas, 4, "within 10%");
    assert_eq!(
        h.recommend(&obs(0.0, 4, 0, 0.9)).replicas,
        6,
        "ceil(4 × 0.9 / 0.6)"
    );
    assert_eq!(
        h.recommend(&obs(0.0, 10, 0, 0.3)).replicas,
        5,
        "ceil(10 × 0.3 / 0.6)"
    );
    // Not-ready pods count at 0% on scale-up: 0.9 × 4 / 6 / 0.6 = 1.0, within tolerance.
    let r = h.recommend(&obs(0.0, 4, 2, 0.9));
    assert_eq!(r.replicas, 6);
    assert!(r.reason.contains("starting"), "{}", r.reason);
    // 1.0 × 4 / 5 / 0.6 = 1.33 → ceil(5 × 1.33) = 7.
    assert_eq!(h.recommend(&obs(0.0, 4, 1, 1.0)).replicas, 7);
}

#[test]
fn governor_stabilises_scale_in_and_limits_scale_up_like_kubernetes() {
    let mut g = Governor::new(
        Box::new(Hpa::new(HpaConfig::default())),
        Limits::default(),
        false,
    )
    .unwrap();
    // 2 → wants ceil(2 × 1.0 / 0.6 × ...) large: limited to max(+100%, +4) = +4.
    let d = g.decide(&obs(0.0, 2, 0, 1.0));
    assert_eq!(d.replicas, 4, "ceil(2 × 1 / 0.6) = 4");
    let mut g = Governor::new(Box::new(Static { replicas: 40 }), Limits::default(), false).unwrap();
    assert_eq!(
        g.decide(&obs(0.0, 10, 0, 0.5)).replicas,
        20,
        "+100% from 10"
    );
    assert_eq!(g.decide(&obs(15.0, 2, 0, 0.5)).replicas, 6, "+4 from 2");
    // Scale-in holds to the highest recommendation of the last 300 s.
    let mut g = Governor::new(
        Box::new(Hpa::new(HpaConfig::default())),
        Limits::default(),
        false,
    )
    .unwrap();
    assert_eq!(g.decide(&obs(0.0, 10, 0, 0.6)).replicas, 10);
    let d = g.decide(&obs(15.0, 10, 0, 0.3));
    assert_eq!(d.replicas, 10, "held by the window");
    assert_eq!(g.decide(&obs(299.0, 10, 0, 0.3)).replicas, 10);
    let d = g.decide(&obs(316.0, 10, 0, 0.3));
    assert_eq!(d.replicas, 5, "after 300 s without a higher recommendation");
    let e = d.entry.unwrap();
    assert_eq!((e.from, e.to), (10, 5));
    assert!(
        e.reason.contains("hpa: ceil(10 × 30% / 60%) = 5"),
        "{}",
        e.reason
    );
    assert_eq!(g.log().len(), 1);
}

#[test]
fn governor_limits_cooldowns_and_dry_run() {
    let limits = Limits {
        min: 2,
        max: 8,
        max_step_up: Some(3),
        max_step_down: 1,
        cooldown_up: 60.0,
        cooldown_down: 0.0,
        stabilisation: 0.0,
    };
    let mut g = Governor::new(Box::new(Static { replicas: 20 }), limits, false).unwrap();
    assert_eq!(g.decide(&obs(0.0, 2, 0, 0.5)).replicas, 5, "+3 step");
    assert_eq!(g.decide(&obs(30.0, 5, 0, 0.5)).replicas, 5, "cooldown");
    assert_eq!(g.decide(&obs(61.0, 5, 0, 0.5)).replicas, 8, "capped at max");
    let mut g = Governor::new(Box::new(Static { replicas: 0 }), limits, false).unwrap();
    assert_eq!(g.decide(&obs(0.0, 5, 0, 0.5)).replicas, 4, "-1 step");
    assert_eq!(g.decide(&obs(15.0, 2, 0, 0.5)).replicas, 2, "min");
    // Dry-run: logged, nothing done.
    let mut g = Governor::new(Box::new(Static { replicas: 6 }), limits, true).unwrap();
    let d = g.decide(&obs(0.0, 3, 0, 0.5));
    assert_eq!(d.replicas, 3);
    assert_eq!(d.wanted, 6, "what it would set, for a scaler outside");
    let e = d.entry.unwrap();
    assert!(e.dry_run && e.recommended == 6 && e.to == 3);
    // Impossible limits are refused.
    let bad = Limits {
        min: 5,
        max: 3,
        ..Limits::default()
    };
    let err = Governor::new(Box::new(Static { replicas: 1 }), bad, false)
        .err()
        .unwrap();
    assert!(
        err.contains("max replicas (3) is below min replicas (5)"),
        "{err}"
    );
}

#[test]
fn predictive_uses_the_thresholds_and_plans_for_the_provisioning_delay() {
    let cfg = PredictiveConfig {
        theta_up: 0.8,
        theta_down: 0.5,
        target: 0.7,
        lead: 180.0,
        margin: 60.0,
    };
    let mut p = Predictive::new("predictive", cfg, MODEL);
    // Pool of 5 = 100 req/s. The near future is quiet, the load in 3–4 minutes is 90.
    let o = with_forecast(
        obs(0.0, 5, 0, 0.3),
        &[(60.0, 20.0), (180.0, 90.0), (240.0, 85.0)],
    );
    let r = p.recommend(&o);
    assert_eq!(r.replicas, 7, "ceil(90 / (20 × 0.7)); {}", r.reason);
    let o = with_forecast(obs(0.0, 5, 0, 0.3), &[(180.0, 60.0), (240.0, 60.0)]);
    assert_eq!(p.recommend(&o).replicas, 5, "60% is between the thresholds");
    let o = with_forecast(obs(0.0, 5, 0, 0.3), &[(180.0, 30.0), (240.0, 30.0)]);
    assert_eq!(p.recommend(&o).replicas, 3, "below θ_down: ceil(30 / 14)");
    assert_eq!(
        p.recommend(&obs(0.0, 5, 0, 0.9)).replicas,
        5,
        "no forecast: hold"
    );
}

#[test]
fn scale_in_keeps_what_the_load_needs_until_the_end_of_the_window() {
    let mut p = Predictive::new("predictive", PredictiveConfig::default(), MODEL);
    // Pool of 10. A burst now and in a minute, quiet from 3 minutes on: an instance removed
    // now would be missed in the burst and take 3 minutes to come back, so none is.
    let burst = with_forecast(
        obs(0.0, 10, 0, 0.9),
        &[
            (30.0, 180.0),
            (90.0, 150.0),
            (180.0, 30.0),
            (240.0, 30.0),
            (300.0, 30.0),
        ],
    );
    let r = p.recommend(&burst);
    assert_eq!(r.replicas, 10, "{}", r.reason);
    // Once the burst is over in the forecast too: down to what the rest of the window needs.
    let after = with_forecast(
        obs(0.0, 10, 0, 0.9),
        &[
            (30.0, 40.0),
            (90.0, 40.0),
            (180.0, 30.0),
            (240.0, 30.0),
            (300.0, 30.0),
        ],
    );
    let r = p.recommend(&after);
    assert_eq!(r.replicas, 3, "ceil(40 / 14); {}", r.reason);
    assert!(r.reason.contains("until 300 s"), "{}", r.reason);
    // Scale-out still plans for the provisioning delay only.
    let soon = with_forecast(obs(0.0, 2, 0, 0.5), &[(30.0, 100.0), (180.0, 20.0)]);
    assert_eq!(p.recommend(&soon).replicas, 2, "too late to help: hold");

    // The cost-optimal policy follows the same rule.
    let mut c = CostOptimal::new("cost-optimal", MODEL, 1.0, 0.99, 180.0, 120.0);
    let during = c.size(180.0);
    let r = c.recommend(&with_forecast(
        obs(0.0, during, 0, 0.9),
        &[(30.0, 180.0), (180.0, 30.0), (300.0, 30.0)],
    ));
    assert_eq!(r.replicas, during, "{}", r.reason);
    let r = c.recommend(&with_forecast(
        obs(0.0, during, 0, 0.9),
        &[(30.0, 30.0), (180.0, 30.0), (300.0, 30.0)],
    ));
    assert_eq!(r.replicas, c.size(30.0));
}

#[test]
fn cost_optimal_sizes_with_the_mmc_tail() {
    // M/M/1 response time is exponential with rate μ − λ.
    let tail = mmc_response_tail(1, 0.5, 1.0, 2.0);
    assert!((tail - (-1.0f64).exp()).abs() < 1e-9, "{tail}");
    assert_eq!(mmc_response_tail(2, 5.0, 1.0, 1.0), 1.0, "overloaded");
    let c = CostOptimal::new("cost-optimal", MODEL, 1.0, 0.99, 180.0, 60.0);
    let r = c.size(100.0);
    // It meets the goal with r and not with r − 1.
    let mu = 5.0;
    assert!(mmc_response_tail(4, 100.0 / r as f64, mu, 1.0) <= 0.01);
    assert!(mmc_response_tail(4, 100.0 / (r - 1) as f64, mu, 1.0) > 0.01);
    assert!(r >= 5, "at least the capacity: {r}");
}

fn hybrid() -> Hybrid {
    let pred = Predictive::new("p", PredictiveConfig::default(), MODEL);
    Hybrid::new(
        "hybrid",
        Box::new(pred),
        FastFloor::new(FLOOR, MODEL),
        HpaConfig {
            target: 0.6,
            tolerance: 0.1,
        },
    )
}

#[test]
fn hybrid_takes_the_max_and_keeps_it_when_the_forecast_is_untrusted() {
    let mut h = hybrid();
    let high = with_forecast(obs(0.0, 4, 0, 0.5), &[(180.0, 150.0), (300.0, 150.0)]);
    assert_eq!(h.recommend(&high).replicas, 11, "forecast: ceil(150 / 14)");
    // A quiet forecast but a hot pool: the floor (target 90%) wins.
    let hot = with_forecast(obs(0.0, 4, 0, 1.0), &[(180.0, 10.0), (300.0, 10.0)]);
    let r = h.recommend(&hot);
    assert_eq!(r.replicas, 5, "ceil(4 × 1.0 / 0.9); {}", r.reason);
    // Untrusted: said, and the forecast still counts.
    let mut untrusted = high.clone();
    untrusted.trusted = false;
    let r = h.recommend(&untrusted);
    assert!(r.reason.contains("not trustworthy"), "{}", r.reason);
    assert_eq!(
        r.replicas, 11,
        "distrust never removes the forecast's capacity"
    );
    // A quiet forecast, distrusted, at 90% with no requests observed: the forecast's 1 (the
    // floor at its own target sees no demand; the governor's window holds scale-in), not the
    // HPA at 60% (6).
    let mut quiet_untrusted = with_forecast(obs(0.0, 4, 0, 0.9), &[(180.0, 10.0)]);
    quiet_untrusted.trusted = false;
    let r = h.recommend(&quiet_untrusted);
    assert_eq!(r.replicas, 1, "{}", r.reason);
    let r = h.recommend(&obs(0.0, 4, 0, 0.9));
    assert!(r.reason.contains("no forecast") && r.replicas == 6, "{r:?}");
}

#[test]
fn a_surge_the_forecast_missed_keeps_the_instances_launched_for_it() {
    let mut h = hybrid();
    // A flash crowd: 3 instances ready and saturated, 11 launched for it and still starting,
    // 220 req/s arriving and 300 queued; the forecast, which did not see it, says 60 req/s.
    let mut crowd = with_forecast(obs(0.0, 3, 11, 1.0), &[(180.0, 60.0), (300.0, 60.0)]);
    crowd.rate = 220.0;
    crowd.queue = 300.0;
    crowd.dropped = 2000;
    // The floor alone asks for no more (as many are launched as the demand needs) ...
    let mut floor = FastFloor::new(FLOOR, MODEL);
    assert_eq!(floor.recommend(&crowd).replicas, 0);
    // ... but as the forecast's lower bound it holds them: ceil((220 + 300 / 30) / 18) = 13.
    let r = h.recommend(&crowd);
    assert_eq!(r.replicas, 13, "{}", r.reason);
    assert!(r.reason.contains("floor: overload"), "{}", r.reason);
    crowd.trusted = false;
    assert_eq!(h.recommend(&crowd).replicas, 13);
    // The crowd served (60% of 18 ready, 194 req/s) while the forecast still says 100 req/s:
    // trusted, the forecast's ceil(100 / 14) = 8; distrusted, not below what the observed
    // load needs at the floor's target, ceil(194 / 18) = 11.
    let mut after = with_forecast(obs(60.0, 18, 0, 0.6), &[(180.0, 100.0), (300.0, 100.0)]);
    after.rate = 194.0;
    assert_eq!(h.recommend(&after).replicas, 8);
    after.trusted = false;
    let r = h.recommend(&after);
    assert_eq!(r.replicas, 11, "{}", r.reason);
    assert!(r.reason.contains("observed load holds"), "{}", r.reason);
}

#[test]
fn the_fast_floor_sizes_for_the_observed_demand_under_overload() {
    let mut f = FastFloor::new(FLOOR, MODEL);
    // 4 instances (80 req/s) saturated by a burst of 200 req/s: the HPA rule alone would
    // ask for ceil(4 × 1.0 / 0.9) = 5; the demand needs ceil(200 / 18) = 12.
    let mut o = obs(0.0, 4, 0, 1.0);
    o.rate = 200.0;
    let r = f.recommend(&o);
    assert_eq!(r.replicas, 12, "{}", r.reason);
    assert!(r.reason.contains("overload"), "{}", r.reason);
    // A backlog of 540 requests adds 540 / 30 s = 18 req/s: ceil(218 / 18) = 13.
    o.queue = 540.0;
    assert_eq!(f.recommend(&o).replicas, 13);
    // Refused requests alone count as overload, even at a utilisation below the target.
    let mut refused = obs(0.0, 4, 0, 0.5);
    refused.rate = 200.0;
    assert_eq!(
        f.recommend(&refused).replicas,
        0,
        "no overload signal: the HPA rule at 90% asks for fewer, so the floor is silent"
    );
    refused.dropped = 30;
    assert_eq!(f.recommend(&refused).replicas, 12);
    // No overload: a noisy rate alone never scales up.
    let mut calm = obs(0.0, 4, 0, 0.6);
    calm.rate = 75.0;
    assert_eq!(
        f.recommend(&calm).replicas,
        0,
        "silent: neither ceil(4 × 0.6 / 0.9) nor 75 / 18 asks for more"
    );
}

#[test]
fn reactive_is_the_floor_alone_and_gives_instances_back() {
    let mut r = Reactive::new(FLOOR, MODEL);
    // Overload: the floor's demand sizing, ceil(200 / 18) = 12, within one decision.
    let mut burst = obs(0.0, 4, 0, 1.0);
    burst.rate = 200.0;
    burst.dropped = 50;
    let up = r.recommend(&burst);
    assert_eq!(up.replicas, 12, "{}", up.reason);
    assert!(
        up.reason.starts_with("reactive: floor: overload"),
        "{}",
        up.reason
    );
    // Calm: where the floor alone is silent (0), reactive scales in by the HPA rule at 90%:
    // ceil(12 × 0.3 / 0.9) = 4.
    let mut calm = obs(60.0, 12, 0, 0.3);
    calm.rate = 72.0;
    let down = r.recommend(&calm);
    assert_eq!(down.replicas, 4, "{}", down.reason);
    // Within the tolerance of its target: hold.
    assert_eq!(r.recommend(&obs(90.0, 4, 0, 0.85)).replicas, 4);
    // No forecast is ever read: a forecast of a surge changes nothing.
    let quiet = with_forecast(obs(120.0, 4, 0, 0.85), &[(180.0, 500.0)]);
    assert_eq!(r.recommend(&quiet).replicas, 4);
}

#[test]
fn the_hybrid_reacts_to_a_burst_no_forecast_saw_within_one_step() {
    let mut h = hybrid();
    let mut g = Governor::new(Box::new(hybrid()), Limits::default(), false).unwrap();
    let mut o = with_forecast(obs(15.0, 4, 0, 1.0), &[(180.0, 50.0), (300.0, 50.0)]);
    o.rate = 200.0;
    o.dropped = 100;
    assert_eq!(h.recommend(&o).replicas, 12);
    // The governor's scale-up limit (max(+100%, +4)) is the only brake: 4 → 8 at once.
    assert_eq!(g.decide(&o).replicas, 8);
}

#[test]
fn a_floor_from_an_alert_raises_at_once_and_lifts() {
    let limits = Limits {
        min: 1,
        max: 6,
        max_step_up: Some(1),
        max_step_down: usize::MAX,
        cooldown_up: 600.0,
        cooldown_down: 0.0,
        stabilisation: 0.0,
    };
    let mut g = Governor::new(Box::new(Static { replicas: 1 }), limits, false).unwrap();
    assert_eq!(g.decide(&obs(0.0, 1, 0, 0.5)).replicas, 1);
    g.set_floor(Some((9, "alert HighLatency".into())));
    let d = g.decide(&obs(1.0, 1, 0, 0.5));
    assert_eq!(d.replicas, 6, "past the +1 step, capped at max");
    assert!(
        d.entry
            .unwrap()
            .reason
            .contains("raised to 6 by alert HighLatency"),
        "the reason names the alert"
    );
    g.set_floor(Some((3, "alert HighLatency".into())));
    assert_eq!(
        g.decide(&obs(2.0, 6, 0, 0.5)).replicas,
        3,
        "down to a lower floor"
    );
    g.set_floor(None);
    assert_eq!(
        g.decide(&obs(3.0, 3, 0, 0.5)).replicas,
        1,
        "lifted: the policy's"
    );
}

#[test]
fn a_held_scale_in_keeps_the_instances_and_lets_scale_out_through() {
    let limits = Limits {
        stabilisation: 0.0,
        ..Limits::default()
    };
    let mut g = Governor::new(Box::new(Static { replicas: 2 }), limits, false).unwrap();
    g.hold_scale_in(Some("load interrupted 60 s ago".into()));
    let d = g.decide(&obs(0.0, 5, 0, 0.0));
    assert_eq!(d.replicas, 5, "held at the current five");
    assert!(d.entry.is_none(), "holding is no change");
    assert_eq!(
        g.decide(&obs(1.0, 1, 0, 0.0)).replicas,
        2,
        "out goes through"
    );
    g.hold_scale_in(None);
    let d = g.decide(&obs(2.0, 5, 0, 0.0));
    assert_eq!(d.replicas, 2, "let go: the policy's");
}
