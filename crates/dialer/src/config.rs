//! `dialer.toml`: the node's configuration (see `config/dialer.toml`, commented line by line).
//!
//! Errors name the file, the line and column, and the field; nothing starts on a bad file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use engine::trunk::{Trunk, TrunkConfig};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    #[serde(default)]
    pub node: NodeSection,
    pub store: StoreSection,
    pub compliance: ComplianceSection,
    #[serde(default)]
    pub sip: SipSection,
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    #[serde(default)]
    pub asr: Option<AsrSection>,
    /// The gRPC API (crates/control); absent: 127.0.0.1:50051, no auth.
    #[serde(default)]
    pub grpc: Option<control::GrpcConfig>,
    #[serde(default)]
    pub metrics: MetricsSection,
    #[serde(default)]
    pub scripts: ScriptsSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub shutdown: ShutdownSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NodeSection {
    /// Unique among the nodes sharing the store; default `<hostname>-<pid>`.
    pub name: Option<String>,
    /// Recordings and the default SQLite file; default `./data`.
    pub data_dir: Option<PathBuf>,
    /// Seconds a claim holds a contact; a dead node's contacts return after this long.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            name: None,
            data_dir: None,
            lease_secs: default_lease(),
        }
    }
}

fn default_lease() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoreSection {
    /// `sqlite:///path/dialer.db` or `postgres://user@host/db`.
    pub url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ComplianceSection {
    /// The secret of the HMAC that stands for erased numbers (or `hmac_key_env`).
    pub hmac_key: Option<String>,
    /// Read the secret from this environment variable instead.
    pub hmac_key_env: Option<String>,
    /// Days a call recording is kept (consent recordings stay until the contact is erased).
    pub recording_retention_days: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SipSection {
    #[serde(default = "default_sip_bind")]
    pub bind: SocketAddr,
    /// `per_call` (an RTP port pair per call) or `shared` (one pair per campaign, batched
    /// system calls; for peers whose RTP comes from the address their SDP names).
    #[serde(default)]
    pub rtp_sockets: engine::media::SocketMode,
}

impl Default for SipSection {
    fn default() -> Self {
        SipSection {
            bind: default_sip_bind(),
            rtp_sockets: engine::media::SocketMode::PerCall,
        }
    }
}

fn default_sip_bind() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 5060))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AsrSection {
    pub url: String,
    #[serde(default = "default_asr_timeout")]
    pub timeout_secs: f64,
}

fn default_asr_timeout() -> f64 {
    5.0
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MetricsSection {
    /// Prometheus `/metrics`; `None` (the key `listen = ""` is not allowed) disables it.
    #[serde(default = "default_metrics")]
    pub listen: Option<SocketAddr>,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: default_metrics(),
        }
    }
}

fn default_metrics() -> Option<SocketAddr> {
    Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptsSection {
    /// Where named scripts live (PutScript writes here; campaigns name them).
    #[serde(default = "default_scripts")]
    pub dir: PathBuf,
}

impl Default for ScriptsSection {
    fn default() -> Self {
        ScriptsSection {
            dir: default_scripts(),
        }
    }
}

fn default_scripts() -> PathBuf {
    PathBuf::from("config/scripts")
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogSection {
    #[serde(default)]
    pub format: LogFormat,
    /// `error`, `warn`, `info`, `debug`, `trace` or a tracing filter (`info,engine=debug`).
    #[serde(default = "default_level")]
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: LogFormat::Text,
            level: default_level(),
        }
    }
}

fn default_level() -> String {
    "info".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShutdownSection {
    /// On SIGTERM/SIGINT: no new calls; live calls get this long to end.
    #[serde(default = "default_grace")]
    pub grace_secs: u64,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        ShutdownSection {
            grace_secs: default_grace(),
        }
    }
}

fn default_grace() -> u64 {
    60
}

/// The configuration, validated.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub cfg: Config,
    pub node: String,
    pub data_dir: PathBuf,
    pub trunks: Vec<Trunk>,
    pub hmac_key: Vec<u8>,
}

/// Read and check `path`: every error names the file and the field.
pub(crate) fn load(path: &Path) -> Result<Loaded, String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let cfg: Config = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|s| {
                let line = text[..s.start].matches('\n').count() + 1;
                let col = s.start - text[..s.start].rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("{line}:{col}: ")
            })
            .unwrap_or_default();
        format!("{file}:{at}{}", e.message())
    })?;
    let bad = |field: &str, why: String| format!("{file}: `{field}`: {why}");
    let node = match &cfg.node.name {
        Some(n) if n.trim().is_empty() || n.len() > 100 => {
            return Err(bad("node.name", "must be 1 to 100 characters".into()));
        }
        Some(n) => n.clone(),
        None => format!("{}-{}", hostname(), std::process::id()),
    };
    if cfg.node.lease_secs < 5 {
        return Err(bad(
            "node.lease_secs",
            "at least 5 seconds (leases are renewed every third of it)".into(),
        ));
    }
    let data_dir = cfg
        .node
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("data"));
    if cfg.trunks.is_empty() {
        return Err(bad(
            "trunks",
            "at least one [[trunks]] entry is needed".into(),
        ));
    }
    let mut trunks = Vec::with_capacity(cfg.trunks.len());
    for (i, t) in cfg.trunks.iter().enumerate() {
        if cfg.trunks[..i].iter().any(|o| o.name == t.name) {
            return Err(bad(
                &format!("trunks[{i}].name"),
                format!("{:?} is used twice", t.name),
            ));
        }
        trunks.push(
            t.clone()
                .validate()
                .map_err(|e| format!("{file}: trunks[{i}]: {e}"))?,
        );
    }
    let hmac_key = match (&cfg.compliance.hmac_key, &cfg.compliance.hmac_key_env) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "compliance.hmac_key_env",
                "give hmac_key or hmac_key_env, not both".into(),
            ));
        }
        (Some(k), None) => k.clone(),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            bad(
                "compliance.hmac_key_env",
                format!("environment variable {var} is not set"),
            )
        })?,
        (None, None) => {
            return Err(bad(
                "compliance.hmac_key",
                "a secret is required (it keys the HMAC kept for erased numbers)".into(),
            ));
        }
    };
    if hmac_key.len() < 8 {
        return Err(bad("compliance.hmac_key", "at least 8 characters".into()));
    }
    if cfg.compliance.recording_retention_days == Some(0) {
        return Err(bad(
            "compliance.recording_retention_days",
            "at least 1 day (leave it out to keep recordings)".into(),
        ));
    }
    if !(cfg.store.url.starts_with("sqlite:")
        || cfg.store.url.starts_with("postgres://")
        || cfg.store.url.starts_with("postgresql://"))
    {
        return Err(bad(
            "store.url",
            "expected sqlite:///path/dialer.db or postgres://user@host/db".into(),
        ));
    }
    if let Some(a) = &cfg.asr
        && !(a.timeout_secs.is_finite() && a.timeout_secs > 0.0 && a.timeout_secs <= 120.0)
    {
        return Err(bad("asr.timeout_secs", "between 0 and 120 seconds".into()));
    }
    Ok(Loaded {
        node,
        data_dir,
        trunks,
        hmac_key: hmac_key.into_bytes(),
        cfg,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Loaded, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = dir.path().join("dialer.toml");
        std::fs::write(&p, text).expect("write");
        load(&p)
    }

    const GOOD: &str = r#"
[store]
url = "sqlite::memory:"
[compliance]
hmac_key = "0123456789"
[[trunks]]
name = "a"
uri = "sip:127.0.0.1:5080"
"#;

    #[test]
    fn minimal_is_valid() {
        let l = load_text(GOOD).expect("valid");
        assert_eq!(l.trunks.len(), 1);
        assert_eq!(l.cfg.node.lease_secs, 30);
    }

    #[test]
    fn errors_name_line_and_field() {
        let e = load_text(&GOOD.replace("[store]", "[store]\ncolour = 1")).expect_err("bad");
        assert!(e.contains(":3:1: unknown field `colour`"), "{e}");
        let e = load_text(&GOOD.replace("0123456789", "short")).expect_err("bad");
        assert!(e.contains("`compliance.hmac_key`"), "{e}");
        let e = load_text(&GOOD.replace("sip:127.0.0.1:5080", "http://x")).expect_err("bad");
        assert!(e.contains("trunks[0]") && e.contains("`uri`"), "{e}");
        let e = load_text(&format!(
            "{GOOD}[[trunks]]\nname = \"a\"\nuri = \"sip:x\"\n"
        ))
        .expect_err("bad");
        assert!(e.contains("`trunks[1].name`"), "{e}");
        let e = load_text(&GOOD.replace("sqlite::memory:", "mysql://x")).expect_err("bad");
        assert!(e.contains("`store.url`"), "{e}");
    }

    /// The shipped, commented example stays valid.
    #[test]
    fn shipped_example_loads() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/dialer.toml");
        let text = std::fs::read_to_string(&path).expect("config/dialer.toml");
        let l = load_text(&text.replace(
            "hmac_key_env = \"DIALER_HMAC_KEY\"",
            "hmac_key = \"example-secret\"",
        ))
        .expect("config/dialer.toml is valid");
        assert_eq!(l.trunks.len(), 3);
        assert_eq!(l.node, "node-a");
        assert!(l.cfg.grpc.is_some());
    }
}
