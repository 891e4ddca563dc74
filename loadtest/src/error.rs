//! The one error type of the load generator.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or flag combinations.
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("challenges file {path}: {message}")]
    Config { path: String, message: String },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("host: {0}")]
    Host(String),
    #[error("JWT: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    #[error("HTTP client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("gRPC client: {0}")]
    Grpc(#[from] tonic::transport::Error),
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
