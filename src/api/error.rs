//! The one error type of the HTTP API, and the one place it becomes a response:
//! `{"error": {"code": "...", "message": "...", "field"?: "..."}}` with a fitting status.
//! Bad input is always a 4xx; a 5xx means the server or its store failed.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    pub retry_after: Option<u64>,
}

/// The JSON body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid token is required: send `Authorization: Bearer <token>`",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn busy(retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                "every worker is busy and the queue is full; retry later",
            )
        }
    }

    /// A validation error's field as the request body names it, where the store names it otherwise.
    pub fn in_body_field(mut self, name: &str) -> Self {
        if self.field.is_some() {
            self.field = Some(name.to_string());
        }
        self
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            StoreError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            StoreError::Invalid(e) => ApiError {
                field: e.field,
                ..ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.message)
            },
            // Store and vault failures are the operator's problem, and their messages are for the
            // operator's log: they name database hosts, files and SQL errors, to anyone who calls.
            other => {
                tracing::error!(error = %other, "store error");
                ApiError::internal("the store failed; the server's log has the details")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                field: self.field,
            },
        };
        let mut res = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

#[cfg(test)]
mod tests {
    use super::ApiError;
    use crate::store::StoreError;

    #[test]
    fn store_failures_keep_their_details_in_the_log() {
        let e = ApiError::from(StoreError::Backend {
            backend: "postgres",
            context: "checking a token".into(),
            message: "error connecting to server: db.internal:5432: Connection refused".into(),
        });
        assert_eq!(e.status.as_u16(), 500);
        assert!(!e.message.contains("db.internal"), "{}", e.message);
        assert!(!e.message.contains("postgres"), "{}", e.message);
    }

    #[test]
    fn validation_errors_keep_their_field() {
        // The field comes typed from the store: a message that merely looks like `field: rule` is
        // not scraped for one.
        let e = ApiError::from(StoreError::invalid("patterns[0]", "must use https"));
        assert_eq!(e.status.as_u16(), 422);
        assert_eq!(e.field.as_deref(), Some("patterns[0]"));
        assert_eq!(e.message, "patterns[0]: must use https");
        let e = ApiError::from(StoreError::Invalid(crate::store::Invalid {
            field: None,
            message: "name: not a field".into(),
        }));
        assert_eq!(e.field, None);
    }
}
