//! The admin API for rule plugins and the challenge configuration: upload (with validation), list and show
//! versions, dry runs, activation, rollback, limits, deletion, per-plugin metrics, configuration reloads.
//! Served over REST under `/admin/v1` ([`http`]) and as the gRPC `challenge.admin.v1.PluginAdmin` service
//! ([`grpc`]); both call [`service`]. The `host plugin` commands ([`cli`]) use the REST API, except
//! `host plugin test`, which runs a component locally against a cases file ([`cases`]).

pub mod cases;
pub mod cli;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod samples;
pub mod service;
