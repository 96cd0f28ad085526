//! Random variates built from basic IEEE 754 arithmetic only, so that a seed gives the same
//! day on every platform.
//!
//! Why not `rand_distr`: its floating-point functions go through `num-traits`, which calls the
//! platform's `libm` as soon as any crate of the build enables `num-traits/std` (hdrhistogram
//! does, in this workspace). `ln` and `exp` of different C libraries may differ in the last
//! bit, and one different bit in a sampled duration changes the whole day downstream. Addition,
//! multiplication, division, `sqrt` and `round` are correctly rounded everywhere, and Rust never
//! fuses them into FMA on its own, so the functions below give identical bits on every target.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

const LN_2: f64 = std::f64::consts::LN_2;
const SQRT_2: f64 = std::f64::consts::SQRT_2;
// ln 2 split for Cody-Waite range reduction: the high part has trailing zero bits, so
// `k * LN_2_HI` is exact for the small integers `k` used here.
const LN_2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN_2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);

/// Natural logarithm of a positive, finite `x`; within a few ULP of the true value.
pub(crate) fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x.is_infinite() {
        return f64::INFINITY;
    }
    let (mut x, mut exponent) = (x, 0i64);
    if x < f64::MIN_POSITIVE {
        // Subnormal: scale into the normal range first (exact, a power of two).
        x *= 18_014_398_509_481_984.0; // 2^54
        exponent -= 54;
    }
    let bits = x.to_bits();
    exponent += ((bits >> 52) & 0x7ff) as i64 - 1023;
    // The mantissa in [1, 2), then moved to [sqrt(1/2), sqrt(2)) to keep the series short.
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > SQRT_2 {
        m *= 0.5;
        exponent += 1;
    }
    // ln m = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), with |s| <= 0.172.
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let mut series = 1.0 / 25.0;
    for k in (0..12).rev() {
        series = 1.0 / f64::from(2 * k + 1) + s2 * series;
    }
    let e = exponent as f64;
    e * LN_2_HI + (e * LN_2_LO + 2.0 * s * series)
}

/// `e^x`; within a few ULP of the true value for `|x| <= 700`, clamped beyond.
pub(crate) fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    let x = x.clamp(-700.0, 700.0);
    let k = (x / LN_2).round();
    let r = (x - k * LN_2_HI) - k * LN_2_LO;
    // Taylor series of e^r for |r| <= 0.35: 16 terms are past double precision.
    let mut series = 1.0;
    for n in (1..=16).rev() {
        series = 1.0 + r * series / f64::from(n);
    }
    // 2^k built from its bits: k is within the normal exponent range after the clamp.
    let scale = f64::from_bits(((k as i64 + 1023) as u64) << 52);
    series * scale
}

/// A uniform draw in `[0, 1)` with 53 random bits.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0) // 2^-53
}

/// An exponential draw with the given mean.
pub(crate) fn exponential(rng: &mut ChaCha8Rng, mean: f64) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    -mean * ln(1.0 - unit(rng))
}

/// A standard normal draw (Marsaglia's polar method: only `ln` and `sqrt`).
pub(crate) fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    loop {
        let u = 2.0 * unit(rng) - 1.0;
        let v = 2.0 * unit(rng) - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * ln(s) / s).sqrt();
        }
    }
}

/// A lognormal distribution given by its mean and coefficient of variation, the way durations
/// of calls, holds and wrap-ups are described in workforce-management tools.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LogNormal {
    mu: f64,
    sigma: f64,
}

impl LogNormal {
    /// Mean `mean` (> 0) and coefficient of variation `cv` (>= 0).
    pub(crate) fn new(mean: f64, cv: f64) -> LogNormal {
        let sigma2 = ln(1.0 + cv * cv);
        LogNormal {
            mu: ln(mean.max(f64::MIN_POSITIVE)) - sigma2 / 2.0,
            sigma: sigma2.sqrt(),
        }
    }

    /// One draw.
    pub(crate) fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        if self.sigma == 0.0 {
            return exp(self.mu);
        }
        exp(self.mu + self.sigma * standard_normal(rng))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 4.0 * f64::EPSILON * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn ln_2_splits_exactly() {
        assert_eq!(LN_2_HI + LN_2_LO, LN_2);
        assert_eq!(
            LN_2_HI.to_bits() & 0x1f_ffff,
            0,
            "trailing zeros keep k * LN_2_HI exact"
        );
    }

    #[test]
    fn ln_and_exp_match_the_platform_to_a_few_ulp() {
        let mut x = 1e-300;
        while x < 1e300 {
            assert!(close(ln(x), x.ln()), "ln({x}) = {} vs {}", ln(x), x.ln());
            x *= 1.37;
        }
        for value in [1.0, 2.0, 0.5, 1e-310, f64::MIN_POSITIVE, 1.000_000_1] {
            assert!(
                (ln(value) - value.ln()).abs() <= 1e-15 * value.ln().abs().max(1.0),
                "ln({value})"
            );
        }
        let mut y = -700.0;
        while y < 700.0 {
            assert!(
                close(exp(y), y.exp()),
                "exp({y}) = {} vs {}",
                exp(y),
                y.exp()
            );
            y += 0.377;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn samplers_have_the_requested_means() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let n = 200_000;
        let mean_exp = (0..n).map(|_| exponential(&mut rng, 90.0)).sum::<f64>() / n as f64;
        assert!((mean_exp - 90.0).abs() < 1.5, "{mean_exp}");
        let law = LogNormal::new(240.0, 0.9);
        let mean_log = (0..n).map(|_| law.sample(&mut rng)).sum::<f64>() / n as f64;
        assert!((mean_log - 240.0).abs() < 5.0, "{mean_log}");
        let normals: Vec<f64> = (0..n).map(|_| standard_normal(&mut rng)).collect();
        let mean = normals.iter().sum::<f64>() / n as f64;
        let var = normals.iter().map(|z| (z - mean) * (z - mean)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
