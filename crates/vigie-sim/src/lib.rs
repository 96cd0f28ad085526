//! Seeded, deterministic generator of realistic contact-centre days (placeholder until the simulator lands).
