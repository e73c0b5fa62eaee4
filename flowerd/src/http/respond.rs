//! Responses: JSON and CSV bodies, the security headers every response
//! carries, and [`ApiError`], the one way a handler says no.
//!
//! Every error body is a JSON object with an `"error"` key, plus details
//! (`"parameter"`, `"column"`, …) where they help the client fix its request.
//! Server-side failures say only "internal error"; the cause goes to the log.

use serde::Serialize;
use serde_json::json;

use flowstore::filter::FilterError;

/// A complete response, built by a worker and written by a connection thread.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Response {
    /// Status code.
    pub(crate) status: u16,
    /// Header fields (`Content-Length` is added when writing).
    pub(crate) headers: Vec<(&'static str, String)>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// Sent with every response.
///
/// `nosniff` keeps browsers from reading JSON as HTML; `no-store` keeps flow
/// data and tokens out of caches; the CSP forbids API answers from running
/// anything or being framed if a browser ever renders one.
pub(crate) const SECURITY_HEADERS: [(&str, &str); 4] = [
    ("X-Content-Type-Options", "nosniff"),
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
];

/// `Content-Type` of JSON answers.
pub(crate) const JSON: &str = "application/json";

impl Response {
    /// A response with a body of type `content_type`.
    pub(crate) fn new(status: u16, content_type: &str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_string())],
            body,
        }
    }

    /// `value` as JSON.
    pub(crate) fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(mut body) => {
                body.push(b'\n');
                Response::new(status, JSON, body)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize a response");
                ApiError::Internal.into_response()
            }
        }
    }

    /// Adds a header field.
    #[must_use]
    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }
}

/// Why a request failed, as the client is told.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// 400: a query parameter is malformed or out of range.
    Param {
        /// The parameter's name.
        parameter: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// 400: the `filter` parameter does not parse.
    Filter(FilterError),
    /// 400: the request body is not what the route takes.
    Body(String),
    /// 400: the store refused the query's shape.
    Query(String),
    /// 401: no valid credentials.
    Unauthorized,
    /// 401: a login with a wrong name or password.
    BadCredentials,
    /// 403: valid credentials, insufficient role.
    Forbidden,
    /// A password change with a wrong `current_password`.
    WrongPassword,
    /// 403: a state-changing request authenticated by the session cookie
    /// came from another site (`Origin`, `Sec-Fetch-Site`).
    CrossSite,
    /// 404: no such route or object.
    NotFound,
    /// 421: a `Host` this server does not answer to (DNS rebinding).
    MisdirectedHost,
    /// 405: the route exists but not with this method.
    Method {
        /// The methods it takes, for the `Allow` header.
        allow: &'static str,
    },
    /// 409: the request conflicts with the current state.
    Conflict(&'static str),
    /// 415: a body that is not declared as `application/json`.
    MediaType,
    /// 429: too many failed logins from this client.
    TooManyLogins {
        /// Seconds until a retry can succeed.
        retry_after: u64,
    },
    /// 507: the store's disk budget is exhausted.
    StorageFull,
    /// 500: something failed on our side (logged where it happened).
    Internal,
}

impl ApiError {
    /// A parameter error.
    pub(crate) fn param(parameter: &'static str, detail: impl Into<String>) -> ApiError {
        ApiError::Param {
            parameter,
            detail: detail.into(),
        }
    }

    /// The response that tells the client.
    pub(crate) fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Param { parameter, detail } => (
                400,
                json!({"error": "invalid parameter", "parameter": parameter, "detail": detail}),
            ),
            ApiError::Filter(e) => (
                400,
                json!({
                    "error": "invalid filter",
                    "parameter": "filter",
                    "column": e.column,
                    "expected": e.expected,
                    "found": e.found,
                }),
            ),
            ApiError::Body(detail) => (400, json!({"error": "invalid body", "detail": detail})),
            ApiError::Query(detail) => (400, json!({"error": "invalid query", "detail": detail})),
            ApiError::Unauthorized => {
                return error(401, "authentication required")
                    .with_header("WWW-Authenticate", "Bearer realm=\"flower\"")
            }
            ApiError::BadCredentials => {
                return error(401, "invalid user or password")
                    .with_header("WWW-Authenticate", "Bearer realm=\"flower\"")
            }
            ApiError::Forbidden => (
                403,
                json!({"error": "forbidden", "detail": "admin role required"}),
            ),
            ApiError::WrongPassword => (
                403,
                json!({"error": "forbidden", "detail": "current_password is wrong"}),
            ),
            ApiError::CrossSite => (
                403,
                json!({
                    "error": "forbidden",
                    "detail": "cross-site request with the session cookie: use a bearer token",
                }),
            ),
            ApiError::NotFound => (404, json!({"error": "not found"})),
            ApiError::MisdirectedHost => (
                421,
                json!({
                    "error": "host not allowed",
                    "detail": "the Host header names neither an IP address, localhost nor one of http.allowed_hosts",
                }),
            ),
            ApiError::Method { allow } => {
                return error(405, "method not allowed").with_header("Allow", allow)
            }
            ApiError::Conflict(detail) => (409, json!({"error": "conflict", "detail": detail})),
            ApiError::MediaType => (
                415,
                json!({
                    "error": "unsupported media type",
                    "detail": "expected Content-Type: application/json",
                }),
            ),
            ApiError::TooManyLogins { retry_after } => {
                return Response::json(
                    429,
                    &json!({"error": "too many failed logins", "retry_after": retry_after}),
                )
                .with_header("Retry-After", retry_after.to_string())
            }
            ApiError::StorageFull => (507, json!({"error": "storage full"})),
            ApiError::Internal => (500, json!({"error": "internal error"})),
        };
        Response::json(status, &body)
    }
}

/// A bare `{"error": message}` response.
pub(crate) fn error(status: u16, message: &str) -> Response {
    Response::json(status, &json!({ "error": message }))
}

impl From<flowstore::Error> for ApiError {
    fn from(e: flowstore::Error) -> ApiError {
        match e {
            flowstore::Error::InvalidQuery(what) => ApiError::Query(what.to_string()),
            flowstore::Error::QueryTooLarge { what, limit } => {
                ApiError::Query(format!("query too large: {what} (limit {limit})"))
            }
            flowstore::Error::BudgetExhausted { .. } => {
                tracing::error!(error = %e, "HTTP request failed: disk budget exhausted");
                ApiError::StorageFull
            }
            e => {
                tracing::error!(error = %e, "HTTP request failed in the store");
                ApiError::Internal
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::Value;

    fn body(r: &Response) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn errors_are_json_with_details() {
        let r = ApiError::param("from", "bad time").into_response();
        assert_eq!(r.status, 400);
        assert_eq!(
            body(&r),
            json!({"error": "invalid parameter", "parameter": "from", "detail": "bad time"})
        );
        let e = flowstore::filter::Filter::parse("src hots 1.2.3.4").unwrap_err();
        let r = ApiError::Filter(e).into_response();
        assert_eq!(body(&r)["column"], 5);
        let r = ApiError::Method { allow: "GET, HEAD" }.into_response();
        assert_eq!(r.status, 405);
        assert!(r.headers.contains(&("Allow", "GET, HEAD".into())));
        let r = ApiError::Unauthorized.into_response();
        assert_eq!(r.status, 401);
        assert!(r.headers.iter().any(|h| h.0 == "WWW-Authenticate"));
        let r = ApiError::TooManyLogins { retry_after: 7 }.into_response();
        assert_eq!((r.status, body(&r)["retry_after"].as_u64()), (429, Some(7)));
        let r = ApiError::from(flowstore::Error::InvalidQuery("cursor")).into_response();
        assert_eq!(
            body(&r),
            json!({"error": "invalid query", "detail": "cursor"})
        );
        assert_eq!(ApiError::Internal.into_response().status, 500);
    }
}
