//! The gRPC control plane (package `dialer.v1`, `proto/dialer/v1/*.proto`), served with tonic.
//!
//! | service | what it does |
//! |---|---|
//! | `dialer.v1.CampaignService` | create campaigns (settings validated by the engine, script by the loader), import contacts (client streaming, per-row errors), start/pause/resume/stop, get/list, watch progress (server streaming) |
//! | `dialer.v1.ResultService` | the resumable result stream (cursor `seq`), the segmented report with KPIs, CSV export |
//! | `dialer.v1.ComplianceService` | consent records, opt-out with erasure, suppression checks, the audit log |
//! | `dialer.v1.ScriptService` | validate (the loader's own errors), store and list dialogue scripts |
//! | `grpc.health.v1.Health` | SERVING for `""` and each service above |
//! | `grpc.reflection.v1.ServerReflection`, `grpc.reflection.v1alpha.ServerReflection` | every service and message above |
//!
//! The campaign state lives in the store: Start/Pause/Resume/Stop only set it, and the node
//! supervisor of `dialer serve` follows (it polls the store). So this crate never talks to the
//! engine's runners; it reads and writes the store, the scripts directory and nothing else.
//!
//! # Security
//! - **Auth.** With `tokens` configured, every `dialer.v1` call needs
//!   `authorization: Bearer <token>`; a missing or wrong token is `UNAUTHENTICATED` before the
//!   request body is read, so nothing is executed. Health and reflection stay open (load
//!   balancers and `grpcurl list` need them; they reveal no data). With no token configured
//!   auth is off and [`serve`] logs a warning.
//! - **TLS** (optional): rustls with a PEM certificate chain and key.
//! - **Limits.** Messages are limited to `max_message_bytes` (decode and encode). Unary calls
//!   are cut at `unary_timeout_secs` (`DEADLINE_EXCEEDED`); a client's own deadline
//!   (`grpc-timeout`) is honoured for every call. Streams end when the client goes away.
//! - **Personal data.** Numbers, names and transcripts are never logged above `debug`; errors
//!   name fields and rows, not values (except import row errors, which quote the offending
//!   value back to the uploader, as the importer does).
//!
//! # Use
//! [`serve`] runs until its shutdown future resolves; [`start`] binds first and returns the
//! bound address (for `listen = "127.0.0.1:0"`) and a handle to stop it.

#![forbid(unsafe_code)]

mod auth;
mod campaigns;
pub mod client;
mod compliance;
pub mod convert;
mod results;
mod scripts;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

pub use auth::Caller;

/// Generated from `proto/dialer/v1/*.proto` (messages, clients and servers).
#[allow(clippy::all, missing_debug_implementations, missing_docs)]
pub mod pb {
    tonic::include_proto!("dialer.v1");

    /// The encoded `FileDescriptorSet` of `dialer.v1` (what reflection serves).
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("dialer_v1_descriptor");
}

/// The `[grpc]` section of `dialer.toml`.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    /// Where to listen; port 0 picks a free port (see [`start`]).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Bearer tokens accepted; empty: auth disabled (a warning is logged at start).
    #[serde(default)]
    pub tokens: Vec<String>,
    /// TLS certificate and key; none: plain HTTP/2.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Largest message accepted or sent, bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// Longest a unary call may run, seconds.
    #[serde(default = "default_unary_timeout_secs")]
    pub unary_timeout_secs: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: default_listen(),
            tokens: Vec::new(),
            tls: None,
            max_message_bytes: default_max_message_bytes(),
            unary_timeout_secs: default_unary_timeout_secs(),
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 50051))
}

fn default_max_message_bytes() -> usize {
    16 * 1024 * 1024
}

fn default_unary_timeout_secs() -> u64 {
    30
}

/// TLS: PEM files.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// What the services work on.
pub struct ControlContext {
    /// The store every node shares.
    pub store: store::Store,
    /// The HMAC key of the suppression list (the same on every node).
    pub hmac_key: Vec<u8>,
    /// Where scripts live (`<name>.toml`).
    pub scripts_dir: PathBuf,
    /// The trunk names a campaign may use (from the node configuration).
    pub trunk_names: Vec<String>,
    /// Region for numbers without a country code when neither the request nor the campaign
    /// gives one.
    pub default_region: Option<String>,
}

impl std::fmt::Debug for ControlContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlContext")
            .field("store", &self.store.backend())
            .field("hmac_key", &"<redacted>")
            .field("scripts_dir", &self.scripts_dir)
            .field("trunk_names", &self.trunk_names)
            .field("default_region", &self.default_region)
            .finish()
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// The listen address could not be bound.
    #[error("gRPC: cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A TLS file could not be read.
    #[error("gRPC TLS: cannot read {path}: {source}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A bad setting (names the field).
    #[error("gRPC config: `{field}`: {reason}")]
    Config {
        /// e.g. `grpc.tokens[1]`.
        field: String,
        /// Why.
        reason: String,
    },
    /// The transport failed (TLS setup, serving).
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Building the reflection service failed.
    #[error("gRPC reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The server task ended abnormally.
    #[error("gRPC server task: {0}")]
    Task(String),
}

/// Shared state of the services.
pub(crate) struct Shared {
    pub(crate) ctx: ControlContext,
    pub(crate) unary_timeout: Duration,
    /// Turns true when the server shuts down: long streams end (UNAVAILABLE) so that the
    /// graceful shutdown does not wait for clients that never hang up.
    pub(crate) closing: tokio::sync::watch::Receiver<bool>,
}

/// A response stream that ends with `UNAVAILABLE` once the server starts shutting down.
pub(crate) struct UntilClosing<T> {
    inner: tokio_stream::wrappers::ReceiverStream<Result<T, tonic::Status>>,
    closing: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    done: bool,
}

impl<T> UntilClosing<T> {
    pub(crate) fn new(
        ctx: &Shared,
        rx: tokio::sync::mpsc::Receiver<Result<T, tonic::Status>>,
    ) -> UntilClosing<T> {
        let mut closing = ctx.closing.clone();
        UntilClosing {
            inner: tokio_stream::wrappers::ReceiverStream::new(rx),
            closing: Box::pin(async move {
                let _ = closing.wait_for(|c| *c).await;
            }),
            done: false,
        }
    }
}

impl<T> tokio_stream::Stream for UntilClosing<T> {
    type Item = Result<T, tonic::Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::task::Poll;
        if self.done {
            return Poll::Ready(None);
        }
        if self.closing.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(tonic::Status::unavailable(
                "the server is shutting down; reconnect (streams resume from their cursor)",
            ))));
        }
        std::pin::Pin::new(&mut self.inner).poll_next(cx)
    }
}

pub(crate) type Ctx = Arc<Shared>;

/// Runs a unary handler under the server's unary timeout.
pub(crate) async fn unary<T>(
    ctx: &Shared,
    fut: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<tonic::Response<T>, tonic::Status> {
    match tokio::time::timeout(ctx.unary_timeout, fut).await {
        Ok(r) => r.map(tonic::Response::new),
        Err(_) => Err(tonic::Status::deadline_exceeded(format!(
            "the server's unary timeout ({} s) passed",
            ctx.unary_timeout.as_secs()
        ))),
    }
}

/// How long [`Running::shutdown`] waits for calls in progress.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(10);

/// A running server started by [`start`].
#[derive(Debug)]
pub struct Running {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ControlError>>,
}

impl Running {
    /// Stops accepting, ends the long streams (`UNAVAILABLE`: clients resume from their
    /// cursor), lets unary calls in progress finish, and waits for the server task — at most
    /// [`SHUTDOWN_BOUND`], then the task is aborted.
    pub async fn shutdown(mut self) -> Result<(), ControlError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let abort = self.task.abort_handle();
        match tokio::time::timeout(SHUTDOWN_BOUND, self.wait()).await {
            Ok(r) => r,
            Err(_) => {
                abort.abort();
                tracing::warn!("gRPC: calls still open {SHUTDOWN_BOUND:?} after shutdown; cut off");
                Ok(())
            }
        }
    }

    /// Waits for the server task (it ends on shutdown or a transport error).
    pub async fn wait(self) -> Result<(), ControlError> {
        match self.task.await {
            Ok(r) => r,
            Err(e) => Err(ControlError::Task(e.to_string())),
        }
    }
}

/// Binds `cfg.listen` and serves in a task of its own; returns at once with the bound address.
pub async fn start(cfg: GrpcConfig, ctx: ControlContext) -> Result<Running, ControlError> {
    let (tx, rx) = oneshot::channel::<()>();
    let (addr, fut) = bind(cfg, ctx, async move {
        let _ = rx.await;
    })
    .await?;
    let task = tokio::spawn(fut);
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}

/// Binds `cfg.listen` and serves until `shutdown` resolves.
pub async fn serve(
    cfg: GrpcConfig,
    ctx: ControlContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let (_addr, fut) = bind(cfg, ctx, shutdown).await?;
    fut.await
}

type ServeFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), ControlError>> + Send + 'static>>;

async fn bind(
    cfg: GrpcConfig,
    ctx: ControlContext,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, ServeFuture), ControlError> {
    for (i, t) in cfg.tokens.iter().enumerate() {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ControlError::Config {
                field: format!("grpc.tokens[{i}]"),
                reason: "a token must be printable ASCII without spaces".into(),
            });
        }
        if t.len() < 16 {
            tracing::warn!(
                token = i,
                "gRPC: token shorter than 16 characters; use a long random one"
            );
        }
    }
    if cfg.max_message_bytes < 4096 {
        return Err(ControlError::Config {
            field: "grpc.max_message_bytes".into(),
            reason: "must be at least 4096".into(),
        });
    }
    if cfg.unary_timeout_secs == 0 {
        return Err(ControlError::Config {
            field: "grpc.unary_timeout_secs".into(),
            reason: "must be at least 1".into(),
        });
    }
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    if let Some(tls) = &cfg.tls {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| ControlError::TlsFile {
                path: path.clone(),
                source,
            })
        };
        let identity = Identity::from_pem(read(&tls.cert)?, read(&tls.key)?);
        // tonic's error displays as "transport error": name both files and give the cause
        // (e.g. no private key found in the key file).
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(|e| {
                let mut reason = format!(
                    "cannot use certificate {} with key {}",
                    tls.cert.display(),
                    tls.key.display()
                );
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    reason.push_str(&format!(": {s}"));
                    source = s.source();
                }
                ControlError::Config {
                    field: "grpc.tls".into(),
                    reason,
                }
            })?;
    }
    if cfg.tokens.is_empty() {
        tracing::warn!(
            "gRPC: no tokens configured ([grpc] tokens): the control API accepts every caller"
        );
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| ControlError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ControlError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));

    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let shared: Ctx = Arc::new(Shared {
        ctx,
        unary_timeout: Duration::from_secs(cfg.unary_timeout_secs),
        closing,
    });
    let shutdown = async move {
        shutdown.await;
        tracing::info!("gRPC shutting down: ending streams");
        let _ = closing_tx.send(true);
    };
    let auth = auth::Auth::new(&cfg.tokens);
    let max = cfg.max_message_bytes;

    use pb::campaign_service_server::CampaignServiceServer;
    use pb::compliance_service_server::ComplianceServiceServer;
    use pb::result_service_server::ResultServiceServer;
    use pb::script_service_server::ScriptServiceServer;

    let campaigns = CampaignServiceServer::new(campaigns::Campaigns(shared.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let results = ResultServiceServer::new(results::Results(shared.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let compliance = ComplianceServiceServer::new(compliance::Compliance(shared.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);
    let scripts = ScriptServiceServer::new(scripts::Scripts(shared.clone()))
        .max_decoding_message_size(max)
        .max_encoding_message_size(max);

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CampaignServiceServer<campaigns::Campaigns>>()
        .await;
    health
        .set_serving::<ResultServiceServer<results::Results>>()
        .await;
    health
        .set_serving::<ComplianceServiceServer<compliance::Compliance>>()
        .await;
    health
        .set_serving::<ScriptServiceServer<scripts::Scripts>>()
        .await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let router = builder
        .add_service(InterceptedService::new(campaigns, auth.clone()))
        .add_service(InterceptedService::new(results, auth.clone()))
        .add_service(InterceptedService::new(compliance, auth.clone()))
        .add_service(InterceptedService::new(scripts, auth))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    tracing::info!(%addr, tls = cfg.tls.is_some(), auth = !cfg.tokens.is_empty(), "gRPC listening");
    let fut: ServeFuture = Box::pin(async move {
        // Keep the reporter alive while serving (dropping it keeps the statuses, but holding it
        // documents that the statuses belong to this server).
        let _health = health;
        router
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(ControlError::from)
    });
    Ok((addr, fut))
}

/// Maps a store error to a status. Store errors never carry personal data.
pub(crate) fn store_status(e: store::StoreError) -> tonic::Status {
    use store::StoreError as E;
    match e {
        E::NotFound { what, id } => tonic::Status::not_found(format!("{what} {id} not found")),
        E::Invalid(m) => tonic::Status::invalid_argument(m),
        E::Erased(id) => {
            tonic::Status::failed_precondition(format!("contact {id} was erased (opted out)"))
        }
        E::Db(e) => {
            tracing::warn!(error = %e, "store error");
            tonic::Status::unavailable(format!("database error: {e}"))
        }
        other => tonic::Status::internal(other.to_string()),
    }
}

/// `INVALID_ARGUMENT` naming the field: `field: reason`.
pub(crate) fn invalid(field: &str, reason: impl std::fmt::Display) -> tonic::Status {
    tonic::Status::invalid_argument(format!("{field}: {reason}"))
}

/// Wall-clock now, unix ms.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
