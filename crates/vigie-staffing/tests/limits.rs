//! Erlang A's limits: Erlang C as patience grows without bound, Erlang B (a loss system) as
//! patience shrinks to nothing (Garnett, Mandelbaum & Reiman 2002, section 3).

use std::time::Duration;

use vigie_staffing::{ErlangA, ErlangC, Traffic, erlang_b};

fn traffic(load: f64, aht: u64) -> Traffic {
    Traffic::new(load / aht as f64, Duration::from_secs(aht)).expect("valid")
}

/// The gap to Erlang C shrinks in proportion to 1/patience (each tenfold longer patience
/// divides it by 7 to 13); with a patience of a million handle times the probabilities are
/// within 1e-5 and the ASA within 1e-4 relative (the ASA converges slowest: its gap involves
/// the second moment of the wait, about 250 s at N = 3, a = 2.5).
#[test]
fn erlang_a_tends_to_erlang_c_as_patience_grows() {
    let threshold = Duration::from_secs(20);
    for (n, load) in [(14_u32, 10.0), (3, 2.5), (2000, 1900.0)] {
        let t = traffic(load, 180);
        let c = ErlangC::new(n, t);
        let c_asa = c.asa_seconds().expect("stable");
        let mut last = f64::INFINITY;
        for ratio in [1e2, 1e3, 1e4, 1e5, 1e6] {
            let a = ErlangA::new(n, t, Duration::from_secs_f64(180.0 * ratio)).expect("valid");
            let gap = [
                (a.wait_probability() - c.wait_probability()).abs(),
                (a.service_level(threshold) - c.service_level(threshold)).abs(),
                (a.asa_seconds() - c_asa).abs() / c_asa,
                a.abandon_probability(),
            ]
            .into_iter()
            .fold(0.0, f64::max);
            if last.is_finite() {
                let rate = last / gap;
                assert!(
                    (7.0..13.0).contains(&rate),
                    "N={n} a={load} ratio={ratio}: gap {gap}, previous {last}"
                );
            }
            last = gap;
        }
        assert!(last < 1e-4, "N={n} a={load}: {last}");
        let a = ErlangA::new(n, t, Duration::from_secs_f64(180.0 * 1e6)).expect("valid");
        assert!((a.wait_probability() - c.wait_probability()).abs() < 1e-5);
        assert!((a.service_level(threshold) - c.service_level(threshold)).abs() < 1e-5);
    }
}

/// With almost no patience a contact that finds every advisor busy leaves at once: the
/// abandonment probability is Erlang B's blocking probability, the carried load Erlang B's.
#[test]
fn erlang_a_tends_to_erlang_b_as_patience_vanishes() {
    for (n, load) in [(14_u32, 10.0), (5, 8.0), (100, 95.0)] {
        let t = traffic(load, 180);
        let b = erlang_b(n, load).expect("valid");
        let mut last = f64::INFINITY;
        for ratio in [1e-2, 1e-4, 1e-6] {
            let a = ErlangA::new(n, t, Duration::from_secs_f64(180.0 * ratio)).expect("valid");
            let gap = [
                (a.abandon_probability() - b).abs(),
                (a.wait_probability() - b).abs(),
                (a.occupancy() - load * (1.0 - b) / f64::from(n)).abs(),
                // Everyone who waits leaves almost at once: nobody answered after waiting.
                (a.service_level(Duration::from_secs(20)) - (1.0 - b)).abs(),
            ]
            .into_iter()
            .fold(0.0, f64::max);
            assert!(
                gap < last,
                "N={n} a={load} ratio={ratio}: gap {gap} !< {last}"
            );
            last = gap;
        }
        assert!(last < 1e-5, "N={n} a={load}: {last}");
    }
}

#[test]
fn overloaded_erlang_a_stays_meaningful() {
    // Twice as much load as advisors: at least half the callers must abandon.
    let t = traffic(20.0, 180);
    let a = ErlangA::new(10, t, Duration::from_secs(60)).expect("valid");
    assert!(a.abandon_probability() >= 0.5 - 1e-12);
    assert!(a.abandon_probability() < 1.0);
    assert!(a.occupancy() <= 1.0 && a.occupancy() > 0.95);
    assert!(a.asa_seconds() > 0.0 && a.asa_seconds() < 60.0);
}
