//! The generator's statistics, not its bytes: burst counts, jitter, echoes, outages and
//! periodicity found by autocorrelation, and the breadth of the suite's distributions.

use super::*;

/// A steady workload with Poisson noise and nothing else; tests add one shape at a time.
fn plain(days: u32) -> Workload {
    Workload {
        name: "t".into(),
        seed: 7,
        days,
        base: 1000.0,
        daily_amplitude: 0.0,
        daily_peak_hour: 14.0,
        weekend_factor: 1.0,
        trend_per_week: 0.0,
        bursts: None,
        flash_crowds: FlashCrowds {
            per_week: 0.0,
            factor: (3.0, 8.0),
            rise: 2,
            decay: 30.0,
        },
        outages: Outages {
            daily: None,
            per_week: 0.0,
            length: (5, 45),
        },
        gaps_per_week: 0.0,
        noise: Noise::Poisson,
    }
}

fn hourly(jitter: u32, skip: f64, echo: f64) -> Bursts {
    Bursts {
        minutes_past: vec![15, 45],
        hours: (0..24).collect(),
        hour_rule: "every hour".into(),
        weekdays: (0..7).collect(),
        jitter,
        skip,
        echo,
        echo_delay: 10,
        factor: 4.0,
        length: 3,
    }
}

fn values(g: &Generated) -> Vec<f64> {
    g.counts.iter().map(|c| c.unwrap_or(0.0)).collect()
}

/// Sample autocorrelation at `lag`.
fn acf(v: &[f64], lag: usize) -> f64 {
    let n = v.len();
    let mean = v.iter().sum::<f64>() / n as f64;
    let var: f64 = v.iter().map(|x| (x - mean).powi(2)).sum();
    let cov: f64 = (0..n - lag)
        .map(|i| (v[i] - mean) * (v[i + lag] - mean))
        .sum();
    cov / var
}

#[test]
fn due_bursts_come_at_the_rate_not_skipped() {
    let w = Workload {
        bursts: Some(hourly(0, 0.2, 0.0)),
        ..plain(21)
    };
    let g = w.generate();
    assert_eq!(g.due, 21 * 24 * 2);
    let expected = g.due as f64 * 0.8;
    let sd = (g.due as f64 * 0.2 * 0.8).sqrt();
    let came = g.bursts.len() as f64;
    assert!(
        (came - expected).abs() < 5.0 * sd,
        "{came} bursts, expected {expected} ± {sd}"
    );
    // Each one shows in the series: about 4× the level during it.
    let v = values(&g);
    let inside: f64 = g.bursts.iter().map(|(_, s)| v[*s + 1]).sum::<f64>() / came;
    assert!((3.6..4.4).contains(&(inside / 1000.0)), "{inside}");
}

#[test]
fn jitter_moves_bursts_within_its_bound_both_ways() {
    let w = Workload {
        bursts: Some(hourly(3, 0.0, 0.0)),
        ..plain(14)
    };
    let g = w.generate();
    let shifts: Vec<i64> = g
        .bursts
        .iter()
        .map(|(due, s)| *s as i64 - *due as i64)
        .collect();
    assert!(shifts.iter().all(|s| s.abs() <= 3), "{shifts:?}");
    let distinct: std::collections::BTreeSet<i64> = shifts.iter().copied().collect();
    assert_eq!(distinct.len(), 7, "every shift −3…3 occurs: {distinct:?}");
    let mean = shifts.iter().sum::<i64>() as f64 / shifts.len() as f64;
    assert!(mean.abs() < 0.3, "centred: {mean}");
    // Without jitter, every burst comes on its minute.
    let g0 = Workload {
        bursts: Some(hourly(0, 0.0, 0.0)),
        ..plain(2)
    }
    .generate();
    assert!(g0.bursts.iter().all(|(d, s)| d == s));
}

#[test]
fn echoes_follow_their_share_of_bursts_at_their_delay() {
    let w = Workload {
        bursts: Some(hourly(0, 0.0, 0.25)),
        ..plain(21)
    };
    let g = w.generate();
    let share = g.echoes.len() as f64 / g.bursts.len() as f64;
    assert!((0.2..0.3).contains(&share), "{share}");
    let starts: std::collections::BTreeSet<usize> = g.bursts.iter().map(|b| b.1).collect();
    assert!(g.echoes.iter().all(|e| starts.contains(&(e - 10))));
}

#[test]
fn bursts_keep_to_their_hours_and_days() {
    let w = Workload {
        bursts: Some(Bursts {
            hours: (9..=17).collect(),
            weekdays: (0..5).collect(),
            ..hourly(0, 0.0, 0.0)
        }),
        ..plain(14)
    };
    let g = w.generate();
    assert_eq!(g.due, 2 * 5 * 9 * 2);
    for (due, _) in &g.bursts {
        assert!((9 * 60..18 * 60).contains(&(due % DAY)), "{due}");
        assert!((due / DAY) % 7 < 5, "{due}: a weekend");
    }
}

#[test]
fn periodicity_is_found_by_autocorrelation() {
    // Hourly bursts on a flat base: the series repeats every hour, not every half hour.
    let w = Workload {
        bursts: Some(Bursts {
            minutes_past: vec![20],
            ..hourly(0, 0.0, 0.0)
        }),
        ..plain(7)
    };
    let v = values(&w.generate());
    let (h, half) = (acf(&v, 60), acf(&v, 30));
    assert!(h > 0.8 && half < 0.1, "lag 60: {h}, lag 30: {half}");
    // A strong daily cycle: the series repeats every day.
    let d = Workload {
        daily_amplitude: 0.8,
        ..plain(7)
    };
    let v = values(&d.generate());
    let (day, half_day) = (acf(&v, DAY), acf(&v, DAY / 2));
    // (A sample ACF at lag k is scaled by (n − k)/n: 6/7 here.)
    assert!(
        day > 0.8 && half_day < -0.5,
        "lag 1440: {day}, lag 720: {half_day}"
    );
    // Weekends at a third: the series repeats every week better than every day.
    let wk = Workload {
        weekend_factor: 0.3,
        ..plain(21)
    };
    let v = values(&wk.generate());
    assert!(acf(&v, WEEK) > acf(&v, DAY) + 0.2);
}

#[test]
fn outages_drop_to_zero_and_return_at_once() {
    let w = Workload {
        outages: Outages {
            daily: Some((600, 30)),
            per_week: 0.0,
            length: (5, 45),
        },
        ..plain(3)
    };
    let g = w.generate();
    assert_eq!(
        g.outages,
        vec![(600, 30), (DAY + 600, 30), (2 * DAY + 600, 30)]
    );
    let v = values(&g);
    for (s, len) in g.outages {
        assert!(v[s..s + len].iter().all(|x| *x == 0.0));
        assert!(v[s - 1] > 800.0 && v[s + len] > 800.0, "returns at once");
    }
}

#[test]
fn flash_crowds_rise_and_decay() {
    let w = Workload {
        flash_crowds: FlashCrowds {
            per_week: 3.0,
            factor: (5.0, 5.0),
            rise: 2,
            decay: 30.0,
        },
        ..plain(14)
    };
    let g = w.generate();
    assert!(
        (1..=15).contains(&g.flash_crowds.len()),
        "{:?}",
        g.flash_crowds
    );
    let v = values(&g);
    let s = *g
        .flash_crowds
        .iter()
        .find(|s| **s + 200 < v.len())
        .expect("one not at the very end");
    assert!(v[s + 1] > 4000.0, "top: {}", v[s + 1]);
    // One time constant later about 1 + 4/e of the level.
    let later = v[s + 31];
    assert!((2000.0..3300.0).contains(&later), "{later}");
}

#[test]
fn collection_gaps_are_missing_rows_and_noise_is_heavy_tailed_when_asked() {
    let w = Workload {
        gaps_per_week: 5.0,
        noise: Noise::HeavyTailed {
            share: 0.02,
            alpha: 1.5,
        },
        ..plain(14)
    };
    let g = w.generate();
    let missing = g.counts.iter().filter(|c| c.is_none()).count();
    assert!((1..=10 * 30).contains(&missing), "{missing}");
    let v: Vec<f64> = g.counts.iter().flatten().copied().collect();
    let over = v.iter().filter(|x| **x > 2000.0).count() as f64 / v.len() as f64;
    assert!((0.002..0.02).contains(&over), "spikes over 2×: {over}");
}

#[test]
fn generation_is_deterministic_per_seed() {
    let w = Workload::draw(1, 3, 21);
    assert_eq!(w.generate(), w.generate());
    assert_eq!(w, Workload::draw(1, 3, 21));
    assert_ne!(w, Workload::draw(2, 3, 21));
    assert_ne!(w, Workload::draw(1, 4, 21));
}

#[test]
fn the_suite_is_broad_and_every_draw_is_valid() {
    let suite: Vec<Workload> = (0..300).map(|i| Workload::draw(11, i, 21)).collect();
    for w in &suite {
        w.validate().unwrap();
        let json = serde_json::to_string(w).unwrap();
        assert_eq!(&serde_json::from_str::<Workload>(&json).unwrap(), w);
    }
    let share = |f: &dyn Fn(&Workload) -> bool| {
        suite.iter().filter(|w| f(w)).count() as f64 / suite.len() as f64
    };
    let bursty = share(&|w| w.bursts.is_some());
    assert!((0.6..0.8).contains(&bursty), "{bursty}");
    let daily_drop = share(&|w| w.outages.daily.is_some());
    assert!((0.2..0.4).contains(&daily_drop), "{daily_drop}");
    for rule in [
        "every hour",
        "every 2nd hour",
        "every 3rd hour",
        "business hours",
        "a random half of the hours",
    ] {
        assert!(
            suite
                .iter()
                .any(|w| w.bursts.as_ref().is_some_and(|b| b.hour_rule == rule)),
            "{rule}"
        );
    }
    assert!(share(&|w| matches!(w.noise, Noise::HeavyTailed { .. })) > 0.1);
    assert!(share(&|w| matches!(w.noise, Noise::LogNormal { .. })) > 0.3);
    for jitter in 0..=5 {
        assert!(suite
            .iter()
            .any(|w| w.bursts.as_ref().is_some_and(|b| b.jitter == jitter)));
    }
    let bases: Vec<f64> = suite.iter().map(|w| w.base).collect();
    assert!(bases.iter().any(|b| *b < 150.0) && bases.iter().any(|b| *b > 2000.0));
}

#[test]
fn bad_parameters_are_named() {
    let mut w = plain(21);
    w.daily_amplitude = f64::NAN;
    assert!(w.validate().unwrap_err().contains("daily_amplitude"));
    let mut w = plain(0);
    w.name = "w007".into();
    assert!(w.validate().unwrap_err().contains("w007: `days`"));
    let w = Workload {
        bursts: Some(Bursts {
            minutes_past: vec![75],
            ..hourly(0, 0.0, 0.0)
        }),
        ..plain(2)
    };
    assert!(w.validate().unwrap_err().contains("minutes"));
}
