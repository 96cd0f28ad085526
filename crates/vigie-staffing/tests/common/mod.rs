//! Independent reference implementations, deliberately written with other methods than the
//! crate: direct log-space summation of the stationary distribution instead of the Erlang B
//! recurrence, a brute-force birth-death chain and a uniformised tagged-customer chain
//! instead of the Kummer series, and quadrature instead of series for the incomplete gamma
//! function.
#![allow(dead_code)]

/// ln(k!) by summing logarithms.
pub fn ln_factorial(k: u32) -> f64 {
    (2..=k).map(|i| f64::from(i).ln()).sum()
}

fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Erlang B by direct summation in log space: (a^N/N!) / sum_{k<=N} a^k/k!.
pub fn erlang_b_direct(n: u32, a: f64) -> f64 {
    let terms: Vec<f64> = (0..=n)
        .map(|k| f64::from(k) * a.ln() - ln_factorial(k))
        .collect();
    (terms[n as usize] - log_sum_exp(&terms)).exp()
}

/// Erlang C by direct summation in log space (the textbook formula with N/(N-a)).
pub fn erlang_c_direct(n: u32, a: f64) -> f64 {
    let nf = f64::from(n);
    let mut terms: Vec<f64> = (0..n)
        .map(|k| f64::from(k) * a.ln() - ln_factorial(k))
        .collect();
    let last = nf * a.ln() - ln_factorial(n) + (nf / (nf - a)).ln();
    terms.push(last);
    (last - log_sum_exp(&terms)).exp()
}

/// Standard normal CDF from the Taylor series of erf (|x| <= 4 is plenty here).
pub fn normal_cdf(x: f64) -> f64 {
    let z = x / std::f64::consts::SQRT_2;
    let mut term = z;
    let mut sum = z;
    for n in 1..200 {
        let nf = f64::from(n);
        term *= -z * z / nf;
        sum += term / (2.0 * nf + 1.0);
    }
    0.5 * (1.0 + 2.0 / std::f64::consts::PI.sqrt() * sum)
}

pub fn normal_pdf(x: f64) -> f64 {
    (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt()
}

/// Garnett-Mandelbaum-Reiman's A(x, y) = x e^y y^-x gamma(x, y) by quadrature:
/// A = integral_0^1 m w^(m-1) exp(y (1 - w^(m/x))) dw (substitutions t = y u, u = v^(1/x),
/// v = w^m with m >= x to keep the integrand smooth), composite Simpson.
pub fn gmr_a_quadrature(x: f64, y: f64) -> f64 {
    let m = x.ceil().max(1.0);
    let f = |w: f64| m * w.powf(m - 1.0) * (y * (1.0 - w.powf(m / x))).exp();
    let steps = 200_000;
    let h = 1.0 / f64::from(steps);
    let mut s = f(0.0) + f(1.0);
    for i in 1..steps {
        let w = f64::from(i) * h;
        s += if i % 2 == 1 { 4.0 } else { 2.0 } * f(w);
    }
    s * h / 3.0
}

/// Stationary quantities of M/M/N+M from its birth-death chain, truncated once the
/// probabilities are below 1e-30 of the largest.
#[derive(Debug)]
pub struct BirthDeath {
    /// P(k in system), k = 0..
    pub pi: Vec<f64>,
    pub servers: usize,
    pub lambda: f64,
    pub mu: f64,
    pub theta: f64,
}

impl BirthDeath {
    pub fn new(servers: u32, lambda: f64, mu: f64, theta: f64) -> Self {
        let n = servers as usize;
        let mut ln = vec![0.0_f64];
        let mut k = 0usize;
        let mut max = 0.0_f64;
        loop {
            k += 1;
            let death = if k <= n {
                k as f64 * mu
            } else {
                n as f64 * mu + (k - n) as f64 * theta
            };
            let v = ln[k - 1] + (lambda / death).ln();
            ln.push(v);
            max = max.max(v);
            if k > n && v < max - 70.0 {
                break;
            }
        }
        let total = log_sum_exp(&ln);
        let pi = ln.iter().map(|v| (v - total).exp()).collect();
        Self {
            pi,
            servers: n,
            lambda,
            mu,
            theta,
        }
    }

    pub fn wait_probability(&self) -> f64 {
        self.pi[self.servers..].iter().sum()
    }

    pub fn mean_queue(&self) -> f64 {
        self.pi
            .iter()
            .enumerate()
            .skip(self.servers)
            .map(|(k, p)| (k - self.servers) as f64 * p)
            .sum()
    }

    /// Abandonment rate over arrival rate.
    pub fn abandon_probability(&self) -> f64 {
        self.theta * self.mean_queue() / self.lambda
    }

    pub fn occupancy(&self) -> f64 {
        let busy: f64 = self
            .pi
            .iter()
            .enumerate()
            .map(|(k, p)| k.min(self.servers) as f64 * p)
            .sum();
        busy / self.servers as f64
    }

    /// Mean wait over all arrivals, by Little's law.
    pub fn mean_wait(&self) -> f64 {
        self.mean_queue() / self.lambda
    }

    /// Mean wait of the served, by first-step recursions on the tagged customer: with i ahead,
    /// it moves up at rate N mu + i theta and abandons at rate theta.
    pub fn asa_served(&self) -> f64 {
        let nmu = self.servers as f64 * self.mu;
        let queued = &self.pi[self.servers..];
        // served(i): P(served | i ahead); time_ab(i): E[W 1{abandon} | i ahead].
        let mut served_prev = 1.0; // "i = -1": already at an advisor
        let mut time_ab_prev = 0.0;
        let mut served_total = 1.0 - self.wait_probability();
        let mut wait_ab_total = 0.0;
        for (i, p) in queued.iter().enumerate() {
            let up = nmu + i as f64 * self.theta;
            let rate = up + self.theta;
            let served = up / rate * served_prev;
            let abandon = 1.0 - served;
            let time_ab = abandon / rate + up / rate * time_ab_prev;
            served_total += p * served;
            wait_ab_total += p * time_ab;
            served_prev = served;
            time_ab_prev = time_ab;
        }
        (self.mean_wait() - wait_ab_total) / served_total
    }

    /// (P(answered within t), P(abandoned within t), P(still waiting at t)) per arrival, by
    /// uniformisation of the tagged-customer chain started from the number queued ahead.
    pub fn within(&self, t: f64) -> (f64, f64, f64) {
        let nmu = self.servers as f64 * self.mu;
        let queued = &self.pi[self.servers..];
        let m = queued.len();
        let big = nmu + m as f64 * self.theta + self.theta;
        // State vector: waiting with i ahead (0..m), then served, abandoned.
        let mut v = vec![0.0; m + 2];
        v[..m].copy_from_slice(queued);
        let mut acc = vec![0.0; m + 2];
        let lt = big * t;
        let mut weight = (-lt).exp();
        let mut step = 0u32;
        // Poisson weights computed in log space when lt is large.
        loop {
            let w = if lt > 600.0 {
                let k = f64::from(step);
                (k * lt.ln() - lt - ln_factorial(step)).exp()
            } else {
                weight
            };
            for (a, x) in acc.iter_mut().zip(&v) {
                *a += w * x;
            }
            // Poisson tail beyond lt + 20 sqrt(lt) + 50 is far below 1e-30.
            if f64::from(step) > lt + 20.0 * lt.sqrt() + 50.0 {
                break;
            }
            // One uniformised step.
            let mut next = vec![0.0; m + 2];
            for i in 0..m {
                let up = nmu + i as f64 * self.theta;
                let stay = 1.0 - (up + self.theta) / big;
                next[i] += v[i] * stay;
                if i == 0 {
                    next[m] += v[i] * up / big;
                } else {
                    next[i - 1] += v[i] * up / big;
                }
                next[m + 1] += v[i] * self.theta / big;
            }
            next[m] += v[m];
            next[m + 1] += v[m + 1];
            v = next;
            step += 1;
            weight *= lt / f64::from(step);
        }
        let waiting: f64 = acc[..m].iter().sum();
        let not_queued = 1.0 - self.wait_probability();
        (not_queued + acc[m], acc[m + 1], waiting)
    }
}
