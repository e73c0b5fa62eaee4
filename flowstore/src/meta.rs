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
    fn meta_write(&self, f: impl Fn(&mut heed::RwTxn<'_>) -> Result<bool>) -> Result<bool> {
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

    /// Persisted templates.
    ///
    /// # Errors
    /// As [`Store::networks`].
    pub fn templates(&self) -> Result<Vec<StoredTemplate>> {
        self.read(|txn| {
            let mut out = Vec::new();
            for item in self.inner.dbs.templates.iter(txn)? {
                let (k, v) = item?;
                out.push(decode("templates", k, v)?);
            }
            Ok(out)
        })
    }

    /// Stores (or refreshes) templates, in one transaction.
    ///
    /// # Errors
    /// LMDB errors.
    pub fn put_templates(&self, ts: &[StoredTemplate]) -> Result<()> {
        self.meta_write(|t| {
            for s in ts {
                let k = StoredTemplate::key(s.exporter, s.source_id, s.template_id);
                self.inner.dbs.templates.put(t, &k, &encode(s))?;
            }
            Ok(true)
        })
        .map(|_| ())
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
