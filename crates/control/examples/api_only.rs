//! The control API alone over a SQLite store, without the engine (nothing is dialled): for
//! trying clients against the API.
//!
//!     cargo run -p control --example api_only -- /tmp/api.db config/scripts t0ken-t0ken

use control::{ControlContext, GrpcConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let db = args.next().unwrap_or_else(|| "/tmp/dialer-api.db".into());
    let scripts = args.next().unwrap_or_else(|| "config/scripts".into());
    let token = args.next();
    let store = store::Store::open(&format!("sqlite://{db}")).await?;
    let cfg = GrpcConfig {
        listen: "127.0.0.1:0".parse()?,
        tokens: token.into_iter().collect(),
        ..GrpcConfig::default()
    };
    let ctx = ControlContext {
        store,
        hmac_key: b"example-key".to_vec(),
        scripts_dir: scripts.into(),
        trunk_names: vec!["sim".into()],
        default_region: Some("UA".into()),
    };
    let running = control::start(cfg, ctx).await?;
    eprintln!("api_only: gRPC listening on {}", running.addr);
    tokio::signal::ctrl_c().await?;
    running.shutdown().await?;
    Ok(())
}
