//! Reading a KPI series from CSV.
//!
//! Accepted: a header row naming the columns (`timestamp`, `value`, optional `label`, under several
//! common names, or chosen by [`ColumnChoice`]; extra columns are ignored), in any order; `,` `;`
//! or tab as delimiter (detected from the header; with `;`, decimal commas); an optional UTF-8
//! byte-order mark; CRLF line ends; quoted fields. Timestamps are unix seconds (integers, or
//! milliseconds when >= 1e11), or dates (`2016-07-24T16:00:00Z`, `2016-07-24 16:00:00`, ...), read as
//! UTC when no offset is given. Without a timestamp column the row index is the time. An empty
//! value cell is a missing point. Repeated timestamps and jitter are put on a grid by the
//! policies of [`super::grid`], each reported once in [`RawSeries::notes`]. Everything else that
//! is off is a [`DataError`] naming the file, the line and the problem.

use super::grid::{LoadNote, Row, to_grid};
use crate::config::DuplicatePolicy;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::Path;

/// Which columns hold the time, the value and the label: each a header name (any case) or a
/// 1-based column number; an empty name for none (the row index as the time, no labels); None
/// picks by the usual names (`timestamp`/`time`/`date`..., `value`/`kpi`/`y`,
/// `label`/`is_anomaly`...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ColumnChoice {
    /// The time column.
    pub time: Option<String>,
    /// The value column.
    pub value: Option<String>,
    /// The label column.
    pub label: Option<String>,
}

impl ColumnChoice {
    /// True when no column is chosen (names are recognised).
    pub fn is_auto(&self) -> bool {
        self.time.is_none() && self.value.is_none() && self.label.is_none()
    }
}

/// How to read a file: its columns, the policy for repeated timestamps, and what a bad row
/// does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Which column is which.
    pub columns: ColumnChoice,
    /// What to do with rows that share a timestamp.
    pub duplicates: DuplicatePolicy,
    /// Keep reading past bad rows (detection on live data): a value that is not a finite
    /// number becomes a missing point, a row that cannot be placed in time (no readable time,
    /// too few fields, back in time) is skipped, each reported in a [`LoadNote::BadRows`].
    /// Off (the default, for training), the first bad row refuses the file.
    pub lenient: bool,
}

/// Lines named in a [`LoadNote::BadRows`] (the rest are counted).
const BAD_ROWS_NAMED: usize = 10;

/// The bad rows of a lenient read, counted, the first few named.
#[derive(Default)]
struct BadRows {
    missing: usize,
    skipped: usize,
    named: Vec<String>,
}

impl BadRows {
    fn name(&mut self, e: &DataError, action: &str) {
        if self.named.len() < BAD_ROWS_NAMED {
            let at = e.line.map(|l| format!("line {l}: ")).unwrap_or_default();
            self.named.push(format!("{at}{}: {action}", e.problem));
        }
    }

    fn patched(&mut self, e: &DataError) {
        self.missing += 1;
        self.name(e, "kept, its value as missing");
    }

    fn skipped(&mut self, e: &DataError) {
        self.skipped += 1;
        self.name(e, "skipped");
    }

    /// `rows` without those that go back in time (earlier than a row before them, other than a
    /// repeat of a timestamp already seen, which the duplicate policy takes).
    fn without_rows_back_in_time(&mut self, rows: Vec<Row>, name: &str) -> Vec<Row> {
        let mut seen = std::collections::HashSet::with_capacity(rows.len());
        let mut latest = i64::MIN;
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            if row.ts < latest && !seen.contains(&row.ts) {
                let e = DataError {
                    file: name.to_string(),
                    line: Some(row.line),
                    problem: Problem::Unsorted {
                        ts: row.ts,
                        previous: latest,
                    },
                };
                self.skipped(&e);
                continue;
            }
            latest = latest.max(row.ts);
            seen.insert(row.ts);
            kept.push(row);
        }
        kept
    }

    fn note(self) -> Option<LoadNote> {
        (self.missing + self.skipped > 0).then_some(LoadNote::BadRows {
            missing: self.missing,
            skipped: self.skipped,
            named: self.named,
        })
    }
}

/// A row read leniently ([`RowReader::next_row_lenient`]).
#[derive(Clone, Debug, PartialEq)]
pub enum LenientRow {
    /// A good row.
    Row(Row),
    /// A row kept with what could be read: its value as missing (NaN), or its label as 0;
    /// the error says what was wrong.
    Patched(Row, DataError),
    /// A row that cannot be placed in time (no readable timestamp, too few fields, broken
    /// CSV): skipped.
    Skipped(DataError),
}

/// A series as read from a file: sorted, unique, on a regular grid (gaps allowed), not yet completed.
#[derive(Clone, Debug, PartialEq)]
pub struct RawSeries {
    /// Where it came from (a path, or a name for built-in data).
    pub source: String,
    /// Unix seconds (or the row index when the file has no timestamp column), strictly increasing.
    pub timestamps: Vec<i64>,
    /// Values; NaN marks a cell that was empty in the file (a missing point).
    pub values: Vec<f64>,
    /// 1 = anomaly. All 0 when the file has no label column.
    pub labels: Vec<u8>,
    /// The grid step in seconds (1 for an index): see `grid::to_grid` for how it is found.
    pub interval: i64,
    /// Whether the file had a timestamp column.
    pub has_timestamps: bool,
    /// Whether the file had a label column.
    pub has_labels: bool,
    /// The header names of the columns read (time, value, label).
    pub columns: [Option<String>; 3],
    /// The loading policies applied (duplicates merged, timestamps snapped, decimal commas).
    pub notes: Vec<LoadNote>,
}

/// What is wrong with an input file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    /// The file could not be opened or read.
    #[error("cannot read the file: {0}")]
    Io(#[source] IoError),
    /// Nothing in the file.
    #[error("the file is empty")]
    Empty,
    /// The first row holds data, not column names.
    #[error(
        "no header row: the first line must name the columns (e.g. `timestamp,value,label`), found {0:?}"
    )]
    NoHeader(String),
    /// No column called `value` (or any other name for it), and none chosen.
    #[error(
        "no value column recognised in the header (found columns: {0}): name one with --value-column (and --time-column, --label-column), or pick it in the app"
    )]
    NoValueColumn(String),
    /// A chosen column that the header does not have.
    #[error("no column {name:?} for the {role} (found columns: {columns})")]
    UnknownColumn {
        /// time, value or label.
        role: &'static str,
        /// The name or number asked for.
        name: String,
        /// The header's columns.
        columns: String,
    },
    /// A header but no data rows.
    #[error("the file has a header but no data rows")]
    NoRows,
    /// Bytes that are not UTF-8.
    #[error("invalid UTF-8 text")]
    InvalidUtf8,
    /// The CSV structure itself is broken (unterminated quote, ...).
    #[error("malformed CSV: {0}")]
    Malformed(String),
    /// A row with fewer cells than the header needs.
    #[error("the row has {found} fields but the `{column}` column is field {needed}")]
    MissingField {
        /// Cells in the row.
        found: usize,
        /// 1-based position of the column.
        needed: usize,
        /// The column's name.
        column: String,
    },
    /// A number cell that is not a number.
    #[error("column `{column}`: {text:?} is not a number")]
    NotANumber {
        /// The column's name.
        column: String,
        /// The cell (shortened).
        text: String,
    },
    /// NaN or infinity in the value column.
    #[error("column `value`: {0} is not a finite number")]
    NotFinite(String),
    /// A timestamp that is not a known format.
    #[error("column `timestamp`: {0:?} is not a unix time or a date (e.g. 2016-07-24 16:00:00)")]
    BadTimestamp(String),
    /// A timestamp that is negative or beyond year 9999.
    #[error("column `timestamp`: {0} is out of range (before 1970 or after 9999)")]
    TimestampOutOfRange(String),
    /// Milliseconds that are not whole seconds.
    #[error(
        "column `timestamp`: {0} ms is not a whole second; sub-second sampling is not supported"
    )]
    SubSecond(i64),
    /// A label other than 0/1.
    #[error("column `label`: {0:?} is not 0 or 1")]
    BadLabel(String),
    /// The same timestamp twice.
    #[error("duplicate timestamp {ts} (also on line {first_line})")]
    Duplicate {
        /// The timestamp.
        ts: i64,
        /// Where it was seen first.
        first_line: u64,
    },
    /// In a stream, a time at or before a point already taken.
    #[error(
        "timestamp {ts} is at or before a point already taken (a repeated time, or a row back in time)"
    )]
    Repeated {
        /// The row's timestamp.
        ts: i64,
    },
    /// A timestamp earlier than the one before it.
    #[error(
        "timestamp {ts} is earlier than {previous} on the line before; rows must be in time order"
    )]
    Unsorted {
        /// This row's timestamp.
        ts: i64,
        /// The previous row's timestamp.
        previous: i64,
    },
    /// A gap that is not a multiple of the interval, by half an interval or more (less is
    /// jitter, snapped onto the grid).
    #[error(
        "irregular sampling: gap of {gap} s from the previous row is not a multiple of the interval {interval} s (off by half an interval or more, too far to snap)"
    )]
    OffGrid {
        /// The gap.
        gap: i64,
        /// The grid step.
        interval: i64,
    },
    /// A part of the split holds fewer points than one window.
    #[error(
        "the series has {points} points; its {part} part holds {part_points}, fewer than the window of {window} (lower `window` or use a longer series)"
    )]
    TooShort {
        /// Points in the completed series.
        points: usize,
        /// Which part is too short.
        part: &'static str,
        /// Points in that part.
        part_points: usize,
        /// The window length.
        window: usize,
    },
    /// No point to compute mean and standard deviation from.
    #[error(
        "no point of the train and validation parts is both normal and present: cannot standardise (are all points labelled anomalous?)"
    )]
    NoNormalPoints,
    /// Values so large that their standard deviation overflows.
    #[error("the values are too large to standardise (their standard deviation overflows)")]
    Unstandardisable,
    /// Too many points once the gaps are filled.
    #[error(
        "filling the gaps would create {0} points (more than 50,000,000): check the timestamps"
    )]
    TooLong(u64),
}

/// An I/O error, shared between the clones of a [`Problem`] and compared by kind and message.
#[derive(Debug, Clone)]
pub struct IoError(pub std::sync::Arc<std::io::Error>);

impl From<std::io::Error> for IoError {
    fn from(e: std::io::Error) -> Self {
        Self(std::sync::Arc::new(e))
    }
}

impl PartialEq for IoError {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind() == other.0.kind() && self.0.to_string() == other.0.to_string()
    }
}

impl std::fmt::Display for IoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for IoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.0.as_ref())
    }
}

/// A bad input: which file, which line (1-based, the header is line 1), and what is wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}{}: {problem}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
pub struct DataError {
    /// The file (or source name).
    pub file: String,
    /// The line, when one is to blame.
    pub line: Option<u64>,
    /// What is wrong.
    pub problem: Problem,
}

impl DataError {
    /// True when the file could be read once its columns are named (the header has no
    /// recognised value column, or a chosen column is not there).
    pub fn asks_for_columns(&self) -> bool {
        matches!(
            self.problem,
            Problem::NoValueColumn(_) | Problem::UnknownColumn { .. }
        )
    }
}

/// Largest number of points a completed series may have.
pub const MAX_POINTS: u64 = 50_000_000;

/// Loads a CSV file with the default options. See the module docs for what is accepted.
pub fn load_csv(path: &Path) -> Result<RawSeries, DataError> {
    load_csv_with(path, &LoadOptions::default())
}

/// Loads a CSV file with `options` (columns, duplicate policy).
pub fn load_csv_with(path: &Path, options: &LoadOptions) -> Result<RawSeries, DataError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|e| DataError {
        file: name.clone(),
        line: None,
        problem: Problem::Io(e.into()),
    })?;
    parse_csv_with(std::io::BufReader::new(file), &name, options)
}

/// The first lines of a CSV, split into cells: what the app shows when it asks which column is
/// which. `rows` data rows at most.
#[derive(Clone, Debug, PartialEq)]
pub struct Preview {
    /// The header's names.
    pub columns: Vec<String>,
    /// The first data rows.
    pub rows: Vec<Vec<String>>,
}

/// Reads the header and the first `rows` rows of a CSV.
pub fn preview_csv(path: &Path, rows: usize) -> Result<Preview, DataError> {
    let name = path.display().to_string();
    let err = |line, problem| DataError {
        file: name.clone(),
        line,
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| err(None, Problem::Io(e.into())))?;
    let mut head = Vec::new();
    std::io::BufReader::new(file)
        .take(256 * 1024)
        .read_to_end(&mut head)
        .map_err(|e| err(None, Problem::Io(e.into())))?;
    let body = without_bom(&head);
    let mut csv = csv_reader(sniff_delimiter(body), body);
    let mut lines = csv
        .records()
        .take(rows + 1)
        .filter_map(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect::<Vec<_>>());
    let columns = lines.next().ok_or_else(|| err(None, Problem::Empty))?;
    Ok(Preview {
        columns,
        rows: lines.collect(),
    })
}

fn shorten(text: &str) -> String {
    const MAX: usize = 40;
    if text.chars().count() <= MAX {
        text.to_string()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}... ({} bytes)", text.len())
    }
}

/// The bytes after a UTF-8 byte-order mark, if there is one.
fn without_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes)
}

/// How every CSV is read: header handled by the caller, ragged rows allowed (and named when a
/// needed cell is missing), cells trimmed.
fn csv_reader<R: Read>(delimiter: u8, reader: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader)
}

/// Guesses the delimiter from the header line: whichever of `,` `;` tab occurs most (`,` on a tie).
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = &head[..line_end];
    let count = |d: u8| line.iter().filter(|&&b| b == d).count();
    let mut best = (b',', count(b','));
    for d in [b';', b'\t'] {
        let n = count(d);
        if n > best.1 {
            best = (d, n);
        }
    }
    best.0
}

const TIMESTAMP_NAMES: &[&str] = &["timestamp", "time", "ts", "date", "datetime"];
const VALUE_NAMES: &[&str] = &["value", "kpi", "y"];
const LABEL_NAMES: &[&str] = &["label", "labels", "is_anomaly", "anomaly"];

fn find_column(header: &[String], names: &[&str]) -> Option<usize> {
    header
        .iter()
        .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
}

/// The column chosen as `choice` (a name, any case, or a 1-based number).
fn chosen_column(header: &[String], role: &'static str, choice: &str) -> Result<usize, Problem> {
    let choice = choice.trim();
    header
        .iter()
        .position(|h| h.eq_ignore_ascii_case(choice))
        .or_else(|| {
            choice
                .parse::<usize>()
                .ok()
                .filter(|&n| (1..=header.len()).contains(&n))
                .map(|n| n - 1)
        })
        .ok_or_else(|| Problem::UnknownColumn {
            role,
            name: choice.to_string(),
            columns: shorten(&header.join(", ")),
        })
}

/// The column for a role: the chosen one, else the first with a usual name.
fn resolve_column(
    header: &[String],
    role: &'static str,
    choice: Option<&str>,
    names: &[&str],
) -> Result<Option<usize>, Problem> {
    match choice {
        Some(c) if c.trim().is_empty() => Ok(None),
        Some(c) => chosen_column(header, role, c).map(Some),
        None => Ok(find_column(header, names)),
    }
}

/// Reads a number cell; with `decimal_comma`, `1,25` (and `1.234,5`) too. Returns the value
/// and whether a decimal comma was read.
fn parse_number(text: &str, decimal_comma: bool) -> Option<(f64, bool)> {
    if let Ok(v) = text.parse::<f64>() {
        return Some((v, false));
    }
    if decimal_comma && text.contains(',') {
        let normal: String = text.replace('.', "").replace(',', ".");
        return normal.parse::<f64>().ok().map(|v| (v, true));
    }
    None
}

/// The last second of year 9999, the latest timestamp accepted.
const MAX_SECS: i64 = 253_402_300_799;

/// Parses a timestamp cell into unix seconds, between 1970 and the end of 9999.
fn parse_timestamp(text: &str) -> Result<i64, Problem> {
    let secs = parse_timestamp_unchecked(text)?;
    if !(0..=MAX_SECS).contains(&secs) {
        return Err(Problem::TimestampOutOfRange(shorten(text)));
    }
    Ok(secs)
}

fn parse_timestamp_unchecked(text: &str) -> Result<i64, Problem> {
    let integral = text.parse::<i64>().ok().or_else(|| {
        text.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15)
            .map(|f| f as i64)
    });
    if let Some(n) = integral {
        if n < 0 {
            return Err(Problem::TimestampOutOfRange(text.to_string()));
        }
        // Unix seconds reach 1e11 only in the year 5138: larger numbers are milliseconds.
        let secs = if n >= 100_000_000_000 { n / 1000 } else { n };
        if secs > MAX_SECS {
            return Err(Problem::TimestampOutOfRange(text.to_string()));
        }
        if n >= 100_000_000_000 && n % 1000 != 0 {
            return Err(Problem::SubSecond(n));
        }
        return Ok(secs);
    }
    if text.parse::<f64>().is_ok() {
        return Err(Problem::BadTimestamp(shorten(text)));
    }
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Ok(dt.timestamp());
    }
    const FORMATS: &[&str] = &[
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%Y/%m/%d %H:%M:%S%.f",
        "%Y/%m/%d %H:%M",
    ];
    for format in FORMATS {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(dt.and_utc().timestamp());
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        && let Some(dt) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(dt.and_utc().timestamp());
    }
    Err(Problem::BadTimestamp(shorten(text)))
}

fn parse_label(text: &str) -> Result<u8, Problem> {
    match text {
        "0" | "0.0" | "false" | "False" | "FALSE" => Ok(0),
        "1" | "1.0" | "true" | "True" | "TRUE" => Ok(1),
        other => Err(Problem::BadLabel(shorten(other))),
    }
}

/// Parses CSV from any reader with the default options; `name` is the file name used in errors.
pub fn parse_csv(reader: impl Read, name: &str) -> Result<RawSeries, DataError> {
    parse_csv_with(reader, name, &LoadOptions::default())
}

/// Parses CSV from any reader with `options`; `name` is the file name used in errors.
pub fn parse_csv_with(
    reader: impl Read,
    name: &str,
    options: &LoadOptions,
) -> Result<RawSeries, DataError> {
    let mut rows_in = RowReader::new(reader, name, &options.columns)?;
    let mut rows: Vec<Row> = Vec::new();
    let mut bad = BadRows::default();
    if options.lenient {
        while let Some(read) = rows_in.next_row_lenient()? {
            match read {
                LenientRow::Row(row) => rows.push(row),
                LenientRow::Patched(row, e) => {
                    bad.patched(&e);
                    rows.push(row);
                }
                LenientRow::Skipped(e) => bad.skipped(&e),
            }
        }
        rows = bad.without_rows_back_in_time(rows, name);
    } else {
        while let Some(row) = rows_in.next_row()? {
            rows.push(row);
        }
    }
    if rows.is_empty() {
        return Err(rows_in.error(Some(rows_in.header_line), Problem::NoRows));
    }
    let mut gridded = to_grid(rows, options.duplicates, &|line, problem| {
        rows_in.error(line, problem)
    })?;
    if let Some(note) = bad.note() {
        gridded.notes.insert(0, note);
    }
    if rows_in.comma_cells > 0 {
        gridded.notes.push(LoadNote::DecimalCommas {
            cells: rows_in.comma_cells,
        });
    }
    let interval = gridded.interval;
    let timestamps: Vec<i64> = gridded.rows.iter().map(|r| r.ts).collect();

    let span_points = ((timestamps[timestamps.len() - 1] - timestamps[0]) / interval) as u64 + 1;
    if span_points > MAX_POINTS {
        return Err(rows_in.error(None, Problem::TooLong(span_points)));
    }

    Ok(RawSeries {
        source: name.to_string(),
        values: gridded.rows.iter().map(|r| r.value).collect(),
        labels: gridded.rows.iter().map(|r| r.label).collect(),
        timestamps,
        interval,
        has_timestamps: rows_in.has_timestamps(),
        has_labels: rows_in.has_labels(),
        columns: rows_in.column_names(),
        notes: gridded.notes,
    })
}

/// Reads the rows of a CSV one at a time: the header (its delimiter sniffed, its columns found
/// as in [`parse_csv_with`]) when made, then each row as it is asked for. A row is returned
/// once its line has ended, so it also reads a file that is still being written, or a pipe.
pub struct RowReader<R: Read> {
    csv: csv::Reader<std::io::Chain<std::io::Cursor<Vec<u8>>, R>>,
    name: String,
    header: Vec<String>,
    /// The line of the header.
    pub header_line: u64,
    value_col: usize,
    ts_col: Option<usize>,
    label_col: Option<usize>,
    decimal_comma: bool,
    /// Cells read with a decimal comma so far.
    pub comma_cells: usize,
    rows_read: i64,
    record: csv::ByteRecord,
}

impl<R: Read> RowReader<R> {
    /// Reads the header of `reader` (`name` for messages), with the columns of `columns`.
    pub fn new(mut reader: R, name: &str, columns: &ColumnChoice) -> Result<Self, DataError> {
        let err = |line: Option<u64>, problem: Problem| DataError {
            file: name.to_string(),
            line,
            problem,
        };
        // Read up to the end of the first non-blank line (at most 64 KiB) to sniff the
        // delimiter and skip a byte-order mark; a growing file or a pipe is not read further.
        let mut head = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            let n = reader
                .read(&mut chunk)
                .map_err(|e| err(None, Problem::Io(e.into())))?;
            head.extend_from_slice(&chunk[..n]);
            let body = without_bom(&head);
            let first_start = body.iter().position(|b| !b.is_ascii_whitespace());
            let has_line = first_start.is_some_and(|s| body[s..].contains(&b'\n'));
            if n == 0 || has_line || head.len() >= 64 * 1024 {
                break;
            }
        }
        let head_body = without_bom(&head);
        if head_body.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(err(None, Problem::Empty));
        }
        let delimiter = sniff_delimiter(head_body.trim_ascii_start());
        let body = std::io::Cursor::new(head_body.to_vec()).chain(reader);
        let mut csv = csv_reader(delimiter, body);
        let mut record = csv::ByteRecord::new();
        // Header: skip blank lines (the csv crate already does), then read the names.
        if !csv
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(name, e))?
        {
            return Err(err(None, Problem::Empty));
        }
        let header_line = line_of(&record);
        let header: Vec<String> = record
            .iter()
            .map(|f| std::str::from_utf8(f).map(|s| s.trim().to_string()))
            .collect::<Result<_, _>>()
            .map_err(|_| err(Some(header_line), Problem::InvalidUtf8))?;
        let resolve = |role, choice: &Option<String>, names| {
            resolve_column(&header, role, choice.as_deref(), names)
                .map_err(|p| err(Some(header_line), p))
        };
        let value_col = resolve("value", &columns.value, VALUE_NAMES)?;
        let Some(value_col) = value_col else {
            let looks_numeric = header.iter().any(|h| h.parse::<f64>().is_ok());
            let problem = if looks_numeric {
                Problem::NoHeader(shorten(&header.join(",")))
            } else {
                Problem::NoValueColumn(shorten(&header.join(", ")))
            };
            return Err(err(Some(header_line), problem));
        };
        let ts_col = resolve("time", &columns.time, TIMESTAMP_NAMES)?;
        let label_col = resolve("label", &columns.label, LABEL_NAMES)?;
        Ok(Self {
            csv,
            name: name.to_string(),
            header,
            header_line,
            value_col,
            ts_col,
            label_col,
            decimal_comma: delimiter == b';',
            comma_cells: 0,
            rows_read: 0,
            record,
        })
    }

    /// An error about this file.
    pub fn error(&self, line: Option<u64>, problem: Problem) -> DataError {
        DataError {
            file: self.name.clone(),
            line,
            problem,
        }
    }

    /// True when a column holds the time (else the row index is the time).
    pub fn has_timestamps(&self) -> bool {
        self.ts_col.is_some()
    }

    /// True when a column holds labels.
    pub fn has_labels(&self) -> bool {
        self.label_col.is_some()
    }

    /// The header names of the time, value and label columns (None: not in the file).
    pub fn column_names(&self) -> [Option<String>; 3] {
        let name_of = |c: Option<usize>| c.map(|c| self.header[c].clone());
        [
            name_of(self.ts_col),
            name_of(Some(self.value_col)),
            name_of(self.label_col),
        ]
    }

    /// The next row (blank lines skipped), or None at the end of the input.
    pub fn next_row(&mut self) -> Result<Option<Row>, DataError> {
        match self.next_row_lenient()? {
            None => Ok(None),
            Some(LenientRow::Row(row)) => Ok(Some(row)),
            Some(LenientRow::Patched(_, e) | LenientRow::Skipped(e)) => Err(e),
        }
    }

    /// The next data row, going on past bad ones: a value that is not a finite number (or a
    /// label that is not 0 or 1) is [`LenientRow::Patched`], a row with no readable time, too
    /// few fields or broken quoting is [`LenientRow::Skipped`]. Only an I/O error ends the
    /// reading.
    pub fn next_row_lenient(&mut self) -> Result<Option<LenientRow>, DataError> {
        loop {
            let more = match self.csv.read_byte_record(&mut self.record) {
                Ok(more) => more,
                Err(e) if e.is_io_error() => return Err(csv_error(&self.name, e)),
                Err(e) => return Ok(Some(LenientRow::Skipped(csv_error(&self.name, e)))),
            };
            if !more {
                return Ok(None);
            }
            let record = &self.record;
            if record.len() == 1 && record.get(0).is_some_and(|f| f.is_empty()) {
                continue; // a line holding only whitespace
            }
            return Ok(Some(self.parse_record()));
        }
    }

    /// Reads the record just taken into a row (see [`Self::next_row_lenient`]).
    fn parse_record(&mut self) -> LenientRow {
        let record = &self.record;
        let line = line_of(record);
        let err = |problem| DataError {
            file: self.name.clone(),
            line: Some(line),
            problem,
        };
        let field = |col: usize| -> Result<&str, DataError> {
            let bytes = record.get(col).ok_or_else(|| {
                err(Problem::MissingField {
                    found: record.len(),
                    needed: col + 1,
                    column: self.header[col].clone(),
                })
            })?;
            std::str::from_utf8(bytes).map_err(|_| err(Problem::InvalidUtf8))
        };
        let ts = match self.ts_col {
            Some(c) => match field(c).and_then(|t| parse_timestamp(t).map_err(err)) {
                Ok(ts) => ts,
                Err(e) => return LenientRow::Skipped(e),
            },
            None => self.rows_read,
        };
        let mut problem = None;
        let mut comma = false;
        let value = match field(self.value_col) {
            Err(e) => {
                // Without a time column the row still takes its place in the index: the
                // point is missing.
                if self.ts_col.is_none() {
                    self.rows_read += 1;
                }
                return LenientRow::Skipped(e);
            }
            Ok("") => f64::NAN,
            Ok(text) => match parse_number(text, self.decimal_comma) {
                None => {
                    problem = Some(err(Problem::NotANumber {
                        column: self.header[self.value_col].clone(),
                        text: shorten(text),
                    }));
                    f64::NAN
                }
                Some((v, _)) if !v.is_finite() => {
                    problem = Some(err(Problem::NotFinite(shorten(text))));
                    f64::NAN
                }
                Some((v, with_comma)) => {
                    comma = with_comma;
                    v
                }
            },
        };
        let label = match self.label_col {
            Some(c) => match field(c).and_then(|t| parse_label(t).map_err(err)) {
                Ok(label) => label,
                Err(e) => {
                    problem = problem.or(Some(e));
                    0
                }
            },
            None => 0,
        };
        self.comma_cells += comma as usize;
        self.rows_read += 1;
        let row = Row {
            ts,
            value,
            label,
            line,
        };
        match problem {
            None => LenientRow::Row(row),
            Some(e) => LenientRow::Patched(row, e),
        }
    }
}

/// The line a record started on.
fn line_of(record: &csv::ByteRecord) -> u64 {
    record.position().map(|p| p.line()).unwrap_or(0)
}

/// A csv crate error as a [`DataError`] of file `name`.
fn csv_error(name: &str, e: csv::Error) -> DataError {
    let line = e.position().map(|p| p.line());
    let message = e.to_string();
    let problem = match e.into_kind() {
        csv::ErrorKind::Io(io) => Problem::Io(io.into()),
        _ => Problem::Malformed(message),
    };
    DataError {
        file: name.to_string(),
        line,
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        assert_eq!(parse_timestamp("1469376000"), Ok(1_469_376_000));
        assert_eq!(parse_timestamp("1469376000000"), Ok(1_469_376_000));
        assert_eq!(parse_timestamp("1469376000.0"), Ok(1_469_376_000));
        assert_eq!(parse_timestamp("2016-07-24 16:00:00"), Ok(1_469_376_000));
        assert_eq!(parse_timestamp("2016-07-24T16:00:00Z"), Ok(1_469_376_000));
        assert_eq!(
            parse_timestamp("2016-07-24T18:00:00+02:00"),
            Ok(1_469_376_000)
        );
        assert_eq!(parse_timestamp("2016-07-24 16:00"), Ok(1_469_376_000));
        assert!(matches!(
            parse_timestamp("-5"),
            Err(Problem::TimestampOutOfRange(_))
        ));
        assert!(matches!(
            parse_timestamp("1469376000123"),
            Err(Problem::SubSecond(_))
        ));
        assert!(matches!(
            parse_timestamp("99999999999999999"),
            Err(Problem::TimestampOutOfRange(_))
        ));
        assert!(matches!(
            parse_timestamp("yesterday"),
            Err(Problem::BadTimestamp(_))
        ));
        assert!(matches!(
            parse_timestamp("12.5"),
            Err(Problem::BadTimestamp(_))
        ));
    }

    #[test]
    fn delimiter_is_sniffed_from_the_header() {
        assert_eq!(sniff_delimiter(b"timestamp,value\n1,2"), b',');
        assert_eq!(sniff_delimiter(b"timestamp;value;label\n1;2,5;0"), b';');
        assert_eq!(sniff_delimiter(b"timestamp\tvalue\n"), b'\t');
    }

    #[test]
    fn long_cells_are_shortened_in_messages() {
        let long = "x".repeat(1000);
        let s = shorten(&long);
        assert!(s.len() < 80 && s.contains("1000 bytes"), "{s}");
    }
}
