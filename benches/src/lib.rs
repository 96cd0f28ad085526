//! Benchmarks of Vigie.
