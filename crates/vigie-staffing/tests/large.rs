//! Large centres: thousands of advisors and Erlangs stay finite and monotone in N.

use std::time::Duration;

use vigie_staffing::{ErlangA, ErlangC, Model, Target, Traffic, erlang_b, required_advisors};

fn traffic(load: f64, aht: u64) -> Traffic {
    Traffic::new(load / aht as f64, Duration::from_secs(aht)).expect("valid")
}

#[test]
fn erlang_c_2000_advisors_1900_erlangs_is_finite_and_monotone() {
    let t = traffic(1900.0, 180);
    let threshold = Duration::from_secs(20);
    let mut prev: Option<(f64, f64, f64)> = None;
    for n in 1901..=2300 {
        let q = ErlangC::new(n, t);
        let (sl, pw, asa) = (
            q.service_level(threshold),
            q.wait_probability(),
            q.asa_seconds().expect("stable above the load"),
        );
        assert!(sl.is_finite() && pw.is_finite() && asa.is_finite(), "N={n}");
        assert!(
            (0.0..=1.0).contains(&sl) && (0.0..=1.0).contains(&pw),
            "N={n}"
        );
        if let Some((psl, ppw, pasa)) = prev {
            assert!(sl >= psl, "service level decreased at N={n}");
            assert!(pw <= ppw, "wait probability increased at N={n}");
            assert!(asa <= pasa, "ASA increased at N={n}");
        }
        prev = Some((sl, pw, asa));
    }
    let q = ErlangC::new(2000, t);
    // With 100 spare advisors (beta = 2.29 in Halfin-Whitt terms) few contacts wait.
    assert!(q.wait_probability() > 0.0 && q.wait_probability() < 0.05);
}

#[test]
fn five_thousand_advisors_without_overflow() {
    for load in [1.0, 100.0, 4900.0, 4999.5, 5000.0, 7000.0] {
        let b = erlang_b(5000, load).expect("valid");
        assert!(
            b.is_finite() && (0.0..=1.0).contains(&b),
            "load {load}: {b}"
        );
        let q = ErlangC::new(5000, traffic(load, 300));
        assert!(q.wait_probability().is_finite());
        assert!(q.service_level(Duration::from_secs(20)).is_finite());
    }
    // Far below the load of the servers Erlang B underflows gracefully to (almost) zero.
    assert!(erlang_b(5000, 1.0).expect("valid") < 1e-300);
    // Just under critical load the probability of waiting is large but below one.
    let pw = ErlangC::new(5000, traffic(4999.5, 300)).wait_probability();
    assert!(pw > 0.9 && pw < 1.0, "{pw}");
}

#[test]
fn erlang_a_large_centre_is_finite_and_monotone() {
    let t = traffic(1900.0, 180);
    let patience = Duration::from_secs(60);
    let threshold = Duration::from_secs(20);
    let mut prev: Option<(f64, f64, f64, f64)> = None;
    // From well under the load (abandonment keeps it stable) to well above it.
    for n in (1600..=2200).step_by(4) {
        let q = ErlangA::new(n, t, patience).expect("valid");
        let sl = q.service_level(threshold);
        let (pw, pab, asa) = (
            q.wait_probability(),
            q.abandon_probability(),
            q.asa_seconds(),
        );
        for v in [sl, pw, pab, asa, q.occupancy()] {
            assert!(v.is_finite() && v >= 0.0, "N={n}: {v}");
        }
        // Advisors cannot carry more than N Erlangs.
        assert!(
            1900.0 * (1.0 - pab) <= f64::from(n) * (1.0 + 1e-12),
            "N={n}"
        );
        if let Some((psl, ppw, ppab, pasa)) = prev {
            assert!(sl >= psl, "service level decreased at N={n}");
            assert!(pw <= ppw, "wait probability increased at N={n}");
            assert!(pab <= ppab, "abandonment increased at N={n}");
            assert!(asa <= pasa, "ASA increased at N={n}");
        }
        prev = Some((sl, pw, pab, asa));
    }
}

#[test]
fn required_advisors_at_several_thousand_erlangs() {
    let target = Target::new(Duration::from_secs(20), Some(0.8), None, Some(0.98)).expect("valid");
    for load in [1900.0, 4900.0] {
        let t = traffic(load, 180);
        let c = required_advisors(&t, &Model::ErlangC, &target).expect("reachable");
        assert!(f64::from(c.advisors) > load && f64::from(c.advisors) < load * 1.05);
        assert!(c.metrics.service_level >= 0.8);
        let a = required_advisors(
            &t,
            &Model::ErlangA {
                patience: Duration::from_secs(60),
            },
            &target,
        )
        .expect("reachable");
        assert!(a.metrics.service_level >= 0.8);
        assert!(
            a.advisors.abs_diff(c.advisors) < 100,
            "{} vs {}",
            a.advisors,
            c.advisors
        );
    }
}
