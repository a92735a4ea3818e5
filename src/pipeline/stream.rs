//! Scoring a series as it arrives: one point at a time, each scored as soon as its window is
//! complete, with the score a batch [`super::detect`] of the same points gives it (a window's
//! samples are seeded by the run's seed and the window's index, counted from the first point).

use crate::config::DonutConfig;
use crate::data::Standardisation;
use crate::eval::pot::Spot;
use crate::model::{DonutModel, device_for};
use crate::score::{Scorer, WindowSource, anomaly_score, score_windows_here};
use serde::Serialize;

/// The most points a gap in the stream is filled with (about a year of minutes); a longer gap
/// is an error (a clock jump, or another series).
pub const MAX_GAP_POINTS: usize = 600_000;

/// One point of the stream, scored when it ends a full window.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct StreamPoint {
    /// Index from the first point of the stream.
    pub index: usize,
    /// Its time (unix seconds, or the row index).
    pub timestamp: i64,
    /// Its value (None: missing, filled in for a gap or an empty cell).
    pub value: Option<f64>,
    /// Its anomaly score (None for the first W-1 points).
    pub score: Option<f64>,
    /// True when the score reaches the threshold (missing points never are).
    pub flagged: bool,
}

/// What the stream did with rows that were not on the grid, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamNotes {
    /// Rows at or before a point already taken (late or duplicated): skipped.
    pub skipped: usize,
    /// Rows between two grid times: put on the nearest.
    pub snapped: usize,
    /// Points missing from the stream (gaps), filled in as missing.
    pub filled: usize,
}

/// Why a row could not be taken.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "a gap of {points} points (from {from} to {to}, every {interval} s): more than {MAX_GAP_POINTS}; is this the same series?"
)]
pub struct GapTooLong {
    /// Points the gap would fill.
    pub points: usize,
    /// The last time taken.
    pub from: i64,
    /// The time of the row.
    pub to: i64,
    /// The grid step.
    pub interval: i64,
}

/// A trained model scoring a stream (see the module docs).
pub struct Stream<'m> {
    scorer: Scorer<'m>,
    config: DonutConfig,
    stats: Standardisation,
    threshold: f64,
    interval: i64,
    start: Option<i64>,
    next_index: usize,
    values: Vec<f32>,
    missing: Vec<bool>,
    offset: usize,
    /// Streaming peaks over threshold: the tail that sets the threshold, updated with each
    /// point that is not flagged.
    tail: Option<Spot>,
    /// What was done with rows off the grid.
    pub notes: StreamNotes,
}

impl<'m> Stream<'m> {
    /// A stream scored with `model` (of a run with `config`), standardised with `stats`,
    /// flagged at `threshold`, on a grid of `interval` (seconds; 1 for a row index).
    pub fn new(
        model: &'m DonutModel,
        config: &DonutConfig,
        stats: Standardisation,
        threshold: f64,
        interval: i64,
    ) -> Self {
        Self {
            scorer: Scorer::new(model, config, &device_for(config.backend)),
            config: config.clone(),
            stats,
            threshold,
            interval: interval.max(1),
            start: None,
            next_index: 0,
            values: Vec::new(),
            missing: Vec::new(),
            offset: 0,
            tail: None,
            notes: StreamNotes::default(),
        }
    }

    /// Flags by a tail (peaks over threshold) that takes in each point it does not flag, as
    /// SPOT does: the threshold follows the normal scores of the stream, starting at the tail's
    /// own threshold. The scores stay those of a batch detection.
    pub fn with_tail(mut self, tail: Spot) -> Self {
        self.threshold = tail.fit().threshold;
        self.tail = Some(tail);
        self
    }

    /// The threshold the next point is flagged at.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Takes one row (`value` NaN when empty) and returns the points it completes: the points
    /// of a gap before it (missing), then itself, each scored once its window is full. A row
    /// at or before the last point taken returns nothing (counted in `notes.skipped`).
    pub fn push(&mut self, timestamp: i64, value: f64) -> Result<Vec<StreamPoint>, GapTooLong> {
        let start = *self.start.get_or_insert(timestamp);
        let offset_secs = timestamp - start;
        let steps = (offset_secs as f64 / self.interval as f64).round();
        if steps < self.next_index as f64 {
            self.notes.skipped += 1;
            return Ok(Vec::new());
        }
        let index = steps as usize;
        let gap = index - self.next_index;
        if gap > MAX_GAP_POINTS {
            return Err(GapTooLong {
                points: gap,
                from: start + (self.next_index as i64 - 1) * self.interval,
                to: timestamp,
                interval: self.interval,
            });
        }
        if offset_secs % self.interval != 0 {
            self.notes.snapped += 1;
        }
        self.notes.filled += gap;
        let filled = self.stats.standardise_bounded(0.0);
        let mut points = Vec::with_capacity(gap + 1);
        for i in self.next_index..=index {
            let present = i == index && !value.is_nan();
            let standardised = if present {
                self.stats.standardise_bounded(value)
            } else {
                filled
            };
            self.values.push(standardised);
            self.missing.push(!present);
            points.push(StreamPoint {
                index: i,
                timestamp: start + i as i64 * self.interval,
                value: present.then_some(value),
                score: None,
                flagged: false,
            });
        }
        self.next_index = index + 1;
        self.score(&mut points);
        self.trim();
        Ok(points)
    }

    /// Scores the points that end a full window; with `mask_flagged`, a flagged point is taken
    /// as missing in the windows after it. Only the last of `points` holds a value (the others
    /// fill a gap), so only it can be flagged, and no window scored here comes after it.
    fn score(&mut self, points: &mut [StreamPoint]) {
        let w = self.config.window;
        let ends: Vec<usize> = points
            .iter()
            .map(|p| p.index)
            .filter(|&i| i + 1 >= w)
            .collect();
        let log_p = self.log_p(&ends);
        let scored = points.iter_mut().filter(|p| p.index + 1 >= w);
        for (point, &lp) in scored.zip(&log_p) {
            let score = anomaly_score(lp);
            point.score = Some(score);
            point.flagged = point.value.is_some() && score >= self.threshold;
            if point.flagged && self.config.mask_flagged {
                self.missing[point.index - self.offset] = true;
            }
            if let Some(tail) = self.tail.as_mut().filter(|_| point.value.is_some())
                && tail.observe(score)
            {
                self.threshold = tail.fit().threshold;
            }
        }
    }

    /// Reconstruction log-probabilities of the windows ending at `ends` (series indices).
    fn log_p(&self, ends: &[usize]) -> Vec<f32> {
        if ends.is_empty() {
            return Vec::new();
        }
        let source = WindowSource {
            values: &self.values,
            missing: &self.missing,
            offset: self.offset,
            window: self.config.window,
        };
        score_windows_here(&self.scorer, &source, ends, &self.config)
    }

    /// Keeps only the last W-1 points (all the next window needs) once the buffer is long.
    fn trim(&mut self) {
        let keep = self.config.window.saturating_sub(1);
        if self.values.len() > 4 * self.config.window.max(256) {
            let drop = self.values.len() - keep;
            self.values.drain(..drop);
            self.missing.drain(..drop);
            self.offset += drop;
        }
    }

    /// Points taken so far (gaps included).
    pub fn len(&self) -> usize {
        self.next_index
    }

    /// True before the first point.
    pub fn is_empty(&self) -> bool {
        self.next_index == 0
    }
}
