//! Persistence for the dialer: campaigns, contacts, consents, attempts, results, the
//! suppression list and the audit log.
//!
//! One code path over two backends through [`sqlx::AnyPool`]: embedded **SQLite** (the default:
//! one file under a data directory, WAL, `busy_timeout`, foreign keys, `secure_delete`) and
//! **PostgreSQL** (several nodes on one database). Statements use `$n` placeholders (batch
//! statements with thousands of parameters use anonymous `?` on SQLite, see `Sql`) and
//! portable SQL; the few dialect differences are spelled out where they occur (the
//! `FOR UPDATE SKIP LOCKED` suffix of the claim, JSON merge of attributes, `BEGIN IMMEDIATE`).
//! The schema lives in `migrations/{sqlite,postgres}/` with the same versions and is applied
//! by [`Store::open`].
//!
//! `AnyPool` holds up: the schema sticks to types Any maps on both sides (`BIGINT`/`INTEGER`,
//! `TEXT`, `REAL`/`DOUBLE PRECISION`; JSON as `TEXT`, no booleans, arrays or `jsonb` columns),
//! and each row is copied once into an `AnyRow`, which the benchmarks show is not the cost.
//! Batch statements bind parameters positionally (see `Sql`): SQLite resolves `$N` names by
//! a linear scan, quadratic for the thousands of parameters of a 1,000-row INSERT. PostgreSQL
//! connections use `plan_cache_mode = force_custom_plan`, because a generic plan for those
//! batch statements degrades to scans.
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
mod nodes;
pub mod reports;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{Any, AnyPool, ConnectOptions, Connection, Executor, Transaction};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use crate::error::{Result, StoreError};
pub use crate::hmac::phone_hmac;
pub use crate::model::*;
pub use crate::nodes::AttemptCounts;

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
    /// Last value of [`Store::unique_now`].
    last_now: Arc<AtomicI64>,
    /// SQLite: checkpoints the WAL in the background (stopped when the last clone drops).
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// Moves WAL frames into the SQLite database file from a task of its own, so that a commit
/// never pays for a checkpoint and its fsync (measured: half of a 1,000-row import batch).
/// Connections run with `wal_autocheckpoint = 0`; every 200 ms the task runs a PASSIVE
/// checkpoint (blocks nobody), and once the WAL holds more than [`WAL_RESTART_FRAMES`] frames
/// it takes the writer lock and runs a RESTART checkpoint, so the next writer starts the WAL
/// from its beginning (a WAL that is only ever passively checkpointed under a steady writer
/// never restarts and grows without bound).
#[derive(Debug)]
struct Checkpointer {
    stop: Arc<tokio::sync::Notify>,
}

/// 16 MiB of 4 KiB pages.
const WAL_RESTART_FRAMES: i64 = 4096;

impl Checkpointer {
    fn spawn(pool: AnyPool, write_lock: Arc<Mutex<()>>, busy_ms: u128) -> Checkpointer {
        let stop = Arc::new(tokio::sync::Notify::new());
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.notified() => break,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
                if pool.is_closed() {
                    break;
                }
                // Columns: busy, frames in the WAL, frames checkpointed.
                let frames =
                    match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                        .fetch_one(&pool)
                        .await
                    {
                        Ok((_, log, _)) => log,
                        Err(e) => {
                            tracing::debug!(error = %e, "background WAL checkpoint failed");
                            continue;
                        }
                    };
                if frames > WAL_RESTART_FRAMES {
                    // Holding the writer lock: wait briefly for readers, never for long (a
                    // long report query must not stall the writers behind this lock).
                    let _writer = write_lock.lock().await;
                    let Ok(mut conn) = pool.acquire().await else {
                        continue;
                    };
                    let restart = conn
                        .execute("PRAGMA busy_timeout = 200; PRAGMA wal_checkpoint(RESTART)")
                        .await;
                    if let Err(e) = restart {
                        tracing::debug!(error = %e, "WAL restart checkpoint failed");
                    }
                    let restore = format!("PRAGMA busy_timeout = {busy_ms}");
                    if conn.execute(restore.as_str()).await.is_err() {
                        // Do not hand a connection with the short timeout back to the pool.
                        conn.detach();
                    }
                }
            }
        });
        Checkpointer { stop }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        // notify_one keeps a permit if the task is not waiting right now.
        self.stop.notify_one();
    }
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
        let write_lock = Arc::new(Mutex::new(()));
        let checkpointer = (backend == Backend::Sqlite && !is_sqlite_memory(url)).then(|| {
            Arc::new(Checkpointer::spawn(
                pool.clone(),
                write_lock.clone(),
                opts.sqlite_busy_timeout.as_millis(),
            ))
        });
        Ok(Store {
            pool,
            backend,
            _checkpointer: checkpointer,
            write_lock,
            claim_rotation: Arc::new(AtomicUsize::new(0)),
            last_now: Arc::new(AtomicI64::new(0)),
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

    /// Closes the pool, waiting for connections to be returned. On SQLite the WAL is
    /// checkpointed into the database file first.
    pub async fn close(&self) {
        if self.backend == Backend::Sqlite {
            let _ = self.pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await;
        }
        self.pool.close().await;
    }

    /// Refreshes the planner's statistics; call after a large import (PostgreSQL's
    /// autovacuum gets there too, later; until then plans may be chosen for an empty table).
    pub async fn analyze(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                let _guard = self.write_guard().await;
                self.pool
                    .execute("PRAGMA analysis_limit = 1000; ANALYZE")
                    .await?;
            }
            Backend::Postgres => {
                self.pool.execute("ANALYZE").await?;
            }
        }
        Ok(())
    }

    /// Wall-clock ms, strictly increasing across calls on this handle (a per-call marker).
    pub(crate) fn unique_now(&self) -> i64 {
        let wall = wall_ms();
        let prev = self
            .last_now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                Some(wall.max(last + 1))
            })
            .unwrap_or(0);
        wall.max(prev + 1)
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

fn is_sqlite_memory(url: &str) -> bool {
    let rest = url.trim_start_matches("sqlite:");
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    path == ":memory:" || path.is_empty()
}

async fn open_sqlite(url: &str, opts: &StoreOptions) -> Result<AnyPool> {
    let rest = url.trim_start_matches("sqlite:");
    let (path_part, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let memory = is_sqlite_memory(url);
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
    // File databases are checkpointed by the store's background task (see `Checkpointer`).
    let autockpt = if memory { 1000 } else { 0 };
    let pragmas = format!(
        "PRAGMA busy_timeout = {busy_ms}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
         PRAGMA secure_delete = ON; PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY; \
         PRAGMA wal_autocheckpoint = {autockpt};"
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

/// A batch statement whose parameters are bound in order of appearance: `$1, $2, …` on
/// PostgreSQL, anonymous `?` on SQLite. (SQLite resolves `$N`/`?N` names by a linear scan, so a
/// statement with thousands of them costs quadratic time to prepare and to bind; anonymous
/// parameters cost nothing.) Small statements keep plain `$N` text.
pub(crate) struct Sql {
    text: String,
    n: usize,
    numbered: bool,
}

impl Sql {
    pub(crate) fn new(backend: Backend) -> Sql {
        Sql {
            text: String::with_capacity(256),
            n: 0,
            numbered: backend == Backend::Postgres,
        }
    }

    pub(crate) fn push(&mut self, s: &str) -> &mut Sql {
        self.text.push_str(s);
        self
    }

    /// One parameter.
    pub(crate) fn param(&mut self) -> &mut Sql {
        self.n += 1;
        if self.numbered {
            self.text.push('$');
            self.text.push_str(&self.n.to_string());
        } else {
            self.text.push('?');
        }
        self
    }

    /// `k` comma-separated parameters.
    pub(crate) fn params(&mut self, k: usize) -> &mut Sql {
        for i in 0..k {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.param();
        }
        self
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

impl Store {
    pub(crate) fn sql(&self) -> Sql {
        Sql::new(self.backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_parameters_follow_the_backend() {
        let mut pg = Sql::new(Backend::Postgres);
        pg.push("x IN (").params(3).push(") AND y = ").param();
        assert_eq!(pg.as_str(), "x IN ($1, $2, $3) AND y = $4");
        let mut lite = Sql::new(Backend::Sqlite);
        lite.push("x IN (").params(2).push(")");
        assert_eq!(lite.as_str(), "x IN (?, ?)");
    }

    #[test]
    fn url_credentials_are_redacted() {
        assert_eq!(
            redact_url("mysql://user:secret@host/db"),
            "mysql://…@host/db"
        );
    }
}
