//! Runs a target: a fixed, seeded number of cases in the test suite, or batches of fresh
//! cases for a bounded time in a fuzz run (module docs of the crate).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::Outcome;

/// One execution slower than this, three times in a row, is a finding. Debug builds of the
/// parsers run a real input in well under a millisecond; this is a thousand times that, so
/// only a blow-up trips it. Wall time, so a slow one is timed twice more and the fastest of
/// the three counts: on a loaded machine one execution can wait a second for a core.
pub const SLOW_EXECUTION: Duration = Duration::from_secs(1);

/// Runs `property` on `value`, timed; an execution over `bound` is re-timed (see
/// [`SLOW_EXECUTION`]).
fn timed_run<V: Clone>(property: &impl Fn(V) -> Outcome, value: V, bound: Duration) -> Outcome {
    let mut fastest = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let outcome = property(value.clone());
        fastest = fastest.min(start.elapsed());
        if outcome.is_err() || fastest <= bound {
            return outcome;
        }
    }
    Err(TestCaseError::fail(format!(
        "slow input: the fastest of three executions took {fastest:?} (bound {bound:?})"
    )))
}

/// Cases per batch in a fuzz run (each batch has its own seed).
const BATCH: u32 = 512;

/// How many distinct findings a fuzz run keeps (it counts them all).
const KEEP_FINDINGS: usize = 20;

/// What a fuzz run found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The target's name.
    pub name: String,
    /// Executions of the property (shrinking included).
    pub executions: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Distinct failures: the reason and the shrunk input.
    pub findings: Vec<String>,
    /// How many distinct failures there were.
    pub finding_count: usize,
    /// The run's seed (`K8R_FUZZ_SEED` replays it).
    pub seed: u64,
    /// The counts of [`hit`] labels.
    pub hits: BTreeMap<&'static str, u64>,
}

impl Report {
    /// The line `cargo xtask fuzz` reads.
    pub fn line(&self) -> String {
        let mut line = format!(
            "k8r-fuzz: {} executions={} secs={:.1} findings={} seed={}",
            self.name,
            self.executions,
            self.elapsed.as_secs_f64(),
            self.finding_count,
            self.seed
        );
        for (label, count) in &self.hits {
            line.push_str(&format!(" {label}={count}"));
        }
        line
    }
}

thread_local! {
    static HITS: RefCell<BTreeMap<&'static str, u64>> = const { RefCell::new(BTreeMap::new()) };
}

/// Counts one pass through a point of interest (e.g. "parsed": the input got past the
/// parser); a fuzz run reports the counts, so a target whose inputs never get far is seen.
pub fn hit(label: &'static str) {
    HITS.with(|h| *h.borrow_mut().entry(label).or_default() += 1);
}

fn take_hits() -> BTreeMap<&'static str, u64> {
    HITS.with(|h| std::mem::take(&mut *h.borrow_mut()))
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn runner(seed: u64, cases: u32) -> TestRunner {
    let mut bytes = [0u8; 32];
    let mut x = seed;
    for chunk in bytes.chunks_mut(8) {
        x = splitmix(x);
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 4096,
        max_shrink_time: 30_000,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes))
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a whole number"),
    }
}

/// Runs target `name`: `suite_cases` seeded cases under `cargo test`, or for
/// `K8R_FUZZ_SECS` seconds in a fuzz run. `property` fails by panicking or returning `Err`.
///
/// # Panics
/// On a finding (the message holds the reason and the shrunk input).
pub fn run<S>(name: &str, suite_cases: u32, strategy: S, property: impl Fn(S::Value) -> Outcome)
where
    S: Strategy,
    S::Value: Clone + Debug,
{
    let executions = Cell::new(0u64);
    let timed = |value: S::Value| {
        executions.set(executions.get() + 1);
        timed_run(&property, value, SLOW_EXECUTION)
    };
    let Some(secs) = env_u64("K8R_FUZZ_SECS") else {
        let result = runner(fnv(name), suite_cases).run(&strategy, timed);
        if let Err(e) = result {
            panic!("fuzz target {name}: {}", describe(&e));
        }
        return;
    };
    let seed = env_u64("K8R_FUZZ_SEED").unwrap_or_else(|| {
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| {
            u64::try_from(d.as_nanos() & u128::from(u64::MAX)).unwrap_or(0)
        })
    });
    let limit = Duration::from_secs(secs);
    let start = Instant::now();
    let mut report = Report {
        name: name.to_owned(),
        executions: 0,
        elapsed: Duration::ZERO,
        findings: Vec::new(),
        finding_count: 0,
        seed,
        hits: BTreeMap::new(),
    };
    take_hits();
    let mut reasons: Vec<String> = Vec::new();
    let mut batch = 0u64;
    while start.elapsed() < limit {
        let mut runner = runner(splitmix(seed ^ batch), BATCH);
        batch += 1;
        let deadline = start + limit;
        let result = runner.run(&strategy, |value| {
            if Instant::now() >= deadline {
                return Ok(());
            }
            timed(value)
        });
        if let Err(e) = result {
            let reason = match &e {
                TestError::Fail(reason, _) => reason.message().to_owned(),
                TestError::Abort(reason) => reason.message().to_owned(),
            };
            let key = reason.lines().next().unwrap_or("").to_owned();
            if !reasons.contains(&key) {
                reasons.push(key);
                if report.findings.len() < KEEP_FINDINGS {
                    report.findings.push(describe(&e));
                }
            }
        }
    }
    report.executions = executions.get();
    report.elapsed = start.elapsed();
    report.finding_count = reasons.len();
    report.hits = take_hits();
    println!("{}", report.line());
    for finding in &report.findings {
        println!("k8r-fuzz: {name} finding: {finding}");
    }
    assert!(
        report.findings.is_empty(),
        "fuzz target {name}: {} finding(s), see above",
        report.finding_count
    );
}

fn describe<T: Debug>(e: &TestError<T>) -> String {
    match e {
        TestError::Fail(reason, value) => {
            format!("{}; minimal input: {value:?}", reason.message())
        }
        TestError::Abort(reason) => format!("aborted: {}", reason.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{input, text};
    use proptest::prelude::*;

    #[test]
    fn suite_mode_is_deterministic() {
        let collect = || {
            let seen = std::cell::RefCell::new(Vec::new());
            let mut r = runner(fnv("x"), 50);
            r.run(&text(vec![b"ab".to_vec(), b"=".to_vec()], 8), |v| {
                seen.borrow_mut().push(v);
                Ok(())
            })
            .expect("no failure");
            seen.into_inner()
        };
        assert_eq!(collect(), collect());
    }

    #[test]
    fn a_finding_is_shrunk_towards_the_seed() {
        let strategy = input(vec![b"key=value\n".to_vec()], &["\x00"]);
        let result = runner(1, 2000).run(&strategy, |v| {
            prop_assert!(!v.contains(&0), "NUL");
            Ok(())
        });
        let Err(TestError::Fail(_, minimal)) = result else {
            panic!("a NUL byte is found in 2000 cases");
        };
        assert!(minimal.len() <= 11, "{minimal:?}");
    }

    #[test]
    fn a_slow_execution_counts_only_when_it_stays_slow() {
        let bound = Duration::from_millis(20);
        let calls = Cell::new(0);
        let once_slow = |(): ()| {
            calls.set(calls.get() + 1);
            if calls.get() == 1 {
                std::thread::sleep(bound * 3);
            }
            Ok(())
        };
        assert!(timed_run(&once_slow, (), bound).is_ok());
        assert_eq!(calls.get(), 2);
        let always_slow = |(): ()| {
            std::thread::sleep(bound * 2);
            Ok(())
        };
        let err = timed_run(&always_slow, (), bound).expect_err("slow");
        assert!(err.to_string().contains("slow input"), "{err}");
    }

    #[test]
    fn a_panic_is_a_finding() {
        let result = std::panic::catch_unwind(|| {
            run("panics", 10, any::<u8>(), |_| panic!("boom"));
        });
        assert!(result.is_err());
    }
}
