//! The `dialer call` and `dialer probe` binary against real peers on loopback.
//!
//! SIPp (Debian `sip-tester`) plays the PBX (the UAS) with the scenarios in
//! `scripts/sipp/`; Kamailio (`scripts/kamailio/kamailio.cfg`) plays a proxy
//! trunk that challenges with 407 and record-routes. Each test runs one call
//! over UDP or TCP and checks both sides: the dialer's JSON line and SIPp's
//! exit status (0 = every call of the scenario succeeded). The probe tests
//! run `dialer probe` against `uas_registrar.xml` (two SIPp calls: the
//! OPTIONS ping and the registration) or against a UDP socket that never
//! answers. The media test (`dtmf_pcap`) has SIPp play Debian's RTP pcaps
//! (speech, RFC 2833 digits) to `dialer call --prompt` while tshark captures
//! the dialer's RTP, whose cadence and headers it checks.
//!
//! - The dialer binary: `$DIALER_BIN`, else `target/<profile>/dialer` next to
//!   this test's own executable (`cargo build -p dialer` first).
//! - `sipp`, `kamailio` and `tshark` must be installed (scripts/test.sh
//!   installs them); a missing one fails the test, it is never skipped. The
//!   media test needs root (SIPp's pcap play and tshark's capture use raw
//!   sockets).
//! - Tests may run in parallel, in threads or processes: every port comes
//!   from the kernel (bind to port 0, UDP and TCP), is never handed out twice
//!   by one process, and every child is killed when its guard drops. Each
//!   test is bounded to about 30 s, except those in `mod slow` that wait out
//!   a protocol timer (`slow::udp_probe_silent_trunk`: ~33 s, bounded at
//!   50 s; `-E 'not test(/^slow::/)'` skips them).
//! - On a failure the message carries SIPp's stderr, error log and message
//!   trace, Kamailio's log and the dialer's stderr (`-v`), and for the media
//!   test the paths of the capture and of tshark's decoding of it; the run
//!   directory under the system temp dir is kept.

mod common;
use common::dialer_bin;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use serde_json::Value;

/// SIPp's own global bound (-timeout): it gives up, and fails, after this.
const SIPP_TIMEOUT_S: u64 = 15;
/// How long the dialer may run for one call.
const DIALER_BOUND: Duration = Duration::from_secs(15);
/// How long SIPp may take to finish once the dialer has exited.
const SIPP_EXIT_BOUND: Duration = Duration::from_secs(6);
/// How long a server may take to bind its ports.
const READY_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Locations

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn scenario(name: &str) -> PathBuf {
    let path = repo_root().join("scripts/sipp").join(name);
    assert!(
        path.is_file(),
        "SIPp scenario {} is missing",
        path.display()
    );
    path
}

fn kamailio_cfg() -> PathBuf {
    let path = repo_root().join("scripts/kamailio/kamailio.cfg");
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// A program on PATH (and, for Kamailio run by a non-root user whose PATH
/// lacks them, /usr/sbin and /sbin). A missing peer fails the test.
fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/sbin".into());
    dirs.push("/sbin".into());
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "`{name}` is not installed (not on PATH): these tests need real peers; \
         scripts/test.sh installs them (apt-get install sip-tester kamailio tshark)"
    );
}

// ---------------------------------------------------------------------------
// Ports

/// Ports this process has handed out; never reused in one process.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port on the loopback address of `family` free for both UDP and TCP right
/// now, picked by the kernel.
fn free_port(family: Family) -> u16 {
    let ip = family.loopback();
    for _ in 0..200 {
        let udp = UdpSocket::bind((ip, 0)).unwrap_or_else(|e| panic!("bind UDP [{ip}]:0: {e}"));
        let port = udp.local_addr().expect("local_addr").port();
        let Ok(tcp) = TcpListener::bind((ip, port)) else {
            continue;
        };
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            drop((udp, tcp));
            return port;
        }
    }
    panic!("no free loopback port (UDP+TCP) found on {ip}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// Which loopback address a run uses: 127.0.0.1 or ::1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn loopback(self) -> IpAddr {
        match self {
            Family::V4 => Ipv4Addr::LOCALHOST.into(),
            Family::V6 => Ipv6Addr::LOCALHOST.into(),
        }
    }

    /// The loopback address as the host of a SIP URI or socket address.
    fn uri_host(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.1",
            Family::V6 => "[::1]",
        }
    }
}

/// The transport and address family of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    transport: Transport,
    family: Family,
}

impl Net {
    const UDP: Net = Net::new(Transport::Udp, Family::V4);
    const TCP: Net = Net::new(Transport::Tcp, Family::V4);
    const UDP6: Net = Net::new(Transport::Udp, Family::V6);
    const TCP6: Net = Net::new(Transport::Tcp, Family::V6);

    const fn new(transport: Transport, family: Family) -> Net {
        Net { transport, family }
    }

    fn sipp_mode(self) -> &'static str {
        match self.transport {
            Transport::Udp => "u1",
            Transport::Tcp => "t1",
        }
    }

    fn trunk(self, port: u16) -> String {
        let host = self.family.uri_host();
        match self.transport {
            Transport::Udp => format!("sip:{host}:{port}"),
            Transport::Tcp => format!("sip:{host}:{port};transport=tcp"),
        }
    }

    /// The dialer's `--bind` for this family: none over IPv4 (its default,
    /// 127.0.0.1:0, stays covered), `[::1]:0` over IPv6.
    fn bind_args(self) -> &'static [&'static str] {
        match self.family {
            Family::V4 => &[],
            Family::V6 => &["--bind", "[::1]:0"],
        }
    }
}

/// Whether ::1 can be bound. Only a machine without it (AddrNotAvailable)
/// says no, with a message; any other failure fails the test.
fn ipv6_loopback_available(test: &str) -> bool {
    match UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)) {
        Ok(_) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AddrNotAvailable => {
            eprintln!(
                "[sipp.rs] {test}: NOT RUN: this machine has no IPv6 loopback \
                 (binding UDP [::1]:0: {e}); the IPv6 tests need ::1"
            );
            false
        }
        Err(e) => panic!("{test}: cannot bind UDP [::1]:0 to check for IPv6 loopback: {e}"),
    }
}

/// Whether something has `port` bound on the loopback address of `net`: UDP,
/// or TCP in LISTEN. Read from /proc/net so that checking never takes the
/// port from the server.
fn is_bound(port: u16, net: Net) -> bool {
    let (file, listen_only) = match net {
        Net {
            transport: Transport::Udp,
            family: Family::V4,
        } => ("/proc/net/udp", false),
        Net {
            transport: Transport::Tcp,
            family: Family::V4,
        } => ("/proc/net/tcp", true),
        Net {
            transport: Transport::Udp,
            family: Family::V6,
        } => ("/proc/net/udp6", false),
        Net {
            transport: Transport::Tcp,
            family: Family::V6,
        } => ("/proc/net/tcp6", true),
    };
    let Ok(table) = fs::read_to_string(file) else {
        return false;
    };
    // The address as /proc/net shows it: 32-bit words in host (little-endian) order.
    let addr = match net.family {
        Family::V4 => "0100007F",
        Family::V6 => "00000000000000000000000001000000",
    };
    let local = format!("{addr}:{port:04X}");
    table.lines().skip(1).any(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        cols.len() > 3 && cols[1] == local && (!listen_only || cols[3] == "0A")
    })
}

// ---------------------------------------------------------------------------
// Processes

/// A child in its own process group, ended (TERM, then KILL, to the group)
/// when dropped if it is still running.
#[derive(Debug)]
struct Guard {
    name: &'static str,
    child: Child,
    status: Option<ExitStatus>,
}

impl Guard {
    fn spawn(name: &'static str, mut cmd: Command) -> Guard {
        cmd.process_group(0);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({cmd:?}): {e}"));
        Guard {
            name,
            child,
            status: None,
        }
    }

    fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `bound` for the exit; None if it is still running.
    fn wait_for(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends `signal` to the child alone (not its group).
    fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn signal_group(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// TERM to the group, up to 3 s of grace, then KILL.
    fn stop(&mut self) {
        if self.try_status().is_some() {
            return;
        }
        self.signal_group("-TERM");
        if self.wait_for(Duration::from_secs(3)).is_none() {
            self.signal_group("-KILL");
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            eprintln!("[sipp.rs] stopping {} (pid {})", self.name, self.child.id());
        }
        self.stop();
    }
}

/// A fresh directory under the system temp dir, removed when dropped unless
/// the test is failing (then its path is in the failure message).
#[derive(Debug)]
struct RunDir(PathBuf);

impl RunDir {
    fn new(test: &str) -> RunDir {
        static SEQ: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "dialer-it-{test}-{}-{}-{nanos}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir).expect("create run dir");
        RunDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `max` bytes of a text, on a char boundary.
fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

// ---------------------------------------------------------------------------
// SIPp

/// How to start a SIPp UAS (`Sipp::start_with`).
#[derive(Debug, Clone, Copy)]
struct SippOpts {
    /// Calls before SIPp ends (`-m`): each new Call-ID it receives starts the
    /// scenario again.
    calls: u32,
    /// SIPp's global bound (`-timeout`, seconds).
    timeout_s: u64,
    /// Give SIPp an RTP port of its own (`-mp`, a free one): the scenario
    /// answers with it and plays pcaps from it.
    media: bool,
}

impl SippOpts {
    const DEFAULT: SippOpts = SippOpts {
        calls: 1,
        timeout_s: SIPP_TIMEOUT_S,
        media: false,
    };
}

/// One SIPp UAS running a scenario for one call (or `calls` calls: each new
/// Call-ID it receives starts the scenario again).
#[derive(Debug)]
struct Sipp {
    guard: RefCell<Guard>,
    /// Set when SIPp had to be stopped: it did not finish by itself.
    overran: Cell<bool>,
    net: Net,
    port: u16,
    /// SIPp's RTP port (`-mp`, the `[media_port]` of its SDP) when it was
    /// started with one (`SippOpts::media`).
    media_port: Option<u16>,
    scenario: String,
    args: Vec<OsString>,
    screen: PathBuf,
    stderr: PathBuf,
    errors: PathBuf,
    messages: PathBuf,
    log: PathBuf,
}

impl Sipp {
    /// Starts `scenario` as a UAS for one call on a free port of the loopback
    /// address of `net` and waits until it listens.
    fn start(dir: &RunDir, scenario_name: &str, net: Net) -> Sipp {
        Sipp::start_calls(dir, scenario_name, net, 1)
    }

    /// Starts `scenario` as a UAS that ends after `calls` calls (`-m`), on a
    /// free port of the loopback address of `net`, and waits until it
    /// listens.
    fn start_calls(dir: &RunDir, scenario_name: &str, net: Net, calls: u32) -> Sipp {
        let opts = SippOpts {
            calls,
            ..SippOpts::DEFAULT
        };
        Sipp::start_with(dir, scenario_name, net, opts)
    }

    /// Starts `scenario` as a UAS with `opts` on a free port of the loopback
    /// address of `net`, and waits until it listens (and, with
    /// `opts.media`, has bound its RTP port). A port lost to a race is retried
    /// with another one.
    fn start_with(dir: &RunDir, scenario_name: &str, net: Net, opts: SippOpts) -> Sipp {
        let sipp = tool("sipp");
        let path = scenario(scenario_name);
        let media_net = Net::new(Transport::Udp, net.family);
        let mut last_failure = String::new();
        for attempt in 0..3 {
            let port = free_port(net.family);
            // SIPp binds -mp and -mp + 2 (its video port); a busy one makes it exit.
            let media_port = opts.media.then(|| free_port(net.family));
            let tag = format!("sipp{attempt}");
            let screen = dir.path(&format!("{tag}.screen"));
            let stderr = dir.path(&format!("{tag}.stderr"));
            let errors = dir.path(&format!("{tag}_errors.log"));
            let messages = dir.path(&format!("{tag}_messages.log"));
            let log = dir.path(&format!("{tag}_logs.log"));
            let mut args: Vec<OsString> = vec![
                "-sf".into(),
                path.clone().into(),
                "-i".into(),
                net.family.loopback().to_string().into(),
                "-p".into(),
                port.to_string().into(),
                "-bind_local".into(),
                // The control socket stays on 127.0.0.1: with `-ci ::1` SIPp cannot
                // bind it ("Address family not supported by protocol").
                "-ci".into(),
                "127.0.0.1".into(),
                "-m".into(),
                opts.calls.to_string().into(),
                "-t".into(),
                net.sipp_mode().into(),
                "-timeout".into(),
                format!("{}s", opts.timeout_s).into(),
                "-timeout_error".into(),
                "-nostdin".into(),
                "-trace_err".into(),
                "-error_file".into(),
                errors.clone().into(),
                "-trace_msg".into(),
                "-message_file".into(),
                messages.clone().into(),
                "-trace_logs".into(),
                "-log_file".into(),
                log.clone().into(),
            ];
            if let Some(media_port) = media_port {
                args.extend(["-mp".into(), media_port.to_string().into()]);
            }
            let mut cmd = Command::new(&sipp);
            cmd.args(&args)
                .current_dir(&dir.0)
                .stdin(Stdio::null())
                .stdout(fs::File::create(&screen).expect("create screen file"))
                .stderr(fs::File::create(&stderr).expect("create stderr file"));
            let mut guard = Guard::spawn("sipp", cmd);
            let deadline = Instant::now() + READY_BOUND;
            loop {
                if is_bound(port, net) && media_port.is_none_or(|mp| is_bound(mp, media_net)) {
                    return Sipp {
                        guard: RefCell::new(guard),
                        overran: Cell::new(false),
                        net,
                        port,
                        media_port,
                        scenario: scenario_name.to_string(),
                        args,
                        screen,
                        stderr,
                        errors,
                        messages,
                        log,
                    };
                }
                if let Some(status) = guard.try_status() {
                    last_failure = format!(
                        "SIPp exited before listening on {port} ({status}):\n{}",
                        read_lossy(&stderr)
                    );
                    break;
                }
                if Instant::now() >= deadline {
                    last_failure = format!("SIPp did not listen on {port} within {READY_BOUND:?}");
                    break;
                }
                thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("cannot start SIPp with {scenario_name}: {last_failure}");
    }

    /// Waits (bounded) for SIPp to end on its own once the dialer is done,
    /// so that its logs are complete; stops it if it overruns.
    fn finish(&self) {
        let mut guard = self.guard.borrow_mut();
        if guard.wait_for(SIPP_EXIT_BOUND).is_none() {
            self.overran.set(true);
            guard.stop();
        }
    }

    fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "--- SIPp {} on {}:{} ({:?}, RTP port {:?}) (exit: {:?})\nargs: {:?}",
            self.scenario,
            self.net.family.uri_host(),
            self.port,
            self.net.transport,
            self.media_port,
            self.guard.borrow().status,
            self.args
        );
        for (what, path, max) in [
            ("stderr", &self.stderr, 8_000),
            ("error log", &self.errors, 8_000),
            ("log", &self.log, 4_000),
            ("message trace", &self.messages, 16_000),
            ("last screen", &self.screen, 3_000),
        ] {
            let text = read_lossy(path);
            if !text.trim().is_empty() {
                let _ = writeln!(
                    out,
                    "--- SIPp {what} ({}):\n{}",
                    path.display(),
                    tail(&text, max)
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Kamailio

#[derive(Debug)]
struct Kamailio {
    guard: Guard,
    port: u16,
    stderr: PathBuf,
}

impl Kamailio {
    /// Starts the proxy on a free port (UDP and TCP), forwarding initial
    /// INVITEs to 127.0.0.1:`backend_port`, and waits until it listens.
    fn start(dir: &RunDir, backend_port: u16) -> Kamailio {
        let kamailio = tool("kamailio");
        let cfg = kamailio_cfg();
        let mut last_failure = String::new();
        for attempt in 0..3 {
            let port = free_port(Family::V4);
            let run = dir.path(&format!("kamailio{attempt}"));
            fs::create_dir_all(&run).expect("create kamailio run dir");
            let stderr = dir.path(&format!("kamailio{attempt}.stderr"));
            let mut cmd = Command::new(&kamailio);
            cmd.arg("-f")
                .arg(&cfg)
                .args(["-DD", "-E", "-m", "32", "-M", "8"])
                .arg("-w")
                .arg(&run)
                .arg("-Y")
                .arg(&run)
                .arg("-P")
                .arg(run.join("kamailio.pid"))
                .arg("-A")
                .arg(format!("SIP_PORT={port}"))
                .arg("-A")
                .arg(format!("BACKEND=\"sip:127.0.0.1:{backend_port}\""))
                .current_dir(&run)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(&stderr).expect("create kamailio stderr"));
            let mut guard = Guard::spawn("kamailio", cmd);
            let deadline = Instant::now() + READY_BOUND;
            loop {
                if is_bound(port, Net::UDP) && is_bound(port, Net::TCP) {
                    return Kamailio {
                        guard,
                        port,
                        stderr,
                    };
                }
                if let Some(status) = guard.try_status() {
                    last_failure = format!(
                        "kamailio exited before listening on {port} ({status}):\n{}",
                        tail(&read_lossy(&stderr), 8_000)
                    );
                    break;
                }
                if Instant::now() >= deadline {
                    last_failure = format!(
                        "kamailio did not listen on {port} within {READY_BOUND:?}:\n{}",
                        tail(&read_lossy(&stderr), 8_000)
                    );
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("cannot start kamailio: {last_failure}");
    }

    fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "--- Kamailio on 127.0.0.1:{} (exit: {:?}) stderr ({}):\n{}",
            self.port,
            self.guard.status,
            self.stderr.display(),
            tail(&read_lossy(&self.stderr), 12_000)
        );
    }
}

// ---------------------------------------------------------------------------
// The dialer

#[derive(Debug)]
struct DialerRun {
    args: Vec<String>,
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl DialerRun {
    /// The single JSON object the dialer printed, or a description of why
    /// there is none.
    fn json(&self) -> Result<serde_json::Map<String, Value>, String> {
        let text = self.stdout.trim();
        if text.is_empty() {
            return Err("the dialer printed nothing on stdout".into());
        }
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(other) => Err(format!("stdout is JSON but not an object: {other}")),
            Err(e) => Err(format!("stdout is not one JSON object ({e})")),
        }
    }

    fn report(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "--- dialer {:?}\nexit: {:?} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.args,
            self.status,
            self.elapsed,
            self.stdout,
            tail(&self.stderr, 16_000)
        );
    }
}

/// Runs `dialer call --trunk TRUNK --to 100 --from 200 -v [--bind ..] EXTRA...`
/// against the trunk on loopback `port` of `net`, bounded.
fn run_dialer(net: Net, port: u16, extra: &[&str]) -> DialerRun {
    let trunk = net.trunk(port);
    let args = [
        "call", "--trunk", &trunk, "--to", "100", "--from", "200", "-v",
    ];
    run_dialer_with(&args, net.bind_args(), extra, DIALER_BOUND)
}

/// Runs `dialer probe --trunk TRUNK -v [--bind ..] EXTRA...` against the trunk
/// on loopback `port` of `net`, killed after `bound`.
fn run_probe(net: Net, port: u16, extra: &[&str], bound: Duration) -> DialerRun {
    let trunk = net.trunk(port);
    run_dialer_with(
        &["probe", "--trunk", &trunk, "-v"],
        net.bind_args(),
        extra,
        bound,
    )
}

/// Runs the dialer with `args`, `bind` then `extra`, killed after `bound`.
fn run_dialer_with(args: &[&str], bind: &[&str], extra: &[&str], bound: Duration) -> DialerRun {
    let bin = dialer_bin();
    let args: Vec<String> = args
        .iter()
        .chain(bind)
        .chain(extra)
        .map(|s| s.to_string())
        .collect();
    let mut cmd = Command::new(&bin);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut guard = Guard::spawn("dialer", cmd);
    let mut out_pipe = guard.child.stdout.take().expect("stdout piped");
    let mut err_pipe = guard.child.stderr.take().expect("stderr piped");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let status = guard.wait_for(bound);
    if status.is_none() {
        guard.stop();
    }
    let elapsed = started.elapsed();
    drop(guard);
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let mut stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    if status.is_none() {
        let _ = write!(
            stderr,
            "\n[sipp.rs] the dialer did not exit within {bound:?}: killed"
        );
    }
    DialerRun {
        args: std::iter::once(bin.display().to_string())
            .chain(args)
            .collect(),
        status,
        stdout,
        stderr,
        elapsed,
    }
}

// ---------------------------------------------------------------------------
// Checking a run

/// Everything of one test run, for checks that print all of it on failure.
#[derive(Debug)]
struct Run<'a> {
    name: &'a str,
    dir: &'a RunDir,
    sipp: Option<&'a Sipp>,
    kamailio: Option<&'a Kamailio>,
    dialer: &'a DialerRun,
}

impl Run<'_> {
    fn fail(&self, what: &str) -> ! {
        let mut out = format!(
            "\n=== {}: {what}\nrun dir (kept): {}\n",
            self.name,
            self.dir.0.display()
        );
        self.dialer.report(&mut out);
        if let Some(sipp) = self.sipp {
            sipp.report(&mut out);
        }
        if let Some(kamailio) = self.kamailio {
            kamailio.report(&mut out);
        }
        panic!("{out}");
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(&what());
        }
    }

    /// The dialer exited 0 and printed one JSON object with the expected
    /// outcome and status, and numbers for the timings.
    fn json(&self, outcome: &str, sip_status: u64) -> serde_json::Map<String, Value> {
        let code = self.dialer.status.and_then(|s| s.code());
        self.check(code == Some(0), || {
            format!("dialer exit code {code:?}, expected 0")
        });
        let json = self.dialer.json().unwrap_or_else(|e| self.fail(&e));
        let got_outcome = json.get("outcome").and_then(Value::as_str);
        self.check(got_outcome == Some(outcome), || {
            format!("outcome {:?}, expected {outcome:?}", json.get("outcome"))
        });
        let got_status = json.get("sip_status").and_then(Value::as_u64);
        self.check(got_status == Some(sip_status), || {
            format!(
                "sip_status {:?}, expected {sip_status}",
                json.get("sip_status")
            )
        });
        for key in ["setup_ms", "duration_ms"] {
            self.check(json.get(key).is_some_and(Value::is_u64), || {
                format!("{key} is {:?}, expected a number of ms", json.get(key))
            });
        }
        json
    }

    fn reason(&self, json: &serde_json::Map<String, Value>, reason: &str) {
        self.check(
            json.get("reason").and_then(Value::as_str) == Some(reason),
            || format!("reason {:?}, expected {reason:?}", json.get("reason")),
        );
    }

    fn hangup_by(&self, json: &serde_json::Map<String, Value>, expected: Option<&str>) {
        let got = json.get("hangup_by").unwrap_or(&Value::Null);
        let ok = match expected {
            Some(who) => got.as_str() == Some(who),
            None => got.is_null(),
        };
        self.check(ok, || format!("hangup_by {got}, expected {expected:?}"));
    }

    fn ms(&self, json: &serde_json::Map<String, Value>, key: &str, min: u64, max: u64) {
        self.in_range(json, key, min, max);
    }

    /// `json[key]` is a whole number in `min..=max`.
    fn in_range(&self, json: &serde_json::Map<String, Value>, key: &str, min: u64, max: u64) {
        let got = json.get(key).unwrap_or(&Value::Null);
        let ok = got.as_u64().is_some_and(|n| (min..=max).contains(&n));
        self.check(ok, || format!("{key} = {got}, expected {min}..={max}"));
    }

    /// The dialer exited with `code` and printed one JSON object
    /// (`dialer probe`: 0 the trunk answered, and registered if asked; 1 not).
    fn probe_json(&self, code: i32) -> serde_json::Map<String, Value> {
        let got = self.dialer.status.and_then(|s| s.code());
        self.check(got == Some(code), || {
            format!("dialer exit code {got:?}, expected {code}")
        });
        self.dialer.json().unwrap_or_else(|e| self.fail(&e))
    }

    /// `json[key]` is `expected` (`Value::Null`: null or absent).
    fn field(&self, json: &serde_json::Map<String, Value>, key: &str, expected: Value) {
        let got = json.get(key).unwrap_or(&Value::Null);
        self.check(*got == expected, || {
            format!("{key} is {got}, expected {expected}")
        });
    }

    /// SIPp finished on its own and exited with `code` (0: the call
    /// succeeded; 1: it failed).
    fn sipp_exit(&self, code: i32) {
        let sipp = self.sipp.expect("a run with SIPp");
        if sipp.overran.get() {
            self.fail(&format!(
                "SIPp was still running {SIPP_EXIT_BOUND:?} after the dialer exited"
            ));
        }
        let status = sipp.guard.borrow().status;
        if status.and_then(|s| s.code()) != Some(code) {
            let got = status.map_or_else(|| "no status".to_string(), |s| s.to_string());
            self.fail(&format!(
                "SIPp ended with {got}, expected exit code {code} ({})",
                sipp_meaning(code)
            ));
        }
    }
}

fn sipp_meaning(code: i32) -> &'static str {
    match code {
        0 => "the call succeeded",
        1 => "the call failed",
        _ => "?",
    }
}

// ---------------------------------------------------------------------------
// Digest check of what the dialer sent: the 407 scenario (SIPp 3.6.1 cannot
// verify Proxy-Authorization itself; scripts/sipp/uas_407.xml logs it) and
// the REGISTER requests of `dialer probe` (from SIPp's message trace)

/// Lower-case hex MD5 of `text`, for the digest check only.
fn md5_hex(text: &str) -> String {
    hex::encode(Md5::digest(text.as_bytes()))
}

/// The parameters of a `Digest a="b",c=d` credentials value, names lower-cased.
fn digest_params(value: &str) -> Result<Vec<(String, String)>, String> {
    let rest = value
        .trim()
        .strip_prefix("Digest")
        .ok_or_else(|| format!("not Digest credentials: {value}"))?;
    let mut params = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let name: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if chars.next() != Some('=') {
            return Err(format!("parameter without value in {value}"));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut val = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => val.extend(chars.next()),
                    Some('"') => break,
                    Some(c) => val.push(c),
                    None => return Err(format!("unterminated quote in {value}")),
                }
            }
        } else {
            val = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
        }
        params.push((name.trim().to_ascii_lowercase(), val.trim().to_string()));
    }
    Ok(params)
}

/// Checks credentials against user/password for `method`, MD5 (the only
/// algorithm the scenario's challenge offers), with or without qop=auth.
fn verify_md5_digest(
    value: &str,
    method: &str,
    user: &str,
    password: &str,
    realm: &str,
) -> Result<(), String> {
    let params = digest_params(value)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let need = |name: &str| get(name).ok_or_else(|| format!("no {name} in {value}"));
    if let Some(alg) = get("algorithm")
        && !alg.eq_ignore_ascii_case("MD5")
    {
        return Err(format!("algorithm {alg}, the challenge asked for MD5"));
    }
    if need("username")? != user {
        return Err(format!(
            "username {:?}, expected {user:?}",
            need("username")?
        ));
    }
    if need("realm")? != realm {
        return Err(format!("realm {:?}, expected {realm:?}", need("realm")?));
    }
    let ha1 = md5_hex(&format!("{user}:{realm}:{password}"));
    let ha2 = md5_hex(&format!("{method}:{}", need("uri")?));
    let nonce = need("nonce")?;
    let expected = match get("qop") {
        Some(qop) => {
            if qop != "auth" {
                return Err(format!("qop {qop:?}, the challenge offered \"auth\""));
            }
            md5_hex(&format!(
                "{ha1}:{nonce}:{}:{}:{qop}:{ha2}",
                need("nc")?,
                need("cnonce")?
            ))
        }
        None => return Err("no qop=auth although the challenge offered qop=\"auth\"".into()),
    };
    let response = need("response")?;
    if !response.eq_ignore_ascii_case(&expected) {
        return Err(format!(
            "response {response}, expected {expected} for {user}/{password}"
        ));
    }
    Ok(())
}

#[test]
fn digest_check_accepts_sipp_credentials() {
    // As SIPp 3.6.1's own UAC answers the uas_407.xml challenge.
    let value = r#"Digest username="alice",realm="sipp.test",cnonce="6b8b4567",nc=00000001,qop=auth,uri="sip:127.0.0.1:21664",nonce="5c1ab7e023883n1",response="2e456f7cc5d369d248428236b8ea891f",algorithm=MD5"#;
    verify_md5_digest(value, "INVITE", "alice", "secret", "sipp.test").unwrap();
    assert!(verify_md5_digest(value, "INVITE", "alice", "wrong", "sipp.test").is_err());
}

/// The value of parameter `name` of Digest credentials, if present.
fn digest_param(value: &str, name: &str) -> Option<String> {
    digest_params(value)
        .ok()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

// ---------------------------------------------------------------------------
// What the peer received

/// A request as it arrived at the peer: its method and headers.
#[derive(Debug)]
struct Received {
    method: String,
    headers: Vec<(String, String)>,
}

impl Received {
    /// Parses the start line and headers of a request; None for a response.
    fn parse(text: &str) -> Option<Received> {
        let mut lines = text.lines().map(str::trim_end).skip_while(|l| l.is_empty());
        let start = lines.next()?;
        if start.starts_with("SIP/2.0") {
            return None;
        }
        let method = start.split(' ').next()?.to_string();
        let headers = lines
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
            .collect();
        Some(Received { method, headers })
    }

    /// The first header `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The number of the CSeq header.
    fn cseq(&self) -> Option<u32> {
        self.header("CSeq")?.split_whitespace().next()?.parse().ok()
    }

    fn summary(&self) -> String {
        format!(
            "{} Call-ID {:?} CSeq {:?} Expires {:?} Authorization {:?}",
            self.method,
            self.header("Call-ID"),
            self.header("CSeq"),
            self.header("Expires"),
            self.header("Authorization")
        )
    }
}

/// The requests SIPp received, in order, from its message trace
/// (`-trace_msg`); retransmissions (same top Via) are left out.
fn received_requests(trace: &str) -> Vec<Received> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    // Each message: a line of dashes and a time, "UDP message received [N]
    // bytes :" (or TCP), a blank line, the message.
    for block in trace.split("-----------------------------------------------") {
        let Some((what, message)) = block.split_once(" bytes :") else {
            continue;
        };
        if !what.contains("message received") {
            continue;
        }
        if let Some(req) = Received::parse(message)
            && seen.insert(req.header("Via").unwrap_or_default().to_string())
        {
            out.push(req);
        }
    }
    out
}

fn summaries(requests: &[&Received]) -> String {
    requests
        .iter()
        .map(|r| format!("\n  {}", r.summary()))
        .collect()
}

/// Checks the requests the registrar scenario received from `dialer probe
/// --register --expires EXPIRES` with `password` (the scenario accepts only
/// alice/secret): one OPTIONS with its own Call-ID; REGISTER without
/// credentials, REGISTER with a digest answer, and when `registered` the
/// un-REGISTER (Expires 0, credentials without a new challenge: same nonce,
/// nc 2), all with one Call-ID and consecutive CSeq numbers.
fn check_registrar_trace(run: &Run<'_>, password: &str, expires: &str, registered: bool) {
    let sipp = run.sipp.expect("a run with SIPp");
    let requests = received_requests(&read_lossy(&sipp.messages));
    let options: Vec<&Received> = requests.iter().filter(|r| r.method == "OPTIONS").collect();
    let registers: Vec<&Received> = requests.iter().filter(|r| r.method == "REGISTER").collect();
    let want = if registered { 3 } else { 2 };
    run.check(
        options.len() == 1 && registers.len() == want && requests.len() == want + 1,
        || {
            format!(
                "SIPp received {} requests, expected one OPTIONS and {want} REGISTER:{}",
                requests.len(),
                summaries(&requests.iter().collect::<Vec<_>>())
            )
        },
    );
    let call_id = registers[0].header("Call-ID");
    run.check(
        call_id.is_some() && registers.iter().all(|r| r.header("Call-ID") == call_id),
        || {
            format!(
                "the REGISTER requests do not share one Call-ID:{}",
                summaries(&registers)
            )
        },
    );
    run.check(options[0].header("Call-ID") != call_id, || {
        format!(
            "the OPTIONS ping has the Call-ID of the registration:{}{}",
            summaries(&options),
            summaries(&registers)
        )
    });
    let first = registers[0].cseq().unwrap_or(0);
    run.check(
        registers
            .iter()
            .enumerate()
            .all(|(i, r)| r.cseq() == Some(first + i as u32)),
        || format!("CSeq numbers are not consecutive:{}", summaries(&registers)),
    );
    run.check(registers[0].header("Authorization").is_none(), || {
        format!(
            "the first REGISTER carried credentials unasked:{}",
            summaries(&registers)
        )
    });
    for r in &registers[..2] {
        run.check(r.header("Expires") == Some(expires), || {
            format!(
                "REGISTER asked for Expires {:?}, expected {expires}",
                r.header("Expires")
            )
        });
    }
    // The answer to the 401: the digest of the password given, nc 1.
    let answer = registers[1].header("Authorization").unwrap_or_default();
    if let Err(e) = verify_md5_digest(answer, "REGISTER", "alice", password, "sipp.test") {
        run.fail(&format!(
            "the REGISTER digest does not verify for alice/{password}: {e}\n{answer}"
        ));
    }
    run.check(
        digest_param(answer, "nc").as_deref() == Some("00000001"),
        || {
            format!(
                "the first digest answer has nc {:?}, expected 00000001",
                digest_param(answer, "nc")
            )
        },
    );
    if !registered {
        return;
    }
    let unregister = registers[2];
    run.check(unregister.header("Expires") == Some("0"), || {
        format!(
            "the un-REGISTER has Expires {:?}, expected 0",
            unregister.header("Expires")
        )
    });
    let value = unregister.header("Authorization").unwrap_or_default();
    if let Err(e) = verify_md5_digest(value, "REGISTER", "alice", password, "sipp.test") {
        run.fail(&format!(
            "the un-REGISTER digest does not verify: {e}\n{value}"
        ));
    }
    run.check(
        digest_param(value, "nonce") == digest_param(answer, "nonce")
            && digest_param(value, "nc").as_deref() == Some("00000002"),
        || {
            format!(
                "the un-REGISTER does not reuse the nonce with nc 00000002:\n  {answer}\n  {value}"
            )
        },
    );
}

// ---------------------------------------------------------------------------
// The scenarios

/// Starts SIPp with `scenario_name` for `calls` calls on the loopback address
/// of `net`, runs `dial` (given SIPp's port) against it, waits for SIPp to
/// finish and hands the whole run to `check`.
fn with_sipp(
    name: &str,
    net: Net,
    scenario_name: &str,
    calls: u32,
    dial: impl FnOnce(u16) -> DialerRun,
    check: impl FnOnce(&Run<'_>),
) {
    let dir = RunDir::new(name);
    let sipp = Sipp::start_calls(&dir, scenario_name, net, calls);
    let dialer = dial(sipp.port);
    sipp.finish();
    check(&Run {
        name,
        dir: &dir,
        sipp: Some(&sipp),
        kamailio: None,
        dialer: &dialer,
    });
}

/// One `dialer call` against one SIPp scenario, and what the dialer's JSON
/// and SIPp's exit status must say.
#[derive(Debug, Clone, Copy)]
struct CallCase {
    scenario: &'static str,
    /// Extra `dialer call` arguments.
    args: &'static [&'static str],
    outcome: &'static str,
    sip_status: u64,
    /// The reason phrase, where checked.
    reason: Option<&'static str>,
    /// Always checked: None means null.
    hangup_by: Option<&'static str>,
    /// A timing of the JSON that must lie in `min..=max` ms: (key, min, max).
    ms: Option<(&'static str, u64, u64)>,
    /// The dialer may not exit before this, and why (a timer it waits out).
    min_elapsed: Option<(Duration, &'static str)>,
    /// SIPp's exit code (0: the call succeeded; 1: it failed).
    sipp_exit: i32,
}

impl CallCase {
    /// `scenario` run with `args`, ending in `outcome`/`sip_status` with
    /// `hangup_by`; no reason or timing checks, SIPp exits 0.
    const fn new(
        scenario: &'static str,
        args: &'static [&'static str],
        outcome: &'static str,
        sip_status: u64,
        hangup_by: Option<&'static str>,
    ) -> CallCase {
        CallCase {
            scenario,
            args,
            outcome,
            sip_status,
            reason: None,
            hangup_by,
            ms: None,
            min_elapsed: None,
            sipp_exit: 0,
        }
    }

    fn run(self, name: &str, net: Net) {
        self.run_then(name, net, |_| {});
    }

    /// Runs the case, checks it, then runs the `more` checks.
    fn run_then(self, name: &str, net: Net, more: impl FnOnce(&Run<'_>)) {
        let dial = |port| run_dialer(net, port, self.args);
        with_sipp(name, net, self.scenario, 1, dial, |run| {
            let json = run.json(self.outcome, self.sip_status);
            if let Some(reason) = self.reason {
                run.reason(&json, reason);
            }
            run.hangup_by(&json, self.hangup_by);
            if let Some((key, min, max)) = self.ms {
                run.ms(&json, key, min, max);
            }
            if let Some((min, why)) = self.min_elapsed {
                let elapsed = run.dialer.elapsed;
                run.check(elapsed >= min, || {
                    format!("the dialer gave up after {elapsed:?}, before {why}")
                });
            }
            run.sipp_exit(self.sipp_exit);
            more(run);
        });
    }
}

const ALICE: &[&str] = &["--user", "alice", "--password", "secret"];
const ALICE_WRONG: &[&str] = &["--user", "alice", "--password", "not-the-secret"];

fn answer_bye_them(name: &str, net: Net) {
    CallCase {
        reason: Some("OK"),
        // SIPp pauses 1 s between the ACK and its BYE.
        ms: Some(("duration_ms", 800, 10_000)),
        ..CallCase::new(
            "uas_answer_bye_them.xml",
            &[],
            "answered",
            200,
            Some("them"),
        )
    }
    .run(name, net);
}

fn answer_bye_us(name: &str, net: Net) {
    let args = &["--hangup-after", "1"];
    CallCase {
        reason: Some("OK"),
        ms: Some(("duration_ms", 800, 5_000)),
        ..CallCase::new("uas_answer_bye_us.xml", args, "answered", 200, Some("us"))
    }
    .run(name, net);
}

fn busy(name: &str, net: Net) {
    CallCase {
        reason: Some("Busy Here"),
        ..CallCase::new("uas_busy.xml", &[], "busy", 486, None)
    }
    .run(name, net);
}

fn no_answer(name: &str, net: Net) {
    let args = &["--ring-timeout", "2"];
    CallCase {
        reason: Some("Request Terminated"),
        min_elapsed: Some((Duration::from_millis(1_800), "its 2 s ring timeout")),
        ..CallCase::new("uas_no_answer.xml", args, "no_answer", 487, None)
    }
    .run(name, net);
}

fn not_found(name: &str, net: Net) {
    CallCase {
        reason: Some("Not Found"),
        ..CallCase::new("uas_404.xml", &[], "invalid_number", 404, None)
    }
    .run(name, net);
}

/// SIPp verifies the digest (<verifyauth>); a wrong one gets 403 and exit 1.
fn auth_401(name: &str, net: Net) {
    CallCase::new("uas_401.xml", ALICE, "answered", 200, Some("them")).run(name, net);
}

/// The negative control of `auth_401`: SIPp's digest check really rejects,
/// and uas_401.xml stops the call as failed after a digest that does not
/// verify.
fn auth_401_wrong_password(name: &str, net: Net) {
    CallCase {
        sipp_exit: 1,
        ..CallCase::new("uas_401.xml", ALICE_WRONG, "rejected", 403, None)
    }
    .run(name, net);
}

fn auth_407(name: &str, net: Net) {
    let case = CallCase::new("uas_407.xml", ALICE, "answered", 200, Some("them"));
    case.run_then(name, net, |run| {
        // The scenario logged the Proxy-Authorization it got; check the digest.
        let log = read_lossy(&run.sipp.expect("a run with SIPp").log);
        let line = log
            .lines()
            .find_map(|l| l.split_once("PROXY-AUTHORIZATION method=INVITE value="))
            .map(|(_, v)| v.trim().to_string());
        let Some(value) = line else {
            run.fail("SIPp logged no Proxy-Authorization line");
        };
        if let Err(e) = verify_md5_digest(&value, "INVITE", "alice", "secret", "sipp.test") {
            run.fail(&format!(
                "the Proxy-Authorization digest does not verify: {e}\n{value}"
            ));
        }
    });
}

fn early_media_183(name: &str, net: Net) {
    CallCase {
        // The 183 rings for 1 s before the 200: setup includes it.
        ms: Some(("setup_ms", 800, 10_000)),
        ..CallCase::new("uas_183_early.xml", &[], "answered", 200, Some("them"))
    }
    .run(name, net);
}

/// SIPp checks that the 200 to its re-INVITE carried SDP.
fn reinvite(name: &str, net: Net) {
    CallCase::new("uas_reinvite.xml", &[], "answered", 200, Some("them")).run(name, net);
}

/// Through Kamailio (407 challenge, record-route) to a SIPp UAS. IPv4 only:
/// scripts/kamailio/kamailio.cfg listens on 127.0.0.1.
fn kamailio_auth(name: &str, net: Net) {
    let dir = RunDir::new(name);
    let backend = Sipp::start(&dir, "uas_kamailio_backend.xml", net);
    let kamailio = Kamailio::start(&dir, backend.port);
    let dialer = run_dialer(net, kamailio.port, ALICE);
    backend.finish();
    let run = Run {
        name,
        dir: &dir,
        sipp: Some(&backend),
        kamailio: Some(&kamailio),
        dialer: &dialer,
    };
    let json = run.json("answered", 200);
    run.hangup_by(&json, Some("them"));
    // The back end checked the Record-Route and sent its BYE through the proxy.
    run.sipp_exit(0);
}

/// Kamailio with no back end (nothing may get past the proxy; its port stays
/// unused) keeps challenging the dialer run with `args`: the final status is
/// 407 and the call is not answered (`answered_means` says what an answer
/// would mean).
fn kamailio_challenged(name: &str, net: Net, args: &[&str], answered_means: &str) {
    let dir = RunDir::new(name);
    let kamailio = Kamailio::start(&dir, free_port(Family::V4));
    let dialer = run_dialer(net, kamailio.port, args);
    let run = Run {
        name,
        dir: &dir,
        sipp: None,
        kamailio: Some(&kamailio),
        dialer: &dialer,
    };
    let code = dialer.status.and_then(|s| s.code());
    run.check(code == Some(0), || {
        format!("dialer exit code {code:?}, expected 0")
    });
    let json = dialer.json().unwrap_or_else(|e| run.fail(&e));
    run.check(
        json.get("outcome").and_then(Value::as_str) != Some("answered"),
        || answered_means.into(),
    );
    run.check(
        json.get("sip_status").and_then(Value::as_u64) == Some(407),
        || format!("sip_status {:?}, expected 407", json.get("sip_status")),
    );
}

/// Kamailio keeps challenging a wrong password: the final status is 407.
fn kamailio_wrong_password(name: &str, net: Net) {
    kamailio_challenged(name, net, ALICE_WRONG, "a wrong password was answered");
}

/// No credentials at all: the dialer cannot answer the challenge, 407.
fn kamailio_no_credentials(name: &str, net: Net) {
    kamailio_challenged(name, net, &[], "answered without credentials");
}

/// `dialer probe --user alice --password PASSWORD --register --expires 300`
/// against uas_registrar.xml (two calls for SIPp: the ping and the
/// registration have their own Call-IDs), then `check`.
fn probe_registrar(name: &str, net: Net, password: &str, check: impl FnOnce(&Run<'_>)) {
    let args = [
        "--user",
        "alice",
        "--password",
        password,
        "--register",
        "--expires",
        "300",
    ];
    let dial = |port| run_probe(net, port, &args, DIALER_BOUND);
    with_sipp(name, net, "uas_registrar.xml", 2, dial, check);
}

/// `dialer probe --register` against uas_registrar.xml: OPTIONS answered,
/// REGISTER challenged (401), answered and granted 60 s, then removed.
fn probe_register(name: &str, net: Net) {
    probe_registrar(name, net, "secret", |run| {
        let json = run.probe_json(0);
        run.field(&json, "trunk", "up".into());
        run.field(&json, "options_status", 200.into());
        run.in_range(&json, "options_ms", 0, 5_000);
        run.field(&json, "registered", true.into());
        run.field(&json, "register_status", 200.into());
        // The scenario grants 60 s (Contact ;expires=60) of the 300 asked for;
        // the probe reports the seconds left of it.
        run.in_range(&json, "expires", 50, 60);
        run.field(&json, "unregistered", true.into());
        // SIPp verified both digests (<verifyauth>) and the un-REGISTER's Expires: 0.
        run.sipp_exit(0);
        check_registrar_trace(run, "secret", "300", true);
    });
}

/// The negative control of `probe_register`: the scenario answers a digest
/// that does not verify with 403 Forbidden (as uas_401.xml does), and a 403 is
/// final for the dialer (only 401/407 get a new digest), so register_status is
/// 403. (A registrar that re-challenged instead would end it with 401.)
fn probe_wrong_password(name: &str, net: Net) {
    probe_registrar(name, net, "not-the-secret", |run| {
        let json = run.probe_json(1);
        run.field(&json, "trunk", "up".into());
        run.field(&json, "options_status", 200.into());
        run.field(&json, "registered", false.into());
        run.field(&json, "register_status", 403.into());
        run.field(&json, "expires", Value::Null);
        run.field(&json, "unregistered", Value::Null);
        // The ping succeeded, the registration failed on purpose.
        run.sipp_exit(1);
        // No retry after the 403, no un-REGISTER; the digest was computed
        // right, with the wrong password.
        check_registrar_trace(run, "not-the-secret", "300", false);
    });
}

/// How long `dialer probe` may take against a silent trunk: Timer F (64·T1 =
/// 32 s) and some slack.
const SILENT_TRUNK_BOUND: Duration = Duration::from_secs(50);

/// A trunk that takes the ping and never answers: a UDP socket this test
/// holds open (no ICMP port unreachable), read but never written. No
/// --register: the OPTIONS transaction times out (Timer F, 32 s), the trunk is
/// down and the probe exits 1. About 33 s.
fn probe_silent_trunk(name: &str) {
    let dir = RunDir::new(name);
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind UDP 127.0.0.1:0");
    let port = silent.local_addr().expect("local_addr").port();
    silent
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("set_read_timeout");
    let stop = Arc::new(AtomicBool::new(false));
    let reader = thread::spawn({
        let stop = Arc::clone(&stop);
        move || {
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65_536];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((n, _)) = silent.recv_from(&mut buf) {
                    got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                }
            }
            got
        }
    });
    let dialer = run_probe(Net::UDP, port, &[], SILENT_TRUNK_BOUND);
    stop.store(true, Ordering::Relaxed);
    let datagrams = reader.join().unwrap_or_default();
    let run = Run {
        name,
        dir: &dir,
        sipp: None,
        kamailio: None,
        dialer: &dialer,
    };
    let json = run.probe_json(1);
    run.field(&json, "trunk", "down".into());
    run.field(&json, "options_status", Value::Null);
    // Down when the ping's Timer F fired.
    run.in_range(&json, "options_ms", 31_000, 40_000);
    for key in ["registered", "register_status", "expires", "unregistered"] {
        run.field(&json, key, Value::Null);
    }
    // The socket got one OPTIONS transaction: the ping and its
    // retransmissions (Timer E), nothing else.
    let requests: Vec<Received> = datagrams
        .iter()
        .filter_map(|d| Received::parse(d))
        .collect();
    let first = requests.first();
    let same = |r: &Received, name: &str| first.is_some_and(|f| r.header(name) == f.header(name));
    run.check(
        datagrams.len() >= 2
            && requests.len() == datagrams.len()
            && requests.iter().all(|r| {
                r.method == "OPTIONS" && same(r, "Call-ID") && same(r, "CSeq") && same(r, "Via")
            }),
        || {
            format!(
                "the silent trunk received {} datagrams, expected one OPTIONS and its \
                 retransmissions:\n{}",
                datagrams.len(),
                datagrams.join("\n----\n")
            )
        },
    );
}

// ---------------------------------------------------------------------------
// Media: a prompt WAV, a capture of the RTP on loopback (tshark), its checks

/// The prompt of `dtmf_pcap`: 6 s (300 frames of 20 ms) of a 440 Hz tone. It
/// ends ~1.2 s before the scenario's first digit, so each digit arrives
/// after it and within the 3 s DTMF timeout of the one before.
const PROMPT_FRAMES: usize = 300;
/// Samples in 20 ms at 8 kHz: the RTP timestamp step of PCMA at ptime 20.
const FRAME_SAMPLES: usize = 160;
const TONE_HZ: f64 = 440.0;
/// About -12 dBFS: a frame of the tone has an RMS of ~5,660; A-law silence
/// (0xD5) decodes to 8.
const TONE_AMPLITUDE: f64 = 8_000.0;
/// A frame whose decoded RMS is above this carries the prompt.
const TONE_RMS_MIN: f64 = 1_000.0;

/// What `uas_dtmf_pcap.xml` plays: g711a.pcap (236 packets) then four digit
/// files of 10 packets each.
const SIPP_PCAP_PACKETS: usize = 236 + 4 * 10;
/// Of those, distinct packets: each digit's end packet is sent three times
/// with one sequence number.
const SIPP_PCAP_DISTINCT: usize = 236 + 4 * 8;
/// SIPp's bound for `uas_dtmf_pcap.xml`: its digits end ~8.7 s after the
/// ACK and the dialer's BYE comes 3 s (its DTMF timeout) later.
const MEDIA_SIPP_TIMEOUT_S: u64 = 25;
const MEDIA_DIALER_BOUND: Duration = Duration::from_secs(22);
/// How long tshark may take to start capturing, to stop, or to decode.
const CAPTURE_BOUND: Duration = Duration::from_secs(10);
/// How long the capture goes on after the call, so that dumpcap has every
/// packet of it before it stops.
const CAPTURE_SETTLE: Duration = Duration::from_secs(1);

/// Writes a 16-bit 8 kHz mono PCM WAV of `frames` 20 ms frames of the tone.
fn write_tone_wav(path: &Path, frames: usize) {
    let samples = frames * FRAME_SAMPLES;
    let data_len = u32::try_from(samples * 2).expect("WAV data fits in u32");
    let mut wav = Vec::with_capacity(44 + samples * 2);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&8_000u32.to_le_bytes()); // sample rate
    wav.extend_from_slice(&16_000u32.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&2u16.to_le_bytes()); // bytes per sample frame
    wav.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    assert_eq!(wav.len(), 44, "a WAV header is 44 bytes");
    for n in 0..samples {
        let phase = 2.0 * std::f64::consts::PI * TONE_HZ * n as f64 / 8_000.0;
        let sample = (TONE_AMPLITUDE * phase.sin()).round() as i16;
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    fs::write(path, wav).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// G.711 A-law to linear 16-bit (the ITU reference expansion).
fn alaw_decode(byte: u8) -> i16 {
    let a = byte ^ 0x55;
    let segment = (a & 0x70) >> 4;
    let mantissa = i16::from(a & 0x0f) << 4;
    let magnitude = match segment {
        0 => mantissa + 8,
        1 => mantissa + 0x108,
        _ => (mantissa + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 { magnitude } else { -magnitude }
}

/// The RMS of an A-law payload, decoded.
fn alaw_rms(payload: &[u8]) -> f64 {
    if payload.is_empty() {
        return 0.0;
    }
    let sum: f64 = payload
        .iter()
        .map(|&b| f64::from(alaw_decode(b)).powi(2))
        .sum();
    (sum / payload.len() as f64).sqrt()
}

#[test]
fn alaw_decode_matches_reference_points() {
    // Silence, the extremes and a mid-range code of G.711 A-law.
    assert_eq!(alaw_decode(0xd5), 8);
    assert_eq!(alaw_decode(0x55), -8);
    assert_eq!(alaw_decode(0xaa), 32_256);
    assert_eq!(alaw_decode(0x2a), -32_256);
    assert_eq!(alaw_decode(0xfa), 1_008);
    assert_eq!(alaw_decode(0xd4), 24);
}

/// The tshark fields `RtpPacket::parse` reads, in order.
const RTP_FIELDS: [&str; 9] = [
    "frame.time_epoch",
    "udp.srcport",
    "udp.dstport",
    "rtp.p_type",
    "rtp.seq",
    "rtp.timestamp",
    "rtp.ssrc",
    "rtp.marker",
    "rtp.payload",
];

/// One RTP packet of a capture, as tshark decoded it.
#[derive(Debug, Clone)]
struct RtpPacket {
    /// Capture time, ns since the epoch.
    time_ns: u64,
    src_port: u16,
    dst_port: u16,
    payload_type: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    marker: bool,
    payload: Vec<u8>,
}

impl RtpPacket {
    /// One line of `tshark -T fields` with `RTP_FIELDS`.
    fn parse(line: &str) -> Result<RtpPacket, String> {
        let fields: Vec<&str> = line.split('\t').collect();
        let bad = |what: &str| format!("tshark line without {what}: {line:?}");
        if fields.len() != RTP_FIELDS.len() {
            return Err(bad("all of RTP_FIELDS"));
        }
        let (secs, frac) = fields[0].split_once('.').unwrap_or((fields[0], "0"));
        let frac = format!("{frac:0<9}");
        let time_ns = secs
            .parse::<u64>()
            .ok()
            .zip(frac.get(..9).and_then(|f| f.parse::<u64>().ok()))
            .map(|(s, f)| s * 1_000_000_000 + f)
            .ok_or_else(|| bad("a capture time"))?;
        let num = |i: usize, what: &str| fields[i].parse::<u64>().map_err(|_| bad(what));
        let ssrc = fields[6].trim_start_matches("0x");
        Ok(RtpPacket {
            time_ns,
            src_port: u16::try_from(num(1, "a source port")?).map_err(|_| bad("a port"))?,
            dst_port: u16::try_from(num(2, "a destination port")?).map_err(|_| bad("a port"))?,
            payload_type: u8::try_from(num(3, "an RTP payload type")?).map_err(|_| bad("a PT"))?,
            seq: u16::try_from(num(4, "an RTP sequence number")?).map_err(|_| bad("a seq"))?,
            timestamp: u32::try_from(num(5, "an RTP timestamp")?).map_err(|_| bad("a ts"))?,
            ssrc: u32::from_str_radix(ssrc, 16).map_err(|_| bad("an SSRC"))?,
            marker: matches!(fields[7], "1" | "True"),
            payload: hex::decode(fields[8].replace(':', "")).map_err(|_| bad("a payload"))?,
        })
    }
}

/// A capture of UDP to and from one port on the loopback interface by
/// tshark, into a pcap file in the run dir (kept, with tshark's decoding,
/// when the test fails).
#[derive(Debug)]
struct Capture {
    guard: Guard,
    /// The port whose traffic is captured and decoded as RTP.
    rtp_port: u16,
    file: PathBuf,
    stderr: PathBuf,
}

impl Capture {
    /// Starts tshark on `lo` for UDP to or from `rtp_port` and waits until it
    /// captures. tshark's "Capturing on 'Loopback: lo'" comes some ms before
    /// its capture does, so readiness is a probe: UDP datagrams from a socket
    /// of the test to itself (its port is in the capture filter too), sent
    /// every 20 ms until the pcap file holds more than its 24-byte header.
    fn start(dir: &RunDir, rtp_port: u16) -> Capture {
        let tshark = tool("tshark");
        let probe = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a probe socket");
        let probe_addr = probe.local_addr().expect("local_addr");
        let filter = format!("udp port {rtp_port} or udp port {}", probe_addr.port());
        let file = dir.path("capture.pcap");
        let stderr = dir.path("tshark.stderr");
        let mut cmd = Command::new(&tshark);
        cmd.args(["-i", "lo", "-n", "-q", "-F", "pcap", "-f", &filter, "-w"])
            .arg(&file)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).expect("create tshark stderr"));
        let mut guard = Guard::spawn("tshark", cmd);
        let deadline = Instant::now() + CAPTURE_BOUND;
        loop {
            let _ = probe.send_to(b"capture probe", probe_addr);
            if fs::metadata(&file).is_ok_and(|m| m.len() > 24) {
                return Capture {
                    guard,
                    rtp_port,
                    file,
                    stderr,
                };
            }
            let why = match guard.try_status() {
                Some(status) => format!("exited ({status})"),
                None if Instant::now() >= deadline => {
                    format!("captured no probe within {CAPTURE_BOUND:?}")
                }
                None => {
                    thread::sleep(Duration::from_millis(20));
                    continue;
                }
            };
            panic!(
                "tshark {why} (capturing needs root or CAP_NET_RAW; filter {filter:?}; \
                 run dir {}):\n{}",
                dir.0.display(),
                read_lossy(&stderr)
            );
        }
    }

    /// Stops the capture and decodes the RTP of it (UDP to or from
    /// `rtp_port`). First a settling time: the kernel hands captured packets
    /// to dumpcap in blocks, on a timeout; then SIGINT to tshark alone (it
    /// stops its dumpcap, which completes the file).
    fn finish(&mut self, dir: &RunDir) -> Result<Vec<RtpPacket>, String> {
        thread::sleep(CAPTURE_SETTLE);
        self.guard.signal("-INT");
        if self.guard.wait_for(CAPTURE_BOUND).is_none() {
            self.guard.stop();
            return Err(format!(
                "tshark did not stop within {CAPTURE_BOUND:?} of SIGINT:\n{}",
                read_lossy(&self.stderr)
            ));
        }
        let decoded = dir.path("capture.txt");
        let decode_err = dir.path("capture-decode.stderr");
        let mut cmd = Command::new(tool("tshark"));
        cmd.arg("-r")
            .arg(&self.file)
            .args(["-n", "-d", &format!("udp.port=={},rtp", self.rtp_port)])
            .args(["-Y", &format!("rtp && udp.port == {}", self.rtp_port)])
            .args(["-T", "fields", "-E", "separator=/t"])
            .args(RTP_FIELDS.iter().flat_map(|f| ["-e", f]))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&decoded).expect("create capture.txt"))
            .stderr(fs::File::create(&decode_err).expect("create tshark stderr"));
        let mut reader = Guard::spawn("tshark -r", cmd);
        let status = reader.wait_for(CAPTURE_BOUND);
        if status.is_none_or(|s| !s.success()) {
            return Err(format!(
                "tshark -r {} failed ({status:?}):\n{}",
                self.file.display(),
                read_lossy(&decode_err)
            ));
        }
        read_lossy(&decoded)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(RtpPacket::parse)
            .collect()
    }
}

/// The c= address and m=audio port of the SDP offer in the INVITE SIPp
/// received, from its message trace.
fn offered_audio(trace: &str) -> Option<(String, u16)> {
    let block = trace
        .split("-----------------------------------------------")
        .filter_map(|b| b.split_once(" bytes :"))
        .find(|(what, message)| {
            what.contains("message received") && message.trim_start().starts_with("INVITE ")
        })?
        .1;
    let line = |prefix: &str| {
        block
            .lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
    };
    let port = line("m=audio ")?.split_whitespace().next()?.parse().ok()?;
    let addr = line("c=IN IP4 ").or_else(|| line("c=IN IP6 "))?;
    Some((addr.trim().to_string(), port))
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// What a capture shows of one sender's stream: a line for failure messages.
fn stream_summary(packets: &[RtpPacket]) -> String {
    let (Some(first), Some(last)) = (packets.first(), packets.last()) else {
        return "no packets".into();
    };
    let ssrcs: HashSet<u32> = packets.iter().map(|p| p.ssrc).collect();
    format!(
        "{} packets over {:.3} s from port {} to {}, SSRCs {ssrcs:08x?}, seq {}..{}, \
         timestamps {}..{}",
        packets.len(),
        (last.time_ns - first.time_ns) as f64 / 1e9,
        first.src_port,
        first.dst_port,
        first.seq,
        last.seq,
        first.timestamp,
        last.timestamp
    )
}

/// Checks the dialer's RTP as captured (`sent`: every packet to SIPp's RTP
/// port, in capture order) against a prompt of `PROMPT_FRAMES` frames of
/// PCMA from `dialer_port` (its SDP offer): one SSRC, marker on the first
/// packet, consecutive sequence numbers, timestamps 160 apart (a larger step
/// only at a marked talkspurt start), and over the prompt (the packets that
/// carry the tone, one run of `PROMPT_FRAMES`) one packet per 20 ms: 50 ± 1
/// packets/s, a 99th percentile gap of at most 25 ms, and no drift (the
/// packets of the prompt's end as far from a 20 ms clock started by its first
/// packet as those of its start, ± 5 ms). Ok: the prompt's figures, for the
/// test's output.
fn check_prompt_rtp(sent: &[RtpPacket], dialer_port: u16) -> Result<String, String> {
    let Some(first) = sent.first() else {
        return Err("the dialer sent no RTP to SIPp's RTP port".into());
    };
    let at = |i: usize, what: String| {
        let p = &sent[i];
        format!(
            "packet {i} of the dialer's RTP (seq {}, ts {}, PT {}, SSRC {:08x}, marker {}): {what}",
            p.seq, p.timestamp, p.payload_type, p.ssrc, p.marker
        )
    };
    for (i, p) in sent.iter().enumerate() {
        if p.src_port != dialer_port {
            return Err(at(
                i,
                format!(
                    "sent from port {}, its SDP offer has {dialer_port}",
                    p.src_port
                ),
            ));
        }
        if p.payload_type != 8 {
            return Err(at(
                i,
                "payload type is not 8: the answer has PCMA (8) only".into(),
            ));
        }
        if p.ssrc != first.ssrc {
            return Err(at(i, format!("SSRC changed from {:08x}", first.ssrc)));
        }
    }
    if !first.marker {
        return Err(at(0, "the first packet has no marker bit".into()));
    }
    for (i, pair) in sent.windows(2).enumerate() {
        let (a, b) = (&pair[0], &pair[1]);
        if b.seq != a.seq.wrapping_add(1) {
            return Err(at(i + 1, format!("sequence number after {}", a.seq)));
        }
        let step = b.timestamp.wrapping_sub(a.timestamp);
        let frame = FRAME_SAMPLES as u32;
        if step == 0 || step % frame != 0 || (step != frame && !b.marker) {
            return Err(at(
                i + 1,
                format!(
                    "timestamp step {step} after {} (160 per 20 ms packet; more only at a \
                     marked talkspurt start)",
                    a.timestamp
                ),
            ));
        }
    }
    // The prompt: the packets that carry the tone, one run of them.
    let tone: Vec<usize> = (0..sent.len())
        .filter(|&i| alaw_rms(&sent[i].payload) > TONE_RMS_MIN)
        .collect();
    let (Some(&start), Some(&end)) = (tone.first(), tone.last()) else {
        return Err(format!(
            "no packet carries the prompt's tone (decoded RMS > {TONE_RMS_MIN}); {}",
            stream_summary(sent)
        ));
    };
    if end - start + 1 != tone.len()
        || !(PROMPT_FRAMES - 1..=PROMPT_FRAMES + 1).contains(&tone.len())
    {
        return Err(format!(
            "{} packets carry the prompt's tone, packets {start}..={end} of {}; expected one run \
             of {PROMPT_FRAMES} (its {PROMPT_FRAMES} frames of 20 ms)",
            tone.len(),
            sent.len()
        ));
    }
    let prompt = &sent[start..=end];
    if let Some(i) = prompt.iter().skip(1).position(|p| p.marker) {
        return Err(at(
            start + 1 + i,
            "marker bit in the middle of the prompt".into(),
        ));
    }
    let gaps_ms: Vec<f64> = prompt
        .windows(2)
        .map(|w| (w[1].time_ns - w[0].time_ns) as f64 / 1e6)
        .collect();
    let span_s = gaps_ms.iter().sum::<f64>() / 1e3;
    let rate = gaps_ms.len() as f64 / span_s;
    let mut sorted = gaps_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let (p1, p50, p99) = (
        quantile(&sorted, 0.01),
        quantile(&sorted, 0.50),
        quantile(&sorted, 0.99),
    );
    // Drift: how far packet i is from the first one's time + i * 20 ms, at
    // the start and at the end of the prompt (medians of 50 packets: a
    // late packet or two do not move them).
    let offsets_ms: Vec<f64> = prompt
        .iter()
        .enumerate()
        .map(|(i, p)| (p.time_ns - prompt[0].time_ns) as f64 / 1e6 - 20.0 * i as f64)
        .collect();
    let median = |values: &[f64]| {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    };
    let edge = offsets_ms.len().min(50);
    let drift = median(&offsets_ms[offsets_ms.len() - edge..]) - median(&offsets_ms[..edge]);
    let figures = format!(
        "the prompt's {} packets: {rate:.2} packets/s over {span_s:.3} s; gaps p1 {p1:.2} ms, \
         p50 {p50:.2} ms, p99 {p99:.2} ms, min {:.2} ms, max {:.2} ms; drift {drift:+.2} ms",
        prompt.len(),
        sorted[0],
        sorted[sorted.len() - 1]
    );
    if !(49.0..=51.0).contains(&rate) {
        return Err(format!("{figures}: expected 50 packets/s ± 2%"));
    }
    // Upper bound only: one late packet makes one long and one short gap.
    if p99 > 25.0 {
        return Err(format!("{figures}: expected a p99 gap within 20 + 5 ms"));
    }
    if drift.abs() > 5.0 {
        return Err(format!(
            "{figures}: expected no drift from a 20 ms clock (within ± 5 ms over the prompt)"
        ));
    }
    Ok(figures)
}

/// `dialer call --prompt WAV --dtmf-timeout 3` against uas_dtmf_pcap.xml,
/// which answers with PCMA and telephone-event/8000 (101), plays
/// g711a.pcap (7 s of speech) and then RFC 2833 digits 1, 2, 3, # from
/// Debian's sip-tester pcaps, and waits for the dialer's BYE. The dialer
/// plays a 6 s tone prompt meanwhile; tshark captures the RTP on loopback.
/// Checks: the digits (exactly "123#", none from the speech), the RTP
/// counters and the AMD verdict in the JSON; the BYE 3 s after the last
/// digit; the dialer's RTP as `check_prompt_rtp` describes. ~13 s; needs
/// root (SIPp's pcap play and tshark's capture).
fn dtmf_pcap(name: &str, net: Net) {
    let dir = RunDir::new(name);
    let prompt = dir.path("prompt.wav");
    write_tone_wav(&prompt, PROMPT_FRAMES);
    let opts = SippOpts {
        timeout_s: MEDIA_SIPP_TIMEOUT_S,
        media: true,
        ..SippOpts::DEFAULT
    };
    let sipp = Sipp::start_with(&dir, "uas_dtmf_pcap.xml", net, opts);
    let media_port = sipp.media_port.expect("SIPp started with an RTP port");
    let mut capture = Capture::start(&dir, media_port);
    let trunk = net.trunk(sipp.port);
    let prompt_arg = prompt.display().to_string();
    let dialer = run_dialer_with(
        &[
            "call", "--trunk", &trunk, "--to", "100", "--from", "200", "-v",
        ],
        net.bind_args(),
        &["--prompt", &prompt_arg, "--dtmf-timeout", "3"],
        MEDIA_DIALER_BOUND,
    );
    sipp.finish();
    let packets = capture.finish(&dir);
    let run = Run {
        name,
        dir: &dir,
        sipp: Some(&sipp),
        kamailio: None,
        dialer: &dialer,
    };
    let json = run.json("answered", 200);
    run.reason(&json, "OK");
    run.hangup_by(&json, Some("us"));
    // SIPp checked the offer (PCMA, telephone-event as 101), played the
    // pcaps and got the BYE.
    run.sipp_exit(0);
    run.field(&json, "dtmf", "123#".into());
    // The '#' ends ~8.7 s after the answer; the BYE follows the 3 s timeout.
    run.ms(&json, "duration_ms", 11_000, 15_000);
    match json.get("amd") {
        Some(Value::Null) => {}
        Some(Value::Object(amd)) => {
            let verdict = amd.get("verdict").and_then(Value::as_str);
            run.check(
                verdict.is_some_and(|v| ["human", "machine", "not_sure"].contains(&v))
                    && amd.get("cause").is_some_and(Value::is_string),
                || format!("amd is {amd:?}, expected a verdict human|machine|not_sure and a cause"),
            );
        }
        other => run.fail(&format!(
            "amd is {other:?}, expected null or {{verdict, cause}}"
        )),
    }
    let rtp = match json.get("rtp") {
        Some(Value::Object(rtp)) => rtp.clone(),
        other => run.fail(&format!(
            "rtp is {other:?}, expected {{sent, received, lost, late}}"
        )),
    };
    for key in ["sent", "received", "lost", "late"] {
        run.check(rtp.get(key).is_some_and(Value::is_u64), || {
            format!("rtp.{key} is {:?}, expected a number", rtp.get(key))
        });
    }

    let packets = packets.unwrap_or_else(|e| run.fail(&format!("the capture: {e}")));
    let trace = read_lossy(&sipp.messages);
    let Some((dialer_addr, dialer_port)) = offered_audio(&trace) else {
        run.fail("no INVITE with an SDP offer (c=, m=audio) in SIPp's message trace");
    };
    let capture_files = format!(
        "(capture: {}, decoded: {})",
        capture.file.display(),
        dir.path("capture.txt").display()
    );
    run.check(dialer_addr == net.family.loopback().to_string(), || {
        format!("the offer's c= address is {dialer_addr}, expected the loopback address")
    });
    let (played, sent): (Vec<RtpPacket>, Vec<RtpPacket>) =
        packets.into_iter().partition(|p| p.src_port == media_port);
    // SIPp's side: every pcap packet, to the offer's port.
    run.check(
        played.len() == SIPP_PCAP_PACKETS && played.iter().all(|p| p.dst_port == dialer_port),
        || {
            format!(
                "SIPp played {}, expected {SIPP_PCAP_PACKETS} packets to port {dialer_port} \
                 (pcap play needs root; see SIPp's error log) {capture_files}",
                stream_summary(&played)
            )
        },
    );
    let received = rtp.get("received").and_then(Value::as_u64).unwrap_or(0);
    run.check(
        (SIPP_PCAP_DISTINCT as u64..=SIPP_PCAP_PACKETS as u64).contains(&received),
        || {
            format!(
                "rtp.received = {received}, SIPp played {SIPP_PCAP_PACKETS} packets \
                 ({SIPP_PCAP_DISTINCT} distinct)"
            )
        },
    );
    let sent_json = rtp.get("sent").and_then(Value::as_u64).unwrap_or(0);
    run.check(sent_json == sent.len() as u64, || {
        format!(
            "rtp.sent = {sent_json}, the capture has {} packets from the dialer {capture_files}",
            sent.len()
        )
    });
    match check_prompt_rtp(&sent, dialer_port) {
        Ok(figures) => eprintln!("[sipp.rs] {name}: {figures}"),
        Err(e) => run.fail(&format!("{e}\n{}\n{capture_files}", stream_summary(&sent))),
    }
}

/// Runs `scenario` as test `name` over `net`; over IPv6 only where this
/// machine has ::1 (see `ipv6_loopback_available`).
fn run_over(net: Net, name: &str, scenario: fn(&str, Net)) {
    if net.family == Family::V6 && !ipv6_loopback_available(name) {
        return;
    }
    scenario(name, net);
}

/// `mod $module` with one #[test] per scenario, each over `Net::$net`, named
/// `$module::$scenario` (its run is called "$module_$scenario").
macro_rules! tests_over {
    ($module:ident, $net:ident, [$($scenario:ident),*]) => {
        mod $module {
            $(
                #[test]
                fn $scenario() {
                    super::run_over(
                        super::Net::$net,
                        concat!(stringify!($module), "_", stringify!($scenario)),
                        super::$scenario,
                    );
                }
            )*
        }
    };
}

/// The scenarios with SIPp alone run over UDP and TCP on 127.0.0.1 (`udp::`,
/// `tcp::`) and on ::1 (`udp6::`, `tcp6::`); those through Kamailio, and the
/// media ones (RTP over UDP on 127.0.0.1 whatever the signalling), over IPv4
/// only.
macro_rules! all_tests {
    (
        sipp: [$($sipp:ident),* $(,)?],
        kamailio: [$($kam:ident),* $(,)?],
        media: [$($media:ident),* $(,)?] $(,)?
    ) => {
        tests_over!(udp, UDP, [$($sipp,)* $($kam,)* $($media),*]);
        tests_over!(tcp, TCP, [$($sipp,)* $($kam,)* $($media),*]);
        tests_over!(udp6, UDP6, [$($sipp),*]);
        tests_over!(tcp6, TCP6, [$($sipp),*]);
    };
}

all_tests! {
    sipp: [
        answer_bye_them,
        answer_bye_us,
        busy,
        no_answer,
        not_found,
        auth_401,
        auth_401_wrong_password,
        auth_407,
        early_media_183,
        reinvite,
        probe_register,
        probe_wrong_password,
    ],
    kamailio: [kamailio_auth, kamailio_wrong_password, kamailio_no_credentials],
    media: [dtmf_pcap],
}

/// Tests that wait out a protocol timer: each takes over 30 s (skip them with
/// `cargo nextest run -E 'not test(/^slow::/)'`).
mod slow {
    /// About 33 s (Timer F), bounded at 50 s.
    #[test]
    fn udp_probe_silent_trunk() {
        super::probe_silent_trunk("udp_probe_silent_trunk");
    }
}
