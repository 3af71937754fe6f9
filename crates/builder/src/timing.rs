//! The per-step time table `assemble` prints at the end.

use std::time::{Duration, Instant};

/// Step names and how long each took.
#[derive(Debug, Default, Clone)]
pub struct Timings {
    steps: Vec<(String, Duration)>,
}

impl Timings {
    /// Runs `f` as step `name`, logging its start and recording its time.
    pub fn step<T, E>(&mut self, name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        log::info!("{name}...");
        let start = Instant::now();
        let result = f();
        self.steps.push((name.to_owned(), start.elapsed()));
        result
    }

    /// The recorded steps.
    pub fn steps(&self) -> &[(String, Duration)] {
        &self.steps
    }

    /// A text table: one row per step, then the total.
    pub fn table(&self) -> String {
        let width = self
            .steps
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(4)
            .max(5);
        let mut out = String::new();
        let mut total = Duration::ZERO;
        for (name, took) in &self.steps {
            out.push_str(&format!(
                "  {name:<width$}  {:>8.1} s\n",
                took.as_secs_f64()
            ));
            total += *took;
        }
        out.push_str(&format!(
            "  {:<width$}  {:>8.1} s\n",
            "total",
            total.as_secs_f64()
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_steps_and_total() {
        let mut t = Timings::default();
        let v: Result<u8, ()> = t.step("first", || Ok(1));
        assert_eq!(v, Ok(1));
        let e: Result<(), &str> = t.step("second", || Err("boom"));
        assert_eq!(
            e,
            Err("boom"),
            "errors pass through and the step is still timed"
        );
        let table = t.table();
        assert_eq!(t.steps().len(), 2);
        assert!(table.contains("first"));
        assert!(table.contains("second"));
        assert!(
            table.lines().last().is_some_and(|l| l.contains("total")),
            "{table}"
        );
    }
}
