//! The control API over TLS: a self-signed certificate for `localhost` / 127.0.0.1 made at
//! test time (rcgen), `control::start` with `tls = Some(..)` and a token over a temporary
//! SQLite store, then real tonic clients: one that trusts the certificate (RPC and health
//! check succeed), a plaintext h2c one and one that trusts another certificate (both fail).
//! Bad TLS files make `start` return an error that names the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use control::client::Bearer;
use control::pb;
use control::pb::campaign_service_client::CampaignServiceClient;
use control::pb::script_service_client::ScriptServiceClient;
use control::{ControlContext, GrpcConfig, TlsConfig};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const TOKEN: &str = "tls-test-token-0123456789";
/// Every connect and RPC of these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost` and 127.0.0.1: (certificate PEM, key PEM).
fn self_signed() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate certificate");
    (ck.cert.pem(), ck.signing_key.serialize_pem())
}

async fn context(dir: &Path) -> ControlContext {
    let db = dir.join("dialer.db");
    let store = store::Store::open(&format!("sqlite://{}", db.display()))
        .await
        .expect("store");
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).expect("scripts dir");
    ControlContext {
        store,
        hmac_key: b"test-hmac-key".to_vec(),
        scripts_dir: scripts,
        trunk_names: vec!["sim".into()],
        default_region: Some("UA".into()),
    }
}

fn config(cert: PathBuf, key: PathBuf) -> GrpcConfig {
    GrpcConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        tokens: vec![TOKEN.to_string()],
        tls: Some(TlsConfig { cert, key }),
        ..GrpcConfig::default()
    }
}

/// Connects to `url` with `tls` (none: plaintext h2c), bounded.
async fn connect(url: &str, tls: Option<ClientTlsConfig>) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls).expect("client TLS config");
    }
    match tokio::time::timeout(BOUND, endpoint.connect()).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(e)) => Err(format!("connect: {e:?}")),
        Err(_) => Err("connect timed out".into()),
    }
}

/// ListScripts with the token over `channel`, bounded.
async fn list_scripts(channel: Channel) -> Result<pb::ListScriptsResponse, tonic::Status> {
    let bearer = Bearer::new(Some(TOKEN)).expect("token");
    let mut client = ScriptServiceClient::with_interceptor(channel, bearer);
    tokio::time::timeout(BOUND, client.list_scripts(pb::ListScriptsRequest {}))
        .await
        .expect("ListScripts within the bound")
        .map(tonic::Response::into_inner)
}

/// A client that cannot reach the API: either the connection fails or the first RPC does
/// (with a transport-level status, never an answer from a service).
async fn assert_rejected(url: &str, tls: Option<ClientTlsConfig>, what: &str) {
    match connect(url, tls).await {
        Err(_) => {}
        Ok(channel) => match list_scripts(channel).await {
            Ok(r) => panic!("{what}: ListScripts succeeded: {r:?}"),
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        Code::Unavailable | Code::Unknown | Code::Internal
                    ),
                    "{what}: expected a transport failure, got {status:?}"
                );
            }
        },
    }
}

#[tokio::test]
async fn tls_serves_trusting_clients_and_rejects_others() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_pem, key_pem) = self_signed();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, &cert_pem).expect("write cert");
    std::fs::write(&key, &key_pem).expect("write key");

    let running = control::start(config(cert, key), context(dir.path()).await)
        .await
        .expect("start with TLS");
    let port = running.addr.port();
    let https = format!("https://127.0.0.1:{port}");

    // 1. Trusting the certificate, with the token: a real RPC and the health check succeed.
    let trusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = connect(&https, Some(trusted))
        .await
        .expect("TLS client trusting the certificate connects");
    let scripts = list_scripts(channel.clone())
        .await
        .expect("ListScripts over TLS");
    assert!(scripts.scripts.is_empty(), "{scripts:?}");
    let bearer = Bearer::new(Some(TOKEN)).expect("token");
    let mut campaigns = CampaignServiceClient::with_interceptor(channel.clone(), bearer);
    let list = tokio::time::timeout(
        BOUND,
        campaigns.list_campaigns(pb::ListCampaignsRequest::default()),
    )
    .await
    .expect("ListCampaigns within the bound")
    .expect("ListCampaigns over TLS")
    .into_inner();
    assert!(list.campaigns.is_empty(), "{list:?}");
    // The token is still checked over TLS.
    let mut anonymous = ScriptServiceClient::new(channel.clone());
    let denied = tokio::time::timeout(BOUND, anonymous.list_scripts(pb::ListScriptsRequest {}))
        .await
        .expect("ListScripts within the bound")
        .expect_err("no token: refused");
    assert_eq!(denied.code(), Code::Unauthenticated, "{denied:?}");
    let mut health = HealthClient::new(channel);
    for service in ["", "dialer.v1.ScriptService"] {
        let r = tokio::time::timeout(
            BOUND,
            health.check(HealthCheckRequest {
                service: service.into(),
            }),
        )
        .await
        .expect("health check within the bound")
        .expect("health check over TLS")
        .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "service {service:?}");
    }

    // 2. Plaintext HTTP/2 (h2c) to the TLS port fails.
    assert_rejected(
        &format!("http://127.0.0.1:{port}"),
        None,
        "plaintext client",
    )
    .await;

    // 3. TLS trusting another certificate (not the server's) fails.
    let (other_pem, _) = self_signed();
    let untrusting = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&other_pem))
        .domain_name("localhost");
    assert_rejected(
        &https,
        Some(untrusting),
        "client not trusting the certificate",
    )
    .await;

    // The server still serves a trusting client after those failed handshakes.
    let again = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&cert_pem))
        .domain_name("localhost");
    let channel = connect(&https, Some(again))
        .await
        .expect("TLS client connects again");
    list_scripts(channel)
        .await
        .expect("ListScripts over TLS after rejected clients");

    tokio::time::timeout(BOUND, running.shutdown())
        .await
        .expect("shutdown in time")
        .expect("clean shutdown");
}

#[tokio::test]
async fn missing_certificate_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_, key_pem) = self_signed();
    let cert = dir.path().join("missing-cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&key, key_pem).expect("write key");
    let err = control::start(config(cert.clone(), key), context(dir.path()).await)
        .await
        .expect_err("a missing certificate file must fail start");
    let msg = err.to_string();
    assert!(
        msg.contains(&cert.display().to_string()),
        "the error names the certificate file: {msg}"
    );
}

#[tokio::test]
async fn key_file_that_is_not_pem_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert_pem, _) = self_signed();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("not-a-key.pem");
    std::fs::write(&cert, cert_pem).expect("write cert");
    std::fs::write(&key, "this is not a PEM private key\n").expect("write key");
    let err = control::start(config(cert, key.clone()), context(dir.path()).await)
        .await
        .expect_err("a key file that is not PEM must fail start");
    let msg = err.to_string();
    assert!(
        msg.contains(&key.display().to_string()),
        "the error names the key file: {msg}"
    );
}
