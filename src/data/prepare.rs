//! From a loaded series to what the model reads: a complete time grid, the train / validation /
//! test split, standardised values, the missing and label masks, and windows named by their end.

use super::grid::LoadNote;
use super::load::{DataError, Problem, RawSeries};
use crate::config::DonutConfig;
use std::ops::Range;

/// One of the three consecutive parts of a series.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    /// The first part: the model learns from it.
    Train,
    /// The middle part: picks the best parameters.
    Valid,
    /// The last part: scored and evaluated.
    Test,
}

impl Part {
    /// All three, in time order.
    pub const ALL: [Part; 3] = [Part::Train, Part::Valid, Part::Test];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Valid => "validation",
            Part::Test => "test",
        }
    }
}

/// The mean and standard deviation a series is standardised with: its own train + validation
/// parts' when it is trained on; the training data's, kept in the run, when new data is scored.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardisation {
    /// Mean of the normal, present train + validation points.
    pub mean: f64,
    /// Their population standard deviation (1 for a constant series).
    pub std: f64,
}

impl Standardisation {
    /// Mean and population standard deviation of `values` (1 for a constant series, which is
    /// then only centred); None when there is none or they are not finite.
    pub fn fit(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
        if !mean.is_finite() || !std.is_finite() {
            return None;
        }
        let std = if std <= f64::EPSILON * mean.abs().max(1.0) {
            1.0
        } else {
            std
        };
        Some(Self { mean, std })
    }

    /// One value standardised for a trained model: always a finite number that keeps the
    /// order of the values. Beyond [`Self::BOUND_SIGMAS`] standard deviations the distance is
    /// compressed logarithmically (`B + ln(1 + |z| - B)`), so that 1e6, 1e30 and 1e308 stay
    /// finite, apart and in order however the model's arithmetic treats them.
    pub fn standardise_bounded(&self, value: f64) -> f32 {
        let z = (value - self.mean) / self.std;
        let z = if z.is_nan() {
            0.0
        } else {
            z.clamp(-f64::MAX, f64::MAX)
        };
        let b = Self::BOUND_SIGMAS;
        let z = if z.abs() > b {
            z.signum() * (b + (z.abs() - b).ln_1p())
        } else {
            z
        };
        z as f32
    }

    /// Distance from the mean (in standard deviations) beyond which
    /// [`Self::standardise_bounded`] compresses.
    pub const BOUND_SIGMAS: f64 = 1e4;

    /// `values` standardised; None when one does not stay finite.
    pub fn apply(&self, values: &[f64]) -> Option<Vec<f32>> {
        let out: Vec<f32> = values
            .iter()
            .map(|v| ((v - self.mean) / self.std) as f32)
            .collect();
        out.iter().all(|v| v.is_finite()).then_some(out)
    }
}

/// A series ready for the model.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// Where the data came from.
    pub source: String,
    /// Complete, regular grid of times (unix seconds, or row index).
    pub timestamps: Vec<i64>,
    /// Grid step in seconds (or 1 for an index).
    pub interval: i64,
    /// Values as in the file; 0 where missing (DONUT's fill).
    pub raw_values: Vec<f64>,
    /// Standardised values (missing points keep their filled 0, i.e. -mean/std).
    pub values: Vec<f32>,
    /// 1 = labelled anomaly (0 for filled points).
    pub labels: Vec<u8>,
    /// True where the point was absent from the file or had an empty value.
    pub missing: Vec<bool>,
    /// Mean used to standardise.
    pub mean: f64,
    /// Standard deviation used to standardise (1 for a constant series).
    pub std: f64,
    /// Point ranges of the train, validation and test parts.
    pub parts: [Range<usize>; 3],
    /// Window length W.
    pub window: usize,
    /// Whether the file had a timestamp column.
    pub has_timestamps: bool,
    /// Whether the file had a label column.
    pub has_labels: bool,
    /// The loading policies that were applied to the file.
    pub notes: Vec<LoadNote>,
    /// What makes results on this data doubtful.
    pub warnings: Vec<DataWarning>,
}

/// Something in the data that makes results doubtful, found when it is prepared. Each says what
/// it does to the results.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataWarning {
    /// The training part (nearly) does not move.
    ConstantTraining {
        /// Spread of the training part relative to the whole series'.
        relative_std: f64,
    },
    /// Enough points are missing, or a gap is long enough, to move the results.
    #[serde(alias = "mostly_missing")]
    MissingPoints {
        /// Share of the series missing.
        share: f64,
        /// The longest run of missing points.
        longest_gap: usize,
        /// Its length in seconds (points for a series without timestamps).
        longest_gap_secs: i64,
        /// The window length: a gap of at least this leaves windows with no data at all.
        window: usize,
    },
    /// Over half of the training part is labelled anomalous.
    AnomalousTraining {
        /// Share of the training part labelled anomalous.
        share: f64,
    },
    /// Fewer than two batches of training windows.
    FewWindows {
        /// Training windows.
        windows: usize,
        /// Windows per batch.
        batch_size: usize,
    },
    /// The file has no label column.
    NoLabels,
    /// The file has labels, but none in the test part.
    NoTestLabels,
    /// The test part's level is far from the training part's.
    LevelShift {
        /// Difference of the means, in standard deviations of the train and validation parts.
        sigmas: f64,
    },
    /// New data scored with a trained model lies far from the training data's level.
    LevelShiftFromTraining {
        /// Distance of the median from the training mean, in training standard deviations.
        sigmas: f64,
    },
}

impl std::fmt::Display for DataWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ConstantTraining { relative_std } => write!(
                f,
                "the training part is (nearly) constant (its spread is {:.2} % of the series'): the model learns almost nothing normal, and every movement in the test part scores as anomalous",
                relative_std * 100.0
            ),
            Self::MissingPoints {
                share,
                longest_gap,
                longest_gap_secs,
                window,
            } => {
                write!(
                    f,
                    "{:.1} % of the points are missing, the longest gap {longest_gap} points ({}): missing points are left out of the training loss (alpha = 0) and imputed by MCMC when scored, so the model learns from less and scores near gaps rest partly on imputed values",
                    share * 100.0,
                    duration_text(*longest_gap_secs)
                )?;
                if longest_gap >= window {
                    write!(
                        f,
                        "; windows inside a gap of {window} points or more hold no data at all, and the first scores after it are the least reliable"
                    )?;
                }
                Ok(())
            }
            Self::AnomalousTraining { share } => write!(
                f,
                "{:.0} % of the training part is labelled anomalous: those points are hidden from the reconstruction term, so the model learns from the rest only",
                share * 100.0
            ),
            Self::FewWindows {
                windows,
                batch_size,
            } => write!(
                f,
                "only {windows} training windows (fewer than two batches of {batch_size}): too few to train a stable model; results will vary a lot between seeds (use a longer series, a smaller window, or a smaller test part)"
            ),
            Self::NoLabels => write!(
                f,
                "the file has no label column: no precision, recall or F1 can be computed, and points are flagged by a threshold that needs no labels (a share of normal scores, setting `alarm_rate`)"
            ),
            Self::NoTestLabels => write!(
                f,
                "the test part has no labelled anomaly: no F1 can be computed; points are flagged by a threshold on the validation scores (setting `alarm_rate`)"
            ),
            Self::LevelShift { sigmas } => write!(
                f,
                "the test part's level differs from the training part's by {sigmas:.1} standard deviations: much of the test part may score as anomalous"
            ),
            Self::LevelShiftFromTraining { sigmas } => write!(
                f,
                "this series' level differs from the training data's by {sigmas:.1} of its standard deviations: much of it may score as anomalous (the model only knows the training data's level)"
            ),
        }
    }
}

/// A share of missing points from which results move measurably (see the missing-points
/// measurements in docs/RESULTS.md); a gap of a window or longer is warned about whatever the
/// share.
pub const MISSING_SHARE_WARNING: f64 = 0.02;

/// A span of seconds in the largest unit that fits: "3.0 days", "5.0 h", "12 min", "40 s".
fn duration_text(secs: i64) -> String {
    match secs {
        s if s >= 86_400 => format!("{:.1} days", s as f64 / 86_400.0),
        s if s >= 3_600 => format!("{:.1} h", s as f64 / 3_600.0),
        s if s >= 60 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// The missing-points warning for `missing` (one flag a point on a grid of `interval`
/// seconds), when the share or the longest gap could move the results.
fn missing_warning(missing: &[bool], interval: i64, window: usize) -> Option<DataWarning> {
    let count = missing.iter().filter(|&&m| m).count();
    let (mut longest, mut run) = (0usize, 0usize);
    for &m in missing {
        run = if m { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let share = count as f64 / missing.len().max(1) as f64;
    (share >= MISSING_SHARE_WARNING || (longest >= window && longest > 0)).then_some(
        DataWarning::MissingPoints {
            share,
            longest_gap: longest,
            longest_gap_secs: longest as i64 * interval.max(1),
            window,
        },
    )
}

/// Mean and population standard deviation of `value(i)` over the present, normal points of
/// `range`.
fn spread(
    value: impl Fn(usize) -> f64,
    labels: &[u8],
    missing: &[bool],
    range: Range<usize>,
) -> Option<(f64, f64)> {
    let v: Vec<f64> = range
        .filter(|&i| labels[i] == 0 && !missing[i])
        .map(value)
        .collect();
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / v.len() as f64;
    Some((mean, var.sqrt()))
}

impl Prepared {
    /// The warnings for a prepared series (see [`DataWarning`]).
    fn find_warnings(&self, config: &DonutConfig) -> Vec<DataWarning> {
        let mut out = Vec::new();
        let n = self.len();
        let train = self.part(Part::Train);
        let raw = |i: usize| self.raw_values[i];
        let all = spread(raw, &self.labels, &self.missing, 0..n);
        let trained = spread(raw, &self.labels, &self.missing, train.clone());
        if let (Some((_, all_std)), Some((_, train_std))) = (all, trained) {
            let relative_std = if all_std > 0.0 {
                train_std / all_std
            } else {
                0.0
            };
            if relative_std < 0.01 {
                out.push(DataWarning::ConstantTraining { relative_std });
            }
        }
        out.extend(missing_warning(&self.missing, self.interval, self.window));
        let anomalous = train.clone().filter(|&i| self.labels[i] == 1).count();
        let share = anomalous as f64 / train.len().max(1) as f64;
        if share > 0.5 {
            out.push(DataWarning::AnomalousTraining { share });
        }
        let windows = self.window_ends(Part::Train).len();
        if windows < 2 * config.batch_size {
            out.push(DataWarning::FewWindows {
                windows,
                batch_size: config.batch_size,
            });
        }
        if !self.has_labels {
            out.push(DataWarning::NoLabels);
        } else if !self.labels[self.part(Part::Test)].contains(&1) {
            out.push(DataWarning::NoTestLabels);
        }
        let test = spread(
            |i| self.values[i] as f64,
            &self.labels,
            &self.missing,
            self.part(Part::Test),
        );
        if let Some((test_mean, _)) = test {
            // Standardised values: the train + validation parts have mean 0 and std 1.
            let constant = out
                .iter()
                .any(|w| matches!(w, DataWarning::ConstantTraining { .. }));
            if test_mean.abs() > 3.0 && !constant {
                out.push(DataWarning::LevelShift {
                    sigmas: test_mean.abs(),
                });
            }
        }
        out
    }

    /// Completes, splits, standardises a raw series for windows of `config.window`.
    pub fn new(raw: &RawSeries, config: &DonutConfig) -> Result<Self, DataError> {
        Self::new_with(raw, config, None)
    }

    /// As [`Prepared::new`], standardised with `stats` when given (a trained model's training
    /// statistics) instead of the series' own.
    pub fn new_with(
        raw: &RawSeries,
        config: &DonutConfig,
        stats: Option<Standardisation>,
    ) -> Result<Self, DataError> {
        let err = |problem| DataError {
            file: raw.source.clone(),
            line: None,
            problem,
        };
        let window = config.window;
        let (timestamps, raw_values, labels, missing) = complete(raw);
        let n = timestamps.len();

        let n_test = (n as f64 * config.test_fraction) as usize;
        let n_rest = n - n_test;
        let n_valid = (n_rest as f64 * config.valid_fraction) as usize;
        let n_train = n_rest - n_valid;
        let parts = [0..n_train, n_train..n_rest, n_rest..n];
        for (part, range) in Part::ALL.iter().zip(&parts) {
            let short = range.len() < window && !(*part == Part::Valid && range.is_empty());
            if short {
                return Err(err(Problem::TooShort {
                    points: n,
                    part: part.name(),
                    part_points: range.len(),
                    window,
                }));
            }
        }

        // Mean and population std over normal, present train + validation points.
        let fit: Vec<f64> = (0..n_rest)
            .filter(|&i| labels[i] == 0 && !missing[i])
            .map(|i| raw_values[i])
            .collect();
        if fit.is_empty() {
            return Err(err(Problem::NoNormalPoints));
        }
        let own = Standardisation::fit(&fit).ok_or_else(|| err(Problem::Unstandardisable))?;
        let Standardisation { mean, std } = stats.unwrap_or(own);
        let values = Standardisation { mean, std }
            .apply(&raw_values)
            .ok_or_else(|| err(Problem::Unstandardisable))?;

        let mut prepared = Self {
            source: raw.source.clone(),
            timestamps,
            interval: raw.interval,
            raw_values,
            values,
            labels,
            missing,
            mean,
            std,
            parts,
            window,
            has_timestamps: raw.has_timestamps,
            has_labels: raw.has_labels,
            notes: raw.notes.clone(),
            warnings: Vec::new(),
        };
        prepared.warnings = prepared.find_warnings(config);
        Ok(prepared)
    }

    /// Prepares new data for a trained model: the complete grid, standardised with the
    /// training data's `stats` (not its own), every point in one part (`Part::Test`) so that
    /// every point with a full window of `window` points before it is scored. The warnings say
    /// when the data are mostly missing, unlabelled, or far from the training data's level.
    pub fn for_detection(
        raw: &RawSeries,
        window: usize,
        stats: Standardisation,
    ) -> Result<Self, DataError> {
        let (timestamps, raw_values, labels, missing) = complete(raw);
        let n = timestamps.len();
        if n < window {
            return Err(DataError {
                file: raw.source.clone(),
                line: None,
                problem: Problem::TooShort {
                    points: n,
                    part: "scored",
                    part_points: n,
                    window,
                },
            });
        }
        // The training statistics only: nothing about this file's spread can refuse it.
        let values: Vec<f32> = raw_values
            .iter()
            .map(|&v| stats.standardise_bounded(v))
            .collect();
        let mut prepared = Self {
            source: raw.source.clone(),
            timestamps,
            interval: raw.interval,
            raw_values,
            values,
            labels,
            missing,
            mean: stats.mean,
            std: stats.std,
            parts: [0..0, 0..0, 0..n],
            window,
            has_timestamps: raw.has_timestamps,
            has_labels: raw.has_labels,
            notes: raw.notes.clone(),
            warnings: Vec::new(),
        };
        let mut warnings = Vec::new();
        warnings.extend(missing_warning(
            &prepared.missing,
            prepared.interval,
            window,
        ));
        if !prepared.has_labels {
            warnings.push(DataWarning::NoLabels);
        }
        // The level by the median, which one extreme point does not move.
        let mut normal: Vec<f64> = (0..n)
            .filter(|&i| prepared.labels[i] == 0 && !prepared.missing[i])
            .map(|i| prepared.values[i] as f64)
            .collect();
        normal.sort_by(f64::total_cmp);
        if let Some(&median) = normal.get(normal.len() / 2)
            && median.abs() > 3.0
        {
            warnings.push(DataWarning::LevelShiftFromTraining {
                sigmas: median.abs(),
            });
        }
        prepared.warnings = warnings;
        Ok(prepared)
    }

    /// The mean and standard deviation this series was standardised with.
    pub fn standardisation(&self) -> Standardisation {
        Standardisation {
            mean: self.mean,
            std: self.std,
        }
    }

    /// Number of points on the complete grid.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// True when there are no points (never, for a successfully prepared series).
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The point range of a part.
    pub fn part(&self, part: Part) -> Range<usize> {
        self.parts[part as usize].clone()
    }

    /// The part that holds point `index`.
    pub fn part_of(&self, index: usize) -> Part {
        if index < self.parts[1].start {
            Part::Train
        } else if index < self.parts[2].start {
            Part::Valid
        } else {
            Part::Test
        }
    }

    /// Indices of the last points of the windows of `part`. Training and validation windows lie
    /// inside their part (its first W-1 points end no window; empty when the part is shorter
    /// than a window). Every test point ends a window: the first W-1 take their context from
    /// the points before the test part (values known at that time), so the whole test part is
    /// scored and evaluated.
    pub fn window_ends(&self, part: Part) -> Range<usize> {
        let r = self.part(part);
        if part == Part::Test && r.start + 1 >= self.window {
            r
        } else if r.len() < self.window {
            r.start..r.start
        } else {
            r.start + self.window - 1..r.end
        }
    }

    /// The standardised values of the window ending at `end`.
    pub fn window_values(&self, end: usize) -> &[f32] {
        &self.values[end + 1 - self.window..=end]
    }

    /// Number of points missing from the file.
    pub fn missing_count(&self) -> usize {
        self.missing.iter().filter(|&&m| m).count()
    }

    /// Number of labelled anomalous points.
    pub fn anomaly_count(&self) -> usize {
        self.labels.iter().filter(|&&l| l == 1).count()
    }

    /// Roughness of the standardised series (see [`roughness`]).
    pub fn roughness(&self) -> f64 {
        roughness(&self.values, &self.missing)
    }
}

/// Completes the grid: every step from the first to the last timestamp, with filled points
/// (value 0, label 0, missing). Empty values in the file are missing too.
fn complete(raw: &RawSeries) -> (Vec<i64>, Vec<f64>, Vec<u8>, Vec<bool>) {
    let first = raw.timestamps[0];
    let last = raw.timestamps[raw.timestamps.len() - 1];
    let n = ((last - first) / raw.interval) as usize + 1;
    let timestamps: Vec<i64> = (0..n as i64).map(|i| first + i * raw.interval).collect();
    let mut values = vec![0.0; n];
    let mut labels = vec![0u8; n];
    let mut missing = vec![true; n];
    for ((&ts, &v), &l) in raw.timestamps.iter().zip(&raw.values).zip(&raw.labels) {
        let i = ((ts - first) / raw.interval) as usize;
        labels[i] = l;
        if v.is_nan() {
            values[i] = 0.0;
        } else {
            values[i] = v;
            missing[i] = false;
        }
    }
    (timestamps, values, labels, missing)
}

/// Roughness: the mean of squared second differences `(x[t+1] - 2 x[t] + x[t-1])^2` over triples
/// with no missing point, a finite-difference estimate of the integral of the squared second
/// derivative (DONUT.md section 7). 0 for a series with fewer than three points.
pub fn roughness(values: &[f32], missing: &[bool]) -> f64 {
    let mut sum = 0.0;
    let mut count = 0usize;
    for t in 1..values.len().saturating_sub(1) {
        if missing[t - 1] || missing[t] || missing[t + 1] {
            continue;
        }
        let d = values[t + 1] as f64 - 2.0 * values[t] as f64 + values[t - 1] as f64;
        sum += d * d;
        count += 1;
    }
    if count == 0 { 0.0 } else { sum / count as f64 }
}
