//! Putting loaded rows on a regular time grid: the sampling interval, snapping timestamps that
//! jitter around it, and what to do with rows that share a timestamp.
//!
//! Real exports are messy: a daylight-saving hour written twice, a dozen rows exported twice, a
//! collector that samples a few seconds late. Each of these has a policy (a setting), applied and
//! reported once as a [`LoadNote`]; only what cannot be put on a grid is refused.

use super::load::{DataError, Problem};
use crate::config::DuplicatePolicy;

/// A policy applied while loading, reported once.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadNote {
    /// Rows sharing a timestamp were merged by the policy.
    Duplicates {
        /// Rows dropped or merged into another.
        rows: usize,
        /// The line of the first such row.
        first_line: u64,
        /// The policy applied.
        policy: DuplicatePolicy,
    },
    /// Timestamps off the grid by less than half an interval were moved onto it.
    Snapped {
        /// Rows moved.
        rows: usize,
        /// The line of the first one.
        first_line: u64,
        /// The largest move, in seconds.
        largest_secs: i64,
        /// The grid step, in seconds.
        interval: i64,
    },
    /// Value cells were read with a decimal comma (`1,25` = 1.25).
    DecimalCommas {
        /// Cells read so.
        cells: usize,
    },
    /// Rows that could not be read whole, in a lenient read (detection): kept with the value as
    /// missing, or skipped.
    BadRows {
        /// Rows kept with their value (or label) unreadable: the point is missing.
        missing: usize,
        /// Rows skipped: no readable time, too few fields, or back in time.
        skipped: usize,
        /// The first few, each with its line, problem and what was done.
        named: Vec<String>,
    },
}

impl std::fmt::Display for LoadNote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Duplicates {
                rows,
                first_line,
                policy,
            } => {
                let what = match policy {
                    DuplicatePolicy::First => "kept the first row of each timestamp",
                    DuplicatePolicy::Last => "kept the last row of each timestamp",
                    DuplicatePolicy::Mean => "averaged the rows of each timestamp",
                    DuplicatePolicy::Error => "refused",
                };
                write!(
                    f,
                    "{rows} row(s) repeat an earlier timestamp (first on line {first_line}): {what} (setting `duplicates = {}`; first, last, mean or error)",
                    policy.name()
                )
            }
            Self::Snapped {
                rows,
                first_line,
                largest_secs,
                interval,
            } => write!(
                f,
                "{rows} timestamp(s) sat off the {interval} s grid by up to {largest_secs} s (first on line {first_line}): snapped to the nearest step"
            ),
            Self::DecimalCommas { cells } => write!(
                f,
                "read {cells} value(s) with a decimal comma (`;`-separated file)"
            ),
            Self::BadRows {
                missing,
                skipped,
                named,
            } => {
                write!(
                    f,
                    "{} bad row(s): {missing} kept as missing points (a value that is not a finite number), {skipped} skipped (no readable time, too few fields, or back in time)",
                    missing + skipped
                )?;
                for line in named {
                    write!(f, "; {line}")?;
                }
                if named.len() < missing + skipped {
                    write!(f, "; and {} more", missing + skipped - named.len())?;
                }
                Ok(())
            }
        }
    }
}

/// One row as read: its timestamp, value (NaN when empty), label and line.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Row {
    /// Unix seconds (or the row index).
    pub ts: i64,
    /// The value; NaN for an empty cell.
    pub value: f64,
    /// 1 = anomaly.
    pub label: u8,
    /// 1-based line in the file.
    pub line: u64,
}

/// Rows on a grid: strictly increasing timestamps, every gap a multiple of `interval`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gridded {
    /// The rows kept.
    pub rows: Vec<Row>,
    /// The grid step in seconds.
    pub interval: i64,
    /// The policies applied.
    pub notes: Vec<LoadNote>,
}

/// Sampling intervals that monitoring systems use, in seconds.
const USUAL_INTERVALS: &[i64] = &[
    1, 2, 5, 10, 15, 20, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10_800, 21_600,
    43_200, 86_400,
];

/// The interval of a jittered series: the (lower) median gap between consecutive distinct
/// timestamps, or the usual interval within 5 % of it (jitter moves the median a little).
fn jittered_interval(ts: &[i64]) -> i64 {
    let mut gaps: Vec<i64> = ts
        .windows(2)
        .map(|w| w[1] - w[0])
        .filter(|&g| g > 0)
        .collect();
    if gaps.is_empty() {
        return 1;
    }
    gaps.sort_unstable();
    let median = gaps[(gaps.len() - 1) / 2].max(1);
    USUAL_INTERVALS
        .iter()
        .copied()
        .find(|&usual| 20 * (median - usual).abs() <= usual)
        .unwrap_or(median)
}

/// `x` modulo `m` in `(-m/2, m/2]`.
fn centred_mod(x: i64, m: i64) -> i64 {
    let r = x.rem_euclid(m);
    if 2 * r > m { r - m } else { r }
}

/// Builds the error for a line.
type ErrorAt<'a> = &'a dyn Fn(Option<u64>, Problem) -> DataError;

/// Puts `rows` (in file order) on a regular grid: checks their order, snaps jitter of less than
/// half an interval, and merges rows sharing a timestamp by `policy`. `err` builds the error for
/// a line.
pub fn to_grid(
    rows: Vec<Row>,
    policy: DuplicatePolicy,
    err: ErrorAt<'_>,
) -> Result<Gridded, DataError> {
    let distinct = check_order(&rows, policy, err)?;
    let (interval, rows, snapped) = snap(rows, &distinct, err)?;
    let (rows, merged) = merge(rows, policy, err)?;
    Ok(Gridded {
        rows,
        interval,
        notes: snapped.into_iter().chain(merged).collect(),
    })
}

/// Checks that time never goes backwards, except to repeat a timestamp seen before (a
/// daylight-saving hour written twice, rows exported twice); returns the distinct timestamps,
/// sorted.
fn check_order(
    rows: &[Row],
    policy: DuplicatePolicy,
    err: ErrorAt<'_>,
) -> Result<Vec<i64>, DataError> {
    let mut seen = std::collections::HashMap::with_capacity(rows.len());
    let mut latest = i64::MIN;
    for r in rows {
        if let Some(&first_line) = seen.get(&r.ts) {
            if policy == DuplicatePolicy::Error {
                return Err(err(
                    Some(r.line),
                    Problem::Duplicate {
                        ts: r.ts,
                        first_line,
                    },
                ));
            }
            continue;
        }
        if r.ts < latest {
            return Err(err(
                Some(r.line),
                Problem::Unsorted {
                    ts: r.ts,
                    previous: latest,
                },
            ));
        }
        latest = r.ts;
        seen.insert(r.ts, r.line);
    }
    let mut distinct: Vec<i64> = seen.keys().copied().collect();
    distinct.sort_unstable();
    Ok(distinct)
}

/// The grid and the rows on it: the smallest gap when every gap is a multiple of it (nothing
/// moves); otherwise the usual or median gap, anchored where most timestamps sit, every
/// timestamp moved onto it when it is less than half a step off (and refused otherwise).
fn snap(
    rows: Vec<Row>,
    distinct: &[i64],
    err: ErrorAt<'_>,
) -> Result<(i64, Vec<Row>, Option<LoadNote>), DataError> {
    let smallest = distinct
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(1)
        .max(1);
    // The smallest gap is the step when every gap is a multiple of it and it is common enough
    // (5 % of the gaps) not to be one late sample's distance to its neighbour.
    let gaps = distinct.len().saturating_sub(1);
    let at_smallest = distinct
        .windows(2)
        .filter(|w| w[1] - w[0] == smallest)
        .count();
    if distinct.windows(2).all(|w| (w[1] - w[0]) % smallest == 0) && 20 * at_smallest >= gaps {
        return Ok((smallest, rows, None));
    }
    let interval = jittered_interval(distinct);
    let first = distinct[0];
    let mut offsets: Vec<i64> = distinct
        .iter()
        .map(|&t| centred_mod(t - first, interval))
        .collect();
    offsets.sort_unstable();
    let anchor = first + offsets[offsets.len() / 2];
    let mut moved = 0usize;
    let mut first_moved = None;
    let mut largest = 0i64;
    let mut snapped = Vec::with_capacity(rows.len());
    for mut r in rows {
        let offset = centred_mod(r.ts - anchor, interval);
        if 2 * offset.abs() >= interval {
            // Too far to snap: the gap from the timestamp before is not a step of the grid.
            let i = distinct.partition_point(|&t| t < r.ts);
            let gap = if i > 0 { r.ts - distinct[i - 1] } else { 0 };
            return Err(err(Some(r.line), Problem::OffGrid { gap, interval }));
        }
        if offset != 0 {
            moved += 1;
            first_moved.get_or_insert(r.line);
            largest = largest.max(offset.abs());
            r.ts -= offset;
        }
        snapped.push(r);
    }
    let note = (moved > 0).then(|| LoadNote::Snapped {
        rows: moved,
        first_line: first_moved.unwrap_or(0),
        largest_secs: largest,
        interval,
    });
    Ok((interval, snapped, note))
}

/// Rows sharing a timestamp (repeated, or snapped together) merged by the policy; the rest in
/// time order.
fn merge(
    rows: Vec<Row>,
    policy: DuplicatePolicy,
    err: ErrorAt<'_>,
) -> Result<(Vec<Row>, Option<LoadNote>), DataError> {
    let mut order: Vec<usize> = (0..rows.len()).collect();
    order.sort_by_key(|&i| (rows[i].ts, i)); // stable: file order within a timestamp
    let mut kept: Vec<Row> = Vec::with_capacity(rows.len());
    // Per kept row: the sum and count of the values present (for `mean`).
    let mut sums: Vec<(f64, usize)> = Vec::with_capacity(rows.len());
    let mut merged = 0usize;
    let mut first_merged: Option<u64> = None;
    for i in order {
        let r = rows[i];
        match (kept.last_mut(), sums.last_mut()) {
            (Some(last), Some(sum)) if last.ts == r.ts => {
                let line = r.line.max(last.line);
                if policy == DuplicatePolicy::Error {
                    return Err(err(
                        Some(line),
                        Problem::Duplicate {
                            ts: r.ts,
                            first_line: r.line.min(last.line),
                        },
                    ));
                }
                merged += 1;
                first_merged = Some(first_merged.map_or(line, |l| l.min(line)));
                match policy {
                    DuplicatePolicy::First | DuplicatePolicy::Error => {}
                    DuplicatePolicy::Last => *last = Row { ts: last.ts, ..r },
                    DuplicatePolicy::Mean => {
                        last.label = last.label.max(r.label);
                        if !r.value.is_nan() {
                            sum.0 += r.value;
                            sum.1 += 1;
                        }
                    }
                }
            }
            _ => {
                kept.push(r);
                sums.push(if r.value.is_nan() {
                    (0.0, 0)
                } else {
                    (r.value, 1)
                });
            }
        }
    }
    if policy == DuplicatePolicy::Mean {
        for (row, (sum, n)) in kept.iter_mut().zip(&sums) {
            row.value = if *n == 0 { f64::NAN } else { sum / *n as f64 };
        }
    }
    let note = (merged > 0).then(|| LoadNote::Duplicates {
        rows: merged,
        first_line: first_merged.unwrap_or(0),
        policy,
    });
    Ok((kept, note))
}
