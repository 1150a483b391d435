//! `dialer probe`: is this trunk alive, and does it accept our registration?

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use engine::driver::{DriverConfig, DriverEvent, SipDriver};
use engine::transport::TransportConfig;
use engine::trunk::TrunkConfig;
use sip::{Agent, AgentEvent, RegistrationState};

use crate::ProbeArgs;

/// What the probe found.
#[derive(Debug, Default)]
struct Findings {
    up: Option<bool>,
    options_status: Option<u16>,
    options_ms: Option<u64>,
    registered: Option<bool>,
    register_status: Option<u16>,
    expires: Option<u64>,
    unregistered: Option<bool>,
}

pub(crate) fn main(runtime: &tokio::runtime::Runtime, args: ProbeArgs) -> ExitCode {
    let mut tc = TrunkConfig::from_uri(&args.trunk);
    tc.name = "probe".into();
    tc.username = args.user.clone();
    tc.password = args.password.clone();
    tc.register = args.register;
    tc.register_expires = args.expires;
    tc.options_interval_secs = 3600; // one ping is all the probe needs
    let trunk = match tc.validate() {
        Ok(t) => t,
        Err(engine::trunk::TrunkError::Invalid { field, reason, .. }) => {
            let arg = match field {
                "password" => "--user/--password",
                "register" => "--register (needs --user and --password)",
                _ => "--trunk",
            };
            eprintln!("dialer probe: invalid {arg}: {reason}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("dialer probe: {e}");
            return ExitCode::from(2);
        }
    };
    if args.register && args.expires == 0 {
        eprintln!("dialer probe: invalid --expires 0: a registration needs a positive expiry");
        return ExitCode::from(2);
    }
    match runtime.block_on(run(trunk, args.bind, args.register, crate::random_seed())) {
        Ok(f) => {
            let ok = f.up == Some(true) && (!args.register || f.registered == Some(true));
            println!(
                "{}",
                serde_json::json!({
                    "trunk": match f.up { Some(true) => "up", Some(false) => "down", None => "unknown" },
                    "options_status": f.options_status,
                    "options_ms": f.options_ms,
                    "registered": f.registered,
                    "register_status": f.register_status,
                    "expires": f.expires,
                    "unregistered": f.unregistered,
                })
            );
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("dialer probe: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(
    trunk: engine::trunk::Trunk,
    bind: SocketAddr,
    register: bool,
    seed: u64,
) -> anyhow::Result<Findings> {
    let mut driver = SipDriver::bind(DriverConfig {
        transport: TransportConfig {
            bind,
            ..TransportConfig::default()
        },
        endpoint: sip::EndpointConfig {
            seed,
            ..sip::EndpointConfig::default()
        },
    })
    .await
    .with_context(|| format!("cannot bind SIP sockets on {bind}"))?;
    let local = driver
        .local_addr_towards(&trunk.dest())
        .await
        .context("cannot find our address towards the trunk")?;
    let started = Instant::now();
    let agents = driver.start_trunk_agents(&trunk, local).await;
    let mut f = Findings::default();
    // Timer F (32 s) bounds the OPTIONS ping; registration with one challenge needs two
    // transactions. 70 s covers both on a silent trunk.
    let deadline = Instant::now() + Duration::from_secs(70);
    let mut registration = None;
    while Instant::now() < deadline {
        let done = f.up.is_some() && (!register || f.registered.is_some());
        if done {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = match tokio::time::timeout(left, driver.next_event()).await {
            Ok(Some(ev)) => ev,
            Ok(None) | Err(_) => break,
        };
        let DriverEvent::Agent(h, ev) = ev else {
            continue;
        };
        match ev {
            AgentEvent::TrunkUp { .. } | AgentEvent::TrunkDown { .. } => {
                f.up = Some(matches!(ev, AgentEvent::TrunkUp { .. }));
                f.options_ms = Some(started.elapsed().as_millis() as u64);
                if let Some(Agent::KeepAlive(k)) = driver.endpoint().agent(h) {
                    f.options_status = k.last_status();
                }
            }
            AgentEvent::Registration(RegistrationState::Registered { until }) => {
                registration = Some(h);
                f.registered = Some(true);
                f.register_status = Some(200);
                f.expires = Some(
                    until
                        .saturating_duration_since(Instant::now())
                        .as_secs_f64()
                        .round() as u64,
                );
            }
            AgentEvent::Registration(RegistrationState::Failed { status, .. }) => {
                f.registered = Some(false);
                f.register_status = status;
            }
            AgentEvent::Registration(_) => {}
        }
    }
    if let Some(h) = registration {
        driver.unregister(h).await;
        let until = Instant::now() + Duration::from_secs(35);
        f.unregistered = Some(false);
        while Instant::now() < until {
            let left = until.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, driver.next_event()).await {
                Ok(Some(DriverEvent::Agent(
                    a,
                    AgentEvent::Registration(RegistrationState::Unregistered),
                ))) if a == h => {
                    let status = match driver.endpoint().agent(h) {
                        Some(Agent::Registration(r)) => r.unregister_status(),
                        _ => None,
                    };
                    f.unregistered = Some(status.is_some_and(|s| (200..300).contains(&s)));
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
    let _ = agents;
    driver.linger(Duration::from_millis(300)).await;
    Ok(f)
}
