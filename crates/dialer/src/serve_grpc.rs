//! The gRPC API inside `dialer serve` ([`control`]), started from the `[grpc]` section; no
//! section: the API listens on the default 127.0.0.1:50051 without auth (with a warning).

use anyhow::Context as _;
use tokio::sync::watch;

use crate::config::Loaded;

/// The running gRPC server.
pub(crate) struct Grpc(control::Running);

impl Grpc {
    /// Stop accepting calls; open streams end with UNAVAILABLE (clients resume from their
    /// cursor).
    pub(crate) async fn stop(self) {
        if let Err(e) = self.0.shutdown().await {
            tracing::warn!(error = %e, "gRPC shutdown");
        }
    }
}

pub(crate) async fn start(
    l: &Loaded,
    store: store::Store,
    _shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<Grpc>> {
    let cfg = l.cfg.grpc.clone().unwrap_or_default();
    let ctx = control::ControlContext {
        store,
        hmac_key: l.hmac_key.clone(),
        scripts_dir: l.cfg.scripts.dir.clone(),
        trunk_names: l.trunks.iter().map(|t| t.cfg.name.clone()).collect(),
        default_region: None,
    };
    let running = control::start(cfg, ctx)
        .await
        .context("cannot start the gRPC API")?;
    eprintln!("dialer serve: gRPC listening on {}", running.addr);
    Ok(Some(Grpc(running)))
}
