//! The step runner shared by the in-memory analysis ([`super::run`]) and the streamed one
//! ([`crate::stream`]): each step is announced to the progress callback (fraction 0 at its start,
//! 1 at its end, values in between from the step itself), its wall time and peak resident memory
//! are measured, and the upper halves of the vector registers are cleared before it starts (a
//! step that follows AVX code then runs its SSE code at full speed).
//!
//! A step run more than once (the second QC pass of the streamed analysis) adds its time to the
//! first run's and keeps the larger peak, so every step has one row in the timings.

use std::time::Instant;

use super::{Progress, StepReport};
use crate::error::Result;
use crate::report::{peak_rss_bytes, reset_peak_rss};

/// Runs the steps of one analysis in the order of its plan and keeps their timings.
pub(crate) struct StepRunner<'a, P: FnMut(&Progress) + ?Sized> {
    progress: &'a mut P,
    plan: Vec<&'static str>,
    steps: Vec<StepReport>,
}

impl<'a, P: FnMut(&Progress) + ?Sized> StepRunner<'a, P> {
    /// A runner for the steps of `plan` (their names, in order: the progress index and total).
    pub(crate) fn new(progress: &'a mut P, plan: Vec<&'static str>) -> Self {
        StepRunner {
            progress,
            plan,
            steps: Vec::new(),
        }
    }

    /// Whether the plan has step `name`.
    pub(crate) fn plans(&self, name: &str) -> bool {
        self.plan.contains(&name)
    }

    /// The timings, one row per step.
    pub(crate) fn into_steps(self) -> Vec<StepReport> {
        self.steps
    }

    /// Runs step `name`; `f` gets a reporter for the fraction done within the step (values in
    /// (0, 1) are passed on; 0 and 1 are reported here at the start and the end).
    pub(crate) fn step<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut dyn FnMut(f64)) -> Result<T>,
    ) -> Result<T> {
        let index = self
            .plan
            .iter()
            .position(|s| *s == name)
            .map_or(0, |i| i + 1);
        let total = self.plan.len();
        let progress = &mut *self.progress;
        let mut report = |fraction| {
            progress(&Progress {
                step: name,
                index,
                total,
                fraction,
            })
        };
        report(0.0);
        crate::cpu::clear_upper_simd_state();
        reset_peak_rss();
        let t = Instant::now();
        let out = f(&mut |fraction| {
            if fraction > 0.0 && fraction < 1.0 {
                report(fraction)
            }
        })?;
        let seconds = t.elapsed().as_secs_f64();
        report(1.0);
        let peak = peak_rss_bytes();
        match self.steps.iter_mut().find(|s| s.step == name) {
            Some(s) => {
                s.seconds += seconds;
                s.peak_rss_bytes = s.peak_rss_bytes.max(peak);
            }
            None => self.steps.push(StepReport {
                step: name,
                seconds,
                peak_rss_bytes: peak,
            }),
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_announced_timed_and_merged() {
        let mut seen = Vec::new();
        let mut progress = |p: &Progress| seen.push((p.step, p.index, p.total, p.fraction));
        let mut runner = StepRunner::new(&mut progress, vec!["a", "b"]);
        assert!(runner.plans("b") && !runner.plans("c"));
        let x = runner
            .step("a", |rep| {
                rep(0.0);
                rep(0.5);
                rep(1.0);
                Ok(3)
            })
            .unwrap();
        assert_eq!(x, 3);
        runner.step("b", |_| Ok(())).unwrap();
        runner.step("a", |_| Ok(())).unwrap();
        let err = runner.step("b", |_| -> Result<()> {
            Err(crate::Error::option("x", "bad"))
        });
        assert!(err.is_err());
        let steps = runner.into_steps();
        assert_eq!(
            steps.iter().map(|s| s.step).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(steps.iter().all(|s| s.seconds >= 0.0));
        assert_eq!(
            seen[..4],
            [
                ("a", 1, 2, 0.0),
                ("a", 1, 2, 0.5),
                ("a", 1, 2, 1.0),
                ("b", 2, 2, 0.0)
            ]
        );
    }
}
