//! Who is asking: sessions (bearer tokens and the `flower_session` cookie),
//! HTTP Basic, the per-client login rate limit, and the login and logout
//! routes.
//!
//! Sessions live in memory only (a restart logs everyone out), at most
//! [`MAX_SESSIONS_PER_USER`] per user and [`MAX_SESSIONS`] in all, the
//! oldest evicted first: the user's own when it has too many, so that one
//! account logging in again and again cannot end everyone else's sessions
//! (it would take `MAX_SESSIONS / MAX_SESSIONS_PER_USER` accounts to fill
//! the table). A session names a user;
//! the user's role is read from the store on every request, so deleting a
//! user or changing a role (even offline with `flowerd user`) takes effect at
//! once.
//!
//! Every password check, login or Basic, goes through the rate limit: after
//! `login_attempts_per_minute` failures in a sliding minute, a client address
//! (an IPv6 client's /64) gets 429 without its password being looked at.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use flowstore::{Role, User};
use serde::Deserialize;
use serde_json::json;

use super::respond::{ApiError, Response};
use super::wire::Request;
use super::AppState;
use crate::users;

/// Most sessions kept at once.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// Most sessions one user has at once.
pub(crate) const MAX_SESSIONS_PER_USER: usize = 32;

/// Most client addresses the login rate limit tracks at once.
pub(crate) const MAX_TRACKED_CLIENTS: usize = 10_000;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "flower_session";

/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(60);

/// An authenticated client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The user name.
    pub(crate) user: String,
    /// The user's current role.
    pub(crate) role: Role,
    /// The session token, when the client used one (not for Basic).
    pub(crate) token: Option<String>,
}

impl Principal {
    /// 403 unless the user is an admin.
    ///
    /// # Errors
    /// [`ApiError::Forbidden`].
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden),
        }
    }
}

struct Session {
    user: String,
    /// The user's password hash when the session started: a session ends
    /// when the password changes, even from another process (`flowerd
    /// user add` while the daemon runs).
    credential: String,
    expires_ms: u64,
}

/// Live sessions, by token.
pub(crate) struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    lifetime_ms: u64,
    max: usize,
    max_per_user: usize,
}

/// The token of the oldest of `sessions`: all sessions last equally long,
/// so the first to expire is the oldest.
fn oldest<'a>(sessions: impl Iterator<Item = (&'a String, &'a Session)>) -> Option<String> {
    sessions
        .min_by_key(|(_, s)| s.expires_ms)
        .map(|(t, _)| t.clone())
}

impl Sessions {
    /// An empty table of at most `max` sessions, `max_per_user` per user;
    /// sessions last `lifetime_secs`.
    pub(crate) fn new(lifetime_secs: u64, max: usize, max_per_user: usize) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            lifetime_ms: lifetime_secs.saturating_mul(1000),
            max: max.max(1),
            max_per_user: max_per_user.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        // The map stays consistent whatever a panicking holder did.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for `user`, whose password hash is `credential`:
    /// a new token (32 random bytes, hex) and its expiry in Unix
    /// milliseconds.
    pub(crate) fn create(&self, user: &str, credential: &str, now_ms: u64) -> (String, u64) {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let expires_ms = now_ms.saturating_add(self.lifetime_ms);
        let mut map = self.lock();
        let users_own = |map: &HashMap<String, Session>| {
            map.values()
                .filter(|s| s.user == user && s.expires_ms > now_ms)
                .count()
        };
        if map.len() >= self.max || users_own(&map) >= self.max_per_user {
            map.retain(|_, s| s.expires_ms > now_ms);
        }
        if users_own(&map) >= self.max_per_user {
            if let Some(t) = oldest(map.iter().filter(|(_, s)| s.user == user)) {
                map.remove(&t);
            }
        } else if map.len() >= self.max {
            if let Some(t) = oldest(map.iter()) {
                map.remove(&t);
            }
        }
        map.insert(
            token.clone(),
            Session {
                user: user.to_string(),
                credential: credential.to_string(),
                expires_ms,
            },
        );
        (token, expires_ms)
    }

    /// The user of a live session, and its password hash at the start.
    pub(crate) fn lookup(&self, token: &str, now_ms: u64) -> Option<(String, String)> {
        let mut map = self.lock();
        match map.get(token) {
            Some(s) if s.expires_ms > now_ms => Some((s.user.clone(), s.credential.clone())),
            Some(_) => {
                map.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends a session; false if there was none.
    pub(crate) fn remove(&self, token: &str) -> bool {
        self.lock().remove(token).is_some()
    }

    /// Records a new password hash for the session `token` (its user
    /// changed the password through it, and it stays).
    pub(crate) fn set_credential(&self, token: &str, credential: &str) {
        if let Some(s) = self.lock().get_mut(token) {
            s.credential = credential.to_string();
        }
    }

    /// Ends every session of `user` except `keep`.
    pub(crate) fn remove_user(&self, user: &str, keep: Option<&str>) {
        self.lock()
            .retain(|t, s| s.user != user || Some(t.as_str()) == keep);
    }

    /// Number of live or not yet purged sessions.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Who a client is, for the login rate limit and the connection cap: an IPv4
/// address, or an IPv6 address's /64 (one subscriber usually holds a whole /64).
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// A user name's failures may reach this many times a client's: password
/// guesses spread over many addresses (a /48 of IPv6 holds 65 536 /64s)
/// still meet a limit per account, and a legitimate user is locked out only
/// while such an attack runs.
const USER_FACTOR: u32 = 10;

/// Failed password checks in the last minute, per client address and per
/// user name.
pub(crate) struct LoginLimiter {
    per_client: Window<IpAddr>,
    per_user: Window<String>,
}

impl LoginLimiter {
    /// Allows `per_minute` failures per client per minute and ten times as
    /// many per user name (0: no limit); remembers at most `max_clients`
    /// clients and as many names.
    pub(crate) fn new(per_minute: u32, max_clients: usize) -> LoginLimiter {
        LoginLimiter {
            per_client: Window::new(per_minute, max_clients),
            per_user: Window::new(per_minute.saturating_mul(USER_FACTOR), max_clients),
        }
    }

    /// Reserves a password check for `ip` and `user`: counted as a failure
    /// from now on (so parallel attempts cannot all pass the check before
    /// any is recorded), taken back by [`LoginLimiter::succeeded`].
    /// `Err(seconds to wait)` if either has used up its failures.
    /// `user` is `None` for a name no user has: all of those share one key,
    /// so made-up names cannot fill the table.
    pub(crate) fn check(&self, ip: IpAddr, user: Option<&str>, now: Instant) -> Result<(), u64> {
        let client = client_key(ip);
        self.per_client.check(client, now)?;
        if let Err(wait) = self.per_user.check(user_key(user), now) {
            self.per_client.succeeded(&client, now);
            return Err(wait);
        }
        Ok(())
    }

    /// Takes back the check reserved at `at`: the password was right.
    pub(crate) fn succeeded(&self, ip: IpAddr, user: Option<&str>, at: Instant) {
        self.per_client.succeeded(&client_key(ip), at);
        self.per_user.succeeded(&user_key(user), at);
    }
}

/// The per-user key: the name of an existing user; one shared key for
/// every other name.
fn user_key(user: Option<&str>) -> String {
    user.unwrap_or_default().to_string()
}

/// Failures per key in a sliding minute.
struct Window<K> {
    per_minute: usize,
    failures: Mutex<HashMap<K, VecDeque<Instant>>>,
    max_keys: usize,
}

impl<K: std::hash::Hash + Eq + Clone> Window<K> {
    fn new(per_minute: u32, max_keys: usize) -> Window<K> {
        Window {
            per_minute: usize::try_from(per_minute).unwrap_or(usize::MAX),
            failures: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
        }
    }

    fn check(&self, key: K, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let mut table = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(times) = table.get_mut(&key) {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= self.per_minute {
                let oldest = times.front().copied().unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.duration_since(oldest));
                return Err(wait.as_secs() + 1);
            }
        }
        if !table.contains_key(&key) && table.len() >= self.max_keys {
            table.retain(|_, t| t.back().is_some_and(|l| now.duration_since(*l) < WINDOW));
            if table.len() >= self.max_keys {
                let quietest = table
                    .iter()
                    .min_by_key(|(_, t)| t.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(k) = quietest {
                    table.remove(&k);
                }
            }
        }
        table.entry(key).or_default().push_back(now);
        Ok(())
    }

    fn succeeded(&self, key: &K, at: Instant) {
        let mut table = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(times) = table.get_mut(key) {
            if let Some(i) = times.iter().rposition(|t| *t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                table.remove(key);
            }
        }
    }
}

/// Decodes standard base64 (RFC 4648 §4), padding optional.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            // The low 8 bits above `bits` are the next byte.
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A single leftover character cannot end valid base64.
    (bits < 6).then_some(out)
}

/// The password hash checked when the user does not exist, so that a wrong
/// name takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| users::hash_password("not the password of any user").unwrap_or_default())
}

/// Checks a name and password against the store, through the rate limit.
/// Counts failures in the metrics.
pub(crate) fn check_password(
    state: &AppState,
    client: IpAddr,
    name: &str,
    password: &str,
) -> Result<User, ApiError> {
    let metrics = &state.metrics;
    let attempt = Instant::now();
    let user = if users::valid_name(name) {
        state.store.user(name)?
    } else {
        None
    };
    let key = user.as_ref().map(|u| u.name.as_str());
    if let Err(retry_after) = state.limiter.check(client, key, attempt) {
        metrics.logins_limited.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%client, user = name, "login refused: too many failures");
        return Err(ApiError::TooManyLogins { retry_after });
    }
    let ok = match &user {
        Some(u) => users::verify_password(password, &u.password_hash),
        None => users::verify_password(password, dummy_hash()),
    };
    match user {
        Some(u) if ok => {
            state.limiter.succeeded(client, Some(name), attempt);
            Ok(u)
        }
        _ => {
            metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%client, user = name, "failed login");
            Err(ApiError::BadCredentials)
        }
    }
}

/// The session token of a `Cookie` header, if any.
///
/// Several different session cookies are none: browsers do not keep
/// cookies apart by port, so another service on this host can set a
/// `flower_session` of its own (for a narrower path, which browsers send
/// first) next to the visitor's to sign them into the session it chose.
/// (A visitor without a session of their own still sends only the planted
/// one: that cannot be told apart; on a shared host, use bearer tokens.)
fn cookie_token(req: &Request) -> Option<&str> {
    let mut found = None;
    for v in req
        .head
        .headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then_some(v.trim_matches('"'))
        })
    {
        match found {
            None => found = Some(v),
            Some(f) if f == v => {}
            Some(_) => return None,
        }
    }
    found
}

/// Refuses a state-changing request that a browser sent with the session
/// cookie on behalf of another site.
///
/// `SameSite=Strict` is not enough: a site is a scheme and a registrable
/// domain, ports do not count, so a page served by anything else on
/// `localhost` is "same-site" and gets the cookie sent along. The browser
/// says where a request comes from in `Sec-Fetch-Site` (Fetch Metadata) and
/// `Origin` (RFC 6454 §7, sent with every cross-origin and every non-GET
/// request by current browsers); clients other than browsers send neither.
/// Only the origin this server answers on may use the cookie to change
/// things; bearer tokens and Basic are never sent by a browser on its own.
///
/// # Errors
/// [`ApiError::CrossSite`].
fn check_same_site(req: &Request) -> Result<(), ApiError> {
    if matches!(req.head.method.as_str(), "GET" | "HEAD") {
        return Ok(());
    }
    if let Some(site) = req.head.header("sec-fetch-site") {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return Err(ApiError::CrossSite);
        }
    }
    if let Some(origin) = req.head.header("origin") {
        // `scheme "://" host [ ":" port ]`, or `null` from a sandboxed or
        // opaque origin. The scheme is not compared: behind a TLS proxy the
        // server cannot know it.
        let authority = origin.split_once("://").map(|(_, a)| a);
        match (authority, req.head.header("host")) {
            (Some(a), Some(host)) if a.eq_ignore_ascii_case(host) => {}
            _ => return Err(ApiError::CrossSite),
        }
    }
    Ok(())
}

/// Identifies the client: `Authorization: Bearer`, `Authorization: Basic`,
/// or the session cookie, in that order.
///
/// # Errors
/// 401 without valid credentials; 429 for Basic while rate-limited.
pub(crate) fn authenticate(
    state: &AppState,
    req: &Request,
    now_ms: u64,
) -> Result<Principal, ApiError> {
    let (user, token) = match req.head.header("authorization") {
        Some(auth) => {
            let (scheme, value) = auth.split_once(' ').unwrap_or((auth, ""));
            let value = value.trim();
            if scheme.eq_ignore_ascii_case("bearer") {
                (state.sessions.lookup(value, now_ms), Some(value))
            } else if scheme.eq_ignore_ascii_case("basic") {
                let decoded = base64_decode(value)
                    .and_then(|b| String::from_utf8(b).ok())
                    .ok_or(ApiError::Unauthorized)?;
                let (name, password) = decoded.split_once(':').ok_or(ApiError::Unauthorized)?;
                let user =
                    check_password(state, req.peer, name, password).map_err(|e| match e {
                        ApiError::BadCredentials => ApiError::Unauthorized,
                        e => e,
                    })?;
                return Ok(Principal {
                    user: user.name,
                    role: user.role,
                    token: None,
                });
            } else {
                return Err(ApiError::Unauthorized);
            }
        }
        None => match cookie_token(req) {
            Some(t) => {
                check_same_site(req)?;
                (state.sessions.lookup(t, now_ms), Some(t))
            }
            None => return Err(ApiError::Unauthorized),
        },
    };
    let (user, credential) = user.ok_or(ApiError::Unauthorized)?;
    // The user may have been deleted, or its password changed, since the
    // login (also by `flowerd user` in another process).
    let stored = state.store.user(&user)?.ok_or(ApiError::Unauthorized)?;
    if stored.password_hash != credential {
        if let Some(t) = token {
            state.sessions.remove(t);
        }
        return Err(ApiError::Unauthorized);
    }
    Ok(Principal {
        user,
        role: stored.role,
        token: token.map(str::to_string),
    })
}

/// `Set-Cookie` for a session, or (with `None`) one that deletes it.
fn set_cookie(token: Option<&str>, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        token.unwrap_or(""),
        if token.is_some() { max_age_secs } else { 0 },
        if secure { "; Secure" } else { "" }
    )
}

/// `POST /api/v1/login` `{"user", "password"}`.
///
/// # Errors
/// 400 for a malformed body, 401 for wrong credentials, 429 when limited.
pub(crate) fn login(state: &AppState, req: &Request, now_ms: u64) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        user: String,
        password: String,
    }
    let body: Body = super::routes::json_body(req)?;
    let user = check_password(state, req.peer, &body.user, &body.password)?;
    let (token, expires_ms) = state
        .sessions
        .create(&user.name, &user.password_hash, now_ms);
    tracing::info!(client = %req.peer, user = user.name, "login");
    let cookie = set_cookie(Some(&token), state.config.session_secs, req.secure);
    Ok(Response::json(
        200,
        &json!({
            "token": token,
            "expires": expires_ms / 1000,
            "user": user.name,
            "role": user.role,
        }),
    )
    .with_header("Set-Cookie", cookie))
}

/// `POST /api/v1/logout`: ends the session the request used.
pub(crate) fn logout(state: &AppState, req: &Request, who: &Principal) -> Response {
    if let Some(t) = &who.token {
        state.sessions.remove(t);
    }
    Response::json(200, &json!({"status": "logged out"}))
        .with_header("Set-Cookie", set_cookie(None, 0, req.secure))
}

#[cfg(test)]
mod tests {

    /// One session cookie, or the same one twice, is a token; two
    /// different ones (another service on this host set its own) are none.
    #[test]
    fn session_cookies() {
        let r = |cookies: &[&str]| {
            let headers: Vec<(&str, &str)> = cookies.iter().map(|c| ("cookie", *c)).collect();
            Request::for_test("GET", "/api/v1/me", &headers, b"")
        };
        assert_eq!(cookie_token(&r(&["a=1; flower_session=t1"])), Some("t1"));
        assert_eq!(
            cookie_token(&r(&["flower_session=t1", "flower_session=\"t1\""])),
            Some("t1")
        );
        assert_eq!(
            cookie_token(&r(&["flower_session=evil; flower_session=t1"])),
            None
        );
        assert_eq!(cookie_token(&r(&["theme=dark"])), None);
    }

    use super::*;

    #[test]
    fn base64() {
        assert_eq!(base64_decode("YWRtaW46cGFzcw==").unwrap(), b"admin:pass");
        assert_eq!(base64_decode("YWRtaW46cGFzcw").unwrap(), b"admin:pass");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("/+8=").unwrap(), [0xff, 0xef]);
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert!(base64_decode("Y").is_none());
        assert!(base64_decode("YW*=").is_none());
        assert!(base64_decode("YW Q=").is_none());
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(10, 3, 3);
        let (a, exp) = s.create("alice", "h1", 1_000);
        assert_eq!(exp, 11_000);
        assert_eq!(a.len(), 64);
        let alice = Some(("alice".to_string(), "h1".to_string()));
        assert_eq!(s.lookup(&a, 10_999), alice);
        s.set_credential(&a, "h2");
        assert_eq!(s.lookup(&a, 10_999).map(|(_, c)| c).as_deref(), Some("h2"));
        assert_eq!(s.lookup(&a, 11_000), None, "expired");
        assert_eq!(s.lookup(&a, 1_000), None, "and removed");
        let (b, _) = s.create("bob", "h", 2_000);
        let (c, _) = s.create("bob", "h", 3_000);
        let (d, _) = s.create("carol", "h", 4_000);
        let (e, _) = s.create("dave", "h", 5_000);
        assert_eq!(s.len(), 3);
        assert_eq!(s.lookup(&b, 5_000), None, "oldest evicted");
        assert!(s.lookup(&c, 5_000).is_some() && s.lookup(&d, 5_000).is_some());
        s.remove_user("dave", None);
        assert_eq!(s.lookup(&e, 5_000), None);
        assert!(s.remove(&c));
        assert!(!s.remove(&c));
        assert_ne!(b, c);
    }

    #[test]
    fn one_user_cannot_evict_the_others() {
        let s = Sessions::new(3600, 10, 3);
        let (admin, _) = s.create("admin", "h", 1_000);
        let (carol, _) = s.create("carol", "h", 1_001);
        let viewer: Vec<String> = (0..1000)
            .map(|i| s.create("vera", "h", 2_000 + i).0)
            .collect();
        assert!(s.lookup(&admin, 5_000).is_some(), "others keep theirs");
        assert!(s.lookup(&carol, 5_000).is_some());
        assert_eq!(s.len(), 5);
        // The user's own oldest went first; its newest are live.
        assert!(viewer[..997].iter().all(|t| s.lookup(t, 5_000).is_none()));
        assert!(viewer[997..].iter().all(|t| s.lookup(t, 5_000).is_some()));
        // The global cap still holds, evicting the oldest of all.
        for u in 0..5 {
            s.create(&format!("u{u}"), "h", 3_000 + u);
        }
        assert_eq!(s.len(), 10);
        let (_, _) = s.create("last", "h", 4_000);
        assert_eq!(s.len(), 10);
        assert!(s.lookup(&admin, 5_000).is_none(), "oldest overall evicted");
        assert!(s.lookup(&carol, 5_000).is_some());
    }

    #[test]
    fn limiter_slides_and_groups_ipv6() {
        let l = LoginLimiter::new(2, 2);
        let t0 = Instant::now();
        let secs = |n| t0 + Duration::from_secs(n);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        // Every check counts until it succeeds: parallel attempts cannot
        // all pass before the first failure is recorded.
        assert_eq!(l.check(a, Some("u"), t0), Ok(()));
        assert_eq!(l.check(a, Some("u"), secs(10)), Ok(()));
        assert_eq!(l.check(a, Some("u"), secs(20)), Err(41));
        l.succeeded(a, Some("u"), secs(10));
        assert_eq!(
            l.check(a, Some("u"), secs(20)),
            Ok(()),
            "a success is taken back"
        );
        assert_eq!(l.check(a, Some("u"), secs(30)), Err(31));
        assert_eq!(
            l.check(a, Some("u"), secs(60)),
            Ok(()),
            "first failure aged out"
        );
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(l.check(v6a, Some("v"), t0), Ok(()));
        assert_eq!(l.check(v6b, Some("v"), t0), Ok(()));
        assert!(l.check(v6b, Some("v"), t0).is_err(), "same /64");
        // A third client evicts the quietest.
        assert_eq!(
            l.check("192.0.2.9".parse().unwrap(), Some("w"), secs(30)),
            Ok(())
        );
        assert_eq!(l.per_client.failures.lock().unwrap().len(), 2);
        let off = LoginLimiter::new(0, 2);
        for _ in 0..10 {
            assert_eq!(off.check(a, Some("u"), t0), Ok(()));
        }
    }

    /// Guesses at one account from many addresses meet the per-user limit
    /// (ten times the per-client one); other accounts are not affected, and
    /// a refused check does not use up the client's own budget.
    #[test]
    fn limiter_per_user_across_clients() {
        let l = LoginLimiter::new(2, 1000);
        let t0 = Instant::now();
        for i in 0..20u8 {
            let ip = IpAddr::from([198, 51, 100, i]);
            assert_eq!(l.check(ip, Some("admin"), t0), Ok(()), "{i}");
        }
        let fresh: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(l.check(fresh, Some("admin"), t0), Err(61));
        assert_eq!(l.check(fresh, Some("viewer"), t0), Ok(()));
        assert_eq!(l.check(fresh, Some("viewer2"), t0), Ok(()));
        // Names no user has share one key.
        for i in 0..20u8 {
            let ip = IpAddr::from([192, 0, 2, i]);
            assert_eq!(l.check(ip, None, t0), Ok(()));
        }
        assert!(l.check("192.0.2.200".parse().unwrap(), None, t0).is_err());
    }

    #[test]
    fn cookie_requests_from_other_sites_are_refused() {
        let req = |method: &str, headers: &[(&str, &str)]| {
            let mut all = vec![("host", "localhost:8080")];
            all.extend_from_slice(headers);
            check_same_site(&Request::for_test(method, "/api/v1/users", &all, b"{}"))
        };
        for ok in [
            &[][..],
            &[("origin", "http://localhost:8080")],
            &[("origin", "https://LOCALHOST:8080")],
            &[("sec-fetch-site", "same-origin")],
            &[("sec-fetch-site", "none")],
            &[
                ("origin", "http://localhost:8080"),
                ("sec-fetch-site", "same-origin"),
            ],
        ] {
            assert!(req("POST", ok).is_ok(), "{ok:?}");
        }
        for bad in [
            &[("origin", "http://localhost:3000")][..],
            &[("origin", "http://localhost")],
            &[("origin", "http://evil.example:8080")],
            &[("origin", "null")],
            &[("sec-fetch-site", "cross-site")],
            &[("sec-fetch-site", "same-site")],
            &[
                ("origin", "http://localhost:8080"),
                ("sec-fetch-site", "same-site"),
            ],
        ] {
            for method in ["POST", "PUT", "DELETE"] {
                assert!(
                    matches!(req(method, bad), Err(ApiError::CrossSite)),
                    "{method} {bad:?}"
                );
            }
            assert!(req("GET", bad).is_ok(), "reading is not refused");
        }
        let no_host = Request::for_test("POST", "/", &[("origin", "http://localhost")], b"");
        assert!(check_same_site(&no_host).is_err());
    }

    #[test]
    fn cookies() {
        assert_eq!(
            set_cookie(Some("ab"), 60, true),
            "flower_session=ab; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure"
        );
        assert_eq!(
            set_cookie(None, 60, false),
            "flower_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
        );
    }
}
