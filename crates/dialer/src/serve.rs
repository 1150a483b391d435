//! `dialer serve --config config/dialer.toml`: the engine (every running campaign of the
//! store, see [`engine::node`]), the gRPC API, Prometheus `/metrics` and structured logs.
//!
//! Ready lines on stderr (tests and supervisors read them):
//! `dialer serve: gRPC listening on ADDR`, `dialer serve: metrics on http://ADDR/metrics`,
//! `dialer serve: node NAME running`.
//!
//! SIGTERM or SIGINT: stop dialling, let live calls end (up to `shutdown.grace_secs`), commit
//! their results, leave. A second signal cuts live calls off at once (their attempts become
//! `interrupted` on the next start).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use engine::node::{self, NodeConfig, NodeStatus, StatusHandle};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::config::{self, Loaded, LogFormat};

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// The node's configuration (see config/dialer.toml).
    #[arg(long, value_name = "FILE", default_value = "config/dialer.toml")]
    config: PathBuf,
}

/// Exit 0 after a clean shutdown, 2 for a bad configuration, 1 for a runtime failure.
pub(crate) fn main(args: ServeArgs) -> ExitCode {
    let loaded = match config::load(&args.config) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("dialer serve: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&loaded) {
        eprintln!("dialer serve: {}: `log.level`: {e}", args.config.display());
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialer serve: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(loaded)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dialer serve: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(l: &Loaded) -> Result<(), String> {
    let filter = match tracing_subscriber::EnvFilter::try_from_env("DIALER_LOG") {
        Ok(f) => f,
        Err(_) => {
            tracing_subscriber::EnvFilter::try_new(&l.cfg.log.level).map_err(|e| e.to_string())?
        }
    };
    // Colours only for a person at a terminal, never into files and journals.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match l.cfg.log.format {
        LogFormat::Json => b.json().try_init(),
        LogFormat::Text => b.try_init(),
    };
    Ok(())
}

async fn run(l: Loaded) -> anyhow::Result<()> {
    crate::simulate::raise_nofile();
    std::fs::create_dir_all(&l.data_dir)
        .with_context(|| format!("cannot create the data directory {}", l.data_dir.display()))?;
    let store = store::Store::open(&l.cfg.store.url)
        .await
        .context("cannot open the store")?;
    let asr = match &l.cfg.asr {
        Some(a) => Some(
            engine::asr::AsrClient::new(engine::asr::AsrConfig {
                timeout: Duration::from_secs_f64(a.timeout_secs),
                ..engine::asr::AsrConfig::new(a.url.clone())
            })
            .map_err(|e| anyhow::anyhow!("asr.url: {e}"))?,
        ),
        None => None,
    };
    let status: StatusHandle = StatusHandle::default();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    if let Some(addr) = l.cfg.metrics.listen {
        let handle = PrometheusBuilder::new()
            .set_buckets(&[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ])
            .context("metric buckets")?
            .install_recorder()
            .context("cannot install the metrics recorder")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics.listen {addr}"))?;
        let bound = listener.local_addr()?;
        eprintln!("dialer serve: metrics on http://{bound}/metrics");
        tokio::spawn(metrics_server(
            listener,
            handle,
            status.clone(),
            shutdown_rx.clone(),
        ));
    }

    let grpc = crate::serve_grpc::start(&l, store.clone(), shutdown_rx.clone()).await?;

    let mut cfg = NodeConfig::new(
        l.node.clone(),
        l.trunks.clone(),
        l.cfg.sip.bind,
        l.hmac_key.clone(),
    );
    cfg.lease = Duration::from_secs(l.cfg.node.lease_secs);
    cfg.rtp_sockets = l.cfg.sip.rtp_sockets;
    cfg.data_dir = l.data_dir.clone();
    cfg.asr = asr;
    cfg.recording_retention = l
        .cfg
        .compliance
        .recording_retention_days
        .map(|d| Duration::from_secs(u64::from(d) * 86_400));
    let grace = Duration::from_secs(l.cfg.shutdown.grace_secs);

    let mut sigint = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let mut sigterm = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let node_task = tokio::spawn(node::run(
        store.clone(),
        cfg,
        status.clone(),
        shutdown_rx,
        grace,
    ));
    eprintln!("dialer serve: node {} running", l.node);
    tracing::info!(node = %l.node, "serving");
    tokio::select! {
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    eprintln!(
        "dialer serve: stopping: no new calls; live calls have {} s to end",
        grace.as_secs()
    );
    let _ = shutdown_tx.send(true);
    let abort = node_task.abort_handle();
    tokio::select! {
        r = node_task => {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "node"),
                Err(e) => tracing::warn!(error = %e, "node task"),
            }
        }
        _ = sigint.recv() => { abort.abort(); eprintln!("dialer serve: cut off"); }
        _ = sigterm.recv() => { abort.abort(); eprintln!("dialer serve: cut off"); }
    }
    if let Some(g) = grpc {
        g.stop().await;
    }
    store.close().await;
    eprintln!("dialer serve: stopped");
    Ok(())
}

/// Gauges from the node's status, set just before each scrape.
fn export_status(s: &NodeStatus) {
    let live: usize = s.campaigns.values().map(|p| p.live).sum();
    let ready: usize = s.campaigns.values().map(|p| p.ready).sum();
    metrics::gauge!("dialer_live_calls").set(live as f64);
    metrics::gauge!("dialer_scheduler_queue_depth").set(ready as f64);
    metrics::gauge!("dialer_nodes_alive").set(f64::from(s.nodes_alive));
    metrics::gauge!("dialer_campaigns_running").set(s.campaigns.len() as f64);
    metrics::gauge!("dialer_recordings_deleted_retention").set(s.retention_deleted as f64);
    for (id, p) in &s.campaigns {
        metrics::gauge!("dialer_contacts_pending", "campaign" => id.0.to_string())
            .set(p.pending.max(0) as f64);
    }
    for (name, in_use, cps) in &s.trunks {
        metrics::gauge!("dialer_trunk_calls", "trunk" => name.clone()).set(f64::from(*in_use));
        metrics::gauge!("dialer_trunk_cps_share", "trunk" => name.clone()).set(*cps);
    }
}

/// A minimal HTTP/1.1 server for `GET /metrics` (one response per connection).
async fn metrics_server(
    listener: tokio::net::TcpListener,
    handle: PrometheusHandle,
    status: StatusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (mut sock, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let handle = handle.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    match sock.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            })
            .await;
            if read.is_err() {
                return;
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let mut parts = head.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (code, body, ctype) =
                if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
                    if let Ok(s) = status.lock() {
                        export_status(&s);
                    }
                    (
                        "200 OK",
                        handle.render(),
                        "text/plain; version=0.0.4; charset=utf-8",
                    )
                } else if method == "GET" && path == "/healthz" {
                    ("200 OK", "ok\n".to_owned(), "text/plain")
                } else {
                    (
                        "404 Not Found",
                        "only GET /metrics here\n".to_owned(),
                        "text/plain",
                    )
                };
            let resp = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
