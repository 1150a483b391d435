//! Test databases: a SQLite file in a temp dir, or a fresh PostgreSQL database
//! `dialer_t_<pid>_<n>` created on the server named by `DIALER_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped when the handle is dropped.
//! An unreachable PostgreSQL fails the test with a message saying so; it is never skipped.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{Connection, Executor};
use store::{CampaignId, CampaignState, NewCampaign, NewConsent, NewContact, Store};

pub const KEY: &[u8] = b"test-hmac-key-not-for-production";

static N: AtomicUsize = AtomicUsize::new(0);

pub fn pg_admin_url() -> String {
    std::env::var("DIALER_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let slash = base.rfind('/').expect("postgres URL has a /database part");
    let mut out = format!("{}/{db}", &base[..slash]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

enum Kind {
    Sqlite { dir: tempfile::TempDir },
    Postgres { admin_url: String, name: String },
}

/// One test's database.
pub struct TestDb {
    pub url: String,
    kind: Kind,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/data/dialer.db", dir.path().display());
        TestDb {
            url,
            kind: Kind::Sqlite { dir },
        }
    }

    pub async fn postgres() -> TestDb {
        sqlx::any::install_default_drivers();
        let admin_url = pg_admin_url();
        let name = format!(
            "dialer_t_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = match sqlx::AnyConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL at {admin_url} is unreachable ({e}). The store tests run on both \
                 SQLite and PostgreSQL and need a running server (set DIALER_TEST_PG_URL to \
                 point elsewhere)."
            ),
        };
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .expect("drop stale test database");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        admin.close().await.ok();
        TestDb {
            url: with_database(&admin_url, &name),
            kind: Kind::Postgres { admin_url, name },
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    pub async fn open(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    /// The SQLite database file and its WAL/SHM companions (empty for PostgreSQL).
    pub fn sqlite_files(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::Sqlite { dir } => {
                let data = dir.path().join("data");
                std::fs::read_dir(&data)
                    .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                    .unwrap_or_default()
            }
            Kind::Postgres { .. } => Vec::new(),
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Kind::Postgres { admin_url, name } = &self.kind {
            let (admin_url, name) = (admin_url.clone(), name.clone());
            // Drop runs inside the test's runtime; do the async cleanup on a thread of its own.
            let done = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async move {
                    if let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await {
                        let _ = admin
                            .execute(
                                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str(),
                            )
                            .await;
                        let _ = admin.close().await;
                    }
                });
            });
            let _ = done.join();
        }
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A running campaign.
pub async fn running_campaign(store: &Store, name: &str, consent_required: bool) -> CampaignId {
    let id = store
        .create_campaign(&NewCampaign {
            name: name.to_string(),
            script_path: "config/scripts/actualization.toml".into(),
            script_version: "v1".into(),
            settings: serde_json::json!({ "language": "ru", "default_region": "UA" }),
            consent_required,
        })
        .await
        .unwrap();
    store
        .set_campaign_state(id, CampaignState::Running)
        .await
        .unwrap();
    id
}

pub fn contact(phone: &str) -> NewContact {
    NewContact {
        phone_e164: phone.to_string(),
        ..NewContact::default()
    }
}

pub fn consented(phone: &str) -> NewContact {
    NewContact {
        phone_e164: phone.to_string(),
        consent: Some(NewConsent {
            source: store::ConsentSource::WebForm,
            given_at_ms: 1_700_000_000_000,
            text_version: "2024-01".into(),
            evidence: Some("form-123".into()),
        }),
        ..NewContact::default()
    }
}

pub fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `+38050` followed by 7 digits of `i`.
pub fn phone(i: usize) -> String {
    format!("+38050{:07}", i)
}

/// Runs each named `async fn(&TestDb)` as two tests: `name::sqlite` and `name::postgres`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(&db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let db = $crate::common::TestDb::postgres().await;
                    super::$name(&db).await;
                }
            }
        )*
    };
}
