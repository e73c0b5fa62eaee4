//! Users: argon2 password hashes, the first-start admin account, and
//! `flowerd user` (offline management).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use flowstore::{Role, Store, User};

/// File, in the data directory, holding the generated admin password.
pub(crate) const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// An argon2id hash in PHC format.
pub(crate) fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))
}

/// Checks a password against a stored hash (constant-time inside argon2).
pub(crate) fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password of 20 characters from an unambiguous alphabet.
pub(crate) fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A valid user name: 1–64 of `[A-Za-z0-9._-]`.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// On the very first start (no users at all) creates `admin` with a random
/// password, writes it to a 0600 file in the data directory and returns it.
pub(crate) fn ensure_initial_admin(store: &Store, data: &Path) -> anyhow::Result<Option<String>> {
    if !store.users()?.is_empty() {
        return Ok(None);
    }
    let password = random_password();
    store.put_user(&User {
        name: "admin".into(),
        role: Role::Admin,
        password_hash: hash_password(&password)?,
    })?;
    let path = data.join(INITIAL_PASSWORD_FILE);
    write_private(&path, format!("{password}\n").as_bytes())?;
    Ok(Some(password))
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}

/// `flowerd user add NAME --role R --password-stdin`.
pub(crate) fn add(
    store: &Store,
    name: &str,
    role: Role,
    password_stdin: bool,
) -> anyhow::Result<()> {
    if !valid_name(name) {
        bail!("invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-'");
    }
    if !password_stdin {
        bail!("give the password on standard input with --password-stdin (it is never taken from the command line)");
    }
    let mut pw = String::new();
    std::io::stdin()
        .take(4096)
        .read_to_string(&mut pw)
        .context("reading the password from stdin")?;
    let pw = pw.trim_end_matches(['\n', '\r']);
    if pw.chars().count() < 8 {
        bail!("password too short: at least 8 characters");
    }
    store.put_user(&User {
        name: name.into(),
        role,
        password_hash: hash_password(pw)?,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ() {
        let h1 = hash_password("correct horse").unwrap();
        let h2 = hash_password("correct horse").unwrap();
        assert!(h1.starts_with("$argon2id$"));
        assert_ne!(h1, h2, "salted");
        assert!(verify_password("correct horse", &h1));
        assert!(!verify_password("wrong", &h1));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn random_passwords_and_names() {
        let a = random_password();
        assert_eq!(a.len(), 20);
        assert_ne!(a, random_password());
        assert!(valid_name("ops.team-1"));
        assert!(!valid_name("a b") && !valid_name("") && !valid_name(&"x".repeat(65)));
    }
}
