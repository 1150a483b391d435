//! `dialer bench`: the end-to-end load bench. Many calls through the real engine (SIP driver +
//! media clock, the same code `dialer call` runs) against `dialer simulate` on loopback, with a
//! report from the process's own accounting.
//!
//! By default the bench starts the simulator itself (this same binary, `simulate` on a free
//! loopback port, with a personas file that answers every call at once and sends RTP back), so
//! one command measures both ends; `--target` calls something else instead (then only our side
//! is measured). Each answered call plays a prompt in a loop with the production analysis on
//! (VAD, answering-machine detection, in-band DTMF) and is hung up by us after `--call-secs`.
//!
//! One loop, as in `dialer call`:
//!
//! ```text
//! loop {
//!     select! {
//!         ev   = driver.next_event() => answered: start media, play; ended: count, release
//!         tick = media clock (20 ms) => media.tick_scheduled(tick); place the calls now due
//!         1 s                        => progress line; RSS sample
//!     }
//! }
//! ```
//!
//! Every loop is bounded: dialling stops after `--duration`, live calls end by themselves after
//! `--call-secs`, and a hard deadline (`duration + call_secs + 30 s`) hangs up whatever is left.
//!
//! Two comparisons can follow the run in the same invocation, each printed against our own
//! figures:
//! - `--sipp`: SIPp as the UAC places the same number of calls at the same rate, concurrency
//!   and length against a fresh simulator with the same personas and seed (INVITE with SDP,
//!   a G.711 pcap as long as the call, BYE; `scripts/sipp/uac_pcap.xml`); SIPp's CPU comes
//!   from `/proc/<pid>/stat` like ours, and the report divides our CPU per call by SIPp's.
//! - `--floor`: the raw UDP floor ([`floor`]): the kernel's cost for the same packets (same
//!   size, 50 per second per call each way, the run's peak live calls) with plain `sendto`
//!   and with `sendmmsg`, and our CPU per live call-minute divided by it.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use engine::driver::{DriverConfig, DriverEvent, SipDriver};
use engine::media::{MediaConfig, MediaEngine, MediaHandle, SocketMode};
use engine::transport::TransportConfig;
use engine::trunk::{CallRequest, Trunk, TrunkConfig};
use hdrhistogram::Histogram;
use media::amd::AmdConfig;
use media::session::{MediaEvent, MediaParams};
use sip::sdp::Negotiated;
use sip::{CallEvent, CallHandle, EndpointConfig, TimerConfig};

use engine::dialogue::{Actions, AsrDone, Conversation};

use crate::children::{Personas, Simulator, TempDir};

use crate::floor;

/// After dialling and the calls' own length: how long stragglers get before we hang up.
const HARD_STOP_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// New calls per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Most calls in progress at once (ringing or answered); new calls wait for a free one.
    #[arg(long, default_value_t = 2000)]
    concurrency: u32,
    /// Seconds an answered call lasts before we hang up.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    call_secs: f64,
    /// Seconds of dialling; then the live calls run out and the bench reports.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    duration: f64,
    /// Call this trunk (sip:HOST:PORT) instead of starting `dialer simulate` on loopback.
    #[arg(long, value_name = "URI")]
    target: Option<String>,
    /// Personas for the simulator the bench starts (default: every call answered at once by a
    /// callee that sends RTP back until our BYE).
    #[arg(long, value_name = "FILE")]
    personas: Option<PathBuf>,
    /// Prompt played in a loop on every answered call (default: 4 s of a synthetic voice).
    #[arg(long, value_name = "WAV")]
    prompt: Option<PathBuf>,
    /// Run VAD, answering-machine detection and in-band DTMF detection on every call, as
    /// production calls do (`--analysis false` measures the bare RTP path).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    analysis: bool,
    /// RTP sockets of both ends: `shared` (one socket pair per process, `recvmmsg`/`sendmmsg`
    /// across calls, calls told apart by address and the SSRC each SDP announces) or
    /// `per-call` (a port pair per call).
    #[arg(long, value_name = "MODE", default_value = "shared")]
    rtp_sockets: SocketMode,
    /// Threads of each end's media clock (calls spread round robin; each with its own shared
    /// socket pair).
    #[arg(long, value_name = "N", default_value_t = 1)]
    media_threads: usize,
    /// Local SIP address (UDP). Port 0 picks a free port.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Seed of SIP identifiers and SSRCs (random by default).
    #[arg(long)]
    seed: Option<u64>,
    /// Run this dialogue script on every answered call instead of looping a prompt (with
    /// --personas whose callees speak or key answers): the report adds categories and the
    /// recogniser's latency.
    #[arg(long, value_name = "FILE")]
    script: Option<PathBuf>,
    /// Language of the script (default: the script's).
    #[arg(long, value_name = "LANG")]
    lang: Option<String>,
    /// Speech-recognition service for --script, e.g. http://127.0.0.1:50061.
    #[arg(long, value_name = "URL")]
    asr: Option<String>,
    /// Print the report as one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// After the run, measure the raw UDP floor for the same packets (the run's peak live
    /// calls, at most 2,000 socket pairs, 172-byte packets every 20 ms each way, `sendto` and
    /// `sendmmsg`, received with `recvmmsg`) and print our CPU per live call-minute over it.
    #[arg(long)]
    floor: bool,
    /// Seconds of each --floor sending mode.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    floor_secs: f64,
    /// After the run, have SIPp (`sipp`, as root: it plays the pcap from raw sockets) place
    /// the same calls at the same rate, concurrency and length against a fresh simulator
    /// (scripts/sipp/uac_pcap.xml) and print our CPU per call over SIPp's.
    #[arg(long)]
    sipp: bool,
}

#[derive(Debug)]
struct Plan {
    rate: f64,
    concurrency: u32,
    call_len: Duration,
    duration: Duration,
    target: Option<Trunk>,
    personas: Option<PathBuf>,
    prompt: Arc<media::Prompt>,
    analysis: bool,
    rtp_sockets: SocketMode,
    media_threads: usize,
    bind: SocketAddr,
    seed: u64,
    json: bool,
    script: Option<Arc<engine::dialogue::ScriptPlan>>,
    /// `--floor`: seconds per sending mode.
    floor: Option<Duration>,
    sipp: bool,
}

impl Plan {
    fn from_args(a: &BenchArgs) -> Result<Plan, String> {
        if !(a.rate.is_finite() && 0.1 <= a.rate && a.rate <= 10_000.0) {
            return Err(format!(
                "invalid --rate {}: expected 0.1..=10000 calls/s",
                a.rate
            ));
        }
        if !(1..=engine::media::MAX_THREADS).contains(&a.media_threads) {
            return Err(format!(
                "invalid --media-threads {}: expected 1..={}",
                a.media_threads,
                engine::media::MAX_THREADS
            ));
        }
        if !(1..=50_000).contains(&a.concurrency) {
            return Err(format!(
                "invalid --concurrency {}: expected 1..=50000",
                a.concurrency
            ));
        }
        let secs = |name: &str, v: f64, min: f64| -> Result<Duration, String> {
            if v.is_finite() && (min..=86_400.0).contains(&v) {
                Ok(Duration::from_secs_f64(v))
            } else {
                Err(format!(
                    "invalid {name} {v}: expected {min}..=86400 seconds"
                ))
            }
        };
        let target = match &a.target {
            Some(uri) => Some(TrunkConfig::from_uri(uri).validate().map_err(|e| match e {
                engine::trunk::TrunkError::Invalid { reason, .. } => {
                    format!("invalid --target: {reason}")
                }
                other => other.to_string(),
            })?),
            None => None,
        };
        if target.is_some() && a.personas.is_some() {
            return Err(
                "--personas applies to the simulator the bench starts; not with --target".into(),
            );
        }
        if let Some(p) = &a.personas
            && !p.is_file()
        {
            return Err(format!("invalid --personas {}: no such file", p.display()));
        }
        let prompt = match &a.prompt {
            Some(path) => {
                media::Prompt::load(path).map_err(|e| format!("invalid --prompt: {e}"))?
            }
            None => media::Prompt::from_pcm("synthetic-voice", &synthetic_voice())
                .map_err(|e| format!("synthetic prompt: {e}"))?,
        };
        let script = match &a.script {
            Some(path) => {
                let lang = crate::parse_lang(a.lang.as_deref())?;
                let asr = match &a.asr {
                    Some(url) => Some(
                        engine::asr::AsrClient::new(engine::asr::AsrConfig {
                            timeout: Duration::from_secs(30),
                            ..engine::asr::AsrConfig::new(url.clone())
                        })
                        .map_err(|e| format!("invalid --asr: {e}"))?,
                    ),
                    None => None,
                };
                Some(Arc::new(engine::dialogue::ScriptPlan::load(
                    path, lang, asr, None,
                )?))
            }
            None if a.lang.is_some() || a.asr.is_some() => {
                return Err("--lang and --asr need --script".into());
            }
            None => None,
        };
        if a.sipp && (target.is_some() || script.is_some()) {
            return Err("--sipp drives the simulator the bench starts with SIPp's own scenario; not with --target or --script".into());
        }
        let floor = if a.floor {
            Some(secs("--floor-secs", a.floor_secs, 0.1)?)
        } else {
            None
        };
        Ok(Plan {
            floor,
            sipp: a.sipp,
            script,
            rate: a.rate,
            concurrency: a.concurrency,
            call_len: secs("--call-secs", a.call_secs, 0.1)?,
            duration: secs("--duration", a.duration, 1.0)?,
            target,
            personas: a.personas.clone(),
            prompt: Arc::new(prompt),
            analysis: a.analysis,
            rtp_sockets: a.rtp_sockets,
            media_threads: a.media_threads,
            bind: a.bind,
            seed: a.seed.unwrap_or_else(crate::random_seed),
            json: a.json,
        })
    }
}

/// Four seconds of a voice-like signal: a 140 Hz glottal pulse train through two formants,
/// in syllables of 250 ms with short gaps. The bench only needs realistic G.711 frames.
fn synthetic_voice() -> Vec<i16> {
    let rate = f64::from(media::SAMPLE_RATE);
    (0..(4 * media::SAMPLE_RATE) as usize)
        .map(|i| {
            let t = i as f64 / rate;
            let syllable = (t * 4.0).fract();
            let env = if syllable < 0.8 {
                (syllable / 0.8 * std::f64::consts::PI).sin()
            } else {
                0.0
            };
            let f0 = 140.0;
            let s = (2.0 * std::f64::consts::PI * f0 * t).sin() * 0.5
                + (2.0 * std::f64::consts::PI * 700.0 * t).sin() * 0.3
                + (2.0 * std::f64::consts::PI * 1200.0 * t).sin() * 0.2;
            (s * env * 8000.0) as i16
        })
        .collect()
}

pub(crate) fn main(runtime: &tokio::runtime::Runtime, args: BenchArgs) -> ExitCode {
    // The ASR client's connection is created (lazily) inside the runtime.
    let _runtime_guard = runtime.enter();
    let plan = match Plan::from_args(&args) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("dialer bench: {msg}");
            return ExitCode::from(2);
        }
    };
    crate::simulate::raise_nofile();
    let json = plan.json;
    match runtime.block_on(run(&plan)) {
        Ok(mut report) => {
            // A failed comparison still prints the run's own figures, then fails.
            let compared = compare(&plan, &mut report);
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_table());
            }
            match compared {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("dialer bench: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
        Err(e) => {
            eprintln!("dialer bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// CPU and memory of one process, from /proc (Linux).
#[derive(Debug, Clone, Copy, Default)]
struct ProcSample {
    user_s: f64,
    system_s: f64,
    rss_kib: u64,
}

impl ProcSample {
    fn read(pid: &str) -> Option<ProcSample> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at "state".
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tck = clock_ticks();
        let user_s = f.get(11)?.parse::<f64>().ok()? / tck;
        let system_s = f.get(12)?.parse::<f64>().ok()? / tck;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())?;
        Some(ProcSample {
            user_s,
            system_s,
            rss_kib,
        })
    }

    fn cpu(&self) -> f64 {
        self.user_s + self.system_s
    }
}

/// Busy and total jiffies of the whole machine (all CPUs), from /proc/stat.
fn machine_jiffies() -> Option<(u64, u64)> {
    machine_times().map(|m| (m.busy, m.total))
}

/// The whole machine's CPU time from /proc/stat, in jiffies.
#[derive(Debug, Clone, Copy)]
struct MachineTimes {
    /// Everything but idle, iowait and steal.
    busy: u64,
    /// Time the hypervisor ran something else while this VM wanted a CPU.
    steal: u64,
    total: u64,
}

fn machine_times() -> Option<MachineTimes> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let total: u64 = (0..8).map(at).sum();
    let steal = at(7);
    Some(MachineTimes {
        busy: total - at(3) - at(4) - steal,
        steal,
        total,
    })
}

/// Steal's share of the machine's time between two readings.
fn steal_share(a: Option<MachineTimes>, b: Option<MachineTimes>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.total > a.total => {
            Some((b.steal - a.steal) as f64 / (b.total - a.total) as f64)
        }
        _ => None,
    }
}

fn clock_ticks() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(n)) if n > 0 => n as f64,
        _ => 100.0,
    }
}

/// One side's resource use over the dialling window and at the peak.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    start: ProcSample,
    end: ProcSample,
    /// Resident memory before the first call.
    baseline_rss_kib: u64,
    /// Resident memory when the most calls were answered at once.
    peak_rss_kib: u64,
}

impl Usage {
    fn cpu_s(&self) -> f64 {
        (self.end.cpu() - self.start.cpu()).max(0.0)
    }
    fn user_s(&self) -> f64 {
        (self.end.user_s - self.start.user_s).max(0.0)
    }
    fn system_s(&self) -> f64 {
        (self.end.system_s - self.start.system_s).max(0.0)
    }
}

const BENCH_PERSONAS: &str = "\
# Written by `dialer bench`: every call answered at once; the callee sends RTP (silence) back
# until the caller's BYE.
[[persona]]
name = \"bench_answer\"
weight = 1
kind = \"answer\"
ring_secs = 0
";

fn start_simulator(plan: &Plan) -> anyhow::Result<Simulator> {
    // The simulator outlives our last BYE by a margin; we stop it with SIGTERM earlier.
    start_simulator_for(
        plan,
        plan.duration + plan.call_len + HARD_STOP_GRACE * 2,
        plan.rtp_sockets,
    )
}

fn start_simulator_for(
    plan: &Plan,
    lifetime: Duration,
    sockets: SocketMode,
) -> anyhow::Result<Simulator> {
    let personas = match &plan.personas {
        Some(p) => Personas::File(p.clone()),
        None => Personas::Text(BENCH_PERSONAS),
    };
    let mode = match sockets {
        SocketMode::Shared => "shared",
        SocketMode::PerCall => "per-call",
    };
    let threads = plan.media_threads.to_string();
    Simulator::start(
        &personas,
        plan.seed.rotate_left(7),
        lifetime,
        true,
        &["--rtp-sockets", mode, "--media-threads", &threads],
    )
}

#[derive(Debug)]
struct BenchCall {
    media: MediaHandle,
    placed: Instant,
    answered: bool,
    conversation: Option<Conversation>,
    key: u64,
}

/// Everything the report prints.
#[derive(Debug)]
struct Report {
    rate: f64,
    concurrency: u32,
    call_len: Duration,
    duration: Duration,
    analysis: bool,
    dial_window: Duration,
    wall: Duration,
    placed: u64,
    answered: u64,
    outcomes: Vec<(String, u64)>,
    media_timeouts: u64,
    peak_live: usize,
    mean_live: f64,
    live_call_minutes: f64,
    setup_ms: Histogram<u64>,
    lateness_us: Option<Histogram<u64>>,
    gap_error_us: Option<Histogram<u64>>,
    rtp_sent: u64,
    rtp_received: u64,
    rtp_lost: u64,
    recv_syscalls: u64,
    send_syscalls: u64,
    /// Shared sockets: packets that matched no call.
    unrouted: u64,
    rtp_sockets: SocketMode,
    media_threads: usize,
    ticks: u64,
    ours: Usage,
    sim: Option<Usage>,
    sim_summary: Option<serde_json::Value>,
    /// Share of the whole machine busy during the run (all CPUs, kernel softirq included).
    machine_busy: Option<f64>,
    /// Share of the machine's time the hypervisor gave to other guests while ours wanted it
    /// (CPU steal): stalls no code here can avoid.
    machine_steal: Option<f64>,
    cpus: usize,
    /// Scripted calls: results by category, and the recogniser's round trip per utterance.
    categories: Vec<(String, u64)>,
    asr_ms: Option<Histogram<u64>>,
    asr_failures: u64,
    /// `--floor`: the raw UDP floor for the same packets.
    floor: Option<floor::FloorReport>,
    /// `--sipp`: the same calls placed by SIPp.
    sipp: Option<SippRun>,
}

impl Report {
    fn achieved_rate(&self) -> f64 {
        self.placed as f64 / self.dial_window.as_secs_f64().max(1e-9)
    }

    fn failed(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(o, _)| o != "answered")
            .map(|(_, n)| n)
            .sum::<u64>()
            + self.media_timeouts
    }

    fn per_call_ms(u: &Usage, calls: u64) -> f64 {
        u.cpu_s() * 1000.0 / calls.max(1) as f64
    }

    fn per_live_minute_ms(&self, u: &Usage) -> f64 {
        u.cpu_s() * 1000.0 / self.live_call_minutes.max(1e-9)
    }

    fn rss_per_call_kib(&self, u: &Usage) -> f64 {
        u.peak_rss_kib.saturating_sub(u.baseline_rss_kib) as f64 / self.peak_live.max(1) as f64
    }

    /// What the simulator received of ours, and lost (its receivers' sequence gaps).
    fn sim_loss(&self) -> Option<(u64, u64)> {
        let s = self.sim_summary.as_ref()?;
        let inb = s.pointer("/rtp/packets_in")?.as_u64()?;
        let lost = s.pointer("/rtp/lost_in")?.as_u64()?;
        Some((inb, lost))
    }

    fn usage_json(&self, u: &Usage) -> serde_json::Value {
        serde_json::json!({
            "cpu_s": round3(u.cpu_s()),
            "user_s": round3(u.user_s()),
            "system_s": round3(u.system_s()),
            "cpu_core_share": round3(u.cpu_s() / self.wall.as_secs_f64().max(1e-9)),
            "cpu_ms_per_call": round3(Self::per_call_ms(u, self.answered)),
            "cpu_ms_per_live_call_minute": round3(self.per_live_minute_ms(u)),
            "rss_baseline_kib": u.baseline_rss_kib,
            "rss_peak_kib": u.peak_rss_kib,
            "rss_kib_per_live_call": round3(self.rss_per_call_kib(u)),
        })
    }

    fn to_json(&self) -> String {
        let hist = |h: &Histogram<u64>, scale: f64| {
            serde_json::json!({
                "p50": round3(h.value_at_quantile(0.50) as f64 / scale),
                "p99": round3(h.value_at_quantile(0.99) as f64 / scale),
                "max": round3(h.max() as f64 / scale),
                "count": h.len(),
            })
        };
        let mut out = serde_json::json!({
            "params": {
                "rate": self.rate,
                "concurrency": self.concurrency,
                "call_secs": self.call_len.as_secs_f64(),
                "duration_secs": self.duration.as_secs_f64(),
                "analysis": self.analysis,
            },
            "placed": self.placed,
            "answered": self.answered,
            "failed": self.failed(),
            "outcomes": self.outcomes.iter().map(|(o, n)| (o.clone(), serde_json::Value::from(*n)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "media_timeouts": self.media_timeouts,
            "setups_per_s": round3(self.achieved_rate()),
            "calls_per_hour": (self.achieved_rate() * 3600.0).round(),
            "live": { "peak": self.peak_live, "mean": round3(self.mean_live) },
            "setup_ms": hist(&self.setup_ms, 1.0),
            "send_lateness_ms": self.lateness_us.as_ref().map(|h| hist(h, 1000.0)),
            "send_gap_error_ms": self.gap_error_us.as_ref().map(|h| hist(h, 1000.0)),
            "rtp": {
                "sent": self.rtp_sent,
                "received": self.rtp_received,
                "lost_inbound": self.rtp_lost,
                "lost_outbound": self.sim_loss().map(|(_, l)| l),
                "packets_per_recv_syscall": round3(self.rtp_received as f64 / self.recv_syscalls.max(1) as f64),
                "packets_per_send_syscall": round3(self.rtp_sent as f64 / self.send_syscalls.max(1) as f64),
                "unrouted": self.unrouted,
                "sockets": self.rtp_sockets,
                "media_threads": self.media_threads,
            },
            "media_ticks": self.ticks,
            "dialer": self.usage_json(&self.ours),
            "simulator": self.sim.as_ref().map(|u| self.usage_json(u)),
            "simulator_summary": self.sim_summary,
            "categories": self.categories.iter().map(|(c, n)| (c.clone(), serde_json::Value::from(*n)))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
            "asr_round_trip_ms": self.asr_ms.as_ref().map(|h| serde_json::json!({
                "p50": h.value_at_quantile(0.5), "p95": h.value_at_quantile(0.95),
                "max": h.max(), "count": h.len(),
            })),
            "asr_failures": self.asr_failures,
            "wall_s": round3(self.wall.as_secs_f64()),
            "machine_busy": self.machine_busy.map(round3),
            "machine_steal": self.machine_steal.map(round3),
            "cpus": self.cpus,
        });
        // Present only when asked for: without the flags the report is as before.
        if let Some(obj) = out.as_object_mut() {
            if let Some(f) = &self.floor {
                obj.insert(
                    "floor".into(),
                    f.json(Some(self.per_live_minute_ms(&self.ours))),
                );
            }
            if let Some(sp) = &self.sipp {
                obj.insert("sipp".into(), self.sipp_json(sp));
            }
        }
        out.to_string()
    }

    fn to_table(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(
            s,
            "dialer bench: {:.0} s dialling at {} calls/s, ≤ {} calls at once, {:.0} s calls, analysis {}",
            self.duration.as_secs_f64(),
            self.rate,
            self.concurrency,
            self.call_len.as_secs_f64(),
            if self.analysis { "on" } else { "off" }
        );
        let _ = writeln!(
            s,
            "  calls           placed {}, answered {}, failed {} {:?}",
            self.placed,
            self.answered,
            self.failed(),
            self.outcomes
        );
        let _ = writeln!(
            s,
            "  setups          {:.1}/s achieved ({:.0} calls/hour); setup latency p50 {} ms, p99 {} ms, max {} ms",
            self.achieved_rate(),
            self.achieved_rate() * 3600.0,
            self.setup_ms.value_at_quantile(0.5),
            self.setup_ms.value_at_quantile(0.99),
            self.setup_ms.max()
        );
        let _ = writeln!(
            s,
            "  live calls      peak {}, mean {:.0} over {:.0} s",
            self.peak_live,
            self.mean_live,
            self.wall.as_secs_f64()
        );
        if let (Some(l), Some(g)) = (&self.lateness_us, &self.gap_error_us) {
            let _ = writeln!(
                s,
                "  prompt send     lateness after the tick p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; |gap − 20 ms| p50 {:.2} ms, p99 {:.2} ms ({} packets)",
                ms(l, 0.5),
                ms(l, 0.99),
                l.max() as f64 / 1000.0,
                ms(g, 0.5),
                ms(g, 0.99),
                l.len()
            );
        }
        let out_loss = self
            .sim_loss()
            .map(|(inb, l)| format!("; simulator received {inb} (lost {l})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  RTP             sent {}, received {}, lost {}{}; {:.2} packets per receive syscall, {:.2} per send syscall ({} sockets{})",
            self.rtp_sent,
            self.rtp_received,
            self.rtp_lost,
            out_loss,
            self.rtp_received as f64 / self.recv_syscalls.max(1) as f64,
            self.rtp_sent as f64 / self.send_syscalls.max(1) as f64,
            match self.rtp_sockets {
                SocketMode::Shared => "shared",
                SocketMode::PerCall => "per-call",
            },
            if self.unrouted > 0 {
                format!(", {} packets matched no call", self.unrouted)
            } else {
                String::new()
            },
        );
        let mut side = |name: &str, u: &Usage| {
            let _ = writeln!(
                s,
                "  {name:<15} CPU {:.2} s (user {:.2}, sys {:.2}) = {:.0}% of a core; {:.2} ms per call, {:.2} ms per live-call-minute; RSS {:.1} → {:.1} MiB, {:.1} KiB per live call",
                u.cpu_s(),
                u.user_s(),
                u.system_s(),
                100.0 * u.cpu_s() / self.wall.as_secs_f64().max(1e-9),
                Self::per_call_ms(u, self.answered),
                self.per_live_minute_ms(u),
                u.baseline_rss_kib as f64 / 1024.0,
                u.peak_rss_kib as f64 / 1024.0,
                self.rss_per_call_kib(u)
            );
        };
        side("dialer", &self.ours);
        if let Some(u) = &self.sim {
            side("simulator", u);
        }
        if let Some(b) = self.machine_busy {
            let _ = writeln!(
                s,
                "  machine         {:.0}% busy over the run ({} CPUs; kernel work on other threads included){}",
                b * 100.0,
                self.cpus,
                self.machine_steal
                    .map(|s| format!("; {:.1}% of its time stolen by the hypervisor", s * 100.0))
                    .unwrap_or_default()
            );
        }
        if !self.categories.is_empty() {
            let _ = writeln!(s, "  categories      {:?}", self.categories);
        }
        if let Some(h) = &self.asr_ms {
            let _ = writeln!(
                s,
                "  recognition     end of utterance (VAD endpoint) → transcript p50 {} ms, p95 {} ms, max {} ms over {} utterances; {} failures",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.95),
                h.max(),
                h.len(),
                self.asr_failures
            );
        }
        if let Some(sp) = &self.sipp {
            s.push_str(&self.sipp_table(sp));
        }
        if let Some(f) = &self.floor {
            s.push_str(&f.table(Some(self.per_live_minute_ms(&self.ours))));
        }
        s
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

async fn run(plan: &Plan) -> anyhow::Result<Report> {
    let sim = match &plan.target {
        Some(_) => None,
        None => Some(start_simulator(plan)?),
    };
    let trunk = match (&plan.target, &sim) {
        (Some(t), _) => t.clone(),
        (None, Some(s)) => TrunkConfig::from_uri(&format!("sip:{}", s.addr))
            .validate()
            .map_err(|e| anyhow::anyhow!("simulator trunk: {e}"))?,
        (None, None) => unreachable!("a target or a simulator"),
    };
    let result = drive(plan, &trunk, sim.as_ref().map(|s| s.pid.clone())).await;
    let sim_summary = sim.and_then(Simulator::stop);
    let mut report = result?;
    report.sim_summary = sim_summary;
    Ok(report)
}

async fn drive(plan: &Plan, trunk: &Trunk, sim_pid: Option<String>) -> anyhow::Result<Report> {
    let mut driver = SipDriver::bind(DriverConfig {
        transport: TransportConfig {
            bind: plan.bind,
            channel_capacity: 16_384,
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
        .local_addr_towards(&trunk.dest())
        .await
        .context("cannot find our address towards the target")?;
    let mut media_cfg = MediaConfig::new(local.ip()).with_sockets(plan.rtp_sockets);
    media_cfg.measure_send = true;
    media_cfg.threads = plan.media_threads;
    let mut engine = MediaEngine::new(media_cfg);

    let self_pid = std::process::id().to_string();
    let sample = |pid: &Option<String>| pid.as_deref().and_then(ProcSample::read);
    let mut ours = Usage::default();
    let mut theirs = sim_pid.as_ref().map(|_| Usage::default());
    let now0 = ProcSample::read(&self_pid).unwrap_or_default();
    ours.start = now0;
    ours.baseline_rss_kib = now0.rss_kib;
    ours.peak_rss_kib = now0.rss_kib;
    if let (Some(u), Some(s)) = (theirs.as_mut(), sample(&sim_pid)) {
        u.start = s;
        u.baseline_rss_kib = s.rss_kib;
        u.peak_rss_kib = s.rss_kib;
    }

    let machine0 = machine_jiffies();
    let times0 = machine_times();
    let started = Instant::now();
    let dial_until = started + plan.duration;
    let hard_stop = dial_until + plan.call_len + HARD_STOP_GRACE;
    let mut calls: HashMap<CallHandle, BenchCall> = HashMap::new();
    let mut by_media: HashMap<MediaHandle, CallHandle> = HashMap::new();
    let mut placed: u64 = 0;
    let mut answered: u64 = 0;
    let mut live_answered: usize = 0;
    let mut peak_live: usize = 0;
    let mut outcomes: HashMap<String, u64> = HashMap::new();
    let mut media_timeouts: u64 = 0;
    let mut setup_ms = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).expect("bounds");
    let (mut rtp_sent, mut rtp_received, mut rtp_lost) = (0u64, 0u64, 0u64);
    let mut live_integral = 0.0f64; // answered calls × seconds
    let mut last_tick = started;
    let mut dial_window_end: Option<Instant> = None;
    let mut hung_up_all = false;
    let progress = std::io::stderr().is_terminal();
    let timers = TimerConfig::default();

    // One media clock for all calls: absolute 20 ms deadlines on a timer thread (no drift,
    // no 1 ms timer-wheel rounding; see engine::clock).
    let mut clock = engine::clock::MediaClock::start(
        Instant::now(),
        Duration::from_millis(u64::from(media::FRAME_MS)),
    )
    .context("cannot start the media clock")?;
    let mut second = tokio::time::interval(Duration::from_secs(1));
    second.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut interrupted = false;
    // SIGTERM (as `timeout` sends) stops dialling like Ctrl-C: the live calls end, the
    // simulator is stopped, the report is printed.
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch SIGTERM")?;
    let number_base: u64 = 380_440_000_000;
    let (asr_tx, mut asr_rx) = tokio::sync::mpsc::unbounded_channel::<AsrDone>();
    let mut by_key: HashMap<u64, CallHandle> = HashMap::new();
    let mut categories: HashMap<String, u64> = HashMap::new();
    let mut asr_ms = Histogram::<u64>::new_with_bounds(1, 600_000, 3).expect("bounds");
    let mut asr_failures: u64 = 0;
    // Actions the scripts asked for, carried out after the event that caused them.
    let mut todo: Vec<(CallHandle, Actions)> = Vec::new();

    loop {
        tokio::select! {
            ev = driver.next_event() => {
                let now = Instant::now();
                let (h, ev) = match ev {
                    Some(DriverEvent::Call(h, ev)) => (h, ev),
                    Some(DriverEvent::Agent(..)) => continue,
                    None => anyhow::bail!("the SIP transport stopped"),
                };
                match ev {
                    CallEvent::Answered { media: neg, .. } => {
                        let Some(c) = calls.get_mut(&h) else { continue };
                        c.answered = true;
                        answered += 1;
                        live_answered += 1;
                        let _ = setup_ms.record((now - c.placed).as_millis().max(1) as u64);
                        if plan.script.is_none() {
                            driver.hangup_at(h, now + plan.call_len);
                        } else {
                            // The script ends the call; --call-secs is only a bound.
                            driver.hangup_at(h, now + plan.call_len.max(Duration::from_secs(600)));
                        }
                        if let Some(neg) = neg {
                            start_media(plan, &mut engine, c.media, now, &neg, placed);
                        }
                        if let Some(sp) = &plan.script {
                            let (conv, a) = Conversation::start(
                                Arc::clone(sp),
                                now,
                                asr_tx.clone(),
                                c.key,
                                format!("bench-{}", c.key),
                                engine.media_mut(c.media),
                            );
                            c.conversation = Some(conv);
                            todo.push((h, a));
                        }
                    }
                    CallEvent::ReferProgress { done: true, .. } => {
                        let _ = driver.hangup(h).await;
                    }
                    CallEvent::Ended(report) => {
                        let Some(mut c) = calls.remove(&h) else { continue };
                        by_media.remove(&c.media);
                        by_key.remove(&c.key);
                        if let Some(conv) = c.conversation.as_mut() {
                            if !conv.is_finished() {
                                conv.on_hangup(now);
                            }
                            let cat = conv
                                .result()
                                .and_then(|r| r.category.clone())
                                .unwrap_or_else(|| "-".into());
                            *categories.entry(cat).or_default() += 1;
                            for l in &conv.asr_latencies {
                                let _ = asr_ms.record(l.as_millis().max(1) as u64);
                            }
                            asr_failures += u64::from(conv.asr_failures);
                        }
                        if c.answered {
                            live_answered -= 1;
                        }
                        *outcomes.entry(report.outcome.as_str().to_owned()).or_default() += 1;
                        if let Some(st) = engine.release(c.media) {
                            rtp_sent += st.sent;
                            rtp_received += st.received;
                            rtp_lost += st.lost;
                        }
                    }
                    _ => {}
                }
            }
            tick = clock.tick() => {
                let now = Instant::now();
                engine.tick_scheduled(tick, now);
                while let Some((mh, ev)) = engine.poll_event() {
                    if let Some(&h) = by_media.get(&mh)
                        && let Some(c) = calls.get_mut(&h)
                        && let Some(conv) = c.conversation.as_mut()
                    {
                        let a = conv.on_media_event(now, &ev, engine.media_mut(mh));
                        todo.push((h, a));
                        continue;
                    }
                    match ev {
                        // The prompt plays in a loop for the whole call.
                        MediaEvent::PromptFinished => {
                            if let Some(m) = engine.media_mut(mh) {
                                m.play(Arc::clone(&plan.prompt));
                            }
                        }
                        MediaEvent::RtpTimeout => {
                            media_timeouts += 1;
                            if let Some(&h) = by_media.get(&mh) {
                                let _ = driver.hangup(h).await;
                            }
                        }
                        _ => {}
                    }
                }
                if plan.script.is_some() {
                    for (&h, c) in calls.iter_mut() {
                        if let Some(conv) = c.conversation.as_mut()
                            && conv.poll_timeout().is_some_and(|t| t <= now)
                        {
                            todo.push((h, conv.handle_timeout(now, engine.media_mut(c.media))));
                        }
                    }
                }
                for (h, a) in todo.drain(..) {
                    engine::dialogue::apply(&mut driver, h, a).await;
                }
                live_integral += live_answered as f64 * (now - last_tick).as_secs_f64();
                last_tick = now;
                // Place the calls due by now (the rate), while channels are free.
                if now < dial_until && !interrupted {
                    let due = ((now - started).as_secs_f64() * plan.rate) as u64 + 1;
                    while placed < due && calls.len() < plan.concurrency as usize {
                        let (mh, _) = engine.allocate().context("cannot bind an RTP port")?;
                        let req = CallRequest {
                            number: format!("+{}", number_base + placed),
                            from: None,
                            ring_timeout: Duration::from_secs(60),
                            media: engine.local_media(mh, plan.seed ^ placed),
                            session_expires: None,
                        };
                        let cfg = trunk.call_config(&req, local, timers);
                        let h = driver.place_call(cfg).await;
                        calls.insert(h, BenchCall {
                            media: mh,
                            placed: Instant::now(),
                            answered: false,
                            conversation: None,
                            key: placed,
                        });
                        by_media.insert(mh, h);
                        by_key.insert(placed, h);
                        placed += 1;
                    }
                } else if dial_window_end.is_none() {
                    dial_window_end = Some(now);
                }
                if dial_window_end.is_some() && calls.is_empty() {
                    break;
                }
                if now >= hard_stop && !hung_up_all {
                    hung_up_all = true;
                    tracing::warn!(live = calls.len(), "bench: hard stop, hanging up");
                    let hs: Vec<CallHandle> = calls.keys().copied().collect();
                    for h in hs {
                        let _ = driver.hangup(h).await;
                    }
                }
                if now >= hard_stop + Duration::from_secs(10) {
                    break;
                }
            }
            _ = second.tick() => {
                if live_answered >= peak_live {
                    peak_live = live_answered;
                    if let Some(s) = ProcSample::read(&self_pid) {
                        ours.peak_rss_kib = ours.peak_rss_kib.max(s.rss_kib);
                    }
                    if let (Some(u), Some(s)) = (theirs.as_mut(), sample(&sim_pid)) {
                        u.peak_rss_kib = u.peak_rss_kib.max(s.rss_kib);
                    }
                }
                if progress {
                    let el = started.elapsed().as_secs_f64();
                    eprint!(
                        "\r  {el:>5.0} s  placed {placed:>7}  answered {answered:>7}  live {live_answered:>5}  ({:>6.1} calls/s)   ",
                        placed as f64 / el.max(1e-9)
                    );
                    let _ = std::io::stderr().flush();
                }
            }
            Some(done) = asr_rx.recv() => {
                let now = Instant::now();
                if let Some(&h) = by_key.get(&done.key)
                    && let Some(c) = calls.get_mut(&h)
                    && let Some(conv) = c.conversation.as_mut()
                {
                    let a = conv.on_asr(now, done, engine.media_mut(c.media));
                    engine::dialogue::apply(&mut driver, h, a).await;
                }
            }
            _ = tokio::signal::ctrl_c(), if !interrupted => {
                interrupted = true;
                tracing::warn!("bench: interrupted, no new calls");
            }
            _ = sigterm.recv(), if !interrupted => {
                interrupted = true;
                tracing::warn!("bench: terminated, no new calls");
            }
        }
    }
    if progress {
        eprintln!();
    }
    let wall = started.elapsed();
    let machine_busy = match (machine0, machine_jiffies()) {
        (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => Some((b1 - b0) as f64 / (t1 - t0) as f64),
        _ => None,
    };
    let machine_steal = steal_share(times0, machine_times());
    ours.end = ProcSample::read(&self_pid).unwrap_or(ours.start);
    if let (Some(u), Some(s)) = (theirs.as_mut(), sample(&sim_pid)) {
        u.end = s;
    }
    driver.linger(Duration::from_millis(500)).await;
    let timing = engine.send_timing();
    let stats = engine.stats();
    engine.shutdown();
    let mut outcomes: Vec<(String, u64)> = outcomes.into_iter().collect();
    outcomes.sort();
    Ok(Report {
        rate: plan.rate,
        concurrency: plan.concurrency,
        call_len: plan.call_len,
        duration: plan.duration,
        analysis: plan.analysis,
        dial_window: dial_window_end.unwrap_or_else(Instant::now) - started,
        wall,
        placed,
        answered,
        outcomes,
        media_timeouts,
        peak_live,
        mean_live: live_integral / wall.as_secs_f64().max(1e-9),
        live_call_minutes: live_integral / 60.0,
        setup_ms,
        lateness_us: timing.as_ref().map(|t| t.lateness_us.clone()),
        gap_error_us: timing.map(|t| t.gap_error_us),
        rtp_sent,
        rtp_received,
        rtp_lost,
        recv_syscalls: stats.recv_syscalls,
        send_syscalls: stats.send_syscalls,
        unrouted: stats.unrouted,
        rtp_sockets: plan.rtp_sockets,
        media_threads: plan.media_threads,
        ticks: stats.ticks,
        ours,
        sim: theirs,
        sim_summary: None,
        machine_busy,
        machine_steal,
        cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        categories: {
            let mut v: Vec<(String, u64)> = categories.into_iter().collect();
            v.sort();
            v
        },
        asr_ms: (!asr_ms.is_empty()).then_some(asr_ms),
        asr_failures,
        floor: None,
        sipp: None,
    })
}

fn start_media(
    plan: &Plan,
    engine: &mut MediaEngine,
    h: MediaHandle,
    now: Instant,
    neg: &Negotiated,
    salt: u64,
) {
    let mut p = MediaParams::new(
        engine::media::codec_from_sdp(neg.codec),
        neg.telephone_event_pt,
        neg.remote_rtp,
        plan.seed.rotate_left(17) ^ salt,
    );
    p.direction = engine::media::direction_from_sdp(neg.direction);
    p.remote_ssrc = neg.remote_ssrc;
    if plan.analysis {
        p.amd = Some(AmdConfig::default());
    } else {
        p.vad = None;
        p.inband_dtmf = false;
    }
    if plan.script.is_some() {
        p.vad = Some(media::vad::VadConfig::endpointing());
    }
    // The bench hangs up itself; a silent far end is counted, not waited for.
    p.rtp_timeout = Duration::from_secs(10);
    engine.start(h, now, p, None);
    if plan.script.is_none()
        && let Some(m) = engine.media_mut(h)
    {
        m.play(Arc::clone(&plan.prompt));
    }
}

// ---------------------------------------------------------------------------------------------
// --sipp and --floor: the comparisons run after the bench, in the same invocation.

/// The comparisons asked for, after the run: SIPp first, then the floor for the run's peak
/// live calls. Both run even when the first fails; the first error is returned.
fn compare(plan: &Plan, report: &mut Report) -> anyhow::Result<()> {
    let mut result = Ok(());
    if plan.sipp {
        match run_sipp(plan, report.placed).context("--sipp") {
            Ok(s) => report.sipp = Some(s),
            Err(e) => result = Err(e),
        }
    }
    if let Some(secs) = plan.floor {
        let calls = if report.peak_live > 0 {
            report.peak_live
        } else {
            plan.concurrency as usize
        };
        match floor::run(calls, secs).context("--floor") {
            Ok(f) => report.floor = Some(f),
            Err(e) => result = result.and(Err(e)),
        }
    }
    result
}

/// SIPp as the UAC against a fresh simulator: what it did and cost.
#[derive(Debug)]
struct SippRun {
    calls: u64,
    rate: f64,
    concurrency: u32,
    call_len: Duration,
    /// From SIPp's statistics file (its last line).
    created: Option<u64>,
    successful: Option<u64>,
    failed: Option<u64>,
    exit_code: Option<i32>,
    /// SIPp's whole life (its last `/proc/<pid>/stat` before it was reaped).
    user_s: f64,
    system_s: f64,
    rss_peak_kib: u64,
    wall: Duration,
    /// The simulator over SIPp's run.
    sim: Usage,
    sim_summary: Option<serde_json::Value>,
    pcap_packets: usize,
    /// Share of the whole machine busy while SIPp ran (all CPUs, softirq included).
    machine_busy: Option<f64>,
}

impl SippRun {
    fn cpu_s(&self) -> f64 {
        self.user_s + self.system_s
    }
    /// Calls that completed (SIPp's count, else the simulator's answered calls).
    fn completed(&self) -> u64 {
        self.successful.unwrap_or(0)
    }
    fn cpu_ms_per_call(&self) -> f64 {
        self.cpu_s() * 1000.0 / self.completed().max(1) as f64
    }
    /// Per call SIPp started, completed or not (lower than per completed call when calls
    /// failed: a failed call costs less than a whole one).
    fn cpu_ms_per_created_call(&self) -> f64 {
        self.cpu_s() * 1000.0 / self.created.unwrap_or(self.calls).max(1) as f64
    }
    fn sim_cpu_ms_per_call(&self) -> f64 {
        self.sim.cpu_s() * 1000.0 / self.completed().max(1) as f64
    }
    fn sim_rtp_in(&self) -> Option<(u64, u64)> {
        let s = self.sim_summary.as_ref()?;
        Some((
            s.pointer("/rtp/packets_in")?.as_u64()?,
            s.pointer("/rtp/lost_in")?.as_u64()?,
        ))
    }
}

impl Report {
    /// Our CPU per answered call over SIPp's per completed call.
    fn ours_over_sipp(&self, sp: &SippRun) -> f64 {
        Self::per_call_ms(&self.ours, self.answered) / sp.cpu_ms_per_call().max(1e-9)
    }

    fn sipp_json(&self, sp: &SippRun) -> serde_json::Value {
        let sim_with_us = self
            .sim
            .as_ref()
            .map(|u| Self::per_call_ms(u, self.answered));
        serde_json::json!({
            "params": {
                "calls": sp.calls,
                "rate": sp.rate,
                "concurrency": sp.concurrency,
                "call_secs": sp.call_len.as_secs_f64(),
                "pcap_packets": sp.pcap_packets,
            },
            "calls_created": sp.created,
            "calls_successful": sp.successful,
            "calls_failed": sp.failed,
            "exit_code": sp.exit_code,
            "cpu_s": round3(sp.cpu_s()),
            "user_s": round3(sp.user_s),
            "system_s": round3(sp.system_s),
            "cpu_ms_per_call": round3(sp.cpu_ms_per_call()),
            "cpu_ms_per_created_call": round3(sp.cpu_ms_per_created_call()),
            "machine_busy": sp.machine_busy.map(round3),
            "rss_peak_kib": sp.rss_peak_kib,
            "wall_s": round3(sp.wall.as_secs_f64()),
            "simulator": {
                "cpu_s": round3(sp.sim.cpu_s()),
                "cpu_ms_per_call": round3(sp.sim_cpu_ms_per_call()),
                "rtp_packets_in": sp.sim_rtp_in().map(|(i, _)| i),
                "rtp_lost_in": sp.sim_rtp_in().map(|(_, l)| l),
                "calls_answered": sp.sim_summary.as_ref().and_then(|s| s.get("answered").cloned()),
            },
            "summary": sp.sim_summary,
            "ours_over_sipp_cpu_per_call": round3(self.ours_over_sipp(sp)),
            "simulator_cpu_per_call_with_us_over_with_sipp":
                sim_with_us.map(|w| round3(w / sp.sim_cpu_ms_per_call().max(1e-9))),
        })
    }

    fn sipp_table(&self, sp: &SippRun) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let n = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |v| v.to_string());
        let rtp = sp
            .sim_rtp_in()
            .map(|(i, l)| format!("; simulator received {i} RTP (lost {l})"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  SIPp (UAC)      {} calls at {} calls/s, ≤ {} at once, {:.0} s each: created {}, successful {}, failed {} (exit {}){rtp}",
            sp.calls,
            sp.rate,
            sp.concurrency,
            sp.call_len.as_secs_f64(),
            n(sp.created),
            n(sp.successful),
            n(sp.failed),
            sp.exit_code
                .map_or_else(|| "?".to_owned(), |c| c.to_string()),
        );
        let _ = writeln!(
            s,
            "  SIPp CPU        {:.2} s (user {:.2}, sys {:.2}) over {:.0} s, machine {} busy; {:.2} ms per completed call ({:.2} per call started); RSS peak {:.1} MiB; simulator {:.2} ms per call",
            sp.cpu_s(),
            sp.user_s,
            sp.system_s,
            sp.wall.as_secs_f64(),
            sp.machine_busy
                .map_or_else(|| "?".to_owned(), |b| format!("{:.0}%", b * 100.0)),
            sp.cpu_ms_per_call(),
            sp.cpu_ms_per_created_call(),
            sp.rss_peak_kib as f64 / 1024.0,
            sp.sim_cpu_ms_per_call(),
        );
        let _ = writeln!(
            s,
            "  dialer / SIPp   {:.2} ms / {:.2} ms CPU per call = {:.2}×",
            Self::per_call_ms(&self.ours, self.answered),
            sp.cpu_ms_per_call(),
            self.ours_over_sipp(sp)
        );
        s
    }
}

/// The scenario, embedded so the binary runs from anywhere.
const SIPP_SCENARIO: &str = include_str!("../../../scripts/sipp/uac_pcap.xml");
/// The pcap the scenario plays (written next to it).
const SIPP_PCAP: &str = "bench_rtp.pcap";
/// SIPp's media address: not the callee's RTP destination (see the scenario's comment).
const SIPP_MEDIA_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// A classic pcap (Ethernet, IPv4, UDP) of `len` of G.711 µ-law RTP: one 172-byte packet every
/// 20 ms, payload type 0, the bench's synthetic voice in a loop. SIPp replays the UDP payload
/// as it is and takes the timing from the capture's timestamps. Returns the packet count.
fn write_rtp_pcap(path: &std::path::Path, len: Duration) -> anyhow::Result<usize> {
    let voice = synthetic_voice();
    let frame = (media::SAMPLE_RATE as usize) * media::FRAME_MS as usize / 1000;
    let packets = (len.as_millis() / u128::from(media::FRAME_MS)).max(1) as usize;
    let rtp_len = 12 + frame;
    let udp_len = 8 + rtp_len;
    let ip_len = 20 + udp_len;
    let mut out = Vec::with_capacity(24 + packets * (16 + 14 + ip_len));
    // Global header: magic, v2.4, GMT, accuracy, snaplen, LINKTYPE_ETHERNET.
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&65_535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let mut payload = vec![0u8; frame];
    for i in 0..packets {
        let at_us = i as u64 * u64::from(media::FRAME_MS) * 1000;
        out.extend_from_slice(&((at_us / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((at_us % 1_000_000) as u32).to_le_bytes());
        let caplen = (14 + ip_len) as u32;
        out.extend_from_slice(&caplen.to_le_bytes());
        out.extend_from_slice(&caplen.to_le_bytes());
        // Ethernet: destination, source, IPv4.
        out.extend_from_slice(&[0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00]);
        // IPv4 header, 10.0.0.1 → 10.0.0.2 (SIPp sends from -mi to the callee instead).
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&[10, 0, 0, 1]);
        ip[16..20].copy_from_slice(&[10, 0, 0, 2]);
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        out.extend_from_slice(&ip);
        // UDP 40000 → 40002, checksum 0 (SIPp computes its own).
        out.extend_from_slice(&40_000u16.to_be_bytes());
        out.extend_from_slice(&40_002u16.to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        // RTP: V=2, PCMU, marker on the first packet.
        out.push(0x80);
        out.push(if i == 0 { 0x80 } else { 0 });
        out.extend_from_slice(&(i as u16).to_be_bytes());
        out.extend_from_slice(&((i * frame) as u32).to_be_bytes());
        out.extend_from_slice(&0x5a1b_0001u32.to_be_bytes());
        let start = (i * frame) % voice.len().max(1);
        let pcm: Vec<i16> = (0..frame)
            .map(|k| {
                voice
                    .get((start + k) % voice.len().max(1))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        media::g711::encode(media::Codec::Pcmu, &pcm, &mut payload);
        out.extend_from_slice(&payload);
    }
    std::fs::write(path, &out).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(packets)
}

/// A UDP port free on `ip` whose +2 is free as well (SIPp binds -mp and -mp + 2).
fn free_media_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    for _ in 0..50 {
        let a = std::net::UdpSocket::bind((ip, 0))?;
        let port = a.local_addr()?.port();
        if port < 65_000 && std::net::UdpSocket::bind((ip, port + 2)).is_ok() {
            return Ok(port);
        }
    }
    anyhow::bail!("no free UDP port pair on {ip}")
}

/// `sipp` on PATH.
fn sipp_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("sipp"))
        .find(|p| p.is_file())
        .context("`sipp` is not installed (not on PATH): apt-get install sip-tester")
}

/// The named columns of the last line of SIPp's statistics file (`;`-separated, a header
/// line first).
fn sipp_stats(path: &std::path::Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return HashMap::new();
    };
    let Some(last) = lines.next_back() else {
        return HashMap::new();
    };
    header
        .split(';')
        .zip(last.split(';'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Run SIPp as the UAC for `calls` calls with the plan's rate, concurrency and call length
/// against a fresh simulator; bounded by the calls' own length plus a minute.
fn run_sipp(plan: &Plan, calls: u64) -> anyhow::Result<SippRun> {
    let sipp = sipp_binary()?;
    let calls = calls.max(1);
    let dir = TempDir::new("bench-sipp")?;
    let scenario = dir.0.join("uac_pcap.xml");
    std::fs::write(&scenario, SIPP_SCENARIO)
        .with_context(|| format!("cannot write {}", scenario.display()))?;
    let pcap_packets = write_rtp_pcap(&dir.0.join(SIPP_PCAP), plan.call_len)?;
    // Where the simulator sends its RTP: a socket of ours, never read (as SIPp's own is not).
    let sink =
        std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).context("cannot bind the RTP sink")?;
    let sink_port = sink.local_addr()?.port();
    // Dialling at the rate (slower when the concurrency holds calls back), then the last calls'
    // length, then a margin.
    let dialling = Duration::from_secs_f64(calls as f64 / plan.rate).max(Duration::from_secs_f64(
        calls as f64 * plan.call_len.as_secs_f64() / f64::from(plan.concurrency.max(1)),
    ));
    let bound = dialling + plan.call_len + Duration::from_secs(60);
    // SIPp's RTP leaves from its -mi address, not the one its SDP names (see the scenario):
    // only a port per call lets the callee take it, so SIPp's callee has per-call sockets.
    let sim = start_simulator_for(plan, bound + HARD_STOP_GRACE, SocketMode::PerCall)?;
    let sim_pid = sim.pid.clone();
    let mut sim_usage = Usage::default();
    if let Some(s) = ProcSample::read(&sim_pid) {
        sim_usage.start = s;
        sim_usage.baseline_rss_kib = s.rss_kib;
    }
    // A port taken between our probe and SIPp's bind makes it exit at once: new ports, again.
    let mut attempt = 0;
    let (status, last, rss_peak_kib, wall, stats, stderr_path, overran, machine_busy) = loop {
        let media_port = free_media_port(SIPP_MEDIA_IP)?;
        let sip_port = crate::children::free_loopback_port()?;
        let stats = dir.0.join(format!("stats-{attempt}.csv"));
        let stderr_path = dir.0.join(format!("sipp-{attempt}.stderr"));
        let stderr_file = std::fs::File::create(&stderr_path)
            .with_context(|| format!("cannot create {}", stderr_path.display()))?;
        let started = Instant::now();
        let machine0 = machine_jiffies();
        let mut child = std::process::Command::new(&sipp)
            .arg(sim.addr.to_string())
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &sip_port.to_string(), "-t", "u1"])
            .args(["-mi", &SIPP_MEDIA_IP.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-key", "rtp_sink_ip", "127.0.0.1"])
            .args(["-key", "rtp_sink_port", &sink_port.to_string()])
            .args(["-r", &plan.rate.to_string(), "-rp", "1000"])
            .args(["-l", &plan.concurrency.to_string()])
            .args(["-m", &calls.to_string()])
            .args(["-d", &plan.call_len.as_millis().to_string()])
            .args(["-s", "380449990000"])
            .arg("-trace_stat")
            .arg("-stf")
            .arg(&stats)
            .args(["-fd", "1", "-nostdin"])
            .args(["-timeout", &format!("{}s", bound.as_secs())])
            .arg("-timeout_error")
            .current_dir(&dir.0)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr_file)
            .spawn()
            .with_context(|| format!("cannot start {}", sipp.display()))?;
        let pid = child.id().to_string();
        // Sample SIPp until it is a zombie (its final CPU times, before we reap it), bounded.
        let deadline = started + bound + Duration::from_secs(10);
        let mut last = ProcCpu::default();
        let mut rss_peak_kib = 0;
        let mut overran = false;
        while let Some(c) = ProcCpu::read(&pid) {
            last = c;
            if c.zombie {
                break;
            }
            if let Some(s) = ProcSample::read(&pid) {
                rss_peak_kib = rss_peak_kib.max(s.rss_kib);
            }
            if let Some(s) = ProcSample::read(&sim_pid) {
                sim_usage.peak_rss_kib = sim_usage.peak_rss_kib.max(s.rss_kib);
            }
            if Instant::now() > deadline {
                overran = true;
                let _ = child.kill();
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let wall = started.elapsed();
        let status = child.wait().context("waiting for SIPp")?;
        let machine_busy = match (machine0, machine_jiffies()) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some((b1 - b0) as f64 / (t1 - t0) as f64)
            }
            _ => None,
        };
        let early =
            !status.success() && wall < Duration::from_secs(3) && sipp_stats(&stats).is_empty();
        if early && attempt < 2 {
            attempt += 1;
            continue;
        }
        break (
            status,
            last,
            rss_peak_kib,
            wall,
            stats,
            stderr_path,
            overran,
            machine_busy,
        );
    };
    sim_usage.end = ProcSample::read(&sim_pid).unwrap_or(sim_usage.start);
    let sim_summary = sim.stop();
    drop(sink);
    if overran {
        anyhow::bail!(
            "SIPp did not finish within {:?}: killed; its stderr: {}",
            bound,
            tail(&std::fs::read_to_string(&stderr_path).unwrap_or_default())
        );
    }
    let st = sipp_stats(&stats);
    let num = |k: &str| st.get(k).and_then(|v| v.parse::<u64>().ok());
    let run = SippRun {
        calls,
        rate: plan.rate,
        concurrency: plan.concurrency,
        call_len: plan.call_len,
        created: num("TotalCallCreated"),
        successful: num("SuccessfulCall(C)"),
        failed: num("FailedCall(C)"),
        exit_code: status.code(),
        user_s: last.user_s,
        system_s: last.system_s,
        rss_peak_kib,
        wall,
        sim: sim_usage,
        sim_summary,
        pcap_packets,
        machine_busy,
    };
    if run.successful.is_none() {
        anyhow::bail!(
            "SIPp ({status}) left no statistics in {}; its stderr: {}",
            stats.display(),
            tail(&std::fs::read_to_string(&stderr_path).unwrap_or_default())
        );
    }
    Ok(run)
}

fn tail(s: &str) -> &str {
    let mut start = s.len().saturating_sub(2000);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// CPU times and state of a process from `/proc/<pid>/stat` (readable while it is a zombie,
/// when `/proc/<pid>/status` no longer has its memory).
#[derive(Debug, Clone, Copy, Default)]
struct ProcCpu {
    user_s: f64,
    system_s: f64,
    zombie: bool,
}

impl ProcCpu {
    fn read(pid: &str) -> Option<ProcCpu> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.get(stat.rfind(')')? + 2..)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let tck = clock_ticks();
        Some(ProcCpu {
            zombie: f.first().is_some_and(|s| *s == "Z" || *s == "X"),
            user_s: f.get(11)?.parse::<f64>().ok()? / tck,
            system_s: f.get(12)?.parse::<f64>().ok()? / tck,
        })
    }
}

#[cfg(test)]
mod compare_tests {
    use super::*;

    #[test]
    fn pcap_is_well_formed_and_as_long_as_the_call() {
        let dir = TempDir::new("pcap-test").unwrap();
        let p = dir.0.join("x.pcap");
        let n = write_rtp_pcap(&p, Duration::from_secs(2)).unwrap();
        assert_eq!(n, 100);
        let b = std::fs::read(&p).unwrap();
        assert_eq!(b.len(), 24 + 100 * (16 + 14 + 20 + 8 + 172));
        assert_eq!(&b[0..4], &0xa1b2_c3d4u32.to_le_bytes());
        // Last packet at 1.98 s.
        let last = 24 + 99 * (16 + 14 + 20 + 8 + 172);
        let sec = u32::from_le_bytes(b[last..last + 4].try_into().unwrap());
        let usec = u32::from_le_bytes(b[last + 4..last + 8].try_into().unwrap());
        assert_eq!((sec, usec), (1, 980_000));
        // IPv4 header checksum verifies (sums to 0xffff).
        let ip = &b[24 + 16 + 14..24 + 16 + 14 + 20];
        let sum: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        let sum = (sum & 0xffff) + (sum >> 16);
        assert_eq!((sum & 0xffff) + (sum >> 16), 0xffff);
        // RTP: V=2, PCMU, 172 bytes.
        let rtp = &b[24 + 16 + 14 + 20 + 8..24 + 16 + 14 + 20 + 8 + 172];
        assert_eq!(rtp[0], 0x80);
        assert_eq!(rtp[1] & 0x7f, 0);
    }

    #[test]
    fn sipp_stats_take_the_last_line_by_name() {
        let dir = TempDir::new("stats-test").unwrap();
        let p = dir.0.join("s.csv");
        std::fs::write(&p, "A;SuccessfulCall(C);FailedCall(C);\n1;2;0;\n5;20;1;\n").unwrap();
        let s = sipp_stats(&p);
        assert_eq!(s.get("SuccessfulCall(C)").map(String::as_str), Some("20"));
        assert_eq!(s.get("FailedCall(C)").map(String::as_str), Some("1"));
    }
}
