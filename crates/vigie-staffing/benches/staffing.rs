//! Cost of the staffing mathematics: one evaluation and one required-advisors search, for
//! Erlang C and Erlang A, at a small team's load and at a large centre's.
//!
//! Run with `cargo bench -p vigie-staffing`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use vigie_staffing::{ErlangA, ErlangC, Model, Target, Traffic, required_advisors};

fn traffic(load: f64) -> Traffic {
    Traffic::new(load / 180.0, Duration::from_secs(180)).expect("valid load")
}

fn bench(c: &mut Criterion) {
    let threshold = Duration::from_secs(20);
    let patience = Duration::from_secs(60);
    let target = Target::new(threshold, Some(0.8), None, None).expect("valid target");
    for (load, n) in [(10.0, 14_u32), (1900.0, 1950)] {
        let t = traffic(load);
        c.bench_function(&format!("erlang_c_eval/{load}E"), |b| {
            b.iter(|| ErlangC::new(black_box(n), t).service_level(threshold));
        });
        c.bench_function(&format!("erlang_a_eval/{load}E"), |b| {
            b.iter(|| {
                ErlangA::new(black_box(n), t, patience)
                    .expect("valid")
                    .service_level(threshold)
            });
        });
        c.bench_function(&format!("required_erlang_c/{load}E"), |b| {
            b.iter(|| required_advisors(black_box(&t), &Model::ErlangC, &target));
        });
        c.bench_function(&format!("required_erlang_a/{load}E"), |b| {
            b.iter(|| required_advisors(black_box(&t), &Model::ErlangA { patience }, &target));
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
