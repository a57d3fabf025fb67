//! Queueing theory the simulator is checked against.

/// Erlang C: the probability that an arrival waits in an M/M/c queue with `c` servers and
/// offered load `a = λ/μ` (requires `a < c`). Computed through the Erlang B recursion, which is
/// numerically stable for large `c`.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (f64::from(k) + a * b);
    }
    let rho = a / f64::from(c);
    b / (1.0 - rho * (1.0 - b))
}

/// Mean time an arrival waits for a server in M/M/c with arrival rate `lambda` and service rate
/// `mu` per server: `C(c, λ/μ) / (cμ − λ)`.
pub fn mmc_mean_wait(c: u32, lambda: f64, mu: f64) -> f64 {
    erlang_c(c, lambda / mu) / (f64::from(c) * mu - lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_closed_forms() {
        // M/M/1: P(wait) = ρ, W_q = ρ / (μ − λ).
        assert!((erlang_c(1, 0.8) - 0.8).abs() < 1e-12);
        assert!((mmc_mean_wait(1, 0.8, 1.0) - 4.0).abs() < 1e-9);
        // M/M/2 with a = 1: C = 1/3 (textbook value).
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
    }
}
