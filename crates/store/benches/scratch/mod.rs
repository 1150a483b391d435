//! A scratch PostgreSQL database for one bench run, created through an admin connection
//! (`$DIALER_TEST_PG_URL`, default the machine's `postgres://postgres@127.0.0.1:5432/test`) and
//! dropped by [`ScratchPg::drop_db`].

use sqlx::{AnyConnection, Connection, Executor};

pub struct ScratchPg {
    pub admin: AnyConnection,
    pub name: String,
    pub url: String,
}

impl ScratchPg {
    /// Creates `<prefix>_<pid>` (dropping a leftover of the same name first).
    pub async fn create(prefix: &str) -> ScratchPg {
        sqlx::any::install_default_drivers();
        let admin_url = std::env::var("DIALER_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("{prefix}_{}", std::process::id());
        let mut admin = AnyConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is unreachable: {e}"));
        admin
            .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
            .await
            .unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        let slash = admin_url.rfind('/').unwrap();
        let url = format!("{}/{name}", &admin_url[..slash]);
        ScratchPg { admin, name, url }
    }

    /// Drops the database (connections forced out).
    pub async fn drop_db(mut self) {
        self.admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .unwrap();
    }
}
