//! donut-explorer: train, watch, tune and understand DONUT, the VAE anomaly detector for seasonal
//! KPIs (Xu et al., WWW 2018).
//!
//! Layers, data flowing one way: [`data`] (load, complete, standardise, window) -> [`model`]
//! (burn modules and the M-ELBO) -> [`train`] (the loop and the worker thread) -> [`score`] /
//! [`eval`] (reconstruction probability, point-adjusted F1) -> `ui` (panels). [`config`] holds
//! every hyperparameter; [`run`] chains a whole experiment; [`cli`] is the headless front end.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod config;
pub mod data;
pub mod eval;
pub mod model;
pub mod run;
pub mod runfile;
pub mod score;
pub mod sweep;
pub mod train;
pub mod ui;
