//! Named networks and users: listing (networks for everyone, users for
//! admins) and changes (admins only, except that users may change their own
//! password).
//!
//! Changes run under one lock, so checks such as "not the last admin" and
//! "no such network yet" cannot race with each other. User changes are also
//! checked inside the store transaction that writes them
//! (`Store::change_users`): they hold against `flowerd user` run in another
//! process as well.

use flowstore::cidr::Cidr;
use flowstore::{Network, Role, User, UserChange};
use serde::Deserialize;
use serde_json::json;

use super::auth::Principal;
use super::respond::{ApiError, Response};
use super::routes::json_body;
use super::wire::Request;
use super::AppState;
use crate::users;

/// Most named networks (the matrix is networks² cells).
pub(crate) const MAX_NETWORKS: usize = 256;
/// Most CIDRs per network.
const MAX_CIDRS: usize = 1000;
/// Longest network name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// The body of `POST /networks` and `PUT /networks/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkBody {
    name: Option<String>,
    cidrs: Vec<String>,
}

/// A valid network from its name and CIDR texts.
fn network(name: &str, cidrs: &[String]) -> Result<Network, ApiError> {
    let chars = name.chars().count();
    if chars == 0 || chars > MAX_NAME_CHARS {
        return Err(ApiError::Body(format!(
            "name: 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    if name.chars().any(|c| c.is_control() || c == '/') || name.trim() != name {
        return Err(ApiError::Body(
            "name: no control characters, '/' or surrounding spaces".into(),
        ));
    }
    // The matrix calls everything outside the named networks "other".
    if name == "other" {
        return Err(ApiError::Body("name: \"other\" is reserved".into()));
    }
    if cidrs.is_empty() || cidrs.len() > MAX_CIDRS {
        return Err(ApiError::Body(format!("cidrs: 1 to {MAX_CIDRS} networks")));
    }
    let cidrs = cidrs
        .iter()
        .enumerate()
        .map(|(i, c)| {
            c.trim()
                .parse::<Cidr>()
                .map_err(|e| ApiError::Body(format!("cidrs[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Network {
        name: name.to_string(),
        cidrs,
    })
}

fn lock(state: &AppState) -> std::sync::MutexGuard<'_, ()> {
    state
        .changes
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `GET /api/v1/networks`.
///
/// # Errors
/// Store errors.
pub(crate) fn list_networks(state: &AppState) -> Result<Response, ApiError> {
    Ok(Response::json(200, &state.store.networks()?))
}

/// `GET /api/v1/networks/{name}`.
///
/// # Errors
/// 404; store errors.
pub(crate) fn get_network(state: &AppState, name: &str) -> Result<Response, ApiError> {
    let all = state.store.networks()?;
    let n = all
        .iter()
        .find(|n| n.name == name)
        .ok_or(ApiError::NotFound)?;
    Ok(Response::json(200, n))
}

/// Stores `n`, refusing a new one beyond [`MAX_NETWORKS`]. Whether it is new.
fn save_network(state: &AppState, n: &Network, replace: bool) -> Result<bool, ApiError> {
    let _g = lock(state);
    let all = state.store.networks()?;
    let exists = all.iter().any(|x| x.name == n.name);
    if exists && !replace {
        return Err(ApiError::Conflict("a network with this name exists"));
    }
    if !exists && all.len() >= MAX_NETWORKS {
        return Err(ApiError::Conflict("too many networks (at most 256)"));
    }
    state.store.put_network(n)?;
    Ok(!exists)
}

/// `POST /api/v1/networks` `{"name", "cidrs"}`.
///
/// # Errors
/// 403 for viewers; 400 for a bad body; 409 if it exists.
pub(crate) fn create_network(
    state: &AppState,
    req: &Request,
    who: &Principal,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let body: NetworkBody = json_body(req)?;
    let name = body
        .name
        .ok_or_else(|| ApiError::Body("missing field `name`".into()))?;
    let n = network(&name, &body.cidrs)?;
    save_network(state, &n, false)?;
    tracing::info!(user = who.user, network = n.name, "network created");
    Ok(Response::json(201, &n))
}

/// `PUT /api/v1/networks/{name}` `{"cidrs"}` (a `name`, if given, must
/// match): creates or replaces.
///
/// # Errors
/// 403 for viewers; 400 for a bad body.
pub(crate) fn put_network(
    state: &AppState,
    req: &Request,
    who: &Principal,
    name: &str,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let body: NetworkBody = json_body(req)?;
    if body.name.as_deref().is_some_and(|n| n != name) {
        return Err(ApiError::Body(
            "name: differs from the name in the path".into(),
        ));
    }
    let n = network(name, &body.cidrs)?;
    let created = save_network(state, &n, true)?;
    tracing::info!(user = who.user, network = n.name, created, "network saved");
    Ok(Response::json(if created { 201 } else { 200 }, &n))
}

/// `DELETE /api/v1/networks/{name}`.
///
/// # Errors
/// 403 for viewers; 404.
pub(crate) fn delete_network(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _g = lock(state);
    if !state.store.delete_network(name)? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(user = who.user, network = name, "network deleted");
    Ok(Response::json(200, &json!({"deleted": name})))
}

/// A user as the API shows it: never the hash.
fn public(u: &User) -> serde_json::Value {
    json!({"name": u.name, "role": u.role})
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if users::PASSWORD_CHARS.contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(ApiError::Body(format!(
            "password: {} to {} characters",
            users::PASSWORD_CHARS.start(),
            users::PASSWORD_CHARS.end()
        )))
    }
}

fn hash(password: &str) -> Result<String, ApiError> {
    users::hash_password(password).map_err(|e| {
        tracing::error!(error = %e, "cannot hash a password");
        ApiError::Internal
    })
}

/// `GET /api/v1/users` (admins).
///
/// # Errors
/// 403 for viewers; store errors.
pub(crate) fn list_users(state: &AppState, who: &Principal) -> Result<Response, ApiError> {
    who.require_admin()?;
    let all: Vec<_> = state.store.users()?.iter().map(public).collect();
    Ok(Response::json(200, &all))
}

/// `GET /api/v1/users/{name}` (admins, or the user).
///
/// # Errors
/// 403; 404; store errors.
pub(crate) fn get_user(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<Response, ApiError> {
    if who.user != name {
        who.require_admin()?;
    }
    let u = state.store.user(name)?.ok_or(ApiError::NotFound)?;
    Ok(Response::json(200, &public(&u)))
}

/// `POST /api/v1/users` `{"name", "role", "password"}` (admins).
///
/// # Errors
/// 403; 400 for a bad body; 409 if the user exists.
pub(crate) fn create_user(
    state: &AppState,
    req: &Request,
    who: &Principal,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        role: Role,
        password: String,
    }
    who.require_admin()?;
    let b: Body = json_body(req)?;
    if !users::valid_name(&b.name) {
        return Err(ApiError::Body(
            "name: 1 to 64 letters, digits, '.', '_' or '-'".into(),
        ));
    }
    check_password(&b.password)?;
    // Hash outside the lock: it is the slow part.
    let user = User {
        name: b.name,
        role: b.role,
        password_hash: hash(&b.password)?,
    };
    let _g = lock(state);
    state.store.change_users(|users| {
        if users.iter().any(|u| u.name == user.name) {
            return Err(ApiError::Conflict("a user with this name exists"));
        }
        Ok(UserChange::Put(user.clone()))
    })??;
    tracing::info!(user = who.user, created = user.name, role = ?user.role, "user created");
    Ok(Response::json(201, &public(&user)))
}

/// `DELETE /api/v1/users/{name}` (admins); never the last admin.
///
/// # Errors
/// 403; 404; 409 for the last admin.
pub(crate) fn delete_user(
    state: &AppState,
    who: &Principal,
    name: &str,
) -> Result<Response, ApiError> {
    who.require_admin()?;
    let _g = lock(state);
    // Checked in the transaction that deletes: `flowerd user` may be
    // changing users from another process.
    state.store.change_users(|all| {
        let target = all
            .iter()
            .find(|u| u.name == name)
            .ok_or(ApiError::NotFound)?;
        let admins = all.iter().filter(|u| u.role == Role::Admin).count();
        if target.role == Role::Admin && admins <= 1 {
            return Err(ApiError::Conflict("cannot delete the last admin"));
        }
        Ok(UserChange::Delete(name.into()))
    })??;
    state.sessions.remove_user(name, None);
    tracing::info!(user = who.user, deleted = name, "user deleted");
    Ok(Response::json(200, &json!({"deleted": name})))
}

/// `PUT /api/v1/users/{name}/password` `{"password", "current_password"}`:
/// the user, who must give the current password (checked like a login:
/// failures count towards the client's login limit), or an admin changing
/// another user's (no `current_password`). Ends the user's other sessions.
///
/// # Errors
/// 403 (not allowed, or a wrong `current_password`); 404; 429; 400 for a
/// bad body.
pub(crate) fn set_password(
    state: &AppState,
    req: &Request,
    who: &Principal,
    name: &str,
) -> Result<Response, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        password: String,
        current_password: Option<String>,
    }
    if who.user != name {
        who.require_admin()?;
    }
    let b: Body = json_body(req)?;
    if who.user == name {
        // A stolen session must not be enough to take the account over.
        let Some(current) = b.current_password.as_deref() else {
            return Err(ApiError::Body(
                "current_password: required to change your own password".into(),
            ));
        };
        super::auth::check_password(state, req.peer, name, current).map_err(|e| match e {
            ApiError::BadCredentials => ApiError::WrongPassword,
            other => other,
        })?;
    }
    check_password(&b.password)?;
    let password_hash = hash(&b.password)?;
    let _g = lock(state);
    // Read and written in one transaction: a user deleted meanwhile (by
    // `flowerd user delete`) is not brought back.
    state.store.change_users(|all| {
        let mut user = all
            .iter()
            .find(|u| u.name == name)
            .ok_or(ApiError::NotFound)?
            .clone();
        user.password_hash.clone_from(&password_hash);
        Ok::<_, ApiError>(UserChange::Put(user))
    })??;
    state.sessions.remove_user(name, who.token.as_deref());
    if who.user == name {
        if let Some(t) = who.token.as_deref() {
            state.sessions.set_credential(t, &password_hash);
        }
    }
    tracing::info!(user = who.user, target = name, "password changed");
    Ok(Response::json(200, &json!({"status": "password changed"})))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<Network, ApiError>) -> String {
        match r {
            Err(ApiError::Body(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn validates_networks() {
        let ok = network("lan", &["10.0.0.0/8".into(), " 2001:db8::/32".into()]).unwrap();
        assert_eq!(ok.cidrs.len(), 2);
        assert!(err(network("", &["10.0.0.0/8".into()])).starts_with("name"));
        assert!(err(network(&"x".repeat(65), &["10.0.0.0/8".into()])).starts_with("name"));
        assert!(network(&"é".repeat(64), &["10.0.0.0/8".into()]).is_ok());
        assert!(err(network("a/b", &["10.0.0.0/8".into()])).starts_with("name"));
        assert!(err(network("other", &["10.0.0.0/8".into()])).contains("reserved"));
        assert!(err(network("lan", &[])).starts_with("cidrs"));
        assert!(err(network("lan", &vec!["10.0.0.0/8".into(); 1001])).starts_with("cidrs"));
        assert!(
            err(network("lan", &["10.0.0.0/8".into(), "10.0.0.0/33".into()]))
                .starts_with("cidrs[1]")
        );
        assert!(check_password("1234567").is_err());
        assert!(check_password("12345678").is_ok());
    }
}
