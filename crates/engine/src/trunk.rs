//! Trunks: where calls go, with which credentials and caller id, and how fast.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Deserialize;
use sip::{
    CallConfig, Credentials, Dest, KeepAliveConfig, RegistrationConfig, TimerConfig, Transport, Uri,
};

/// A trunk as written in the configuration file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// Name used in logs and metrics.
    pub name: String,
    /// `sip:HOST[:PORT][;transport=tcp]`.
    pub uri: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Send REGISTER to the trunk and keep it refreshed.
    #[serde(default)]
    pub register: bool,
    #[serde(default = "default_register_expires")]
    pub register_expires: u32,
    /// Caller id user part for From (e.g. `+380441234567`).
    #[serde(default)]
    pub caller_id: Option<String>,
    #[serde(default)]
    pub caller_name: Option<String>,
    /// P-Asserted-Identity URI, if the carrier wants one.
    #[serde(default)]
    pub p_asserted_identity: Option<String>,
    /// Most simultaneous calls.
    #[serde(default = "default_max_channels")]
    pub max_channels: u32,
    /// Most new calls per second.
    #[serde(default = "default_cps")]
    pub cps: f64,
    /// OPTIONS keep-alive period in seconds (0 disables).
    #[serde(default = "default_options_interval")]
    pub options_interval_secs: u64,
}

fn default_register_expires() -> u32 {
    3600
}
fn default_max_channels() -> u32 {
    30
}
fn default_cps() -> f64 {
    5.0
}
fn default_options_interval() -> u64 {
    30
}

/// A configuration mistake, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum TrunkError {
    #[error("trunk {trunk:?}: field `{field}`: {reason}")]
    Invalid {
        trunk: String,
        field: &'static str,
        reason: String,
    },
}

/// A validated trunk.
#[derive(Debug, Clone)]
pub struct Trunk {
    pub cfg: TrunkConfig,
    pub uri: Uri,
    pub transport: Transport,
}

impl TrunkConfig {
    /// A trunk from a bare URI with defaults (the `dialer call --trunk` case).
    pub fn from_uri(uri: &str) -> TrunkConfig {
        TrunkConfig {
            name: "cli".into(),
            uri: uri.into(),
            username: None,
            password: None,
            register: false,
            register_expires: default_register_expires(),
            caller_id: None,
            caller_name: None,
            p_asserted_identity: None,
            max_channels: default_max_channels(),
            cps: default_cps(),
            options_interval_secs: 0,
        }
    }

    /// Check every field; the error names the first bad one.
    pub fn validate(self) -> Result<Trunk, TrunkError> {
        let bad = |field: &'static str, reason: String| TrunkError::Invalid {
            trunk: self.name.clone(),
            field,
            reason,
        };
        let uri = Uri::parse(&self.uri).map_err(|e| bad("uri", e.to_string()))?;
        if uri.secure {
            return Err(bad("uri", "sips: (TLS) is not supported yet".into()));
        }
        let transport = match uri.transport().as_deref() {
            None | Some("udp") => Transport::Udp,
            Some("tcp") => Transport::Tcp,
            Some(other) => return Err(bad("uri", format!("unsupported transport {other:?}"))),
        };
        if self.username.is_some() != self.password.is_some() {
            return Err(bad(
                "password",
                "username and password must be given together".into(),
            ));
        }
        if self.register && self.username.is_none() {
            return Err(bad(
                "register",
                "registration needs username and password".into(),
            ));
        }
        if self.max_channels == 0 {
            return Err(bad("max_channels", "must be at least 1".into()));
        }
        if !(self.cps.is_finite() && self.cps > 0.0) {
            return Err(bad("cps", "must be a positive number".into()));
        }
        if let Some(id) = &self.caller_id
            && (id.is_empty() || id.contains(['<', '>', '@', ' ', '"', ';']))
        {
            return Err(bad(
                "caller_id",
                "must be a plain user part such as +380441234567".into(),
            ));
        }
        Ok(Trunk {
            cfg: self,
            uri,
            transport,
        })
    }
}

/// Per-call choices of the caller.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// Dialled number (user part of the Request-URI).
    pub number: String,
    /// Overrides the trunk's caller id.
    pub from: Option<String>,
    pub ring_timeout: Duration,
    /// Our media (SDP offer and answers to re-INVITEs); `None` sends no SDP.
    pub media: Option<sip::sdp::LocalMedia>,
    pub session_expires: Option<u32>,
}

impl Trunk {
    /// The next hop of out-of-dialog requests.
    pub fn dest(&self) -> Dest {
        Dest::from_uri(&self.uri)
    }

    fn credentials(&self) -> Option<Credentials> {
        match (&self.cfg.username, &self.cfg.password) {
            (Some(u), Some(p)) => Some(Credentials {
                username: u.clone(),
                password: p.clone(),
            }),
            _ => None,
        }
    }

    fn host_port(&self) -> String {
        match self.uri.port {
            Some(p) if self.uri.host.contains(':') => format!("[{}]:{p}", self.uri.host),
            Some(p) => format!("{}:{p}", self.uri.host),
            None if self.uri.host.contains(':') => format!("[{}]", self.uri.host),
            None => self.uri.host.clone(),
        }
    }

    fn contact(&self, local: SocketAddr, user: &str) -> String {
        let host = match local.ip() {
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            std::net::IpAddr::V4(ip) => ip.to_string(),
        };
        let t = if self.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        format!("sip:{user}@{host}:{}{t}", local.port())
    }

    /// REGISTER settings when the trunk asks for registration.
    pub fn registration_config(
        &self,
        local: SocketAddr,
        timers: TimerConfig,
    ) -> Option<RegistrationConfig> {
        if !self.cfg.register {
            return None;
        }
        let user = self.cfg.username.clone()?;
        let registrar = Uri::parse(&format!(
            "sip:{}{}",
            self.host_port(),
            if self.transport == Transport::Tcp {
                ";transport=tcp"
            } else {
                ""
            }
        ))
        .ok()?;
        let mut cfg = RegistrationConfig::new(
            registrar,
            format!("sip:{user}@{}", self.host_port()),
            self.contact(local, &user),
            local.ip().to_string(),
            local.port(),
        );
        cfg.expires = self.cfg.register_expires;
        cfg.credentials = self.credentials();
        cfg.timers = timers;
        Some(cfg)
    }

    /// OPTIONS keep-alive settings when enabled.
    pub fn keepalive_config(
        &self,
        local: SocketAddr,
        timers: TimerConfig,
    ) -> Option<KeepAliveConfig> {
        if self.cfg.options_interval_secs == 0 {
            return None;
        }
        let from_user = self.cfg.username.clone().unwrap_or_else(|| "dialer".into());
        let mut cfg = KeepAliveConfig::new(
            self.uri.clone(),
            format!("sip:{from_user}@{}", self.host_port()),
            local.ip().to_string(),
            local.port(),
        );
        cfg.interval = Duration::from_secs(self.cfg.options_interval_secs);
        cfg.timers = timers;
        Some(cfg)
    }

    /// Build the call's SIP configuration. `local` is our SIP address as the trunk sees it.
    pub fn call_config(
        &self,
        req: &CallRequest,
        local: SocketAddr,
        timers: TimerConfig,
    ) -> CallConfig {
        let host_port = self.host_port();
        let transport_param = if self.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        let request_uri = Uri::parse(&format!("sip:{}@{host_port}{transport_param}", req.number))
            .unwrap_or_else(|_| self.uri.clone());
        let from_user = req
            .from
            .clone()
            .or_else(|| self.cfg.caller_id.clone())
            .or_else(|| self.cfg.username.clone())
            .unwrap_or_else(|| "dialer".into());
        CallConfig {
            to_uri: format!("sip:{}@{host_port}", req.number),
            request_uri,
            from_uri: format!("sip:{from_user}@{host_port}"),
            from_display: self.cfg.caller_name.clone(),
            contact: self.contact(local, "dialer"),
            via_host: local.ip().to_string(),
            via_port: local.port(),
            transport: self.transport,
            outbound: self.dest(),
            preloaded_route: Vec::new(),
            credentials: self.credentials(),
            media: req.media.clone(),
            ring_timeout: req.ring_timeout,
            session_expires: req.session_expires,
            min_se: 90,
            p_asserted_identity: self.cfg.p_asserted_identity.clone(),
            user_agent: Some(concat!("dialer/", env!("CARGO_PKG_VERSION")).into()),
            extra_headers: Vec::new(),
            timers,
        }
    }
}

/// Calls-per-second token bucket plus a channel cap for one trunk.
#[derive(Debug, Clone)]
pub struct Pacer {
    cps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
    max_channels: u32,
    in_use: u32,
    /// The limits before [`Pacer::set_share`].
    full_cps: f64,
    full_channels: u32,
}

/// A pacer shared by the campaigns of one node that use the same trunk.
pub type SharedPacer = std::sync::Arc<std::sync::Mutex<Pacer>>;

impl Pacer {
    /// A bucket refilled at `cps` per second holding at most `max(1, cps)` tokens.
    pub fn new(cps: f64, max_channels: u32) -> Pacer {
        let burst = cps.max(1.0);
        Pacer {
            cps,
            burst,
            tokens: burst,
            last: None,
            max_channels,
            in_use: 0,
            full_cps: cps,
            full_channels: max_channels,
        }
    }

    /// The same pacer behind a lock, for sharing between runners.
    pub fn shared(cps: f64, max_channels: u32) -> SharedPacer {
        std::sync::Arc::new(std::sync::Mutex::new(Pacer::new(cps, max_channels)))
    }

    /// This node's share when `nodes` nodes use the trunk: calls per second and channels
    /// divided among them (channels rounded up, at least one), so the trunk's limits hold
    /// over all nodes together.
    pub fn set_share(&mut self, nodes: u32) {
        let n = f64::from(nodes.max(1));
        self.cps = self.full_cps / n;
        self.burst = self.cps.max(1.0);
        self.tokens = self.tokens.min(self.burst);
        self.max_channels = self.full_channels.div_ceil(nodes.max(1)).max(1);
    }

    /// The current limits (after the share): calls per second, channels.
    pub fn limits(&self) -> (f64, u32) {
        (self.cps, self.max_channels)
    }

    /// Give back a token and channel taken by [`try_acquire`](Self::try_acquire) but not used.
    pub fn refund(&mut self) {
        self.tokens = (self.tokens + 1.0).min(self.burst);
        self.in_use = self.in_use.saturating_sub(1);
    }

    fn refill(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.cps).min(self.burst);
        }
        self.last = Some(now);
    }

    /// Take a token and a channel if both are free.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.in_use >= self.max_channels || self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        self.in_use += 1;
        true
    }

    /// When the next token will be there (None if a channel is what is missing).
    pub fn next_token_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        if self.in_use >= self.max_channels {
            return None;
        }
        if self.tokens >= 1.0 {
            return Some(now);
        }
        Some(now + Duration::from_secs_f64((1.0 - self.tokens) / self.cps))
    }

    /// A call ended: free its channel.
    pub fn release(&mut self) {
        self.in_use = self.in_use.saturating_sub(1);
    }

    pub fn in_use(&self) -> u32 {
        self.in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_divides_the_limits_and_refund_restores() {
        let t0 = Instant::now();
        let mut p = Pacer::new(10.0, 7);
        p.set_share(3);
        let (cps, ch) = p.limits();
        assert!((cps - 10.0 / 3.0).abs() < 1e-9);
        assert_eq!(ch, 3);
        // Burst is the share's: 3.33 tokens, so three calls now, then one per 0.3 s.
        assert!(p.try_acquire(t0));
        assert!(p.try_acquire(t0));
        assert!(p.try_acquire(t0));
        assert!(!p.try_acquire(t0), "channels (3) exhausted");
        p.refund();
        assert_eq!(p.in_use(), 2);
        assert!(p.try_acquire(t0), "the refunded token and channel are back");
        p.set_share(1);
        assert_eq!(p.limits(), (10.0, 7));
    }

    #[test]
    fn validation_names_the_field() {
        let err = TrunkConfig::from_uri("http://x").validate().unwrap_err();
        assert!(err.to_string().contains("`uri`"), "{err}");
        let mut t = TrunkConfig::from_uri("sip:pbx:5060");
        t.username = Some("u".into());
        assert!(t.validate().unwrap_err().to_string().contains("`password`"));
        let mut t = TrunkConfig::from_uri("sip:pbx");
        t.cps = 0.0;
        assert!(t.validate().unwrap_err().to_string().contains("`cps`"));
        let t = TrunkConfig::from_uri("sip:pbx;transport=sctp");
        assert!(t.validate().is_err());
    }

    #[test]
    fn call_config_uses_the_trunk_transport_and_addresses() {
        let trunk = TrunkConfig::from_uri("sip:127.0.0.1:5070;transport=tcp")
            .validate()
            .unwrap();
        let req = CallRequest {
            number: "+380441234567".into(),
            from: Some("1000".into()),
            ring_timeout: Duration::from_secs(30),
            media: None,
            session_expires: Some(1800),
        };
        let c = trunk.call_config(
            &req,
            "127.0.0.1:5062".parse().unwrap(),
            TimerConfig::default(),
        );
        assert_eq!(
            c.request_uri.as_str(),
            "sip:+380441234567@127.0.0.1:5070;transport=tcp"
        );
        assert_eq!(c.transport, Transport::Tcp);
        assert_eq!(c.contact, "sip:dialer@127.0.0.1:5062;transport=tcp");
        assert_eq!(c.from_uri, "sip:1000@127.0.0.1:5070");
        assert_eq!(c.outbound, Dest::Addr("127.0.0.1:5070".parse().unwrap()));
    }

    #[test]
    fn pacer_limits_rate_and_channels() {
        let t0 = Instant::now();
        let mut p = Pacer::new(2.0, 3);
        assert!(p.try_acquire(t0));
        assert!(p.try_acquire(t0));
        assert!(!p.try_acquire(t0), "bucket of 2 is empty");
        assert_eq!(p.next_token_at(t0), Some(t0 + Duration::from_millis(500)));
        assert!(p.try_acquire(t0 + Duration::from_millis(500)));
        assert!(
            !p.try_acquire(t0 + Duration::from_secs(10)),
            "3 channels busy"
        );
        p.release();
        assert!(p.try_acquire(t0 + Duration::from_secs(10)));
    }
}

#[cfg(test)]
mod config_file_tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        trunk: Vec<TrunkConfig>,
    }

    #[test]
    fn the_commented_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/trunks.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let file: File = toml::from_str(&text).unwrap();
        assert_eq!(file.trunk.len(), 3);
        let trunks: Vec<Trunk> = file
            .trunk
            .into_iter()
            .map(|t| t.validate().unwrap())
            .collect();
        assert_eq!(trunks[1].transport, Transport::Tcp);
        assert!(trunks[1].cfg.register);
        let local: SocketAddr = "127.0.0.1:5062".parse().unwrap();
        let reg = trunks[1]
            .registration_config(local, TimerConfig::default())
            .unwrap();
        assert_eq!(
            reg.registrar.as_str(),
            "sip:fs.example.com:5080;transport=tcp"
        );
        assert_eq!(reg.aor, "sip:1000@fs.example.com:5080");
        assert_eq!(reg.contact, "sip:1000@127.0.0.1:5062;transport=tcp");
        assert_eq!(reg.expires, 600);
        assert!(
            trunks[0]
                .registration_config(local, TimerConfig::default())
                .is_none()
        );
        let ka = trunks[2]
            .keepalive_config(local, TimerConfig::default())
            .unwrap();
        assert_eq!(ka.interval, Duration::from_secs(30));
        assert!(
            trunks[0]
                .keepalive_config(local, TimerConfig::default())
                .is_some()
        );
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = toml::from_str::<File>("[[trunk]]\nname='x'\nuri='sip:h'\ncsp=3\n").unwrap_err();
        assert!(err.to_string().contains("csp"), "{err}");
    }
}
