//! Domain of the challenge platform, free of transport, storage and plugin runtime concerns.
//!
//! - [`config`]: the `challenges.json` model (reference format plus our extensions), its loader and validator,
//!   and the indexed [`config::Catalog`] the rest of the host reads.
//! - [`progress`]: per-user goal progress rows, statuses and per-user stat values.

pub mod config;
pub mod progress;
pub mod rotation;
