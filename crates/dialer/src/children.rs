//! Processes the dialer starts for itself: `dialer simulate` (the bench's and the demo's
//! callees) and the reference speech recogniser (`asr/server.py`, when it is set up). Each is
//! stopped by its PID, never by name.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// A directory removed on drop.
#[derive(Debug)]
pub(crate) struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> anyhow::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("dialer-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port free for both UDP and TCP (the simulator binds both).
pub(crate) fn free_loopback_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let udp = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = udp.local_addr()?.port();
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no free loopback port"))
}

fn sigterm(child: &Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
}

/// Which personas the simulator plays.
#[derive(Debug)]
pub(crate) enum Personas {
    File(PathBuf),
    /// Written to a temporary file.
    Text(&'static str),
}

/// A `dialer simulate` child on a free loopback port.
pub(crate) struct Simulator {
    child: Child,
    pub pid: String,
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Simulator(pid {}, {})", self.pid, self.addr)
    }
}

impl Simulator {
    /// Start it (this same binary) and wait until it listens; it exits by itself after
    /// `lifetime` at the latest.
    pub fn start(
        personas: &Personas,
        seed: u64,
        lifetime: Duration,
        measure_send: bool,
        extra_args: &[&str],
    ) -> anyhow::Result<Simulator> {
        let dir = TempDir::new("sim")?;
        let personas = match personas {
            Personas::File(p) => p.clone(),
            Personas::Text(t) => {
                let p = dir.0.join("personas.toml");
                std::fs::write(&p, t).with_context(|| format!("cannot write {}", p.display()))?;
                p
            }
        };
        let port = free_loopback_port().context("cannot find a port for the simulator")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let exe = std::env::current_exe().context("cannot find the dialer binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("simulate")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--personas")
            .arg(&personas)
            .arg("--seed")
            .arg(seed.to_string())
            .arg("--duration")
            .arg(format!("{:.1}", lifetime.as_secs_f64()));
        if measure_send {
            cmd.arg("--measure-send");
        }
        cmd.args(extra_args);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `dialer simulate`")?;
        let pid = child.id().to_string();
        let mut sim = Simulator {
            child,
            pid,
            addr,
            _dir: dir,
        };
        // Ready once its TCP listener accepts (UDP and TCP are bound together).
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(sim);
            }
            if let Ok(Some(status)) = sim.child.try_wait() {
                anyhow::bail!("`dialer simulate` exited at start ({status})");
            }
            if Instant::now() > deadline {
                let _ = sim.child.kill();
                let _ = sim.child.wait();
                anyhow::bail!("`dialer simulate` did not start listening on {addr} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (it hangs up, prints its summary and exits); its summary.
    pub fn stop(mut self) -> Option<serde_json::Value> {
        sigterm(&self.child);
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        let _ = self.child.wait();
        out.lines()
            .rev()
            .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    }
}

/// The reference recogniser, when `scripts/setup-asr.sh` has set it up.
#[derive(Debug)]
pub(crate) struct AsrServer {
    child: Child,
    pub url: String,
}

impl AsrServer {
    /// Where `scripts/setup-asr.sh` puts the virtualenv and model.
    pub fn home() -> Option<PathBuf> {
        std::env::var_os("ASR_HOME").map(PathBuf::from).or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/dialer-asr"))
        })
    }

    /// Start `asr/server.py` (found under `repo`) if the virtualenv and model exist; `None`
    /// (and why) when they do not.
    pub fn start_if_set_up(repo: &Path) -> Result<AsrServer, String> {
        let home = Self::home().ok_or("no HOME")?;
        let python = home.join("venv/bin/python");
        let model = home.join("model");
        let server = repo.join("asr/server.py");
        if !python.is_file() || !model.join("model.bin").is_file() || !server.is_file() {
            return Err(format!(
                "the reference recogniser is not set up ({}; run scripts/setup-asr.sh)",
                home.display()
            ));
        }
        let mut child = Command::new(&python)
            .arg(&server)
            .args(["--listen", "127.0.0.1:0", "--model-dir"])
            .arg(&model)
            .args(["--threads", "2", "--max-concurrent", "1", "--queue", "64"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", server.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("ready ") {
                    let _ = tx.send(addr.trim().to_owned());
                    return;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(AsrServer {
                child,
                url: format!("http://{addr}"),
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err("the reference recogniser did not become ready within 60 s".into())
            }
        }
    }
}

impl Drop for AsrServer {
    fn drop(&mut self) {
        sigterm(&self.child);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
