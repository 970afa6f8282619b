//! Timing loops and the statistics every lab row carries.
//!
//! A measurement runs the operation once to warm up (page faults, caches),
//! calibrates how many operations fill one sample, then takes several
//! samples and keeps them all: the row reports their median, min and max.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

/// The unit of a row, and which direction is better.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Unit {
    /// How the unit prints: `GB/s`, `ns/op`.
    pub symbol: &'static str,
    /// Whether a larger figure is better (throughput) or worse (latency).
    pub higher_is_better: bool,
    /// For time units, how many of the unit make one second.
    pub per_second: f64,
}

impl Unit {
    /// Throughput in decimal gigabytes (10^9 bytes) per second.
    pub const GB_PER_S: Unit = Unit {
        symbol: "GB/s",
        higher_is_better: true,
        per_second: 0.0,
    };
    /// Nanoseconds per operation.
    pub const NS: Unit = Unit {
        symbol: "ns/op",
        higher_is_better: false,
        per_second: 1e9,
    };
    /// Microseconds per operation.
    pub const US: Unit = Unit {
        symbol: "µs/op",
        higher_is_better: false,
        per_second: 1e6,
    };
    /// A dimensionless factor where smaller is better (overheads,
    /// fragmentation: reserved bytes over live bytes).
    pub const FACTOR: Unit = Unit {
        symbol: "x",
        higher_is_better: false,
        per_second: 0.0,
    };
}

/// What one row measured: the mechanism, the workload, and its parameters.
#[derive(Debug, Clone)]
pub struct Case {
    /// What is measured: `copy_from_slice`, `POSIX mq`.
    pub mechanism: String,
    /// What it is asked to do: `4 KiB buffer`, `64 B round trip`.
    pub workload: String,
    /// The workload's parameters as numbers and strings.
    pub params: serde_json::Map<String, Value>,
}

impl Case {
    /// A case for `mechanism` under `workload`, with no parameters yet.
    pub fn new(mechanism: impl Into<String>, workload: impl Into<String>) -> Self {
        Self {
            mechanism: mechanism.into(),
            workload: workload.into(),
            params: serde_json::Map::new(),
        }
    }

    /// Adds a workload parameter (`bytes`, `threads`, …).
    #[must_use]
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_owned(), value.into());
        self
    }
}

/// One measured row of a section, as it appears in `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured: `copy_from_slice`, `POSIX mq`, `system malloc`.
    pub mechanism: String,
    /// What it was asked to do: `4 KiB buffer`, `64 B ping-pong`.
    pub workload: String,
    /// The workload's parameters as numbers and strings.
    pub params: serde_json::Map<String, Value>,
    /// The unit of `median`, `min` and `max`.
    pub unit: &'static str,
    /// Whether a larger figure is better.
    pub higher_is_better: bool,
    /// Median of the samples.
    pub median: f64,
    /// Smallest sample.
    pub min: f64,
    /// Largest sample.
    pub max: f64,
    /// How many samples were taken.
    pub samples: usize,
    /// How many times better than the reference row of the same workload
    /// (>1 is better, <1 worse); `null` only when a figure is not finite.
    pub ratio: Option<f64>,
    /// Whether this row is the reference the ratios are taken against.
    pub reference: bool,
}

impl Row {
    /// Builds a row from raw samples already expressed in `unit`.
    pub fn from_samples(case: Case, unit: Unit, samples: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            mechanism: case.mechanism,
            workload: case.workload,
            params: case.params,
            unit: unit.symbol,
            higher_is_better: unit.higher_is_better,
            median: median(&sorted),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
            samples: sorted.len(),
            ratio: None,
            reference: false,
        })
    }
}

/// The median of sorted values.
#[must_use]
pub fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
    }
}

/// Marks the reference rows of a section and fills every row's ratio.
///
/// Rows compare within their group: the same workload, parameters and unit.
/// A group's reference is the row of the section's `reference` mechanism;
/// a group that has none (a workload only other mechanisms run) takes its
/// first-measured row as the reference, so every row carries a ratio.
pub fn fill_ratios(rows: &mut [Row], reference: &str) {
    let key = |r: &Row| {
        (
            r.workload.clone(),
            Value::Object(r.params.clone()).to_string(),
            r.unit,
        )
    };
    let mut bases: Vec<((String, String, &'static str), usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let k = key(row);
        match bases.iter_mut().find(|(bk, _)| *bk == k) {
            None => bases.push((k, i)),
            Some((_, base)) => {
                if row.mechanism == reference && rows[*base].mechanism != reference {
                    *base = i;
                }
            }
        }
    }
    let medians: Vec<f64> = rows.iter().map(|r| r.median).collect();
    for (i, row) in rows.iter_mut().enumerate() {
        let k = key(row);
        let Some(&(_, base)) = bases.iter().find(|(bk, _)| *bk == k) else {
            continue;
        };
        row.reference = base == i;
        let ratio = if row.higher_is_better {
            row.median / medians[base]
        } else {
            medians[base] / row.median
        };
        row.ratio = ratio.is_finite().then_some(ratio);
    }
}

/// How long samples run and how many are taken.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// Samples per measurement.
    pub samples: usize,
    /// Time one sample should take, at least.
    pub sample_time: Duration,
}

/// A batch of `n` operations that reports how long they took.
pub type Batch<'a> = Box<dyn FnMut(u64) -> Duration + 'a>;

impl Timing {
    /// Runs `batch(n)` — which performs `n` operations and returns the time
    /// they took — once to warm up (page faults, caches, a peer's first
    /// wake-up), then grows `n` until a batch takes a tenth of a sample,
    /// and returns the `n` that should fill one sample.
    ///
    /// # Errors
    ///
    /// The first error `batch` returns.
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "batch sizes are positive and far below 2^53"
    )]
    pub fn calibrate<E>(
        &self,
        mut batch: impl FnMut(u64) -> Result<Duration, E>,
    ) -> Result<u64, E> {
        let mut n = 1u64;
        let mut took = batch(n)?; // warm-up
        let floor = self.sample_time / 10;
        while took < floor && n < (1 << 40) {
            let factor = if took.is_zero() {
                16
            } else {
                (floor.as_secs_f64() / took.as_secs_f64()).clamp(2.0, 16.0) as u64
            };
            n = n.saturating_mul(factor);
            took = batch(n)?;
        }
        let per_op = took.as_secs_f64() / n as f64;
        Ok(if per_op > 0.0 {
            ((self.sample_time.as_secs_f64() / per_op) as u64).max(1)
        } else {
            n
        })
    }

    /// Calibrates `batch` and returns the seconds per operation of each
    /// sample.
    ///
    /// # Errors
    ///
    /// The first error `batch` returns.
    pub fn per_op<E>(
        &self,
        mut batch: impl FnMut(u64) -> Result<Duration, E>,
    ) -> Result<Vec<f64>, E> {
        let n = self.calibrate(&mut batch)?;
        let mut out = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let took = batch(n)?;
            out.push(took.as_secs_f64() / n as f64);
        }
        Ok(out)
    }

    /// Like [`Timing::per_op`] for an operation that cannot fail.
    pub fn per_op_infallible(&self, mut op: impl FnMut()) -> Vec<f64> {
        let result: Result<_, std::convert::Infallible> = self.per_op(|n| {
            let start = Instant::now();
            for _ in 0..n {
                op();
            }
            Ok(start.elapsed())
        });
        match result {
            Ok(v) => v,
        }
    }

    /// Measures several batches round-robin — one sample of each, then the
    /// next round — so that the machine's load, which drifts on a shared
    /// host, weighs on every case alike and their ratios stay fair. Each is
    /// calibrated first. Returns the seconds per operation of every sample,
    /// per batch.
    pub fn round_robin(&self, batches: &mut [Batch<'_>]) -> Vec<Vec<f64>> {
        let mut fallible: Vec<_> = batches
            .iter_mut()
            .map(|b| move |n| Ok::<_, std::convert::Infallible>(b(n)))
            .collect();
        let mut refs: Vec<&mut dyn FnMut(u64) -> Result<Duration, std::convert::Infallible>> =
            fallible.iter_mut().map(|b| b as &mut _).collect();
        match self.try_round_robin(&mut refs) {
            Ok(samples) => samples,
        }
    }

    /// [`Timing::round_robin`] for batches that can fail.
    ///
    /// # Errors
    ///
    /// The first error a batch returns.
    pub fn try_round_robin<E>(
        &self,
        batches: &mut [&mut dyn FnMut(u64) -> Result<Duration, E>],
    ) -> Result<Vec<Vec<f64>>, E> {
        let sizes = batches
            .iter_mut()
            .map(|b| self.calibrate(&mut **b))
            .collect::<Result<Vec<u64>, E>>()?;
        let mut samples = vec![Vec::with_capacity(self.samples); batches.len()];
        for _ in 0..self.samples {
            for ((b, &n), out) in batches.iter_mut().zip(&sizes).zip(&mut samples) {
                out.push(b(n)?.as_secs_f64() / n as f64);
            }
        }
        Ok(samples)
    }
}

/// Wraps one operation into a timed [`Batch`]: the operation is inlined
/// into the loop, the box is called once per batch.
pub fn batch<'a>(mut op: impl FnMut() + 'a) -> Batch<'a> {
    Box::new(move |n| {
        let start = Instant::now();
        for _ in 0..n {
            op();
        }
        start.elapsed()
    })
}

/// Keeps `value` alive and opaque to the optimiser.
pub fn keep<T>(value: T) -> T {
    black_box(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mechanism: &str, workload: &str, unit: Unit, median: f64) -> Row {
        Row::from_samples(Case::new(mechanism, workload), unit, &[median]).unwrap()
    }

    #[test]
    fn ratios_are_taken_against_the_same_workload_and_favour_better() {
        let mut rows = vec![
            row("a", "4 KiB", Unit::GB_PER_S, 10.0),
            row("b", "4 KiB", Unit::GB_PER_S, 5.0),
            row("a", "1 MiB", Unit::GB_PER_S, 20.0),
            row("b", "1 MiB", Unit::GB_PER_S, 40.0),
            row("b", "64 MiB", Unit::GB_PER_S, 1.0),
            row("a", "lat", Unit::NS, 100.0),
            row("b", "lat", Unit::NS, 50.0),
        ];
        fill_ratios(&mut rows, "a");
        let ratios: Vec<_> = rows.iter().map(|r| r.ratio).collect();
        let expected = [1.0, 0.5, 1.0, 2.0, 1.0, 1.0, 2.0].map(Some).to_vec();
        assert_eq!(ratios, expected);
        assert!(rows[0].reference && !rows[1].reference);
        assert!(
            rows[4].reference,
            "a workload without the reference mechanism uses its first row"
        );
    }

    #[test]
    fn the_reference_mechanism_wins_even_when_measured_later() {
        let mut rows = vec![
            row("b", "lat", Unit::NS, 50.0),
            row("c", "lat", Unit::NS, 200.0),
            row("a", "lat", Unit::NS, 100.0),
        ];
        fill_ratios(&mut rows, "a");
        let refs: Vec<bool> = rows.iter().map(|r| r.reference).collect();
        assert_eq!(refs, vec![false, false, true]);
        assert_eq!(rows[0].ratio, Some(2.0));
        assert_eq!(rows[1].ratio, Some(0.5));
    }

    #[test]
    fn median_min_max_of_samples() {
        let r = Row::from_samples(Case::new("m", "w"), Unit::NS, &[5.0, 1.0, 3.0, 100.0]).unwrap();
        assert_eq!((r.median, r.min, r.max, r.samples), (4.0, 1.0, 100.0, 4));
        assert!(Row::from_samples(Case::new("m", "w"), Unit::NS, &[f64::NAN]).is_none());
    }

    #[test]
    fn calibration_fills_the_sample_time() {
        let timing = Timing {
            samples: 3,
            sample_time: Duration::from_millis(5),
        };
        let mut total = 0u64;
        let samples = timing.per_op_infallible(|| {
            total = keep(total + 1);
        });
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|s| *s > 0.0 && *s < 1e-3));
        assert!(
            total > 1000,
            "calibration should batch many cheap ops, ran {total}"
        );
    }

    #[test]
    fn round_robin_samples_every_batch_alike() {
        let timing = Timing {
            samples: 4,
            sample_time: Duration::from_millis(2),
        };
        let (mut a, mut b) = (0u64, 0u64);
        let mut batches = vec![batch(|| a = keep(a + 1)), batch(|| b = keep(b + 3))];
        let samples = timing.round_robin(&mut batches);
        drop(batches);
        assert_eq!(samples.len(), 2);
        assert!(
            samples
                .iter()
                .all(|s| s.len() == 4 && s.iter().all(|x| *x > 0.0))
        );
        assert!(a > 100 && b > 100, "{a} {b}");
    }
}
