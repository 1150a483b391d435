//! Batched UDP receive for the media clock: `recvmmsg(2)` reads every datagram waiting on a
//! socket in one system call.
//!
//! A call's RTP socket gets about one packet per 20 ms tick. Draining it with `recvfrom` costs
//! two system calls per tick (the packet, then `EAGAIN`); `recvmmsg` with `MSG_DONTWAIT` returns
//! whatever is queued (one packet, or a burst after a scheduling hiccup) in one call, and when
//! it returned fewer than a full batch the socket is left for the next tick.
//!
//! RTP sockets are not registered with the async reactor at all: the media clock reads every
//! live call's socket once per tick anyway, so readiness notifications would only add an epoll
//! event per arriving packet (100,000 a second at 2,000 calls) for nothing.
//!
//! `nix` provides the safe wrapper (this workspace denies `unsafe`). Its `MultiHeaders` is not
//! `Send`, so it lives on the stack of one tick ([`Headers::new`]) and is lent to every read.

use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrLike, SockaddrStorage, recvmmsg};

/// Datagrams read by one system call at most.
pub const BATCH: usize = 8;
/// Largest datagram kept; longer ones are dropped as truncated (RTP here is ≤ 172 bytes).
pub const DATAGRAM: usize = 2048;

/// The `mmsghdr` array of one batch, allocated once per tick and reused for every socket.
#[derive(Debug)]
pub struct Headers(MultiHeaders<SockaddrStorage>);

impl Headers {
    pub fn new() -> Headers {
        Headers(MultiHeaders::preallocate(BATCH, None))
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers::new()
    }
}

/// Receive buffers of one batch and what the last read put in them.
#[derive(Debug)]
pub struct RecvBatch {
    bufs: Box<[[u8; DATAGRAM]; BATCH]>,
    /// Length and source of each datagram of the last read.
    meta: [(usize, Option<SocketAddr>); BATCH],
    len: usize,
    /// `recvmmsg` calls made, `EAGAIN` ones included.
    pub syscalls: u64,
    /// Datagrams dropped because they did not fit [`DATAGRAM`].
    pub truncated: u64,
}

impl Default for RecvBatch {
    fn default() -> Self {
        RecvBatch::new()
    }
}

impl RecvBatch {
    pub fn new() -> RecvBatch {
        RecvBatch {
            bufs: Box::new([[0; DATAGRAM]; BATCH]),
            meta: [(0, None); BATCH],
            len: 0,
            syscalls: 0,
            truncated: 0,
        }
    }

    /// Read up to [`BATCH`] datagrams waiting on `socket` with one non-blocking system call.
    /// Returns how many; `Err(WouldBlock)` when none was waiting.
    pub fn recv(&mut self, headers: &mut Headers, socket: &impl AsRawFd) -> io::Result<usize> {
        self.len = 0;
        self.syscalls += 1;
        let mut iovs: [[IoSliceMut<'_>; 1]; BATCH] =
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
        let mut h = Headers::new();
        let mut b = RecvBatch::new();
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
        let mut h = Headers::new();
        let mut b = RecvBatch::new();
        assert_eq!(b.recv(&mut h, &rx).unwrap(), BATCH);
        assert!(
            b.datagrams()
                .all(|(_, src)| src == tx.local_addr().unwrap())
        );
        assert_eq!(b.recv(&mut h, &rx).unwrap(), 3);
        let firsts: Vec<u8> = b.datagrams().map(|(d, _)| d[0]).collect();
        assert_eq!(firsts, vec![BATCH as u8, BATCH as u8 + 1, BATCH as u8 + 2]);
    }
}
