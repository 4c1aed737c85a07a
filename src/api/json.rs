//! Extractors whose rejections are our JSON errors (axum's are plain text): the JSON body, so malformed
//! JSON, unknown fields, a wrong content type or an oversized body each get a 4xx that names the
//! problem; and the path and query parameters, so a name that is not UTF-8 or a `limit=abc` does too.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
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

/// Path parameters, as `axum::extract::Path`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            // "Invalid URL: Invalid UTF-8 in `name`"
            Err(r) => Err(param_error(r.status(), "bad_path", r.body_text(), |m| {
                let rest = &m[m.find('`')? + 1..];
                Some(rest[..rest.find('`')?].to_string())
            })),
        }
    }
}

/// Query parameters, as `axum::extract::Query`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            // "Failed to deserialize query string: limit: invalid digit found in string"
            Err(r) => Err(param_error(r.status(), "bad_query", r.body_text(), |m| {
                let rest = m.split_once("query string: ").map_or(m, |(_, r)| r);
                serde_field(rest).or_else(|| {
                    let (field, _) = rest.split_once(": ")?;
                    let ok = !field.is_empty() && field.len() <= 40 && !field.contains(' ');
                    ok.then(|| field.to_string())
                })
            })),
        }
    }
}

/// A rejected parameter: a 400 that names it, unless axum says the route itself is wrong (a 500).
fn param_error(
    status: StatusCode,
    code: &'static str,
    message: String,
    field: impl FnOnce(&str) -> Option<String>,
) -> ApiError {
    if !status.is_client_error() {
        return ApiError::internal(message);
    }
    ApiError {
        field: field(&message),
        ..ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
}

/// serde names the field in "missing field `secret`", "unknown field `colour`" and "duplicate field
/// `limit`"; pass it on so a form can point at the input.
fn serde_field(message: &str) -> Option<String> {
    ["missing field `", "unknown field `", "duplicate field `"]
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
