//! A seeded datagram network: one-way delay plus uniform jitter, independent loss per packet
//! (globally or per direction), and a bounded queue. Deterministic: the same seed and the same
//! sends give the same deliveries.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sip::IdGen;

/// Network settings.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per packet (packets may be reordered).
    pub jitter: Duration,
    /// Probability in `0.0..=1.0` that a packet is lost (overridden per direction by
    /// [`Network::set_loss`]).
    pub loss: f64,
    /// Most packets in flight; further sends are dropped and counted.
    pub max_in_flight: usize,
    pub seed: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            max_in_flight: 1 << 20,
            seed: 0x4E37,
        }
    }
}

/// Counters of the network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    pub sent: u64,
    pub delivered: u64,
    pub lost: u64,
    /// Dropped because the queue was full.
    pub overflow: u64,
}

/// One datagram on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub data: Bytes,
}

#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The simulated network.
#[derive(Debug)]
pub struct Network {
    cfg: NetConfig,
    rng: IdGen,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    link_loss: HashMap<(SocketAddr, SocketAddr), f64>,
    stats: NetStats,
}

/// `p` as a threshold on 32 random bits.
fn threshold(p: f64) -> u64 {
    let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
    // Exact for the probabilities tests use; 1.0 maps to 2^32 so every draw is below it.
    (p * 4_294_967_296.0).round() as u64
}

impl Network {
    pub fn new(cfg: NetConfig) -> Self {
        Self {
            rng: IdGen::new(cfg.seed),
            cfg,
            queue: BinaryHeap::new(),
            seq: 0,
            link_loss: HashMap::new(),
            stats: NetStats::default(),
        }
    }

    /// Loss probability from `src` to `dst` (one direction).
    pub fn set_loss(&mut self, src: SocketAddr, dst: SocketAddr, p: f64) {
        self.link_loss.insert((src, dst), p);
    }

    /// Loss probability of every direction without its own setting.
    pub fn set_default_loss(&mut self, p: f64) {
        self.cfg.loss = p;
    }

    pub fn stats(&self) -> NetStats {
        self.stats
    }

    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Put a datagram on the wire at `now`. False when it was lost or the queue was full.
    pub fn send(
        &mut self,
        now: Instant,
        src: SocketAddr,
        dst: SocketAddr,
        data: impl Into<Bytes>,
    ) -> bool {
        self.stats.sent += 1;
        let loss = self
            .link_loss
            .get(&(src, dst))
            .copied()
            .unwrap_or(self.cfg.loss);
        let draw = self.rng.next_u64() >> 32;
        if draw < threshold(loss) {
            self.stats.lost += 1;
            tracing::trace!(%src, %dst, "packet lost");
            return false;
        }
        if self.queue.len() >= self.cfg.max_in_flight {
            self.stats.overflow += 1;
            return false;
        }
        let jitter_ns = u64::try_from(self.cfg.jitter.as_nanos()).unwrap_or(u64::MAX);
        let extra = if jitter_ns == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(self.rng.below(jitter_ns.saturating_add(1)))
        };
        self.seq += 1;
        self.queue.push(Reverse(InFlight {
            at: now + self.cfg.delay + extra,
            seq: self.seq,
            datagram: Datagram {
                src,
                dst,
                data: data.into(),
            },
        }));
        true
    }

    /// When the next datagram arrives.
    pub fn next_delivery(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(p)| p.at)
    }

    /// The next datagram due at or before `now`, in arrival order.
    pub fn poll_delivery(&mut self, now: Instant) -> Option<Datagram> {
        if self.next_delivery()? > now {
            return None;
        }
        let Reverse(p) = self.queue.pop()?;
        self.stats.delivered += 1;
        Some(p.datagram)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn delay_order_and_loss_are_deterministic() {
        let t0 = Instant::now();
        let run = |seed| {
            let mut n = Network::new(NetConfig {
                delay: Duration::from_millis(5),
                jitter: Duration::from_millis(2),
                loss: 0.2,
                seed,
                ..NetConfig::default()
            });
            for i in 0..10_000u32 {
                n.send(t0, addr(1), addr(2), i.to_be_bytes().to_vec());
            }
            let mut got = vec![];
            while let Some(d) = n.poll_delivery(t0 + Duration::from_millis(7)) {
                got.push(d.data);
            }
            (got, n.stats())
        };
        let (a, sa) = run(1);
        let (b, sb) = run(1);
        let (c, _) = run(2);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_ne!(a, c);
        assert_eq!(sa.delivered + sa.lost, 10_000);
        assert!((1_800..2_200).contains(&sa.lost), "lost {}", sa.lost);
    }

    #[test]
    fn nothing_arrives_before_the_delay_and_per_link_loss_applies() {
        let t0 = Instant::now();
        let mut n = Network::new(NetConfig::default());
        n.set_loss(addr(1), addr(2), 1.0);
        assert!(!n.send(t0, addr(1), addr(2), &b"x"[..]));
        assert!(n.send(t0, addr(2), addr(1), &b"y"[..]));
        assert_eq!(n.poll_delivery(t0), None);
        assert_eq!(n.next_delivery(), Some(t0 + Duration::from_millis(10)));
        let d = n.poll_delivery(t0 + Duration::from_millis(10)).unwrap();
        assert_eq!((d.src, d.dst, &d.data[..]), (addr(2), addr(1), &b"y"[..]));
    }

    #[test]
    fn bounded_queue_drops_and_counts() {
        let t0 = Instant::now();
        let mut n = Network::new(NetConfig {
            max_in_flight: 2,
            ..NetConfig::default()
        });
        for _ in 0..5 {
            n.send(t0, addr(1), addr(2), &b"x"[..]);
        }
        assert_eq!(n.in_flight(), 2);
        assert_eq!(n.stats().overflow, 3);
    }
}
