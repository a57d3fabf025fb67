//! The suite's work plan: every workload is first prepared (a long serial step: loading,
//! fitting the forecaster, choosing the tail share), which yields its simulation jobs; the
//! jobs of all workloads then share the threads. A thread takes a preparation while any is
//! left, else a job, so the long steps go first and the end of the suite is a trickle of
//! short jobs on both cores, not one workload's runs on one core while the other idles (two
//! workloads at a time, each on one thread, left 7% of the suite's time idle).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

/// What a thread does next.
enum Task<P> {
    Prepare(usize),
    Run(usize, usize, Arc<P>),
}

/// An item between its preparation and its last job.
struct Item<P, R> {
    prepared: Option<Arc<P>>,
    results: Vec<Option<R>>,
    left: usize,
}

struct State<P, R, F, E> {
    /// The next item to prepare, and how many preparations are under way.
    next: usize,
    preparing: usize,
    /// (item, job) ready to run, in the order their items were prepared.
    jobs: VecDeque<(usize, usize)>,
    items: Vec<Option<Item<P, R>>>,
    out: Vec<Option<Result<F, E>>>,
}

/// Runs `n` items on `workers` threads. `prepare(thread, item)` returns the item's
/// preparation and its number of jobs; `run(thread, &preparation, job)` runs one job; when an
/// item's last job is done, `finish(item, preparation, results)` gets its jobs' results in
/// job order. Returns each item's outcome in item order (a failed preparation's error in its
/// place; the other items still run).
pub fn run<P, R, F, E>(
    n: usize,
    workers: usize,
    prepare: impl Fn(usize, usize) -> Result<(P, usize), E> + Sync,
    run: impl Fn(usize, &P, usize) -> R + Sync,
    finish: impl Fn(usize, P, Vec<R>) -> F + Sync,
) -> Vec<Result<F, E>>
where
    P: Send + Sync,
    R: Send,
    F: Send,
    E: Send,
{
    let state = Mutex::new(State {
        next: 0,
        preparing: 0,
        jobs: VecDeque::new(),
        items: (0..n).map(|_| None).collect(),
        out: (0..n).map(|_| None).collect(),
    });
    let wake = Condvar::new();
    let lock = || state.lock().expect("no worker panicked holding the plan");
    std::thread::scope(|scope| {
        for w in 0..workers.max(1) {
            let (wake, lock) = (&wake, &lock);
            let (prepare, run, finish) = (&prepare, &run, &finish);
            scope.spawn(move || loop {
                let task = {
                    let mut s = lock();
                    loop {
                        if s.next < n {
                            s.next += 1;
                            s.preparing += 1;
                            break Task::Prepare(s.next - 1);
                        }
                        if let Some((i, j)) = s.jobs.pop_front() {
                            let p = (s.items[i].as_ref())
                                .and_then(|item| item.prepared.clone())
                                .expect("a queued job's item is prepared");
                            break Task::Run(i, j, p);
                        }
                        if s.preparing == 0 {
                            return;
                        }
                        s = wake.wait(s).expect("no worker panicked holding the plan");
                    }
                };
                match task {
                    Task::Prepare(i) => {
                        let outcome = prepare(w, i);
                        let mut s = lock();
                        s.preparing -= 1;
                        match outcome {
                            Ok((p, 0)) => {
                                drop(s);
                                let f = finish(i, p, Vec::new());
                                lock().out[i] = Some(Ok(f));
                            }
                            Ok((p, jobs)) => {
                                s.items[i] = Some(Item {
                                    prepared: Some(Arc::new(p)),
                                    results: (0..jobs).map(|_| None).collect(),
                                    left: jobs,
                                });
                                s.jobs.extend((0..jobs).map(|j| (i, j)));
                            }
                            Err(e) => s.out[i] = Some(Err(e)),
                        }
                        // New jobs, or the last preparation done: waiting threads look again.
                        wake.notify_all();
                    }
                    Task::Run(i, j, p) => {
                        let r = run(w, &p, j);
                        // Released before the result is recorded, so the last job's thread
                        // holds the only reference.
                        drop(p);
                        let mut s = lock();
                        let item = s.items[i].as_mut().expect("a running job's item");
                        item.results[j] = Some(r);
                        item.left -= 1;
                        if item.left == 0 {
                            let Some(item) = s.items[i].take() else {
                                unreachable!("taken just above")
                            };
                            drop(s);
                            let p = (item.prepared)
                                .and_then(Arc::into_inner)
                                .expect("every other job released the preparation");
                            let results = (item.results.into_iter())
                                .map(|r| r.expect("every job recorded"))
                                .collect();
                            let f = finish(i, p, results);
                            lock().out[i] = Some(Ok(f));
                        }
                    }
                }
            });
        }
    });
    let s = state
        .into_inner()
        .expect("no worker panicked holding the plan");
    s.out
        .into_iter()
        .map(|o| o.expect("every item prepared and finished"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item `i` has `i % 4` jobs; job `j` returns `(i, j)`; item 5's preparation fails.
    fn plan(workers: usize, log: &Mutex<Vec<String>>) -> Vec<Result<Vec<(usize, usize)>, String>> {
        run(
            12,
            workers,
            |_, i| {
                log.lock().unwrap().push(format!("prepare {i}"));
                if i == 5 {
                    return Err(format!("item {i} is bad"));
                }
                Ok((i, i % 4))
            },
            |_, &i, j| {
                log.lock().unwrap().push(format!("run {i}.{j}"));
                (i, j)
            },
            |i, p, results| {
                assert_eq!(i, p);
                results
            },
        )
    }

    #[test]
    fn every_job_runs_once_and_results_come_back_in_order() {
        for workers in [1, 2, 3] {
            let log = Mutex::new(Vec::new());
            let out = plan(workers, &log);
            assert_eq!(out.len(), 12);
            for (i, o) in out.iter().enumerate() {
                match o {
                    Err(e) => assert_eq!((i, e.as_str()), (5, "item 5 is bad")),
                    Ok(results) => {
                        let want: Vec<(usize, usize)> = (0..i % 4).map(|j| (i, j)).collect();
                        assert_eq!(results, &want, "item {i}, {workers} workers");
                    }
                }
            }
            let mut log = log.into_inner().unwrap();
            let jobs = log.iter().filter(|l| l.starts_with("run")).count();
            // Items 0..12 have 0,1,2,3,... jobs; item 5 (1 job) failed to prepare.
            assert_eq!(jobs, (0..12).map(|i| i % 4).sum::<usize>() - 1);
            log.sort();
            log.dedup();
            assert_eq!(log.len(), 12 + jobs, "something ran twice");
        }
    }

    #[test]
    fn preparations_go_before_jobs() {
        let log = Mutex::new(Vec::new());
        plan(1, &log);
        let log = log.into_inner().unwrap();
        let last_prepare = log.iter().rposition(|l| l.starts_with("prepare"));
        let first_run = log.iter().position(|l| l.starts_with("run"));
        assert!(last_prepare < first_run, "{log:?}");
    }
}
