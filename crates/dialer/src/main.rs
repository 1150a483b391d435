//! The `dialer` binary.
//!
//! `dialer call` places one call through a trunk and prints one JSON object describing what
//! happened. Later issues add `serve`, `demo`, `simulate` and the campaign client.
//!
//! Exit codes: 0 the call was attempted (whatever its outcome), 2 usage or configuration
//! error (the message names the argument), 1 runtime failure (e.g. cannot bind a socket).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;

mod probe;
use clap::{Parser, Subcommand};
use engine::driver::{DriverConfig, DriverEvent, SipDriver};
use engine::transport::TransportConfig;
use engine::trunk::{CallRequest, TrunkConfig};
use sip::{CallEvent, CallReport, EndpointConfig, TimerConfig};

#[derive(Debug, Parser)]
#[command(name = "dialer", version, about = "Outbound voice-bot dialer engine")]
struct Cli {
    /// More log output on stderr (-v debug, -vv trace). Logs never carry phone numbers at info.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Place one call through a SIP trunk and print the result as one JSON object.
    Call(CallArgs),
    /// Check a trunk: OPTIONS ping, and with --register a REGISTER (then un-REGISTER);
    /// prints one JSON object. Exit 0 when the trunk answered (and registered, if asked).
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The trunk as a SIP URI, e.g. sip:pbx.example.com:5060 (;transport=tcp for TCP).
    #[arg(long)]
    trunk: String,
    /// Digest username (also the REGISTER address-of-record user).
    #[arg(long)]
    user: Option<String>,
    /// Digest password.
    #[arg(long)]
    password: Option<String>,
    /// Also REGISTER with the trunk, report the granted expiry, then remove the binding.
    #[arg(long)]
    register: bool,
    /// Expiry to ask for in REGISTER, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    expires: u32,
    /// Local SIP address (UDP and TCP). Port 0 picks a free port.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
}

#[derive(Debug, clap::Args)]
struct CallArgs {
    /// The trunk as a SIP URI, e.g. sip:pbx.example.com:5060 (;transport=tcp for TCP).
    #[arg(long)]
    trunk: String,
    /// Number to dial (the user part of the Request-URI), e.g. +380441234567.
    #[arg(long)]
    to: String,
    /// Caller id (From user part).
    #[arg(long)]
    from: Option<String>,
    /// Digest username for 401/407 challenges.
    #[arg(long)]
    user: Option<String>,
    /// Digest password.
    #[arg(long)]
    password: Option<String>,
    /// Hang up this many seconds after the answer (default: wait for the far end, at most 1 h).
    #[arg(long, value_name = "SECS")]
    hangup_after: Option<f64>,
    /// CANCEL when not answered within this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    ring_timeout: f64,
    /// Local SIP address (UDP and TCP). Port 0 picks a free port.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Session-Expires to request in seconds (RFC 4028); 0 disables session timers.
    #[arg(long, value_name = "SECS", default_value_t = 1800)]
    session_expires: u32,
    /// Seed of SIP identifiers (branches, tags, Call-ID); random by default.
    #[arg(long)]
    seed: Option<u64>,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("dialer: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let args = match cli.command {
        Command::Call(args) => args,
        Command::Probe(args) => return probe::main(&runtime, args),
    };
    let plan = match CallPlan::from_args(&args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("dialer call: {msg}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run_call(plan)) {
        Ok(report) => {
            println!("{}", report_json(&report));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dialer call: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIALER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Validated arguments.
#[derive(Debug)]
struct CallPlan {
    trunk: engine::trunk::Trunk,
    number: String,
    from: Option<String>,
    hangup_after: Option<Duration>,
    ring_timeout: Duration,
    bind: SocketAddr,
    session_expires: Option<u32>,
    seed: u64,
}

impl CallPlan {
    fn from_args(a: &CallArgs) -> Result<CallPlan, String> {
        let mut tc = TrunkConfig::from_uri(&a.trunk);
        tc.username = a.user.clone();
        tc.password = a.password.clone();
        let trunk = tc.validate().map_err(|e| match e {
            engine::trunk::TrunkError::Invalid { field, reason, .. } => {
                let arg = match field {
                    "password" => "--user/--password",
                    "caller_id" => "--from",
                    _ => "--trunk",
                };
                format!("invalid {arg}: {reason}")
            }
            other => other.to_string(),
        })?;
        if !valid_user_part(&a.to) {
            return Err(format!(
                "invalid --to {:?}: expected a number such as +380441234567 (digits, + * #)",
                a.to
            ));
        }
        if let Some(f) = &a.from
            && !valid_user_part(f)
        {
            return Err(format!(
                "invalid --from {f:?}: expected a number or a plain user name"
            ));
        }
        let secs = |name: &str, v: f64| -> Result<Duration, String> {
            if (0.0..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!("invalid {name} {v}: expected 0..=86400 seconds"))
            }
        };
        let session_expires = match a.session_expires {
            0 => None,
            n if n < 90 => {
                return Err(format!(
                    "invalid --session-expires {n}: RFC 4028 minimum is 90 (0 disables)"
                ));
            }
            n => Some(n),
        };
        Ok(CallPlan {
            trunk,
            number: a.to.clone(),
            from: a.from.clone(),
            hangup_after: a
                .hangup_after
                .map(|v| secs("--hangup-after", v))
                .transpose()?,
            ring_timeout: secs("--ring-timeout", a.ring_timeout)?,
            bind: a.bind,
            session_expires,
            seed: a.seed.unwrap_or_else(random_seed),
        })
    }
}

fn valid_user_part(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '*' | '#' | '-' | '.' | '_'))
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    h.finish()
}

async fn run_call(plan: CallPlan) -> anyhow::Result<CallReport> {
    let mut driver = SipDriver::bind(DriverConfig {
        transport: TransportConfig {
            bind: plan.bind,
            ..TransportConfig::default()
        },
        endpoint: EndpointConfig {
            seed: plan.seed,
            ..EndpointConfig::default()
        },
    })
    .await
    .with_context(|| format!("cannot bind SIP sockets on {}", plan.bind))?;
    let local = driver
        .local_addr_towards(&plan.trunk.dest())
        .await
        .context("cannot find our address towards the trunk")?;
    // Media arrives with a later issue; the RTP port is reserved so the offer names a port we own.
    let rtp = std::net::UdpSocket::bind(SocketAddr::new(local.ip(), 0))
        .context("cannot bind an RTP port")?;
    let rtp_addr = rtp.local_addr()?;
    let media = sip::sdp::LocalMedia::new(rtp_addr.ip(), rtp_addr.port(), plan.seed & 0xFFFF_FFFF);
    let req = CallRequest {
        number: plan.number.clone(),
        from: plan.from.clone(),
        ring_timeout: plan.ring_timeout,
        media: Some(media),
        session_expires: plan.session_expires,
    };
    let cfg = plan.trunk.call_config(&req, local, TimerConfig::default());
    let started = Instant::now();
    let call = driver.place_call(cfg).await;
    tracing::info!(trunk = %plan.trunk.cfg.name, "call placed");
    let mut interrupted = false;
    loop {
        let next = tokio::select! {
            ev = driver.next_event() => ev,
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                let _ = driver.hangup(call).await;
                continue;
            }
        };
        let (h, ev) = match next {
            Some(DriverEvent::Call(h, ev)) => (h, ev),
            Some(DriverEvent::Agent(..)) => continue,
            None => anyhow::bail!("the SIP transport stopped"),
        };
        if h != call {
            continue;
        }
        match ev {
            CallEvent::Answered { .. } => {
                let limit = plan.hangup_after.unwrap_or(Duration::from_secs(3600));
                driver.hangup_at(call, Instant::now() + limit);
                tracing::info!(setup_ms = started.elapsed().as_millis() as u64, "answered");
            }
            CallEvent::Progress { status, .. } => tracing::debug!(status, "progress"),
            CallEvent::Ended(report) => {
                tracing::info!(outcome = %report.outcome, status = ?report.sip_status, "call ended");
                // Answer retransmissions for a moment (a lost ACK or 200 OK on UDP would
                // otherwise leave the far end retrying) and let queued TCP writes out.
                driver.linger(Duration::from_secs(1)).await;
                drop(rtp);
                return Ok(report);
            }
            other => tracing::debug!(event = ?other, "call event"),
        }
    }
}

fn report_json(r: &CallReport) -> String {
    let ms = |d: Option<Duration>| d.map(|d| d.as_millis() as u64);
    serde_json::json!({
        "outcome": r.outcome.as_str(),
        "sip_status": r.sip_status,
        "reason": r.reason,
        "reason_header": r.reason_header,
        "setup_ms": ms(r.setup),
        "duration_ms": ms(r.duration).or(Some(0)),
        "hangup_by": r.hangup_by.map(|h| h.as_str()),
    })
    .to_string()
}
