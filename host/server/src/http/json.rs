//! JSON request bodies whose rejections use the service's error envelope instead of axum's plain text.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};

use crate::error::{ApiError, ErrorKind};

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::invalid(
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as JSON (Content-Type: application/json)",
            )),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::new(ErrorKind::PayloadTooLarge, "BODY_TOO_LARGE", "the request body is too large"))
            }
            Err(rejection) => Err(ApiError::invalid("INVALID_JSON", rejection.body_text())),
        }
    }
}
