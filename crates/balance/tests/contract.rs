//! The `Balancer` contract, checked for every algorithm: an index in range for every non-empty
//! set, `None` for an empty one, and the same choices for the same seed.

use std::time::Duration;

use foresight_balance::{build, Algorithm, BalancerConfig, Endpoint, EwmaParams, RequestInfo};
use foresight_core::Time;

fn endpoints(n: usize) -> Vec<Endpoint> {
    (0..n)
        .map(|i| {
            Endpoint::new(
                i as u64 * 7919,
                1 + (i as u32 % 3),
                EwmaParams::default(),
                Time::ZERO,
            )
        })
        .collect()
}

#[test]
fn every_algorithm_honours_the_contract() {
    for algorithm in Algorithm::ALL {
        let config = BalancerConfig::new(algorithm, 42);
        let empty = build(&config, &[]);
        assert_eq!(
            empty.pick(&[], &RequestInfo::default(), Time::ZERO),
            None,
            "{algorithm}"
        );
        for n in [1, 2, 3, 10] {
            let eps = endpoints(n);
            let b = build(&config, &eps);
            assert_eq!(b.algorithm(), algorithm);
            for k in 0..200u64 {
                let req = RequestInfo {
                    hash_key: Some(k),
                    ..Default::default()
                };
                let now = Time::ZERO + Duration::from_millis(k);
                let i = b.pick(&eps, &req, now).expect("non-empty set");
                assert!(i < n, "{algorithm} picked {i} of {n}");
            }
        }
    }
}

#[test]
fn every_algorithm_replays_for_the_same_seed() {
    for algorithm in Algorithm::ALL {
        let config = BalancerConfig::new(algorithm, 7);
        let run = || {
            let eps = endpoints(5);
            let b = build(&config, &eps);
            (0..100u64)
                .map(|k| {
                    let i = b
                        .pick(
                            &eps,
                            &RequestInfo {
                                hash_key: Some(k),
                                ..Default::default()
                            },
                            Time::ZERO,
                        )
                        .unwrap();
                    eps[i].load.begin();
                    i
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run(), "{algorithm}");
    }
}

#[test]
fn batch_heuristics_assign_every_request_and_the_others_decline() {
    for algorithm in Algorithm::ALL {
        let eps = endpoints(5);
        let b = build(&BalancerConfig::new(algorithm, 1), &eps);
        let batch: Vec<RequestInfo> = (0..40)
            .map(|k| RequestInfo {
                cost: 0.5 + (k % 4) as f64,
                priority: (k % 7 == 0) as u8,
                ..Default::default()
            })
            .collect();
        match b.assign_batch(&eps, &batch, Time::ZERO) {
            Some(out) => {
                assert!(algorithm.is_batch(), "{algorithm} assigned a batch");
                assert_eq!(out.len(), batch.len(), "{algorithm}");
                assert!(out.iter().all(|i| *i < eps.len()), "{algorithm}: {out:?}");
                assert!(
                    out.iter().collect::<std::collections::BTreeSet<_>>().len() > 1,
                    "{algorithm} spread a batch of 40 over one instance"
                );
                assert_eq!(
                    b.assign_batch(&[], &batch, Time::ZERO),
                    Some(vec![]),
                    "{algorithm}"
                );
            }
            None => assert!(!algorithm.is_batch(), "{algorithm} declined a batch"),
        }
    }
}

/// Given the true in-flight counts, `pick_with_counts` makes the same choices as `pick` for
/// every algorithm (two balancers with one seed, one asked each way, over a pool whose counts
/// move with the picks).
#[test]
fn picking_with_counts_agrees_with_pick() {
    for algorithm in Algorithm::ALL {
        let config = BalancerConfig::new(algorithm, 11);
        let (a_eps, b_eps) = (endpoints(7), endpoints(7));
        let (a, b) = (build(&config, &a_eps), build(&config, &b_eps));
        for k in 0..300u64 {
            let req = RequestInfo {
                hash_key: Some(k),
                ..Default::default()
            };
            let now = Time::ZERO + Duration::from_millis(k);
            let counts: Vec<u32> = b_eps.iter().map(|e| e.load.in_flight()).collect();
            let i = a.pick(&a_eps, &req, now).expect("non-empty set");
            let j = b
                .pick_with_counts(&b_eps, &counts, &req, now)
                .expect("non-empty set");
            assert_eq!(i, j, "{algorithm}, request {k}");
            // Every third request finishes on the instance after the one picked.
            for eps in [&a_eps, &b_eps] {
                eps[i].load.begin();
                if k % 3 == 0 {
                    eps[(i + 1) % 7].load.end();
                }
            }
        }
    }
}
