//! Each setting's importance in a search: the share of the objective's variance that the
//! setting alone explains (the correlation ratio eta squared, a first-order, fANOVA-style
//! estimate). Trials are grouped by the setting's value (a choice) or into [`BINS`] bins of equal
//! count along it (a range); the importance is the between-group sum of squares over the total.
//! It is computed on the first rung's objective, the one budget every trial was given. With n
//! trials and g groups, a setting that does nothing still scores about (g - 1) / (n - 1).

use super::space::{Domain, SearchSpace, Value};
use serde::{Deserialize, Serialize};

/// The estimate in words, for the app's hover text.
pub const EXPLANATION: &str = "The share of the objective's variance that a setting alone explains (eta squared, a first-order, fANOVA-style estimate): trials grouped by its value, or into 4 bins of equal count along a range, on the first rung's objective (the budget every trial had). Noise alone gives about (groups - 1) / (trials - 1).";

/// Bins along a range.
pub const BINS: usize = 4;

/// A setting's importance.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// The setting.
    pub key: String,
    /// Share of the objective's variance its groups explain, 0 to 1.
    pub share: f64,
    /// The share a setting that does nothing scores on average ((g - 1) / (n - 1)).
    pub chance: f64,
}

/// The importance of each dimension of `space` from `(values, objective)` pairs (finite
/// objectives only), most important first.
pub fn importance(space: &SearchSpace, points: &[(Vec<Value>, f64)]) -> Vec<Importance> {
    let points: Vec<&(Vec<Value>, f64)> = points.iter().filter(|p| p.1.is_finite()).collect();
    let n = points.len();
    let mean = points.iter().map(|p| p.1).sum::<f64>() / n.max(1) as f64;
    let total: f64 = points.iter().map(|p| (p.1 - mean).powi(2)).sum();
    let mut out: Vec<Importance> = space
        .dimensions
        .iter()
        .enumerate()
        .map(|(d, dim)| {
            let groups = groups(&dim.domain, &points, d);
            let between: f64 = groups
                .iter()
                .filter(|g| !g.is_empty())
                .map(|g| {
                    let m = g.iter().sum::<f64>() / g.len() as f64;
                    g.len() as f64 * (m - mean).powi(2)
                })
                .sum();
            let used = groups.iter().filter(|g| !g.is_empty()).count();
            Importance {
                key: dim.key.clone(),
                share: if total > 0.0 { between / total } else { 0.0 },
                chance: if n > 1 {
                    used.saturating_sub(1) as f64 / (n - 1) as f64
                } else {
                    0.0
                },
            }
        })
        .collect();
    out.sort_by(|a, b| b.share.total_cmp(&a.share));
    out
}

/// The objectives of `points` grouped by dimension `d`'s value.
fn groups(domain: &Domain, points: &[&(Vec<Value>, f64)], d: usize) -> Vec<Vec<f64>> {
    match domain {
        Domain::Choice { values } => values
            .iter()
            .map(|v| {
                points
                    .iter()
                    .filter(|p| matches!(&p.0[d], Value::Choice(s) if s == v))
                    .map(|p| p.1)
                    .collect()
            })
            .collect(),
        Domain::Range { .. } => {
            let mut sorted: Vec<(f64, f64)> = points
                .iter()
                .map(|p| match &p.0[d] {
                    Value::Number(x) => (*x, p.1),
                    Value::Choice(_) => (f64::NAN, p.1),
                })
                .collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let n = sorted.len();
            let mut out = vec![Vec::new(); BINS];
            // Equal values share a bin, whatever the counts.
            let mut bin = 0;
            for (i, (x, y)) in sorted.iter().enumerate() {
                let due = i * BINS / n.max(1);
                if due > bin && (i == 0 || sorted[i - 1].0 != *x) {
                    bin = due;
                }
                out[bin].push(*y);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::Dimension;

    #[test]
    fn the_setting_that_drives_the_objective_is_the_most_important() {
        let space = SearchSpace {
            dimensions: vec![
                Dimension {
                    key: "latent_dim".into(),
                    domain: Domain::Range {
                        min: 0.0,
                        max: 1.0,
                        log: false,
                        integer: false,
                    },
                    with: vec![],
                },
                Dimension {
                    key: "encoder".into(),
                    domain: Domain::Choice {
                        values: vec!["dense".into(), "cnn".into()],
                    },
                    with: vec![],
                },
            ],
        };
        // The objective follows the first setting; the encoder alternates regardless.
        let points: Vec<(Vec<Value>, f64)> = (0..40)
            .map(|i| {
                let x = i as f64 / 40.0;
                let e = if i % 2 == 0 { "dense" } else { "cnn" };
                (
                    vec![Value::Number(x), Value::Choice(e.into())],
                    x + 0.01 * ((i * 7) % 3) as f64,
                )
            })
            .collect();
        let imp = importance(&space, &points);
        assert_eq!(imp[0].key, "latent_dim");
        assert!(imp[0].share > 0.9, "{imp:?}");
        assert!(imp[1].share < 0.05, "{imp:?}");
        assert!((imp[1].chance - 1.0 / 39.0).abs() < 1e-12);
    }
}
