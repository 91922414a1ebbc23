//! Shared helpers for the integration tests in `tests/tests/` and the other crates' tests.

pub mod peer;
