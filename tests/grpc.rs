//! The control API end to end, from a Python client generated with grpcio-tools
//! (`tests/grpc/e2e.py`): `dialer simulate` answers as a crowd keying their answers,
//! `dialer serve` runs the engine and the API on a SQLite store, and the Python client creates a
//! campaign, imports contacts (bad rows reported by row and field), starts it, watches it,
//! streams results while this test restarts `dialer serve` (the stream resumes from its
//! cursor: no gaps, nothing lost), reads the report, opts a number out, exports CSV, checks
//! auth failures, reflection, health, and scrapes `/metrics`.
//!
//! Needs the Python venv of `scripts/setup-grpc-py.sh` (run here; idempotent, quick when done).
//! Coordination: the script prints `RESTART <seq>` on stdout when it wants the server
//! restarted, this test restarts it on the same ports and answers `RESTARTED` on its stdin.

mod common;
use common::{Proc, RunDir, Sim, free_port};

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The whole Python run.
const SCRIPT_BOUND: Duration = Duration::from_secs(420);
/// `dialer serve` up and listening.
const SERVE_READY: Duration = Duration::from_secs(60);
/// Graceful stop of `dialer serve` (live calls finish first).
const SERVE_STOP: Duration = Duration::from_secs(90);
const TOKEN: &str = "e2e-token-5f1c2a9b7d";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repo root")
}

/// Runs scripts/setup-grpc-py.sh (venv, pinned packages, stubs); the venv's python.
fn python() -> PathBuf {
    let out = Command::new(repo().join("scripts/setup-grpc-py.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("run scripts/setup-grpc-py.sh");
    assert!(
        out.status.success(),
        "scripts/setup-grpc-py.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let home = std::env::var_os("GRPC_PY_HOME").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/dialer-grpc-py"),
        PathBuf::from,
    );
    home.join("venv/bin/python")
}

/// Personas: people keying answers after the prompts, and some busy lines (retried).
const PERSONAS: &str = r#"kind = "human_dtmf"
ring_secs = 0.5
delay_secs = 16
digits = "1"
max_secs = 60

[[persona]]
name = "details"
weight = 1
kind = "human_dtmf"
ring_secs = 0.5
delay_secs = 16
digits = "2"
max_secs = 60

[[persona]]
name = "not_interested"
weight = 1
kind = "human_dtmf"
ring_secs = 0.5
delay_secs = 16
digits = "4"
max_secs = 60

[[persona]]
name = "opt_out"
weight = 0.3
kind = "human_dtmf"
ring_secs = 0.5
delay_secs = 16
digits = "9"
max_secs = 60

[[persona]]
name = "busy"
weight = 0.5
kind = "busy"
"#;

struct Serve {
    dir: RunDir,
    config: PathBuf,
    grpc: u16,
    metrics: u16,
    proc: Option<Proc>,
    runs: u32,
}

impl Serve {
    fn new(sim_port: u16) -> Serve {
        let dir = RunDir::new("grpc-serve");
        let grpc = free_port();
        let metrics = free_port();
        let data = dir.path("data");
        let config = dir.path("dialer.toml");
        let text = format!(
            r#"[node]
name = "node-e2e"
data_dir = "{data}"

[store]
url = "sqlite://{data}/dialer.db"

[compliance]
hmac_key = "e2e-secret"

[sip]
bind = "127.0.0.1:0"

[[trunks]]
name = "sim"
uri = "sip:127.0.0.1:{sim_port}"
cps = 50
max_channels = 200

[grpc]
listen = "127.0.0.1:{grpc}"
tokens = ["{TOKEN}"]

[metrics]
listen = "127.0.0.1:{metrics}"

[scripts]
dir = "{scripts}"

[log]
format = "text"
"#,
            data = data.display(),
            scripts = repo().join("config/scripts").display(),
        );
        std::fs::write(&config, text).expect("write dialer.toml");
        Serve {
            dir,
            config,
            grpc,
            metrics,
            proc: None,
            runs: 0,
        }
    }

    fn start(&mut self) {
        self.runs += 1;
        let name = format!("serve{}", self.runs);
        let config = self.config.to_str().expect("utf-8").to_string();
        let mut p = Proc::spawn(&self.dir, &name, &["serve", "--config", &config]);
        let deadline = Instant::now() + SERVE_READY;
        loop {
            let err = p.stderr();
            if err.contains("gRPC listening on") && err.contains("metrics on") {
                break;
            }
            if let Some(st) = p.wait_for(Duration::ZERO) {
                panic!("dialer serve exited early ({st}):\n{err}");
            }
            assert!(
                Instant::now() < deadline,
                "dialer serve not ready within {SERVE_READY:?}:\n{err}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let err = p.stderr();
        assert!(
            err.contains(&format!("gRPC listening on 127.0.0.1:{}", self.grpc)),
            "gRPC is not on the configured port:\n{err}"
        );
        self.proc = Some(p);
    }

    /// SIGTERM, then wait for the graceful stop (SIGKILL past the bound).
    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.signal("-TERM");
            if p.wait_for(SERVE_STOP).is_none() {
                p.signal("-KILL");
                let _ = p.wait_for(Duration::from_secs(5));
                panic!(
                    "dialer serve did not stop within {SERVE_STOP:?} of SIGTERM:\n{}",
                    p.stderr()
                );
            }
        }
    }

    fn logs(&self) -> String {
        let mut s = String::new();
        for i in 1..=self.runs {
            let path = self.dir.path(&format!("serve{i}.err"));
            s.push_str(&format!("--- serve run {i} stderr:\n"));
            s.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        s
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(p) = self.proc.take() {
            p.signal("-KILL");
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn python_client_drives_a_campaign_through_a_server_restart() {
    let python = python();
    let sim = Sim::start("grpc-e2e", PERSONAS, &[]);
    let mut serve = Serve::new(sim.port);
    serve.start();

    let log_path = serve.dir.path("e2e.err");
    let mut py = Command::new(&python)
        .arg(repo().join("tests/grpc/e2e.py"))
        .args(["--addr", &format!("127.0.0.1:{}", serve.grpc)])
        .args(["--token", TOKEN])
        .args([
            "--metrics",
            &format!("http://127.0.0.1:{}/metrics", serve.metrics),
        ])
        .args(["--trunk", "sim", "--contacts", "24"])
        .env("PYTHONPATH", repo().join("tests/grpc/gen"))
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log_path).expect("log file"))
        .spawn()
        .expect("start tests/grpc/e2e.py");
    let mut stdin = py.stdin.take().expect("stdin");
    let stdout = py.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + SCRIPT_BOUND;
    let mut done = None;
    let mut restarts = 0;
    while done.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = py.kill();
                panic!(
                    "e2e.py did not finish within {SCRIPT_BOUND:?}\n--- e2e.py:\n{}\n{}",
                    tail(&log_path, 60),
                    serve.logs()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(seq) = line.strip_prefix("RESTART ") {
            restarts += 1;
            eprintln!("restarting dialer serve (client at seq {seq})");
            serve.stop();
            serve.start();
            writeln!(stdin, "RESTARTED").expect("answer the script");
            stdin.flush().expect("flush");
        } else if let Some(summary) = line.strip_prefix("DONE ") {
            done = Some(summary.to_string());
        } else {
            eprintln!("e2e.py: {line}");
        }
    }
    let status = {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = py.try_wait().expect("wait") {
                break Some(st);
            }
            if Instant::now() > end {
                let _ = py.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let ok = status.is_some_and(|s| s.success()) && done.is_some();
    assert!(
        ok,
        "e2e.py failed ({status:?})\n--- e2e.py:\n{}\n{}",
        tail(&log_path, 80),
        serve.logs()
    );
    assert_eq!(restarts, 1, "the script asked for one restart");
    let summary: serde_json::Value =
        serde_json::from_str(done.as_deref().unwrap_or("{}")).expect("summary JSON");
    eprintln!("e2e summary: {summary}");
    assert!(summary["results"]["count"].as_u64().unwrap_or(0) >= 24);
    serve.stop();
}
