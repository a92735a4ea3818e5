//! The loaded series and its preparation for the current settings.

use crate::config::DonutConfig;
use crate::data::{Prepared, RawSeries};
use crate::pipeline::DataSummary;
use std::sync::Arc;

/// The loaded series and its preparation for the current window and split.
pub struct Dataset {
    /// As read.
    pub raw: Arc<RawSeries>,
    /// Prepared for the current config (None when the config does not fit the data).
    pub prepared: Option<Arc<Prepared>>,
    /// Summary of the prepared data.
    pub summary: Option<DataSummary>,
    /// Why it could not be prepared.
    pub problem: Option<String>,
}

impl Dataset {
    /// `raw` prepared for `config`.
    pub fn new(raw: Arc<RawSeries>, config: &DonutConfig) -> Self {
        let mut d = Self {
            raw,
            prepared: None,
            summary: None,
            problem: None,
        };
        d.prepare(config);
        d
    }

    /// Prepares the series again (after a change of window or split).
    pub fn prepare(&mut self, config: &DonutConfig) {
        match Prepared::new(&self.raw, config) {
            Ok(p) => {
                self.summary = Some(DataSummary::of(&p));
                self.prepared = Some(Arc::new(p));
                self.problem = None;
            }
            Err(e) => {
                self.prepared = None;
                self.summary = None;
                self.problem = Some(e.to_string());
            }
        }
    }
}
