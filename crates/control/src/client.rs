//! Client helpers: a channel to a `dialer serve` and the bearer token on every call.
//!
//! ```ignore
//! let api = control::client::Api::connect("http://127.0.0.1:50051", Some("t0ken")).await?;
//! let list = api.campaigns().list_campaigns(pb::ListCampaignsRequest::default()).await?;
//! ```

use std::time::Duration;

use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Request, Status};

use crate::pb::campaign_service_client::CampaignServiceClient;
use crate::pb::compliance_service_client::ComplianceServiceClient;
use crate::pb::result_service_client::ResultServiceClient;
use crate::pb::script_service_client::ScriptServiceClient;

/// Adds `authorization: Bearer <token>` to every request (nothing without a token).
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl std::fmt::Debug for Bearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Bearer(<token>)"
        } else {
            "Bearer(none)"
        })
    }
}

impl Bearer {
    /// `None` when the token is not printable ASCII.
    pub fn new(token: Option<&str>) -> Option<Bearer> {
        match token {
            None => Some(Bearer(None)),
            Some(t) => format!("Bearer {t}").parse().ok().map(|v| Bearer(Some(v))),
        }
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A channel with the caller's token.
pub type Authed = InterceptedService<Channel, Bearer>;

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not `http://HOST:PORT` or `https://HOST:PORT`.
    #[error("server URL {url:?}: {reason}")]
    Url {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
    /// The token has characters a header cannot carry.
    #[error("the token must be printable ASCII")]
    Token,
    /// Connecting failed.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// As given.
        url: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// Clients of every `dialer.v1` service over one connection.
#[derive(Debug, Clone)]
pub struct Api {
    channel: Authed,
}

impl Api {
    /// Connects (with a 5 s connect timeout); `https://` uses TLS with the system's web PKI
    /// roots.
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Api, ConnectError> {
        let bearer = Bearer::new(token).ok_or(ConnectError::Token)?;
        let mut endpoint =
            Endpoint::from_shared(url.to_string()).map_err(|e| ConnectError::Url {
                url: url.to_string(),
                reason: e.to_string(),
            })?;
        endpoint = endpoint
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true);
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_enabled_roots())
                .map_err(|e| ConnectError::Url {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ConnectError::Connect {
                url: url.to_string(),
                source,
            })?;
        Ok(Api {
            channel: InterceptedService::new(channel, bearer),
        })
    }

    /// The campaign service.
    pub fn campaigns(&self) -> CampaignServiceClient<Authed> {
        CampaignServiceClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// The result service.
    pub fn results(&self) -> ResultServiceClient<Authed> {
        ResultServiceClient::new(self.channel.clone()).max_decoding_message_size(64 * 1024 * 1024)
    }

    /// The compliance service.
    pub fn compliance(&self) -> ComplianceServiceClient<Authed> {
        ComplianceServiceClient::new(self.channel.clone())
    }

    /// The script service.
    pub fn scripts(&self) -> ScriptServiceClient<Authed> {
        ScriptServiceClient::new(self.channel.clone())
    }
}
