//! Persistence for the dialer: campaigns, contacts, consents, attempts, results, the
//! suppression list and the audit log.
//!
//! One code path over two backends through [`sqlx::AnyPool`]: embedded **SQLite** (the default:
//! one file under a data directory, WAL, `busy_timeout`, foreign keys, `secure_delete`) and
//! **PostgreSQL** (several nodes on one database). Every statement uses `$n` placeholders and
//! portable SQL; the few dialect differences are spelled out where they occur (the
//! `FOR UPDATE SKIP LOCKED` suffix of the claim, JSON merge of attributes, `BEGIN IMMEDIATE`).
//! The schema lives in `migrations/{sqlite,postgres}/` with the same versions and is applied
//! by [`Store::open`].
//!
//! Timestamps are unix milliseconds UTC (`BIGINT`). Functions whose behaviour depends on the
//! time take `now_ms` from the caller (the engine's clock), so tests and the scheduler agree.
//!
//! Personal data (number, name, attributes, transcript) is never logged above `debug`, never
//! put into an error message, and redacted from the `Debug` output of every row type.
//!
//! ## Life of one call, as the store sees it
//! 1. [`Store::claim_due`] leases due contacts to a node (`in_progress`, `lease_owner`,
//!    `lease_until`); the node keeps them with [`Store::renew_leases`] or gives them back with
//!    [`Store::release_contacts`].
//! 2. [`Store::start_attempt`] writes the attempt (`dialling`) before the INVITE leaves; it
//!    fails with [`StoreError::LeaseLost`] if the node no longer holds the lease.
//! 3. [`Store::finish_attempt`] commits attempt, result and the contact's next state in one
//!    transaction; the result gets a stream sequence number in commit order, read back with
//!    [`Store::results_after`].
//! 4. A node that dies leaves leases that expire: [`Store::release_expired_leases`] (any
//!    node, periodically) or [`Store::recover_node`] (the node itself, at start) turns its
//!    `dialling` attempts into `interrupted` and applies the caller's retry policy.

#![forbid(unsafe_code)]

mod attempts;
mod campaigns;
mod claim;
mod compliance;
mod contacts;
mod error;
mod hmac;
pub mod import;
mod model;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use crate::error::{Result, StoreError};
pub use crate::hmac::phone_hmac;
pub use crate::model::*;

static SQLITE_MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (one process).
    Sqlite,
    /// PostgreSQL (any number of nodes).
    Postgres,
}

/// Pool settings for [`Store::open_with`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections in the pool (SQLite: readers; writers are serialised anyway).
    pub max_connections: u32,
    /// How long to wait for a pooled connection.
    pub acquire_timeout: Duration,
    /// SQLite `busy_timeout` (waiting for another process's write lock).
    pub sqlite_busy_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            sqlite_busy_timeout: Duration::from_secs(10),
        }
    }
}

/// A handle to the database; cheap to clone (the pool is shared).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite allows one writer; writers of this process queue here instead of spinning on
    /// `SQLITE_BUSY` (other processes are still covered by `busy_timeout`).
    write_lock: Arc<Mutex<()>>,
    /// Rotates which campaign `claim_due(AllRunning)` serves first.
    claim_rotation: Arc<AtomicUsize>,
}

/// A write transaction: `BEGIN IMMEDIATE` under the process-wide writer lock on SQLite, a
/// plain transaction on PostgreSQL.
pub(crate) struct WriteTx {
    pub(crate) tx: Transaction<'static, Any>,
    _guard: Option<OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub(crate) async fn commit(self) -> Result<()> {
        self.tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    ///
    /// `sqlite:///abs/path/dialer.db` (the file and its directory are created),
    /// `sqlite://relative/dialer.db`, `sqlite::memory:` (one connection, for tests), or
    /// `postgres://user@host:port/db`.
    pub async fn open(url: &str) -> Result<Store> {
        Store::open_with(url, StoreOptions::default()).await
    }

    /// [`Store::open`] with pool settings.
    pub async fn open_with(url: &str, opts: StoreOptions) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let pool = match backend {
            Backend::Sqlite => open_sqlite(url, &opts).await?,
            Backend::Postgres => {
                let options: AnyConnectOptions = url.parse()?;
                AnyPoolOptions::new()
                    .max_connections(opts.max_connections)
                    .acquire_timeout(opts.acquire_timeout)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // Statements are prepared once per connection; a generic plan for
                            // the batch statements (`IN ($2, …, $1001)`) degrades to sequential
                            // scans. Plan each execution with its values instead.
                            conn.execute("SET plan_cache_mode = force_custom_plan")
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
        };
        let migrator = match backend {
            Backend::Sqlite => &SQLITE_MIGRATOR,
            Backend::Postgres => &POSTGRES_MIGRATOR,
        };
        migrator.run(&pool).await?;
        tracing::debug!(?backend, "store opened");
        Ok(Store {
            pool,
            backend,
            write_lock: Arc::new(Mutex::new(())),
            claim_rotation: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The underlying pool (for tests and tools; the schema is this crate's business).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(crate) async fn write_tx(&self) -> Result<WriteTx> {
        match self.backend {
            Backend::Sqlite => {
                let guard = self.write_lock.clone().lock_owned().await;
                let tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
                Ok(WriteTx {
                    tx,
                    _guard: Some(guard),
                })
            }
            Backend::Postgres => Ok(WriteTx {
                tx: self.pool.begin().await?,
                _guard: None,
            }),
        }
    }

    /// ` FOR UPDATE` on PostgreSQL (row lock inside a write transaction); nothing on SQLite,
    /// where the write transaction already excludes other writers.
    pub(crate) fn lock_suffix(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE",
        }
    }

    /// Holds the SQLite writer lock for a single-statement write (a no-op on PostgreSQL).
    pub(crate) async fn write_guard(&self) -> Option<OwnedMutexGuard<()>> {
        match self.backend {
            Backend::Sqlite => Some(self.write_lock.clone().lock_owned().await),
            Backend::Postgres => None,
        }
    }

    /// Best effort on SQLite: moves the WAL into the main file and truncates it, so erased
    /// data does not linger in old WAL frames (with `secure_delete` the main file keeps none).
    pub(crate) async fn sqlite_checkpoint(&self) {
        if self.backend == Backend::Sqlite
            && let Err(e) = self.pool.execute("PRAGMA wal_checkpoint(TRUNCATE)").await
        {
            tracing::debug!(error = %e, "wal checkpoint after erasure failed");
        }
    }
}

/// The URL without credentials, for an error message.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

async fn open_sqlite(url: &str, opts: &StoreOptions) -> Result<AnyPool> {
    let rest = url.trim_start_matches("sqlite:");
    let (path_part, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let memory = path_part == ":memory:" || path_part.is_empty();
    let path = path_part.strip_prefix("//").unwrap_or(path_part);
    if !memory
        && let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::DataDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let url = match query {
        Some(q) if q.contains("mode=") => url.to_string(),
        Some(_) => format!("{url}&mode=rwc"),
        None if memory => url.to_string(),
        None => format!("{url}?mode=rwc"),
    };
    let options: AnyConnectOptions = url.parse()?;
    if !memory {
        // The journal mode is a property of the file; switch it once, before the pool opens
        // connections concurrently (changing it needs an exclusive lock that busy_timeout
        // does not wait for).
        let mut conn = options.connect().await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        conn.close().await?;
    }
    let busy_ms = opts.sqlite_busy_timeout.as_millis();
    let pragmas = format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
         PRAGMA secure_delete = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
    );
    let pool = AnyPoolOptions::new()
        .max_connections(if memory { 1 } else { opts.max_connections })
        .acquire_timeout(opts.acquire_timeout)
        .after_connect(move |conn, _meta| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                conn.execute(pragmas.as_str()).await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Wall-clock now, unix ms UTC (for bookkeeping timestamps: created/updated/audit).
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `$start, $start+1, …` — `n` placeholders.
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 5);
    for i in 0..n {
        if i > 0 {
            s.push_str(", ");
        }
        s.push('$');
        s.push_str(&(start + i).to_string());
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_count_from_start() {
        assert_eq!(placeholders(3, 3), "$3, $4, $5");
        assert_eq!(placeholders(1, 0), "");
    }

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            redact_url("mysql://user:secret@host/db"),
            "mysql://…@host/db"
        );
    }
}
