//! The media clock: a 20 ms tick, on time.
//!
//! tokio's timer wheel has a 1 ms resolution and rounds deadlines up, so an `interval` tick
//! fires 0–1 ms late before the loop even runs, and that lateness is in every RTP packet's send
//! time. Here a small thread sleeps to each absolute deadline (`t0 + k × 20 ms`, so there is no
//! drift) with the kernel's high-resolution timers and hands the scheduled instant to the loop
//! through a channel, which wakes the runtime at once. One thread and one wake-up per tick for
//! all calls, whatever their number.
//!
//! If the loop falls behind, ticks queue up (as tokio's `MissedTickBehavior::Burst`) so every
//! call still gets one frame per 20 ms of wall time; past [`MAX_BACKLOG`] queued ticks the
//! oldest are dropped and counted.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Ticks that may wait for the loop before the clock drops them.
pub const MAX_BACKLOG: usize = 50;

/// A periodic clock on its own thread; stops when dropped.
#[derive(Debug)]
pub struct MediaClock {
    rx: mpsc::Receiver<Instant>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MediaClock {
    /// Ticks every `period`, the first one at `start`.
    pub fn start(start: Instant, period: Duration) -> std::io::Result<MediaClock> {
        let (tx, rx) = mpsc::channel(MAX_BACKLOG);
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let (stop2, dropped2) = (Arc::clone(&stop), Arc::clone(&dropped));
        let thread = std::thread::Builder::new()
            .name("media-clock".into())
            .spawn(move || {
                let mut k: u32 = 0;
                while !stop2.load(Ordering::Relaxed) {
                    let due = start + period * k;
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    match tx.try_send(due) {
                        Ok(()) => {}
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            dropped2.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return,
                    }
                    k = k.wrapping_add(1);
                    if k == 0 {
                        // 2^32 periods (2.7 years at 20 ms): keep going from a new origin.
                        return;
                    }
                }
            })?;
        Ok(MediaClock {
            rx,
            stop,
            dropped,
            thread: Some(thread),
        })
    }

    /// The next tick's scheduled instant (cancel-safe).
    pub async fn tick(&mut self) -> Instant {
        match self.rx.recv().await {
            Some(t) => t,
            // The thread is gone (it cannot panic; this is a stop): never tick again.
            None => std::future::pending().await,
        }
    }

    /// Ticks dropped because the loop fell more than [`MAX_BACKLOG`] behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for MediaClock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.rx.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ticks_on_an_absolute_schedule() {
        let start = Instant::now() + Duration::from_millis(5);
        let mut clock = MediaClock::start(start, Duration::from_millis(10)).unwrap();
        let mut late = Duration::ZERO;
        for k in 0..20u32 {
            let t = clock.tick().await;
            assert_eq!(t, start + Duration::from_millis(10) * k);
            late = late.max(Instant::now().saturating_duration_since(t));
        }
        // Generous for a loaded CI machine; typically tens of microseconds.
        assert!(late < Duration::from_millis(50), "{late:?}");
        assert_eq!(clock.dropped(), 0);
    }

    #[tokio::test]
    async fn a_slow_loop_gets_the_missed_ticks_in_a_burst() {
        let start = Instant::now();
        let mut clock = MediaClock::start(start, Duration::from_millis(2)).unwrap();
        std::thread::sleep(Duration::from_millis(30));
        let mut got = Vec::new();
        for _ in 0..10 {
            got.push(clock.tick().await);
        }
        for (k, t) in got.iter().enumerate() {
            assert_eq!(*t, start + Duration::from_millis(2) * k as u32);
        }
    }
}
