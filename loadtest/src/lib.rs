//! Load generator for the challenge platform: open-loop scenarios over HTTP and gRPC, a reference-sized config
//! generator, a self-spawned server mode, event-loss verification against PostgreSQL, and Markdown/JSON reports.

pub mod auth;
pub mod catalog;
pub mod cli;
pub mod error;
pub mod host;
pub mod population;
pub mod recorder;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod schedule;
pub mod transport;
pub mod verify;
