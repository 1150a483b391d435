//! Batched UDP for the media clock: `recvmmsg(2)` reads every datagram waiting on a socket in
//! one system call, `sendmmsg(2)` sends a tick's packets to many peers in one.
//!
//! With a socket per call, a call's RTP socket gets about one packet per 20 ms tick. Draining it
//! with `recvfrom` costs two system calls per tick (the packet, then `EAGAIN`); `recvmmsg` with
//! `MSG_DONTWAIT` returns whatever is queued (one packet, or a burst after a scheduling hiccup)
//! in one call, and when it returned fewer than a full batch the socket is left for the next
//! tick. With one socket shared by all calls ([`crate::media::SocketMode::Shared`]) a read
//! returns a full batch of different calls' packets and a send carries [`SEND_BATCH`] of them.
//!
//! RTP sockets are not registered with the async reactor at all: the media clock reads every
//! socket once per tick anyway, so readiness notifications would only add an epoll event per
//! arriving packet (100,000 a second at 2,000 calls) for nothing.
//!
//! `nix` provides the safe wrappers (this workspace denies `unsafe`). Its `MultiHeaders` is not
//! `Send`, so it lives on the stack of one tick ([`Headers::new`], [`SendHeaders::new`]) and is
//! lent to every call.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg, sendmmsg};

/// Datagrams read by one system call at most on a call's own socket.
pub const BATCH: usize = 8;
/// Datagrams read by one system call at most on a socket shared by all calls.
pub const SHARED_BATCH: usize = 64;
/// Datagrams sent by one `sendmmsg` at most.
pub const SEND_BATCH: usize = 64;
/// Largest datagram kept; longer ones are dropped as truncated (RTP here is ≤ 172 bytes).
pub const DATAGRAM: usize = 2048;

/// The `mmsghdr` array of one receive batch, allocated once per tick and reused for every read.
#[derive(Debug)]
pub struct Headers<const N: usize = BATCH>(MultiHeaders<SockaddrStorage>);

impl<const N: usize> Headers<N> {
    pub fn new() -> Headers<N> {
        Headers(MultiHeaders::preallocate(N, None))
    }
}

impl<const N: usize> Default for Headers<N> {
    fn default() -> Self {
        Headers::new()
    }
}

/// Receive buffers of one batch and what the last read put in them.
#[derive(Debug)]
pub struct RecvBatch<const N: usize = BATCH> {
    bufs: Box<[[u8; DATAGRAM]; N]>,
    /// Length and source of each datagram of the last read.
    meta: [(usize, Option<SocketAddr>); N],
    len: usize,
    /// `recvmmsg` calls made, `EAGAIN` ones included.
    pub syscalls: u64,
    /// Datagrams dropped because they did not fit [`DATAGRAM`].
    pub truncated: u64,
}

impl<const N: usize> Default for RecvBatch<N> {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl<const N: usize> RecvBatch<N> {
    pub fn new() -> RecvBatch<N> {
        RecvBatch {
            bufs: vec![[0u8; DATAGRAM]; N]
                .into_boxed_slice()
                .try_into()
                .expect("a boxed slice of N buffers"),
            meta: [(0, None); N],
            len: 0,
            syscalls: 0,
            truncated: 0,
        }
    }

    /// Read up to `N` datagrams waiting on `socket` with one non-blocking system call.
    /// Returns how many; `Err(WouldBlock)` when none was waiting.
    pub fn recv(&mut self, headers: &mut Headers<N>, socket: &impl AsRawFd) -> io::Result<usize> {
        self.len = 0;
        self.syscalls += 1;
        let mut iovs: [[IoSliceMut<'_>; 1]; N] =
            self.bufs.each_mut().map(|b| [IoSliceMut::new(&mut b[..])]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut headers.0,
            iovs.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        let mut n = 0;
        for msg in results {
            if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                self.truncated += 1;
                self.meta[n] = (0, None);
            } else {
                self.meta[n] = (msg.bytes, msg.address.as_ref().and_then(socket_addr));
            }
            n += 1;
        }
        self.len = n;
        Ok(n)
    }

    /// The datagrams of the last read, with their source (truncated ones are skipped).
    pub fn datagrams(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> + '_ {
        self.meta[..self.len]
            .iter()
            .zip(self.bufs.iter())
            .filter_map(|(&(n, src), buf)| Some((&buf[..n], src?)))
    }
}

/// The `mmsghdr` array of one send batch (see [`Headers`]).
#[derive(Debug)]
pub struct SendHeaders(MultiHeaders<SockaddrStorage>);

impl SendHeaders {
    pub fn new() -> SendHeaders {
        SendHeaders(MultiHeaders::preallocate(SEND_BATCH, None))
    }
}

impl Default for SendHeaders {
    fn default() -> Self {
        SendHeaders::new()
    }
}

/// Packets to many destinations, sent from one socket with `sendmmsg`: the caller writes each
/// packet into [`SendBatch::next_buf`], then [`SendBatch::push`]es its length and destination,
/// and [`SendBatch::flush`]es when [`SendBatch::is_full`] and at the end of the tick.
#[derive(Debug)]
pub struct SendBatch {
    bufs: Box<[[u8; DATAGRAM]; SEND_BATCH]>,
    lens: [usize; SEND_BATCH],
    to: Vec<Option<SockaddrStorage>>,
    len: usize,
    /// `sendmmsg` calls made.
    pub syscalls: u64,
}

impl Default for SendBatch {
    fn default() -> Self {
        SendBatch::new()
    }
}

/// What one [`SendBatch::flush`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    pub sent: usize,
    /// Packets the kernel refused (buffer full, unreachable destination); they are dropped.
    pub failed: usize,
}

impl SendBatch {
    pub fn new() -> SendBatch {
        SendBatch {
            bufs: vec![[0u8; DATAGRAM]; SEND_BATCH]
                .into_boxed_slice()
                .try_into()
                .expect("a boxed slice of SEND_BATCH buffers"),
            lens: [0; SEND_BATCH],
            to: vec![None; SEND_BATCH],
            len: 0,
            syscalls: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn is_full(&self) -> bool {
        self.len == SEND_BATCH
    }

    /// The buffer for the next packet (flush first when full: this one is then overwritten).
    pub fn next_buf(&mut self) -> &mut [u8] {
        let i = self.len.min(SEND_BATCH - 1);
        &mut self.bufs[i][..]
    }

    /// The packet just written into [`SendBatch::next_buf`]: `len` bytes for `to`.
    pub fn push(&mut self, len: usize, to: SocketAddr) {
        if self.len < SEND_BATCH {
            self.lens[self.len] = len.min(DATAGRAM);
            self.to[self.len] = Some(SockaddrStorage::from(to));
            self.len += 1;
        }
    }

    /// Send everything waiting on `socket`. A packet the kernel refuses is counted and skipped,
    /// so one bad destination does not hold back the others.
    pub fn flush(&mut self, headers: &mut SendHeaders, socket: &impl AsRawFd) -> Flushed {
        let mut out = Flushed::default();
        let mut done = 0;
        // Each round sends at least one packet or drops one: bounded by the batch size.
        while done < self.len {
            let n = self.len - done;
            let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] = std::array::from_fn(|i| {
                let k = (done + i).min(self.len - 1);
                [IoSlice::new(&self.bufs[k][..self.lens[k]])]
            });
            self.syscalls += 1;
            match sendmmsg(
                socket.as_raw_fd(),
                &mut headers.0,
                iovs[..n].iter(),
                &self.to[done..self.len],
                [],
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(r) => {
                    let k = r.count();
                    if k == 0 {
                        out.failed += 1;
                        done += 1;
                    } else {
                        out.sent += k;
                        done += k;
                    }
                }
                // The first packet of the rest failed: drop it, go on with the others.
                Err(_) => {
                    out.failed += 1;
                    done += 1;
                }
            }
        }
        self.len = 0;
        out
    }
}

/// Ask for `want` bytes of receive buffer (beyond `net.core.rmem_max` too when the process may:
/// `SO_RCVBUFFORCE`); what the kernel granted, in its own accounting (twice the asked size).
pub fn grow_recv_buffer(socket: &std::net::UdpSocket, want: usize) -> usize {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    let _ = setsockopt(socket, sockopt::RcvBuf, &want);
    let got = getsockopt(socket, sockopt::RcvBuf).unwrap_or(0);
    if got < want {
        let _ = setsockopt(socket, sockopt::RcvBufForce, &want);
    }
    let got = getsockopt(socket, sockopt::RcvBuf).unwrap_or(0);
    if got < want {
        tracing::warn!(
            asked = want,
            got,
            "a shared RTP socket's receive buffer is smaller than asked (raise \
             net.core.rmem_max); a late tick may lose packets"
        );
    }
    got
}

fn socket_addr(s: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = s.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    if let Some(v6) = s.as_sockaddr_in6() {
        return Some(SocketAddr::V6(SocketAddrV6::from(*v6)));
    }
    let _ = s.family();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_burst_in_one_call_then_would_block() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 172], to).unwrap();
        }
        rx.set_nonblocking(true).unwrap();
        let mut h: Headers = Headers::new();
        let mut b: RecvBatch = RecvBatch::new();
        let n = b.recv(&mut h, &rx).unwrap();
        assert_eq!(n, 5);
        assert_eq!(b.syscalls, 1);
        let got: Vec<(usize, u8, SocketAddr)> =
            b.datagrams().map(|(d, src)| (d.len(), d[0], src)).collect();
        let from = tx.local_addr().unwrap();
        assert_eq!(got, (0..5u8).map(|i| (172, i, from)).collect::<Vec<_>>());
        let e = b.recv(&mut h, &rx).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(b.datagrams().count(), 0);
        assert_eq!(b.syscalls, 2);
    }

    #[test]
    fn more_than_a_batch_takes_two_reads_and_ipv6_sources_work() {
        let rx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let tx = std::net::UdpSocket::bind("[::1]:0").unwrap();
        let to = rx.local_addr().unwrap();
        for i in 0..(BATCH as u8 + 3) {
            tx.send_to(&[i; 20], to).unwrap();
        }
        rx.set_nonblocking(true).unwrap();
        let mut h: Headers = Headers::new();
        let mut b: RecvBatch = RecvBatch::new();
        assert_eq!(b.recv(&mut h, &rx).unwrap(), BATCH);
        assert!(
            b.datagrams()
                .all(|(_, src)| src == tx.local_addr().unwrap())
        );
        assert_eq!(b.recv(&mut h, &rx).unwrap(), 3);
        let firsts: Vec<u8> = b.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(firsts, vec![BATCH as u8, BATCH as u8 + 1, BATCH as u8 + 2]);
    }

    #[test]
    fn a_send_batch_reaches_many_peers_in_one_call() {
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let peers: Vec<std::net::UdpSocket> = (0..3)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        let mut batch = SendBatch::new();
        let mut h = SendHeaders::new();
        for (i, p) in peers.iter().enumerate() {
            let buf = batch.next_buf();
            buf[..4].copy_from_slice(&[i as u8; 4]);
            batch.push(4, p.local_addr().unwrap());
        }
        // An IPv6 destination from an IPv4 socket fails; the packets around it still go.
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        batch.next_buf()[0] = 9;
        batch.push(1, v6);
        batch.next_buf()[..2].copy_from_slice(&[7, 7]);
        batch.push(2, peers[0].local_addr().unwrap());
        let f = batch.flush(&mut h, &tx);
        assert_eq!(f, Flushed { sent: 4, failed: 1 });
        assert!(batch.is_empty());
        let mut buf = [0u8; 16];
        for (i, p) in peers.iter().enumerate() {
            let (n, from) = p.recv_from(&mut buf).unwrap();
            assert_eq!(
                (&buf[..n], from),
                (&[i as u8; 4][..], tx.local_addr().unwrap())
            );
        }
        let (n, _) = peers[0].recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[7, 7]);
        assert!(batch.syscalls >= 2, "{}", batch.syscalls);
    }

    #[test]
    fn a_shared_batch_reads_many_senders_at_once() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        rx.set_nonblocking(true).unwrap();
        let senders: Vec<std::net::UdpSocket> = (0..40)
            .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
            .collect();
        for (i, s) in senders.iter().enumerate() {
            s.send_to(&[i as u8; 172], rx.local_addr().unwrap())
                .unwrap();
        }
        let mut h: Headers<SHARED_BATCH> = Headers::new();
        let mut b: RecvBatch<SHARED_BATCH> = RecvBatch::new();
        assert_eq!(b.recv(&mut h, &rx).unwrap(), 40);
        let got: Vec<(u8, SocketAddr)> = b.datagrams().map(|(d, s)| (d[0], s)).collect();
        let want: Vec<(u8, SocketAddr)> = senders
            .iter()
            .enumerate()
            .map(|(i, s)| (i as u8, s.local_addr().unwrap()))
            .collect();
        assert_eq!(got, want);
        assert_eq!(b.syscalls, 1);
    }
}
