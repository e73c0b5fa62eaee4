//! The store's error type: context in variants, not in formatted strings.

use std::path::PathBuf;

/// What went wrong in the store.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store on disk was written by another format version.
    #[error(
        "store at {path} has format version {found}, this build reads version {expected}; \
             use a matching flowerd or move the directory away"
    )]
    IncompatibleFormat {
        /// The store directory.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Version this build writes and reads.
        expected: u32,
    },
    /// A stored value could not be decoded.
    #[error("corrupt {what} in database {db} at key {key:02x?}")]
    Corrupt {
        /// Database name.
        db: &'static str,
        /// The key (truncated to 32 bytes).
        key: Vec<u8>,
        /// What could not be decoded.
        what: &'static str,
    },
    /// The disk budget is used up even after retention removed what it may.
    #[error("disk budget of {budget} bytes exhausted ({used} bytes used); raise the budget or shorten retention")]
    BudgetExhausted {
        /// Configured budget.
        budget: u64,
        /// Bytes in use.
        used: u64,
    },
    /// LMDB's map is full and cannot grow (internal; retried by the writer).
    #[error("LMDB map full at {map_size} bytes")]
    MapFull {
        /// Current map size.
        map_size: u64,
    },
    /// A [`crate::StoreConfig`] value is out of range (see
    /// [`crate::StoreConfig::validate`]).
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// A query parameter is out of range.
    #[error("invalid query: {0}")]
    InvalidQuery(&'static str),
    /// A query would need more memory or time than configured.
    #[error("query too large: {what} (limit {limit})")]
    QueryTooLarge {
        /// What exceeded the limit.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The store directory could not be created or read.
    #[error("store directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// An error from LMDB.
    #[error("LMDB: {0}")]
    Lmdb(#[from] heed::Error),
}

impl Error {
    pub(crate) fn corrupt(db: &'static str, key: &[u8], what: &'static str) -> Self {
        Error::Corrupt {
            db,
            key: key.iter().take(32).copied().collect(),
            what,
        }
    }
}

/// The store's result type.
pub type Result<T> = std::result::Result<T, Error>;
