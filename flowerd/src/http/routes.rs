//! The route table: which paths exist, which methods each takes, who may
//! call it, and which handler answers.
//!
//! Checks run in a fixed order: unknown path → 404, known path with another
//! method → 405 (with `Allow`), no credentials → 401, insufficient role →
//! 403, then the handler's own checks (400 for parameters and bodies).
//! `HEAD` is answered as `GET` without the body.

use serde::de::DeserializeOwned;
use serde_json::json;

use super::auth::{self, Principal};
use super::params::{percent_decode, Query};
use super::respond::{ApiError, Response, JSON};
use super::wire::Request;
use super::{admin, queries, AppState};

/// Answers one request. Never fails: errors become error responses.
pub(crate) fn handle(state: &AppState, req: &Request, now_ms: u64) -> Response {
    route(state, req, now_ms).unwrap_or_else(ApiError::into_response)
}

/// `Content-Type` of `/metrics` (Prometheus text format 0.0.4).
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

const GET: &str = "GET, HEAD";
const POST: &str = "POST";

/// The methods an `/api/v1/...` path takes, or `None` if it does not exist.
fn api_methods(path: &[&str]) -> Option<&'static str> {
    Some(match path {
        ["login" | "logout"] => POST,
        ["me" | "summary" | "series" | "flows" | "top" | "matrix" | "exporters"] => GET,
        ["networks" | "users"] => "GET, HEAD, POST",
        ["networks", _] => "GET, HEAD, PUT, DELETE",
        ["users", _] => "GET, HEAD, DELETE",
        ["users", _, "password"] => "PUT",
        _ => return None,
    })
}

/// 405 unless `method` is in `allow`.
fn allow(method: &str, allow: &'static str) -> Result<(), ApiError> {
    if allow.split(", ").any(|m| m == method) {
        Ok(())
    } else {
        Err(ApiError::Method { allow })
    }
}

/// Whether the request says its body is JSON: `Content-Type:
/// application/json`, parameters (`; charset=utf-8`) allowed.
fn is_json(req: &Request) -> bool {
    req.head.header("content-type").is_some_and(|v| {
        let media_type = v.split(';').next().unwrap_or_default().trim();
        media_type.eq_ignore_ascii_case(JSON)
    })
}

/// The request body as JSON of type `T`.
///
/// The body must be declared as JSON: a browser sends `text/plain`, form or
/// multipart bodies to another origin without asking it first, but asks
/// (CORS preflight, which this server never grants) before sending
/// `application/json`. So another site cannot make a visitor's browser post
/// JSON here with the visitor's cookie.
///
/// # Errors
/// [`ApiError::Body`] for an empty body, invalid JSON, or the wrong shape
/// (unknown fields included, where `T` denies them);
/// [`ApiError::MediaType`] for a body not declared as JSON.
pub(crate) fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    if req.body.is_empty() {
        return Err(ApiError::Body("empty body: expected a JSON object".into()));
    }
    if !is_json(req) {
        return Err(ApiError::MediaType);
    }
    serde_json::from_slice(&req.body).map_err(|e| ApiError::Body(e.to_string()))
}

fn route(state: &AppState, req: &Request, now_ms: u64) -> Result<Response, ApiError> {
    let target = req.head.target.as_str();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let decoded: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| percent_decode(s, false))
        .collect::<Option<_>>()
        .ok_or(ApiError::NotFound)?;
    let segments: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = req.head.method.as_str();
    if segments != ["healthz"] && !host_allowed(&state.config, req.head.header("host")) {
        return Err(ApiError::MisdirectedHost);
    }
    match segments.as_slice() {
        ["healthz"] => {
            allow(method, GET)?;
            Ok(Response::json(200, &json!({"status": "ok"})))
        }
        ["metrics"] => {
            allow(method, GET)?;
            if !state.config.metrics_public {
                auth::authenticate(state, req, now_ms)?;
            }
            let text = state.metrics.render(&state.store);
            Ok(Response::new(200, PROMETHEUS, text.into_bytes()))
        }
        ["api", "v1", rest @ ..] => {
            allow(method, api_methods(rest).ok_or(ApiError::NotFound)?)?;
            if rest == ["login"] {
                return auth::login(state, req, now_ms);
            }
            let who = auth::authenticate(state, req, now_ms)?;
            let query = || Query::parse(query, now_ms);
            api(state, req, &who, method, rest, query)
        }
        _ => Err(ApiError::NotFound),
    }
}

/// Whether the server answers to `host` (the `Host` header): against DNS
/// rebinding, a page whose own name now resolves to this server must not
/// reach it. IP addresses and `localhost` always pass (a page can only be
/// on an IP address's origin if it was served from there), and so do the
/// names in `http.allowed_hosts`; other names only when the server listens
/// on a non-loopback address and no list is configured. No `Host` (HTTP/1.0
/// clients; browsers always send one) passes.
pub(crate) fn host_allowed(config: &crate::config::Http, host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let host = host.trim();
    // The name without its port: `[v6]:port`, `name:port`, `name`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match host.rsplit_once(':') {
            Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => host,
        }
    };
    let name = name.trim_end_matches('.');
    // An IPv6 zone (`fe80::1%25eth0`) is not part of the address.
    let address = name.split('%').next().unwrap_or(name);
    if address.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    let is = |n: &str| name.eq_ignore_ascii_case(n);
    if is("localhost")
        || name
            .len()
            .checked_sub(".localhost".len())
            .and_then(|i| name.get(i..))
            .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
    {
        return true;
    }
    if config
        .allowed_hosts
        .iter()
        .any(|h| is(h.trim().trim_end_matches('.')))
    {
        return true;
    }
    config.allowed_hosts.is_empty() && !config.listen.ip().is_loopback()
}

/// Routes an authenticated `/api/v1/...` request whose method is allowed.
fn api(
    state: &AppState,
    req: &Request,
    who: &Principal,
    method: &str,
    path: &[&str],
    query: impl Fn() -> Result<Query, ApiError>,
) -> Result<Response, ApiError> {
    let method = if method == "HEAD" { "GET" } else { method };
    match (method, path) {
        (_, ["logout"]) => Ok(auth::logout(state, req, who)),
        (_, ["me"]) => Ok(Response::json(
            200,
            &json!({"user": who.user, "role": who.role}),
        )),
        (_, ["summary"]) => queries::summary(state, &query()?),
        (_, ["series"]) => queries::series(state, &query()?),
        (_, ["flows"]) => queries::flows(state, &query()?),
        (_, ["top"]) => queries::top(state, &query()?),
        (_, ["matrix"]) => queries::matrix(state, &query()?),
        (_, ["exporters"]) => Ok(Response::json(200, &state.metrics.exporters())),
        ("GET", ["networks"]) => admin::list_networks(state),
        ("POST", ["networks"]) => admin::create_network(state, req, who),
        ("GET", ["networks", name]) => admin::get_network(state, name),
        ("PUT", ["networks", name]) => admin::put_network(state, req, who, name),
        ("DELETE", ["networks", name]) => admin::delete_network(state, who, name),
        ("GET", ["users"]) => admin::list_users(state, who),
        ("POST", ["users"]) => admin::create_user(state, req, who),
        ("GET", ["users", name]) => admin::get_user(state, who, name),
        ("DELETE", ["users", name]) => admin::delete_user(state, who, name),
        (_, ["users", name, "password"]) => admin::set_password(state, req, who, name),
        // `api_methods` and this table disagree: a bug, not the client's fault.
        _ => {
            tracing::error!(method, ?path, "route without a handler");
            Err(ApiError::Internal)
        }
    }
}

#[cfg(test)]
mod tests {

    /// The `Host` header against DNS rebinding.
    #[test]
    fn hosts_allowed() {
        let lo = crate::config::Http::default();
        for ok in [
            None,
            Some("localhost"),
            Some("LOCALHOST:8080"),
            Some("app.localhost:8080"),
            Some("127.0.0.1:8080"),
            Some("[::1]:8080"),
            Some("192.0.2.7"),
            Some("[fe80::1%25eth0]:8080"),
        ] {
            assert!(host_allowed(&lo, ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example"),
            Some("evil.example:8080"),
            Some("localhost.evil.example"),
            Some(""),
        ] {
            assert!(!host_allowed(&lo, bad), "{bad:?}");
        }
        let listed = crate::config::Http {
            allowed_hosts: vec!["flower.example.net.".into()],
            ..lo.clone()
        };
        assert!(host_allowed(&listed, Some("Flower.Example.Net:8080")));
        assert!(host_allowed(&listed, Some("flower.example.net.")));
        assert!(!host_allowed(&listed, Some("evil.example")));
        // Listening on every address without a list: any name.
        let open = crate::config::Http {
            listen: "0.0.0.0:8080".parse().unwrap(),
            ..lo.clone()
        };
        assert!(host_allowed(&open, Some("evil.example")));
        let open_listed = crate::config::Http {
            allowed_hosts: vec!["flower.example.net".into()],
            ..open
        };
        assert!(!host_allowed(&open_listed, Some("evil.example")));
    }

    use super::*;

    #[test]
    fn route_table() {
        assert_eq!(api_methods(&["summary"]), Some(GET));
        assert_eq!(
            api_methods(&["networks", "lan"]),
            Some("GET, HEAD, PUT, DELETE")
        );
        assert_eq!(api_methods(&["users", "bob", "password"]), Some("PUT"));
        assert_eq!(api_methods(&["summary", "x"]), None);
        assert_eq!(api_methods(&[]), None);
        assert!(allow("HEAD", GET).is_ok());
        assert!(matches!(
            allow("POST", GET),
            Err(ApiError::Method { allow: GET })
        ));
        assert!(allow("get", GET).is_err(), "methods are case-sensitive");
    }

    fn post(headers: &[(&str, &str)], body: &[u8]) -> Request {
        Request::for_test("POST", "/api/v1/networks", headers, body)
    }

    #[test]
    fn json_bodies_must_say_so() {
        for ct in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=UTF-8",
        ] {
            let req = post(&[("content-type", ct)], b"{}");
            assert!(json_body::<serde_json::Value>(&req).is_ok(), "{ct}");
        }
        for headers in [
            &[][..],
            &[("content-type", "text/plain")],
            &[("content-type", "text/plain; x=application/json")],
            &[("content-type", "application/x-www-form-urlencoded")],
            &[("content-type", "multipart/form-data; boundary=x")],
            &[("content-type", "application/jsonx")],
        ] {
            let req = post(headers, b"{}");
            assert!(
                matches!(
                    json_body::<serde_json::Value>(&req),
                    Err(ApiError::MediaType)
                ),
                "{headers:?}"
            );
        }
    }
}
