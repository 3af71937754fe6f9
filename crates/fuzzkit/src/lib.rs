//! The fuzz harness of k8r's parser targets (see `docs/fuzzing.md`).
//!
//! A target is an ordinary `#[test]` next to its parser that calls [`run`] with a name, an
//! input [`Strategy`] (usually [`input`]: real seed files mutated, dictionary-built text and
//! plain random bytes) and a property. Two modes:
//!
//! - **in the test suite** (no environment variable): a fixed number of cases from a seed
//!   derived from the target's name, so `cargo test` is deterministic and short;
//! - **a fuzz run** (`K8R_FUZZ_SECS=N`, set by `cargo xtask fuzz`): batch after batch of cases
//!   from fresh seeds until `N` seconds have passed, then one report line
//!   (`k8r-fuzz: NAME executions=… secs=… findings=… seed=…`), each finding with its shrunk
//!   input. `K8R_FUZZ_SEED=S` replays a run.
//!
//! A property fails by panicking or by returning `Err`; each execution is also timed and one
//! that takes longer than [`SLOW_EXECUTION`] is a finding (work per input must stay bounded).
//! Built on proptest: stable Rust, runs under `cargo test`, deterministic from a seed, and it
//! shrinks a failing input to a small one that becomes the regression test.

mod mutate;
mod runner;

pub use mutate::{corpus, input, mutated, text, Input};
pub use proptest;
pub use proptest::prelude::{prop_assert, prop_assert_eq, Strategy};
pub use proptest::test_runner::TestCaseError;
pub use runner::{hit, run, Report, SLOW_EXECUTION};

/// What a property returns: `Err` (or a panic) is a finding.
pub type Outcome = Result<(), TestCaseError>;
