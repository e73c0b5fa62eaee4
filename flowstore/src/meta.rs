//! The daemon's metadata: named networks, users, persisted exporter
//! templates and settings — small typed records, JSON-encoded.

use std::net::IpAddr;

use heed::types::{Bytes, Str};
use heed::Database;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::query::Network;
use crate::store::Store;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including changing networks and users.
    Admin,
    /// Read-only.
    Viewer,
}

/// A user account. The password is only ever stored as a hash (argon2, by
/// the daemon).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// PHC-format password hash.
    pub password_hash: String,
}

/// One change to the users, chosen by the closure of [`Store::change_users`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserChange {
    /// Adds the user, or replaces the one of the same name.
    Put(User),
    /// Deletes the user of this name (nothing if there is none).
    Delete(String),
}

/// A template learned from an exporter, persisted so data can be decoded
/// right after a restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTemplate {
    /// Exporter address.
    pub exporter: IpAddr,
    /// Source ID.
    pub source_id: u32,
    /// Template ID.
    pub template_id: u16,
    /// True for an Options Template.
    pub options: bool,
    /// Scope fields `(type, length)`.
    pub scope: Vec<(u16, u16)>,
    /// Fields `(type, length)`.
    pub fields: Vec<(u16, u16)>,
    /// When it was last stored (Unix seconds; set by
    /// [`Store::put_templates`], 0 in stores written before it existed).
    #[serde(default)]
    pub stored_at: u64,
}

impl StoredTemplate {
    fn key(exporter: IpAddr, source_id: u32, template_id: u16) -> [u8; 22] {
        let mut k = [0u8; 22];
        k[..16].copy_from_slice(&crate::codec::keys::addr16(exporter).to_be_bytes());
        k[16..20].copy_from_slice(&source_id.to_be_bytes());
        k[20..].copy_from_slice(&template_id.to_be_bytes());
        k
    }
}

fn decode<T: DeserializeOwned>(db: &'static str, key: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|_| Error::corrupt(db, key, "JSON record"))
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // Serializing these plain structs cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

impl Store {
    /// Runs a small metadata write, growing the map if needed.
    fn meta_write(&self, mut f: impl FnMut(&mut heed::RwTxn<'_>) -> Result<bool>) -> Result<bool> {
        loop {
            let r = {
                let _g = self
                    .inner
                    .gate
                    .read()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let mut txn = self.inner.env.write_txn()?;
                f(&mut txn).and_then(|changed| {
                    txn.commit()?;
                    Ok(changed)
                })
            };
            match r {
                Err(Error::Lmdb(heed::Error::Mdb(heed::MdbError::MapFull))) => {
                    if !self.grow_map()? {
                        return Err(Error::BudgetExhausted {
                            budget: self.inner.cfg.disk_budget_bytes,
                            used: self.disk_bytes().unwrap_or(0),
                        });
                    }
                }
                other => return other,
            }
        }
    }

    fn list<T: DeserializeOwned>(
        &self,
        db: &Database<Str, Bytes>,
        name: &'static str,
    ) -> Result<Vec<T>> {
        self.read(|txn| {
            let mut out = Vec::new();
            for item in db.iter(txn)? {
                let (k, v) = item?;
                out.push(decode(name, k.as_bytes(), v)?);
            }
            Ok(out)
        })
    }

    /// Named networks, by name.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for an undecodable record; LMDB errors.
    pub fn networks(&self) -> Result<Vec<Network>> {
        self.list(&self.inner.dbs.networks, "networks")
    }

    /// Adds or replaces a network.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_network(&self, n: &Network) -> Result<()> {
        let v = encode(n);
        self.meta_write(|t| Ok(self.inner.dbs.networks.put(t, &n.name, &v).map(|()| true)?))
            .map(|_| ())
    }

    /// Deletes a network; false if there was none.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn delete_network(&self, name: &str) -> Result<bool> {
        self.meta_write(|t| Ok(self.inner.dbs.networks.delete(t, name)?))
    }

    /// Users, by name.
    ///
    /// # Errors
    /// As [`Store::networks`].
    pub fn users(&self) -> Result<Vec<User>> {
        self.list(&self.inner.dbs.users, "users")
    }

    /// One user.
    ///
    /// # Errors
    /// As [`Store::networks`].
    pub fn user(&self, name: &str) -> Result<Option<User>> {
        self.read(|t| match self.inner.dbs.users.get(t, name)? {
            Some(v) => decode("users", name.as_bytes(), v).map(Some),
            None => Ok(None),
        })
    }

    /// Adds or replaces a user.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_user(&self, u: &User) -> Result<()> {
        let v = encode(u);
        self.meta_write(|t| Ok(self.inner.dbs.users.put(t, &u.name, &v).map(|()| true)?))
            .map(|_| ())
    }

    /// Deletes a user; false if there was none.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn delete_user(&self, name: &str) -> Result<bool> {
        self.meta_write(|t| Ok(self.inner.dbs.users.delete(t, name)?))
    }

    /// Reads every user, lets `decide` pick one change from them, and
    /// writes it, all in one write transaction: what `decide` checked (that
    /// another admin remains, that a name is free or still taken) still
    /// holds when the change is written, even while another process (a
    /// running daemon, `flowerd user`) changes users too. If `decide` fails,
    /// nothing is written and its error comes back inside `Ok`. `decide` may
    /// run more than once (when the map grows).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let store = flowstore::Store::open(dir.path(), Default::default()).unwrap();
    /// use flowstore::{Role, User, UserChange};
    /// let admin = User { name: "ada".into(), role: Role::Admin, password_hash: "$argon2id$…".into() };
    /// store.change_users(|_| Ok::<_, ()>(UserChange::Put(admin.clone())))?.unwrap();
    /// // Deleting the only admin is refused, atomically.
    /// let r = store.change_users(|users| {
    ///     if users.iter().filter(|u| u.role == Role::Admin).count() <= 1 {
    ///         return Err("last admin");
    ///     }
    ///     Ok(UserChange::Delete("ada".into()))
    /// })?;
    /// assert_eq!(r, Err("last admin"));
    /// assert_eq!(store.users()?.len(), 1);
    /// # Ok::<(), flowstore::Error>(())
    /// ```
    ///
    /// # Errors
    /// LMDB errors; [`Error::Corrupt`] for a user record that does not
    /// decode.
    pub fn change_users<E>(
        &self,
        mut decide: impl FnMut(&[User]) -> std::result::Result<UserChange, E>,
    ) -> Result<std::result::Result<(), E>> {
        let db = &self.inner.dbs.users;
        let mut refused = None;
        self.meta_write(|t| {
            refused = None;
            let mut users = Vec::new();
            for item in db.iter(t)? {
                let (k, v) = item?;
                users.push(decode::<User>("users", k.as_bytes(), v)?);
            }
            match decide(&users) {
                Ok(UserChange::Put(u)) => db.put(t, &u.name, &encode(&u))?,
                Ok(UserChange::Delete(name)) => {
                    db.delete(t, &name)?;
                }
                Err(e) => refused = Some(e),
            }
            Ok(true)
        })?;
        Ok(refused.map_or(Ok(()), Err))
    }

    /// Persisted templates.
    ///
    /// # Errors
    /// As [`Store::networks`].
    pub fn templates(&self) -> Result<Vec<StoredTemplate>> {
        let mut out = self.read(|txn| {
            let mut out = Vec::new();
            for item in self.inner.dbs.templates.iter(txn)? {
                let (k, v) = item?;
                out.push(decode("templates", k, v)?);
            }
            Ok(out)
        })?;
        // Least recently stored first: loaded in this order, the newest
        // end up the most recently used in a decoder's cache.
        out.sort_by_key(|t: &StoredTemplate| t.stored_at);
        Ok(out)
    }

    /// Stores (or refreshes) templates, in one transaction, stamped with
    /// the time; then keeps only the `keep` most recently stored (a flood of
    /// templates from spoofed exporters cannot grow the table without
    /// bound). Returns how many were removed.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_templates(&self, ts: &[StoredTemplate], keep: usize) -> Result<u64> {
        self.store_templates(ts, keep, false)
    }

    /// Renews templates still in use: stamps those stored with the same
    /// definition with the time (the least recently stored are pruned
    /// first), stores those missing (a save that failed, or pruned), and
    /// leaves alone those stored with another definition (a newer one,
    /// from another socket). Then prunes as [`Store::put_templates`] does.
    /// Returns how many were removed.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn renew_templates(&self, ts: &[StoredTemplate], keep: usize) -> Result<u64> {
        self.store_templates(ts, keep, true)
    }

    fn store_templates(&self, ts: &[StoredTemplate], keep: usize, renew: bool) -> Result<u64> {
        let now = crate::store::now_secs();
        let mut removed = 0;
        self.meta_write(|t| {
            removed = 0;
            for s in ts {
                let k = StoredTemplate::key(s.exporter, s.source_id, s.template_id);
                let s = StoredTemplate {
                    stored_at: now,
                    ..s.clone()
                };
                if renew {
                    let stored = self.inner.dbs.templates.get(t, &k)?;
                    let same = stored
                        .and_then(|v| decode::<StoredTemplate>("templates", &k, v).ok())
                        .map(|old| {
                            StoredTemplate {
                                stored_at: now,
                                ..old
                            } == s
                        });
                    if same == Some(false) {
                        continue;
                    }
                }
                self.inner.dbs.templates.put(t, &k, &encode(&s))?;
            }
            let n = self.inner.dbs.templates.len(t)?;
            if n > keep as u64 {
                let mut all: Vec<(u64, [u8; 22])> = Vec::new();
                for item in self.inner.dbs.templates.iter(t)? {
                    let (k, v) = item?;
                    let at = decode::<StoredTemplate>("templates", k, v).map_or(0, |s| s.stored_at);
                    if let Ok(k) = <[u8; 22]>::try_from(k) {
                        all.push((at, k));
                    }
                }
                all.sort_unstable();
                for (_, k) in all.iter().take((n - keep as u64) as usize) {
                    self.inner.dbs.templates.delete(t, k)?;
                    removed += 1;
                }
            }
            Ok(true)
        })?;
        Ok(removed)
    }

    /// A setting, if set.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if it does not decode as `T`; LMDB errors.
    pub fn setting<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.read(|t| match self.inner.dbs.settings.get(t, name)? {
            Some(v) => decode("settings", name.as_bytes(), v).map(Some),
            None => Ok(None),
        })
    }

    /// Sets a setting.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_setting<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        let v = encode(value);
        self.meta_write(|t| Ok(self.inner.dbs.settings.put(t, name, &v).map(|()| true)?))
            .map(|_| ())
    }
}
