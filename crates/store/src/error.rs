//! The store's error type.

/// Everything a store call can fail with.
///
/// Messages never carry a phone number, a name or a transcript: values are bound as query
/// parameters, and the variants below name rows by id only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The URL is neither `sqlite:…` nor `postgres://…` / `postgresql://…`.
    #[error("unsupported database URL scheme in {0:?} (expected sqlite:///PATH or postgres://…)")]
    UnsupportedUrl(String),
    /// The database refused or failed a statement, or the connection broke.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A schema migration failed (or the database has a newer schema than this build knows).
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Creating the SQLite data directory failed.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory that could not be created.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No row with this id.
    #[error("{what} {id} not found")]
    NotFound {
        /// The kind of row: "campaign", "contact", "attempt", "result".
        what: &'static str,
        /// Its id.
        id: i64,
    },
    /// The contact is not (or no longer) leased by the calling node: another node took it over
    /// or it was released. The caller must not dial it.
    #[error("contact {0} is not leased by this node (lease lost, expired or released)")]
    LeaseLost(i64),
    /// The attempt was already finished; a second finish is refused and changes nothing.
    #[error("attempt {0} is already finished")]
    AttemptClosed(i64),
    /// The contact's personal data was erased (opt-out); it cannot take new consent or calls.
    #[error("contact {0} was erased")]
    Erased(i64),
    /// An argument was rejected before touching the database.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A stored value could not be read back (unknown enum text, bad JSON).
    #[error("corrupt stored value: {0}")]
    Corrupt(String),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
