//! The challenge platform server.
//!
//! How an event travels: [`grpc`] (or [`http`]) receives it → [`pipeline`] groups it per user, evaluates the
//! user's goals with the rule plugins of [`rules`] → [`challenge_storage`] commits it in one batched write.
//! Player reads and claims go [`http`]/[`grpc`] → [`player`] → storage.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod error;
pub mod grpc;
pub mod http;
pub mod pipeline;
pub mod player;
pub mod redis;
pub mod rewards;
pub mod rotation;
pub mod rules;
pub mod server;
pub mod settings;
pub mod state;
pub mod telemetry;

pub use server::{RunningServer, start, start_with_clock};
pub use state::AppState;
