//! donut-explorer: train, watch, tune and understand DONUT, the VAE anomaly detector for seasonal
//! KPIs (Xu et al., WWW 2018).
//!
//! Layers, data flowing one way (ARCHITECTURE.md has the table): the base ([`config`],
//! [`history`], [`threads`], [`fsio`]) -> [`data`] (load, complete, standardise, window) ->
//! [`model`] (burn modules and the M-ELBO) -> [`train`] (the loop) -> [`score`] / [`eval`] /
//! [`baseline`] (reconstruction probability; point-adjusted F1, PA%K and chance; Spectral
//! Residual) -> [`pipeline`] (one run end to end, its [`pipeline::RunRecord`]) -> [`worker`],
//! [`runfile`], [`sweep`], [`fleet`] -> the front ends: `ui` (panels), [`cli`] and [`bench`].

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod baseline;
pub mod bench;
pub mod cli;
pub mod config;
pub mod corpus;
pub mod data;
pub mod eval;
pub mod fleet;
pub mod fsio;
pub mod history;
pub mod model;
pub mod pipeline;
pub mod runfile;
pub mod score;
pub mod sweep;
pub mod threads;
pub mod train;
pub mod tune;
pub mod ui;
pub mod worker;
