//! Helpers shared by the integration test binaries: the dialer binary, free loopback ports,
//! scratch directories, child processes killed by PID on drop, and a one-persona `dialer
//! simulate`.
// Each test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `$DIALER_BIN`, else `<target>/<profile>/dialer`: this test runs from
/// `<target>/<profile>/deps/<test>-<hash>`.
pub fn dialer_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("DIALER_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "DIALER_BIN={} does not exist; run `cargo build -p dialer` first",
            path.display()
        );
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("test binary has a directory");
    let profile = if deps.file_name().is_some_and(|n| n == "deps") {
        deps.parent().expect("deps has a parent")
    } else {
        deps
    };
    let path = profile.join("dialer");
    assert!(
        path.is_file(),
        "the dialer binary {} does not exist: run `cargo build -p dialer` first \
         (same profile and target dir), or set DIALER_BIN",
        path.display()
    );
    path
}

/// How long one `dialer call` may run.
pub const CALL_BOUND: Duration = Duration::from_secs(15);
/// How long the simulator may take to exit after its last call.
pub const EXIT_BOUND: Duration = Duration::from_secs(5);
/// How long the simulator may take to bind its port.
pub const READY_BOUND: Duration = Duration::from_secs(5);

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port free for both UDP and TCP, never returned twice.
pub fn free_port() -> u16 {
    for _ in 0..200 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind UDP");
        let port = udp.local_addr().expect("local_addr").port();
        let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
            continue;
        };
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get_or_insert_with(HashSet::new).insert(port) {
            drop((udp, tcp));
            return port;
        }
    }
    panic!("no free loopback port");
}

/// A scratch directory, removed unless the test fails.
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn new(name: &str) -> RunDir {
        let dir = std::env::temp_dir().join(format!(
            "dialer-simulate-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        fs::create_dir_all(&dir).expect("create run dir");
        RunDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
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

/// A child killed (by PID) when dropped; stdout and stderr go to files.
pub struct Proc {
    pub child: Child,
    pub status: Option<ExitStatus>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn spawn(dir: &RunDir, name: &str, args: &[&str]) -> Proc {
        let stdout = dir.path(&format!("{name}.out"));
        let stderr = dir.path(&format!("{name}.err"));
        let child = Command::new(dialer_bin())
            .args(args)
            .env(
                "DIALER_LOG",
                std::env::var("DIALER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).expect("stdout file"))
            .stderr(fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dialer {args:?}: {e}"));
        Proc {
            child,
            status: None,
            stdout,
            stderr,
        }
    }

    pub fn wait_for(&mut self, bound: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + bound;
        while self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
            if self.status.is_some() || Instant::now() >= deadline {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.status
    }

    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() && self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A running simulator with one persona.
pub struct Sim {
    pub dir: RunDir,
    pub port: u16,
    pub proc: Proc,
}

impl Sim {
    /// `persona` is the body of one `[[persona]]` table (name "p", weight 1 are added).
    pub fn start(test: &str, persona: &str, extra: &[&str]) -> Sim {
        let dir = RunDir::new(test);
        let personas = dir.path("personas.toml");
        fs::write(
            &personas,
            format!("[[persona]]\nname = \"p\"\nweight = 1\n{persona}\n"),
        )
        .expect("write personas");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "simulate",
            "--listen",
            &listen,
            "--personas",
            personas.to_str().expect("utf-8 path"),
            "--seed",
            "7",
        ];
        args.extend_from_slice(extra);
        let mut proc = Proc::spawn(&dir, "simulate", &args);
        // Ready once the TCP listener (bound together with UDP) accepts.
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + READY_BOUND;
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Some(st) = proc.wait_for(Duration::ZERO) {
                panic!("dialer simulate exited early ({st}):\n{}", proc.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "dialer simulate did not bind {addr} within {READY_BOUND:?}:\n{}",
                proc.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
        Sim { dir, port, proc }
    }

    /// Run `dialer call` against the simulator; its JSON.
    pub fn call(&self, transport: &str, extra: &[&str]) -> Value {
        self.call_within(transport, extra, CALL_BOUND)
    }

    /// [`Sim::call`] with its own bound.
    pub fn call_within(&self, transport: &str, extra: &[&str], bound: Duration) -> Value {
        let trunk = match transport {
            "tcp" => format!("sip:127.0.0.1:{};transport=tcp", self.port),
            _ => format!("sip:127.0.0.1:{}", self.port),
        };
        let mut args = vec!["call", "--trunk", &trunk, "--to", "+380441234567"];
        args.extend_from_slice(extra);
        let mut call = Proc::spawn(&self.dir, "call", &args);
        let status = call.wait_for(bound);
        assert!(
            status.is_some_and(|s| s.success()),
            "dialer call ended with {status:?} within {bound:?}\n--- call stderr:\n{}\n--- simulate stderr:\n{}",
            call.stderr(),
            self.proc.stderr()
        );
        let out = call.stdout();
        serde_json::from_str(out.trim()).unwrap_or_else(|e| {
            panic!(
                "dialer call printed no JSON ({e}): {out:?}\n--- call stderr:\n{}",
                call.stderr()
            )
        })
    }

    /// Wait for the simulator to exit (after --max-calls); its summary.
    pub fn summary(mut self) -> Value {
        let status = self.proc.wait_for(EXIT_BOUND);
        assert!(
            status.is_some_and(|s| s.success()),
            "dialer simulate ended with {status:?}:\n{}",
            self.proc.stderr()
        );
        let out = self.proc.stdout();
        let line = out.lines().last().unwrap_or_default();
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("no summary JSON ({e}): {out:?}\n{}", self.proc.stderr()))
    }
}

/// `psql` as the superuser against the machine's PostgreSQL (127.0.0.1:5432, trust auth).
fn psql_status(sql: &str) -> std::io::Result<ExitStatus> {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
            sql,
        ])
        .status()
}

/// [`psql_status`], asserting it worked.
pub fn psql(sql: &str) {
    let st = psql_status(sql).expect("psql (PostgreSQL runs on 127.0.0.1:5432 on these machines)");
    assert!(
        st.success(),
        "psql {sql:?} failed: PostgreSQL must run on 127.0.0.1:5432"
    );
}

/// A fresh PostgreSQL database for one test, dropped (connections forced out) on drop.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub fn create(test: &str) -> PgDb {
        let name = format!("dialer_t_{test}_{}", std::process::id());
        psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        psql(&format!("CREATE DATABASE {name}"));
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        PgDb { name, url }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "test",
                "-q",
                "-c",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .status();
    }
}

/// A current-thread tokio runtime for tests that talk to the store directly.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The repository's root (config/, scripts/ …).
pub fn repo() -> PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// `dialer simulate` with `personas` on a free port, its call log in `<dir>/<name>.jsonl`
/// (see `dialer simulate --call-log`); ready once its TCP listener accepts.
pub fn start_logged_simulator(
    dir: &RunDir,
    name: &str,
    personas: &std::path::Path,
    seed: u64,
) -> (Proc, u16) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let log = dir.path(&format!("{name}.jsonl"));
    let seed = seed.to_string();
    let mut sim = Proc::spawn(
        dir,
        name,
        &[
            "simulate",
            "--listen",
            &listen,
            "--personas",
            personas.to_str().expect("utf-8"),
            "--seed",
            &seed,
            "--duration",
            "600",
            "--call-log",
            log.to_str().expect("utf-8"),
        ],
    );
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(sim.wait_for(Duration::ZERO).is_none(), "{}", sim.stderr());
        assert!(Instant::now() < deadline, "simulator {name} not ready");
        thread::sleep(Duration::from_millis(50));
    }
    (sim, port)
}

/// One trunk of a node's configuration: name, simulator port, calls per second, channels.
pub struct TestTrunk<'a> {
    pub name: &'a str,
    pub port: u16,
    pub cps: f64,
    pub channels: u32,
}

/// `<dir>/<node>.toml` for `dialer serve`: the store, these trunks, leases of 5 s, every
/// listener on a free loopback port, 5 s of shutdown grace. Returns its path.
pub fn write_node_config(
    dir: &RunDir,
    node: &str,
    store_url: &str,
    trunks: &[TestTrunk<'_>],
) -> String {
    let trunks: String = trunks
        .iter()
        .map(|t| {
            format!(
                "[[trunks]]\nname = \"{}\"\nuri = \"sip:127.0.0.1:{}\"\ncps = {:?}\nmax_channels = {}\n",
                t.name, t.port, t.cps, t.channels
            )
        })
        .collect();
    let path = dir.path(&format!("{node}.toml"));
    let text = format!(
        r#"
[node]
name = "{node}"
data_dir = "{data}"
lease_secs = 5
[store]
url = "{store_url}"
[compliance]
hmac_key = "integration-test-key"
[sip]
bind = "127.0.0.1:0"
{trunks}[metrics]
listen = "127.0.0.1:0"
[grpc]
listen = "127.0.0.1:0"
[shutdown]
grace_secs = 5
"#,
        data = dir.path(&format!("data-{node}")).display(),
    );
    fs::write(&path, text).expect("write config");
    path.to_str().expect("utf-8").to_owned()
}

/// `dialer serve --config CONFIG` (stderr in `<dir>/serve-<node>-<run>.err`), once running.
pub fn start_node(dir: &RunDir, node: &str, config: &str, run: u32) -> Proc {
    let mut p = Proc::spawn(
        dir,
        &format!("serve-{node}-{run}"),
        &["serve", "--config", config],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !p.stderr().contains("dialer serve: node ") {
        if let Some(st) = p.wait_for(Duration::ZERO) {
            panic!("dialer serve {node} exited ({st}):\n{}", p.stderr());
        }
        assert!(
            Instant::now() < deadline,
            "dialer serve {node} not ready:\n{}",
            p.stderr()
        );
        thread::sleep(Duration::from_millis(50));
    }
    p
}

/// `n` contacts `+38044<base + i>` in Kyiv, each with a web-form consent given a day ago.
pub fn consenting_contacts(base: u32, n: u32) -> Vec<store::NewContact> {
    (0..n)
        .map(|i| store::NewContact {
            phone_e164: format!("+38044{:07}", base + i),
            name: Some(format!("Contact {i}")),
            timezone: Some("Europe/Kyiv".into()),
            language: Some("ru".into()),
            attributes: std::collections::BTreeMap::new(),
            consent: Some(store::NewConsent {
                source: store::ConsentSource::WebForm,
                given_at_ms: chrono::Utc::now().timestamp_millis() - 86_400_000,
                text_version: "v1".into(),
                evidence: Some("form-1".into()),
            }),
        })
        .collect()
}
