//! Required advisors: minimal, monotone in volume and target, shrinkage and maximum
//! occupancy applied as documented.

use std::time::Duration;

use proptest::prelude::*;
use vigie_staffing::{Model, Target, Traffic, apply_shrinkage, evaluate, required_advisors};

fn volume_traffic(volume: f64, aht: u64) -> Traffic {
    Traffic::from_volume(volume, Duration::from_secs(1800), Duration::from_secs(aht))
        .expect("valid")
}

fn model(patience: Option<u64>) -> Model {
    match patience {
        None => Model::ErlangC,
        Some(p) => Model::ErlangA {
            patience: Duration::from_secs(p),
        },
    }
}

fn patience_strategy() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![Just(None), (5u64..600).prop_map(Some)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The answer meets the target and one advisor fewer does not.
    #[test]
    fn answer_is_minimal(
        volume in 1.0f64..3000.0,
        aht in 30u64..900,
        sl in 0.5f64..0.99,
        threshold in 0u64..120,
        patience in patience_strategy(),
    ) {
        let t = volume_traffic(volume, aht);
        let m = model(patience);
        let target = Target::new(Duration::from_secs(threshold), Some(sl), None, None).expect("valid");
        let r = required_advisors(&t, &m, &target).expect("reachable");
        prop_assert!(target.unmet(&r.metrics).is_empty());
        prop_assert!(r.advisors >= 1);
        let fewer = evaluate(&t, &m, r.advisors - 1, target.threshold()).expect("valid");
        prop_assert!(!target.unmet(&fewer).is_empty(), "N-1 = {} also meets", r.advisors - 1);
    }

    #[test]
    fn monotone_in_volume(
        v1 in 1.0f64..2000.0,
        extra in 0.0f64..500.0,
        aht in 30u64..900,
        sl in 0.5f64..0.99,
        patience in patience_strategy(),
    ) {
        let m = model(patience);
        let target = Target::new(Duration::from_secs(20), Some(sl), None, None).expect("valid");
        let n1 = required_advisors(&volume_traffic(v1, aht), &m, &target).expect("reachable").advisors;
        let n2 = required_advisors(&volume_traffic(v1 + extra, aht), &m, &target).expect("reachable").advisors;
        prop_assert!(n1 <= n2, "{} contacts need {} but {} need {}", v1, n1, v1 + extra, n2);
    }

    #[test]
    fn monotone_in_service_level_target(
        volume in 1.0f64..2000.0,
        aht in 30u64..900,
        s1 in 0.3f64..0.98,
        more in 0.0f64..0.2,
        patience in patience_strategy(),
    ) {
        let s2 = (s1 + more).min(0.995);
        let t = volume_traffic(volume, aht);
        let m = model(patience);
        let t1 = Target::new(Duration::from_secs(20), Some(s1), None, None).expect("valid");
        let t2 = Target::new(Duration::from_secs(20), Some(s2), None, None).expect("valid");
        let n1 = required_advisors(&t, &m, &t1).expect("reachable").advisors;
        let n2 = required_advisors(&t, &m, &t2).expect("reachable").advisors;
        prop_assert!(n1 <= n2);
    }

    #[test]
    fn monotone_in_asa_target(
        volume in 1.0f64..2000.0,
        aht in 30u64..900,
        asa1 in 1u64..120,
        shorter in 0u64..60,
        patience in patience_strategy(),
    ) {
        let asa2 = asa1.saturating_sub(shorter).max(1);
        let t = volume_traffic(volume, aht);
        let m = model(patience);
        let t1 = Target::new(Duration::from_secs(20), None, Some(Duration::from_secs(asa1)), None).expect("valid");
        let t2 = Target::new(Duration::from_secs(20), None, Some(Duration::from_secs(asa2)), None).expect("valid");
        let r1 = required_advisors(&t, &m, &t1).expect("reachable");
        let r2 = required_advisors(&t, &m, &t2).expect("reachable");
        prop_assert!(r1.advisors <= r2.advisors);
        prop_assert!(r2.metrics.asa_seconds.is_some_and(|a| a <= asa2 as f64));
    }

    /// Erlang C: a / N <= max occupancy, and the cap binds exactly when it raises the answer.
    #[test]
    fn max_occupancy_respected_erlang_c(
        volume in 1.0f64..2000.0,
        aht in 30u64..900,
        occ_pct in 30u32..=100,
    ) {
        let occ = f64::from(occ_pct) / 100.0;
        let t = volume_traffic(volume, aht);
        let capped = Target::new(Duration::from_secs(20), Some(0.8), None, Some(occ)).expect("valid");
        let free = Target::new(Duration::from_secs(20), Some(0.8), None, None).expect("valid");
        let rc = required_advisors(&t, &Model::ErlangC, &capped).expect("reachable");
        let rf = required_advisors(&t, &Model::ErlangC, &free).expect("reachable");
        prop_assert!(t.load_erlangs() / f64::from(rc.advisors) <= occ * (1.0 + 1e-9));
        prop_assert!(rc.metrics.occupancy <= occ * (1.0 + 1e-9));
        let by_occupancy = (t.load_erlangs() / occ * (1.0 - 1e-9)).ceil() as u32;
        prop_assert_eq!(rc.advisors, rf.advisors.max(by_occupancy));
    }

    /// Erlang A: the carried occupancy a (1 - P(Ab)) / N respects the cap, the answer is
    /// minimal, and never above what the cap on the offered load alone would need.
    #[test]
    fn max_occupancy_respected_erlang_a(
        volume in 1.0f64..2000.0,
        aht in 30u64..900,
        occ_pct in 30u32..=100,
        patience in 5u64..600,
    ) {
        let occ = f64::from(occ_pct) / 100.0;
        let t = volume_traffic(volume, aht);
        let m = model(Some(patience));
        let capped = Target::new(Duration::from_secs(20), Some(0.8), None, Some(occ)).expect("valid");
        let free = Target::new(Duration::from_secs(20), Some(0.8), None, None).expect("valid");
        let rc = required_advisors(&t, &m, &capped).expect("reachable");
        let rf = required_advisors(&t, &m, &free).expect("reachable");
        prop_assert!(rc.metrics.occupancy <= occ * (1.0 + 1e-9));
        prop_assert!(rc.advisors >= rf.advisors);
        let by_offered_load = (t.load_erlangs() / occ * (1.0 - 1e-9)).ceil() as u32;
        prop_assert!(rc.advisors <= rf.advisors.max(by_offered_load));
        let fewer = evaluate(&t, &m, rc.advisors - 1, capped.threshold()).expect("valid");
        prop_assert!(!capped.unmet(&fewer).is_empty(), "N-1 = {} also meets", rc.advisors - 1);
    }

    /// Scheduled = ceil(N / (1 - shrinkage)), checked in exact integer arithmetic for
    /// shrinkages given in whole percent.
    #[test]
    fn shrinkage_is_n_over_one_minus_s_rounded_up(n in 0u32..100_000, pct in 0u32..100) {
        let exact = (u64::from(n) * 100).div_ceil(u64::from(100 - pct));
        let got = apply_shrinkage(n, f64::from(pct) / 100.0).expect("valid");
        prop_assert_eq!(u64::from(got), exact);
    }
}

#[test]
fn erlang_a_needs_fewer_advisors_than_erlang_c_for_an_asa_target() {
    // Abandonment shortens the queue for those who stay, so an ASA target is met with no
    // more advisors than Erlang C needs (Garnett et al. 2002 on Erlang C overstaffing).
    let t = volume_traffic(300.0, 240);
    let target = Target::new(
        Duration::from_secs(20),
        None,
        Some(Duration::from_secs(30)),
        None,
    )
    .expect("valid");
    let c = required_advisors(&t, &Model::ErlangC, &target).expect("reachable");
    let a = required_advisors(&t, &model(Some(90)), &target).expect("reachable");
    assert!(a.advisors <= c.advisors, "{} vs {}", a.advisors, c.advisors);
    assert!(
        a.advisors < c.advisors,
        "abandonment should save at least one advisor here"
    );
}
