//! Users: argon2 password hashes, the first-start admin account, and
//! `flowerd user` (offline management).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{bail, Context};
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use flowstore::{Role, Store, User, UserChange};

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
    let admin = User {
        name: "admin".into(),
        role: Role::Admin,
        password_hash: hash_password(&password)?,
    };
    // Only if still nobody: `flowerd user add` may have run meanwhile.
    let created = store.change_users(|users| {
        if users.is_empty() {
            Ok(UserChange::Put(admin.clone()))
        } else {
            Err(())
        }
    })?;
    if created.is_err() {
        return Ok(None);
    }
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

/// Password length bounds, in characters (the API's too).
pub(crate) const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=1024;

/// `flowerd user add NAME --role R --password-stdin [--replace]`.
///
/// The checks (the name is free unless `--replace`; the last admin is not
/// demoted) are made once before reading the password, to fail early, and
/// again in the transaction that writes the user, so they hold even while
/// a running daemon or another `flowerd user` changes users.
pub(crate) fn add(
    store: &Store,
    name: &str,
    role: Role,
    password_stdin: bool,
    replace: bool,
) -> anyhow::Result<()> {
    if !valid_name(name) {
        bail!("invalid user name {name:?}: use 1-64 letters, digits, '.', '_' or '-'");
    }
    if !password_stdin {
        bail!("give the password on standard input with --password-stdin (it is never taken from the command line)");
    }
    let check = |users: &[User]| match users.iter().find(|u| u.name == name) {
        Some(_) if !replace => Err(format!(
            "user {name:?} exists: add --replace to change its role and password, \
             or delete it first"
        )),
        Some(u) if u.role == Role::Admin && role != Role::Admin => {
            refuse_last_admin(users, name, "demote")
        }
        _ => Ok(()),
    };
    check(&store.users()?).map_err(anyhow::Error::msg)?;
    let pw = read_password(std::io::stdin().lock())?;
    let user = User {
        name: name.into(),
        role,
        password_hash: hash_password(&pw)?,
    };
    store
        .change_users(|users| check(users).map(|()| UserChange::Put(user.clone())))?
        .map_err(anyhow::Error::msg)
}

/// `flowerd user delete NAME`: never the last admin, checked in the
/// transaction that deletes.
pub(crate) fn delete(store: &Store, name: &str) -> anyhow::Result<()> {
    store
        .change_users(|users| match users.iter().find(|u| u.name == name) {
            None => Err(format!("no user {name:?}")),
            Some(u) if u.role == Role::Admin => {
                refuse_last_admin(users, name, "delete").map(|()| UserChange::Delete(name.into()))
            }
            Some(_) => Ok(UserChange::Delete(name.into())),
        })?
        .map_err(anyhow::Error::msg)
}

/// Fails if `name` is the only admin among `users`: without one, nobody
/// can manage users through the API.
fn refuse_last_admin(users: &[User], name: &str, verb: &str) -> Result<(), String> {
    if !users
        .iter()
        .any(|u| u.role == Role::Admin && u.name != name)
    {
        return Err(format!(
            "cannot {verb} {name:?}: it is the last admin; add another admin first \
             (flowerd user add NAME --role admin --password-stdin)"
        ));
    }
    Ok(())
}

/// Reads a password: everything up to the end of input, without the line
/// breaks at its end, [`PASSWORD_CHARS`] characters long.
fn read_password(input: impl Read) -> anyhow::Result<String> {
    // A character is at most 4 bytes in UTF-8.
    const MAX_BYTES: usize = 4 * *PASSWORD_CHARS.end();
    let too_long = || {
        anyhow::anyhow!(
            "password too long: at most {} characters",
            PASSWORD_CHARS.end()
        )
    };
    // The longest password, its line break ("\r\n"), and one byte more to
    // tell input that is too long from input that fits.
    let cap = MAX_BYTES + 3;
    let mut bytes = Vec::new();
    input
        .take(cap as u64)
        .read_to_end(&mut bytes)
        .context("reading the password from stdin")?;
    if bytes.len() == cap {
        return Err(too_long());
    }
    let Ok(text) = String::from_utf8(bytes) else {
        bail!("the password on stdin is not UTF-8");
    };
    let pw = text.trim_end_matches(['\n', '\r']);
    let chars = pw.chars().count();
    if chars < *PASSWORD_CHARS.start() {
        bail!(
            "password too short: at least {} characters",
            PASSWORD_CHARS.start()
        );
    }
    if chars > *PASSWORD_CHARS.end() {
        return Err(too_long());
    }
    Ok(pw.to_string())
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

    #[test]
    fn passwords_from_stdin() {
        let read = |b: &[u8]| read_password(b).map_err(|e| e.to_string());
        assert_eq!(read(b"correct horse\n").unwrap(), "correct horse");
        assert_eq!(read(b"correct horse\r\n").unwrap(), "correct horse");
        assert_eq!(read(b" spaces kept ").unwrap(), " spaces kept ");
        assert!(read(b"short\n").unwrap_err().contains("too short"));
        let longest = "\u{e9}".repeat(1024);
        assert_eq!(read(format!("{longest}\r\n").as_bytes()).unwrap(), longest);
        let ascii = "x".repeat(1025);
        assert!(read(ascii.as_bytes()).unwrap_err().contains("too long"));
        // Never truncated to fit.
        let huge = "y".repeat(100_000);
        assert!(read(huge.as_bytes()).unwrap_err().contains("too long"));
        let four_byte = "\u{1f600}".repeat(1024);
        assert_eq!(read(four_byte.as_bytes()).unwrap(), four_byte);
        assert!(read(format!("{four_byte}x").as_bytes()).is_err());
        assert!(read(b"\xff\xfe12345678").unwrap_err().contains("UTF-8"));
    }
}
