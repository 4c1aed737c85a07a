//! A JSON body extractor whose rejections are our JSON errors (axum's are plain text), so malformed
//! JSON, unknown fields, a wrong content type or an oversized body each get a 4xx that names the problem.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
        _ => "malformed_json",
    };
    let status = if status.is_client_error() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    let message = rejection.body_text();
    let field = serde_field(&message);
    ApiError {
        field,
        ..ApiError::new(status, code, message)
    }
}

/// serde names the field in "missing field `secret`" and "unknown field `colour`"; pass it on so a
/// form can point at the input.
fn serde_field(message: &str) -> Option<String> {
    ["missing field `", "unknown field `"]
        .iter()
        .find_map(|marker| {
            let rest = &message[message.find(marker)? + marker.len()..];
            Some(rest[..rest.find('`')?].to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::serde_field;

    #[test]
    fn names_missing_and_unknown_fields() {
        assert_eq!(
            serde_field("Failed to deserialize: missing field `secret` at line 1").as_deref(),
            Some("secret")
        );
        assert_eq!(
            serde_field("unknown field `colour`, expected one of `name`").as_deref(),
            Some("colour")
        );
        assert_eq!(serde_field("key must be a string"), None);
    }
}
