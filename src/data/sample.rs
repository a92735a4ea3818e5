//! The bundled sample series: a seeded generator of a labelled seasonal KPI.
//!
//! Twenty-eight days at a 5-minute interval (8,064 grid points): a daily cycle with a business-hours
//! bump, a weaker weekly cycle, Gaussian noise, and labelled anomalies of four kinds (spikes, dips,
//! level shifts, noise bursts). Some timestamps are dropped from the file and some values are left
//! empty, so the app shows missing points. `donut-explorer generate-sample` writes it; the test
//! suite checks that `sample_data/sample.csv` is exactly what the generator makes.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};
use std::fmt::Write;

/// Settings of the generator.
#[derive(Clone, Debug)]
pub struct SampleSpec {
    /// Seed of every random draw.
    pub seed: u64,
    /// Days of data.
    pub days: usize,
    /// Seconds between points.
    pub interval_secs: i64,
    /// First timestamp (unix seconds).
    pub start: i64,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            seed: 2018,
            days: 28,
            interval_secs: 300,
            start: 1_530_403_200,
        } // 2018-07-01 00:00 UTC
    }
}

/// One generated point.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplePoint {
    /// Unix seconds.
    pub timestamp: i64,
    /// The value, or None for an empty cell.
    pub value: Option<f64>,
    /// 1 = anomaly.
    pub label: u8,
}

/// Generates the series; points dropped from the grid are absent from the result.
pub fn generate(spec: &SampleSpec) -> Vec<SamplePoint> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(spec.seed);
    let per_day = (86_400 / spec.interval_secs) as usize;
    let n = spec.days * per_day;
    let noise = Normal::new(0.0, 0.6).expect("valid normal");
    let tau = std::f64::consts::TAU;

    let mut values: Vec<f64> = (0..n)
        .map(|i| {
            let day_phase = (i % per_day) as f64 / per_day as f64;
            let day = i / per_day;
            let daily = 8.0 * (tau * (day_phase - 0.3)).sin();
            let office = 6.0 * (-((day_phase - 0.58) / 0.08).powi(2)).exp();
            let weekly = if day % 7 >= 5 { -3.0 } else { 0.0 };
            20.0 + daily + office + weekly + noise.sample(&mut rng)
        })
        .collect();
    let mut labels = vec![0u8; n];

    // Anomalies, kept out of the first two days so that training starts clean.
    let kinds = ["spike", "dip", "shift", "burst"];
    let count = spec.days * 3 / 4;
    for k in 0..count {
        let kind = kinds[k % kinds.len()];
        let start = rng.random_range(2 * per_day..n - 40);
        let len = match kind {
            "spike" | "dip" => rng.random_range(1..4),
            "shift" => rng.random_range(12..30),
            _ => rng.random_range(6..18),
        };
        for i in start..(start + len).min(n) {
            labels[i] = 1;
            match kind {
                "spike" => values[i] += rng.random_range(9.0..16.0),
                "dip" => values[i] -= rng.random_range(9.0..16.0),
                "shift" => values[i] += 7.0,
                _ => values[i] += noise.sample(&mut rng) * 8.0,
            }
        }
    }

    // Missing data: a few dropped stretches of timestamps and some empty cells.
    let mut present = vec![true; n];
    for _ in 0..spec.days / 2 {
        let start = rng.random_range(per_day..n - 20);
        let len = rng.random_range(1..12);
        present[start..start + len]
            .iter_mut()
            .for_each(|p| *p = false);
    }
    let mut empty = vec![false; n];
    for _ in 0..spec.days {
        empty[rng.random_range(1..n - 1)] = true;
    }
    present[0] = true;
    present[n - 1] = true;

    (0..n)
        .filter(|&i| present[i])
        .map(|i| SamplePoint {
            timestamp: spec.start + i as i64 * spec.interval_secs,
            value: if empty[i] {
                None
            } else {
                Some((values[i] * 1000.0).round() / 1000.0)
            },
            label: labels[i],
        })
        .collect()
}

/// The generated series as CSV text with a `timestamp,value,label` header.
pub fn to_csv(points: &[SamplePoint]) -> String {
    let mut out = String::from("timestamp,value,label\n");
    for p in points {
        match p.value {
            Some(v) => writeln!(out, "{},{},{}", p.timestamp, v, p.label),
            None => writeln!(out, "{},,{}", p.timestamp, p.label),
        }
        .expect("writing to a String cannot fail");
    }
    out
}

/// A synthetic seasonal series of `n` points at 5-minute steps, with 1 % labelled spikes.
pub fn synthetic(n: usize) -> super::RawSeries {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut values = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let phase = (i % 288) as f64 / 288.0;
        let spike = rng.random_bool(0.01);
        values.push(
            (std::f64::consts::TAU * phase).sin() * 5.0
                + rng.random_range(-0.5..0.5)
                + if spike { 8.0 } else { 0.0 },
        );
        labels.push(spike as u8);
    }
    super::RawSeries {
        source: format!("synthetic ({n} points)"),
        timestamps: (0..n as i64).map(|i| 1_500_000_000 + 300 * i).collect(),
        values,
        labels,
        interval: 300,
        has_timestamps: true,
        has_labels: true,
        columns: [None, None, None],
        notes: Vec::new(),
    }
}
