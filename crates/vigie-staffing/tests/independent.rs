//! The crate against independent implementations written with other methods (see
//! `common`): Erlang B/C by direct log-space summation, Erlang A by a brute-force
//! birth-death chain, a uniformised tagged-customer chain and incomplete-gamma quadrature.

mod common;

use std::time::Duration;

use proptest::prelude::*;
use vigie_staffing::{ErlangA, ErlangC, Traffic, erlang_b, erlang_c};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn erlang_b_matches_direct_summation(n in 1u32..400, ratio in 0.01f64..2.0) {
        let a = ratio * f64::from(n);
        let got = erlang_b(n, a).expect("valid");
        let want = common::erlang_b_direct(n, a);
        prop_assert!((got - want).abs() <= 1e-12 + 1e-11 * want, "N={} a={}: {} vs {}", n, a, got, want);
    }

    #[test]
    fn erlang_c_matches_direct_summation(n in 1u32..400, ratio in 0.01f64..0.999) {
        let a = ratio * f64::from(n);
        let got = erlang_c(n, a).expect("valid");
        let want = common::erlang_c_direct(n, a);
        prop_assert!((got - want).abs() <= 1e-12 + 1e-11 * want, "N={} a={}: {} vs {}", n, a, got, want);
    }
}

fn erlang_a_cases() -> Vec<(u32, f64, f64, f64)> {
    // (servers, arrivals per second, AHT s, patience s): under, near and over load, patience
    // shorter and longer than the handle time.
    vec![
        (1, 1.0 / 200.0, 180.0, 60.0),
        (3, 1.0 / 60.0, 180.0, 60.0),
        (3, 1.0 / 30.0, 180.0, 60.0),
        (5, 1.0 / 30.0, 180.0, 600.0),
        (10, 10.0 / 180.0, 180.0, 120.0),
        (10, 14.0 / 180.0, 180.0, 30.0),
        (20, 18.0 / 300.0, 300.0, 90.0),
        (8, 20.0 / 240.0, 240.0, 2.0),
    ]
}

#[test]
fn erlang_a_stationary_measures_match_birth_death_chain() {
    for (n, lambda, aht, patience) in erlang_a_cases() {
        let t = Traffic::new(lambda, Duration::from_secs_f64(aht)).expect("valid");
        let q = ErlangA::new(n, t, Duration::from_secs_f64(patience)).expect("valid");
        let bd = common::BirthDeath::new(n, lambda, 1.0 / aht, 1.0 / patience);
        let ctx = format!("N={n} lambda={lambda} aht={aht} patience={patience}");
        assert!(
            (q.wait_probability() - bd.wait_probability()).abs() < 1e-12,
            "{ctx}"
        );
        assert!(
            (q.abandon_probability() - bd.abandon_probability()).abs() < 1e-12,
            "{ctx}"
        );
        assert!((q.occupancy() - bd.occupancy()).abs() < 1e-12, "{ctx}");
        assert!(
            (q.mean_wait_seconds() - bd.mean_wait()).abs() < 1e-9 * bd.mean_wait().max(1.0),
            "{ctx}"
        );
        assert!(
            (q.asa_seconds() - bd.asa_served()).abs() < 1e-9 * bd.asa_served().max(1.0),
            "{ctx}: {} vs {}",
            q.asa_seconds(),
            bd.asa_served()
        );
    }
}

#[test]
fn erlang_a_service_levels_match_uniformised_tagged_customer() {
    for (n, lambda, aht, patience) in erlang_a_cases() {
        let t = Traffic::new(lambda, Duration::from_secs_f64(aht)).expect("valid");
        let q = ErlangA::new(n, t, Duration::from_secs_f64(patience)).expect("valid");
        let bd = common::BirthDeath::new(n, lambda, 1.0 / aht, 1.0 / patience);
        for threshold in [0.0, 5.0, 20.0, 60.0, 300.0] {
            let d = Duration::from_secs_f64(threshold);
            let (answered, abandoned, waiting) = bd.within(threshold);
            let sl = q.service_levels(d);
            let ctx = format!("N={n} lambda={lambda} patience={patience} t={threshold}");
            assert!(
                (sl.offered - answered).abs() < 1e-10,
                "{ctx}: {} vs {answered}",
                sl.offered
            );
            assert!(
                (sl.positive - (answered + abandoned)).abs() < 1e-10,
                "{ctx}"
            );
            assert!((q.wait_exceeds(d) - waiting).abs() < 1e-10, "{ctx}");
            let served = 1.0 - bd.abandon_probability();
            assert!((sl.answered - answered / served).abs() < 1e-10, "{ctx}");
        }
    }
}

/// Garnett, Mandelbaum & Reiman (2002), eq. for Erlang A:
/// P(W > 0) = A B / (1 + (A - 1) B) and P(Ab | W > 0) = 1/(rho A) + 1 - 1/rho, with
/// A = A(N mu/theta, lambda/theta) from the incomplete gamma function, here by quadrature.
#[test]
fn erlang_a_matches_garnett_mandelbaum_reiman_closed_forms() {
    for (n, lambda, aht, patience) in erlang_a_cases() {
        let mu = 1.0 / aht;
        let theta = 1.0 / patience;
        let x = f64::from(n) * mu / theta;
        let y = lambda / theta;
        if x > 40.0 || y > 200.0 {
            continue; // keep the quadrature in its accurate range
        }
        let big_a = common::gmr_a_quadrature(x, y);
        let b = common::erlang_b_direct(n, lambda / mu);
        let rho = lambda / (f64::from(n) * mu);
        let p_wait = big_a * b / (1.0 + (big_a - 1.0) * b);
        let p_ab = p_wait * (1.0 / (rho * big_a) + 1.0 - 1.0 / rho);

        let t = Traffic::new(lambda, Duration::from_secs_f64(aht)).expect("valid");
        let q = ErlangA::new(n, t, Duration::from_secs_f64(patience)).expect("valid");
        let ctx = format!("N={n} x={x} y={y}");
        assert!((q.wait_probability() - p_wait).abs() < 1e-8, "{ctx}");
        assert!((q.abandon_probability() - p_ab).abs() < 1e-8, "{ctx}");
    }
}

#[test]
fn erlang_c_service_level_matches_birth_death_with_tiny_abandonment_rate() {
    // A different road to Erlang C's waiting-time tail: the uniformised chain with a
    // negligible abandonment rate.
    let (n, lambda, aht) = (6_u32, 4.0 / 180.0, 180.0);
    let bd = common::BirthDeath::new(n, lambda, 1.0 / aht, 1e-12);
    let t = Traffic::new(lambda, Duration::from_secs_f64(aht)).expect("valid");
    let q = ErlangC::new(n, t);
    for threshold in [0.0, 10.0, 20.0, 120.0] {
        let (answered, _, _) = bd.within(threshold);
        let got = q.service_level(Duration::from_secs_f64(threshold));
        assert!(
            (got - answered).abs() < 1e-8,
            "t={threshold}: {got} vs {answered}"
        );
    }
}
