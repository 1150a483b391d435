//! The `dialer` binary.
//!
//! `dialer call` places one call through a trunk and prints one JSON object describing what
//! happened. `dialer simulate` answers calls as a crowd of callees (SIP + RTP personas) and
//! prints a JSON summary when stopped. Later issues add `serve`, `demo` and the campaign client.
//!
//! Exit codes: 0 the call was attempted (whatever its outcome), 2 usage or configuration
//! error (the message names the argument), 1 runtime failure (e.g. cannot bind a socket).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

mod bench;
mod call;
mod children;
mod client;
mod config;
mod demo;
mod floor;
mod probe;
mod serve;
mod serve_grpc;
mod simulate;
use clap::{Parser, Subcommand};
use engine::trunk::TrunkConfig;

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
    Call(Box<CallArgs>),
    /// Check a trunk: OPTIONS ping, and with --register a REGISTER (then un-REGISTER);
    /// prints one JSON object. Exit 0 when the trunk answered (and registered, if asked).
    Probe(ProbeArgs),
    /// Answer calls as a crowd of callees over real SIP (UDP+TCP) and RTP, each call drawing a
    /// persona by weight (--personas FILE, default a built-in mix); prints a JSON summary on
    /// SIGINT/SIGTERM, after --duration or once --max-calls calls ended.
    Simulate(simulate::SimulateArgs),
    /// Load bench: calls at a rate and concurrency through the engine against `dialer
    /// simulate` (started on loopback unless --target), then reports setups/s, live calls,
    /// setup latency, prompt send timing, RTP loss, CPU and memory per call of both sides.
    Bench(bench::BenchArgs),
    /// The demo campaign on embedded defaults: SQLite store, simulated callees on loopback,
    /// 1,000 generated contacts, the default survey, a live progress bar, then the report.
    Demo(demo::DemoArgs),
    /// Campaigns through the control API of a `dialer serve`: create, import, start, pause,
    /// resume, stop, status, watch.
    Campaign(client::CampaignArgs),
    /// Results through the control API: stream (resumable) or export as CSV.
    Results(client::ResultsArgs),
    /// A campaign's report (answers, outcomes, KPIs) as a readable table.
    Report(client::ReportArgs),
    /// Opt a number out: suppressed on every campaign, its contacts erased.
    Optout(client::OptoutArgs),
    /// Run the engine as a node: every running campaign of the store, the gRPC API,
    /// Prometheus /metrics; several nodes may share one PostgreSQL store.
    Serve(serve::ServeArgs),
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
    /// Play this WAV (any rate, depth, channels) after the answer.
    #[arg(long, value_name = "WAV")]
    prompt: Option<PathBuf>,
    /// Record the call as a stereo WAV (left callee, right us).
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Hang up this long after the last digit (counted from the end of the prompt, or from
    /// the answer without one). Default 5 s with --prompt.
    #[arg(long, value_name = "SECS")]
    dtmf_timeout: Option<f64>,
    /// Hang up when no RTP arrives for this long.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    rtp_timeout: f64,
    /// Send these digits (RFC 4733) once answered, e.g. to walk a far-end IVR.
    #[arg(long, value_name = "DIGITS")]
    send_dtmf: Option<String>,
    /// Run this dialogue script (TOML, see config/scripts/README.md) once answered; the result
    /// gains `category`, `transcript`, `confidence` and `script_version`.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Language of the script's prompts and of recognition: ru, uk or en (default: the
    /// script's default language).
    #[arg(long, value_name = "LANG")]
    lang: Option<String>,
    /// Speech-recognition service (asr.v1.Recognizer), e.g. http://127.0.0.1:50061. Without
    /// it a script takes keys only.
    #[arg(long, value_name = "URL", env = "DIALER_ASR")]
    asr: Option<String>,
    /// Most seconds from the end of an utterance to its transcript before the call goes on
    /// with keys only.
    #[arg(long, value_name = "SECS", default_value_t = 8.0)]
    asr_timeout: f64,
    /// Where the script's transfer to "manager" goes (a SIP URI).
    #[arg(long, value_name = "URI")]
    manager_uri: Option<String>,
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
    let command = match cli.command {
        // serve sets up its own logging (format and level from its configuration).
        Command::Serve(args) => return serve::main(args),
        c => c,
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
    let args = match command {
        Command::Call(args) => args,
        Command::Probe(args) => return probe::main(&runtime, args),
        Command::Simulate(args) => return simulate::main(&runtime, args),
        Command::Bench(args) => return bench::main(&runtime, args),
        Command::Demo(args) => return demo::main(&runtime, args),
        Command::Campaign(args) => return client::campaign(&runtime, args),
        Command::Results(args) => return client::results(&runtime, args),
        Command::Report(args) => return client::report(&runtime, args),
        Command::Optout(args) => return client::optout(&runtime, args),
        Command::Serve(_) => return ExitCode::from(2),
    };
    // The ASR client's connection is created (lazily) inside the runtime.
    let _runtime_guard = runtime.enter();
    let plan = match CallPlan::from_args(&args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("dialer call: {msg}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(call::run(plan)) {
        Ok(result) => {
            println!("{}", result.to_json());
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
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Validated arguments.
#[derive(Debug)]
pub(crate) struct CallPlan {
    trunk: engine::trunk::Trunk,
    number: String,
    from: Option<String>,
    hangup_after: Option<Duration>,
    ring_timeout: Duration,
    bind: SocketAddr,
    session_expires: Option<u32>,
    seed: u64,
    prompt: Option<std::sync::Arc<media::Prompt>>,
    record: Option<PathBuf>,
    dtmf_timeout: Option<Duration>,
    rtp_timeout: Duration,
    send_dtmf: Option<String>,
    script: Option<std::sync::Arc<engine::dialogue::ScriptPlan>>,
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
        let prompt = match &a.prompt {
            Some(path) => Some(std::sync::Arc::new(
                media::Prompt::load(path).map_err(|e| format!("invalid --prompt: {e}"))?,
            )),
            None => None,
        };
        if let Some(d) = &a.send_dtmf
            && (d.is_empty()
                || d.len() > 32
                || !d
                    .chars()
                    .all(|c| media::dtmf::Digit::from_char(c).is_some()))
        {
            return Err(format!(
                "invalid --send-dtmf {d:?}: expected up to 32 of 0-9 * # A-D"
            ));
        }
        let script = match &a.script {
            Some(path) => {
                let lang = parse_lang(a.lang.as_deref())?;
                let asr = match &a.asr {
                    Some(url) => {
                        let mut cfg = engine::asr::AsrConfig::new(url.clone());
                        cfg.timeout = secs("--asr-timeout", a.asr_timeout)?;
                        Some(
                            engine::asr::AsrClient::new(cfg)
                                .map_err(|e| format!("invalid --asr: {e}"))?,
                        )
                    }
                    None => None,
                };
                if let Some(m) = &a.manager_uri
                    && sip::Uri::parse(m).is_err()
                {
                    return Err(format!("invalid --manager-uri {m:?}: expected a SIP URI"));
                }
                Some(std::sync::Arc::new(engine::dialogue::ScriptPlan::load(
                    path,
                    lang,
                    asr,
                    a.manager_uri.clone(),
                )?))
            }
            None => {
                if a.lang.is_some() || a.manager_uri.is_some() {
                    return Err("--lang and --manager-uri need --script".into());
                }
                None
            }
        };
        let dtmf_timeout = match a.dtmf_timeout {
            Some(v) => Some(secs("--dtmf-timeout", v)?),
            None if prompt.is_some() && script.is_none() => Some(Duration::from_secs(5)),
            None => None,
        };
        let rtp_timeout = secs("--rtp-timeout", a.rtp_timeout)?;
        if rtp_timeout < Duration::from_secs(1) {
            return Err("invalid --rtp-timeout: at least 1 second".into());
        }
        Ok(CallPlan {
            prompt,
            record: a.record.clone(),
            dtmf_timeout,
            rtp_timeout,
            send_dtmf: a.send_dtmf.clone(),
            script,
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

/// `--lang`: ru, uk or en.
pub(crate) fn parse_lang(lang: Option<&str>) -> Result<Option<script::Lang>, String> {
    lang.map(|l| {
        script::Lang::parse(l).ok_or_else(|| format!("invalid --lang {l:?}: expected ru, uk or en"))
    })
    .transpose()
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
