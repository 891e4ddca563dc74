//! The one error type of the server's transport-facing layer, mapped once to HTTP and once to gRPC.
//!
//! Every failure a client can see carries a stable machine-readable `errorCode` and a human message.
//! HTTP bodies are `{"errorCode": "...", "message": "..."}`; gRPC statuses carry the same message and the code in
//! the `x-error-code` metadata entry.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The class of a failure, which decides the HTTP status and gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    Unprocessable,
    PayloadTooLarge,
    Unavailable,
    Internal,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Stable identifier clients can branch on, e.g. `GOAL_NOT_FOUND`.
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    error_code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        Self { kind, code, message: message.into() }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthenticated, "UNAUTHORIZED", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, "FORBIDDEN", message)
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, code, message)
    }

    /// An unexpected failure. The detail is logged; clients get a generic message.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorKind::Internal, "INTERNAL_ERROR", "internal error")
    }

    pub fn http_status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::PermissionDenied => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unprocessable => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn grpc_code(&self) -> tonic::Code {
        match self.kind {
            ErrorKind::InvalidArgument => tonic::Code::InvalidArgument,
            ErrorKind::Unauthenticated => tonic::Code::Unauthenticated,
            ErrorKind::PermissionDenied => tonic::Code::PermissionDenied,
            ErrorKind::NotFound => tonic::Code::NotFound,
            // A state the caller must change first (already claimed, not completed, locked).
            ErrorKind::Conflict => tonic::Code::FailedPrecondition,
            ErrorKind::Unprocessable => tonic::Code::OutOfRange,
            ErrorKind::PayloadTooLarge => tonic::Code::ResourceExhausted,
            ErrorKind::Unavailable => tonic::Code::Unavailable,
            ErrorKind::Internal => tonic::Code::Internal,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!("api_errors_total", "code" => self.code).increment(1);
        let body = ErrorBody { error_code: self.code, message: &self.message };
        (self.http_status(), Json(body)).into_response()
    }
}

impl From<ApiError> for tonic::Status {
    fn from(err: ApiError) -> Self {
        metrics::counter!("api_errors_total", "code" => err.code).increment(1);
        let mut status = tonic::Status::new(err.grpc_code(), err.message);
        if let Ok(value) = err.code.parse() {
            status.metadata_mut().insert("x-error-code", value);
        }
        status
    }
}

impl From<challenge_storage::StorageError> for ApiError {
    fn from(err: challenge_storage::StorageError) -> Self {
        if err.is_retryable() {
            tracing::warn!(error = %err, "database unavailable");
            ApiError::unavailable("DATABASE_UNAVAILABLE", "the database is unavailable, retry later")
        } else {
            ApiError::internal(err)
        }
    }
}

impl From<crate::pipeline::PipelineError> for ApiError {
    fn from(err: crate::pipeline::PipelineError) -> Self {
        use crate::pipeline::PipelineError;
        let message = err.to_string();
        match err {
            PipelineError::Unavailable => ApiError::unavailable("EVENTS_NOT_STORED", message),
            PipelineError::ShuttingDown => ApiError::unavailable("SHUTTING_DOWN", message),
            PipelineError::TooManyEvents(_) => ApiError::invalid("BATCH_TOO_LARGE", message),
            PipelineError::Failed(detail) => ApiError::internal(detail),
        }
    }
}
