//! Client transactions (RFC 3261 §17.1, with the RFC 6026 "Accepted" state for INVITE).
//!
//! A transaction owns one request and its retransmission/timeout timers. It does not transmit
//! by itself: [`ClientTransaction::handle_timeout`] and [`ClientTransaction::handle_response`]
//! return what to do, and the owner (a call or the endpoint) queues it.
//!
//! | timer | INVITE | non-INVITE | value |
//! |---|---|---|---|
//! | A / E | retransmit (UDP only) | retransmit (UDP only) | T1, doubling (E capped at T2; T2 in Proceeding) |
//! | B / F | transaction timeout | transaction timeout | 64·T1 |
//! | D / K | absorb response retransmissions | absorb response retransmissions | 32 s / T4 on UDP, 0 on TCP |
//! | M | absorb 2xx retransmissions (RFC 6026) | — | 64·T1 |

use std::time::{Duration, Instant};

use crate::message::{HeaderName, Method, Request, Response};

/// Protocol timer base values (RFC 3261 §17.1.1.1 / table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate, default 500 ms.
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests, default 4 s.
    pub t2: Duration,
    /// Maximum time a message stays in the network, default 5 s.
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// INVITE sent, nothing heard (Calling) / non-INVITE sent (Trying).
    Initial,
    Proceeding,
    /// Final non-2xx received (INVITE) or final received (non-INVITE): absorbing retransmissions.
    Completed,
    /// 2xx received for INVITE: absorbing 2xx retransmissions, which still go to the TU.
    Accepted,
    Terminated,
}

/// What the owner must do after feeding a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseAction {
    /// Hand the response to the transaction user.
    PassUp,
    /// Hand it up and send this ACK (INVITE, first final non-2xx).
    PassUpAndAck(Request),
    /// Retransmission of a final non-2xx: re-send this ACK, do not hand it up.
    Ack(Request),
    /// Nothing to do (late/duplicate response).
    Absorb,
}

/// What a timer firing asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    /// Send the request again (bytes are cached).
    Retransmit,
    /// Timer B/F fired: the transaction failed with a timeout (report 408 to the TU).
    Timeout,
    /// The transaction is over and can be dropped.
    Terminated,
}

/// One client transaction.
#[derive(Debug)]
pub struct ClientTransaction {
    request: Request,
    bytes: Vec<u8>,
    branch: String,
    invite: bool,
    reliable: bool,
    cfg: TimerConfig,
    state: State,
    interval: Duration,
    retransmit_at: Option<Instant>,
    timeout_at: Option<Instant>,
    linger_until: Option<Instant>,
    last_status: u16,
}

impl ClientTransaction {
    /// Start a transaction. The caller sends [`Self::bytes`] right away.
    /// `reliable` is true over TCP (no retransmissions, no lingering).
    pub fn new(request: Request, reliable: bool, cfg: TimerConfig, now: Instant) -> Self {
        let branch = request
            .headers
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let invite = request.method == Method::Invite;
        let bytes = request.to_bytes();
        Self {
            retransmit_at: (!reliable).then(|| now + cfg.t1),
            timeout_at: Some(now + cfg.t1 * 64),
            interval: cfg.t1,
            linger_until: None,
            request,
            bytes,
            branch,
            invite,
            reliable,
            cfg,
            state: State::Initial,
            last_status: 0,
        }
    }

    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The serialised request (for the first send and retransmissions).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    pub fn method(&self) -> &Method {
        &self.request.method
    }

    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// True once a provisional or final response arrived.
    pub fn heard_back(&self) -> bool {
        self.state != State::Initial
    }

    /// True once a final response arrived (or the transaction ended).
    pub fn is_final(&self) -> bool {
        matches!(
            self.state,
            State::Completed | State::Accepted | State::Terminated
        )
    }

    /// The last status seen (0 before any response).
    pub fn last_status(&self) -> u16 {
        self.last_status
    }

    /// The earliest pending deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.linger_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// Feed a response whose top Via branch and CSeq method matched this transaction.
    pub fn handle_response(&mut self, now: Instant, resp: &Response) -> ResponseAction {
        let status = resp.status;
        match (self.invite, self.state) {
            (_, State::Terminated) => ResponseAction::Absorb,
            (true, State::Initial | State::Proceeding) => {
                self.last_status = status;
                if status < 200 {
                    self.state = State::Proceeding;
                    self.retransmit_at = None; // Timer A stops once anything is heard
                    self.timeout_at = None; // and Timer B: the TU's ring timeout rules now
                    ResponseAction::PassUp
                } else if status < 300 {
                    self.state = State::Accepted;
                    self.retransmit_at = None;
                    self.timeout_at = None;
                    self.linger_until = Some(now + self.cfg.t1 * 64); // Timer M
                    ResponseAction::PassUp
                } else {
                    self.state = State::Completed;
                    self.retransmit_at = None;
                    self.timeout_at = None;
                    self.linger_until = Some(if self.reliable {
                        now
                    } else {
                        now + Duration::from_secs(32) // Timer D
                    });
                    ResponseAction::PassUpAndAck(self.ack_for(resp))
                }
            }
            (true, State::Completed) => {
                if status >= 300 {
                    ResponseAction::Ack(self.ack_for(resp))
                } else {
                    ResponseAction::Absorb
                }
            }
            // 2xx retransmissions (or 2xx from other forks) go to the TU, which ACKs them.
            (true, State::Accepted) if (200..300).contains(&status) => ResponseAction::PassUp,
            (true, State::Accepted) => ResponseAction::Absorb,
            (false, State::Initial | State::Proceeding) => {
                self.last_status = status;
                if status < 200 {
                    self.state = State::Proceeding;
                    if !self.reliable {
                        self.interval = self.cfg.t2;
                    }
                    ResponseAction::PassUp
                } else {
                    self.state = State::Completed;
                    self.retransmit_at = None;
                    self.timeout_at = None;
                    self.linger_until = Some(if self.reliable {
                        now
                    } else {
                        now + self.cfg.t4 // Timer K
                    });
                    ResponseAction::PassUp
                }
            }
            (false, _) => ResponseAction::Absorb,
        }
    }

    /// The transport reported that the request could not be delivered.
    pub fn handle_transport_error(&mut self) -> TimerAction {
        self.state = State::Terminated;
        self.retransmit_at = None;
        self.timeout_at = None;
        self.linger_until = None;
        TimerAction::Timeout
    }

    /// Fire whatever timers are due. Call when `now >= poll_timeout()`.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<TimerAction> {
        if self.timeout_at.is_some_and(|t| now >= t) {
            self.state = State::Terminated;
            self.retransmit_at = None;
            self.timeout_at = None;
            self.linger_until = None;
            return Some(TimerAction::Timeout);
        }
        if self.linger_until.is_some_and(|t| now >= t) {
            self.state = State::Terminated;
            self.linger_until = None;
            return Some(TimerAction::Terminated);
        }
        if let Some(at) = self.retransmit_at
            && now >= at
        {
            self.interval = if self.invite {
                self.interval * 2
            } else if self.state == State::Proceeding {
                self.cfg.t2
            } else {
                (self.interval * 2).min(self.cfg.t2)
            };
            self.retransmit_at = Some(now + self.interval);
            return Some(TimerAction::Retransmit);
        }
        None
    }

    /// ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, Call-ID, From,
    /// top Via and Route as the INVITE, To from the response, CSeq number of the INVITE.
    fn ack_for(&self, resp: &Response) -> Request {
        let mut ack = Request::new(Method::Ack, self.request.uri.clone());
        if let Some(via) = self.request.headers.list(&HeaderName::Via).next() {
            ack.headers.push(HeaderName::Via, via);
        }
        for h in &self.request.headers {
            match h.name {
                HeaderName::MaxForwards
                | HeaderName::From
                | HeaderName::CallId
                | HeaderName::Route => ack.headers.push(h.name.clone(), h.value.clone()),
                _ => {}
            }
        }
        if let Some(to) = resp.headers.get(&HeaderName::To) {
            ack.headers.push(HeaderName::To, to);
        }
        let seq = self.request.headers.cseq().map(|c| c.seq).unwrap_or(1);
        ack.headers.push(HeaderName::CSeq, format!("{seq} ACK"));
        ack
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn invite() -> Request {
        let text = "INVITE sip:a@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKt1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:d@127.0.0.1>;tag=f\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nRoute: <sip:proxy;lr>\r\nContent-Length: 0\r\n\r\n";
        match Message::parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    fn options() -> Request {
        let mut r = invite();
        r.method = Method::Options;
        r.headers.set(HeaderName::CSeq, "1 OPTIONS");
        r
    }

    fn resp(req: &Request, status: u16) -> Response {
        req.make_response(status, "x", Some("t"))
    }

    fn fire_all(tx: &mut ClientTransaction, until: Instant) -> Vec<(Duration, TimerAction)> {
        let start = until - Duration::from_secs(3600);
        let mut out = vec![];
        while let Some(at) = tx.poll_timeout() {
            if at > until {
                break;
            }
            if let Some(a) = tx.handle_timeout(at) {
                out.push((at - start, a));
            }
        }
        out
    }

    #[test]
    fn timer_a_doubles_and_timer_b_fires_at_64_t1() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(invite(), false, TimerConfig::default(), t0);
        let mut retrans = vec![];
        loop {
            let at = tx.poll_timeout().unwrap();
            match tx.handle_timeout(at).unwrap() {
                TimerAction::Retransmit => retrans.push((at - t0).as_millis()),
                TimerAction::Timeout => {
                    assert_eq!((at - t0).as_millis(), 32_000);
                    break;
                }
                TimerAction::Terminated => panic!("terminated before timeout"),
            }
        }
        assert_eq!(retrans, vec![500, 1500, 3500, 7500, 15500, 31500]);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn timer_e_caps_at_t2_and_timer_f_fires() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(options(), false, TimerConfig::default(), t0);
        let mut retrans = vec![];
        loop {
            let at = tx.poll_timeout().unwrap();
            match tx.handle_timeout(at).unwrap() {
                TimerAction::Retransmit => retrans.push((at - t0).as_millis()),
                TimerAction::Timeout => {
                    assert_eq!((at - t0).as_millis(), 32_000);
                    break;
                }
                TimerAction::Terminated => panic!(),
            }
        }
        assert_eq!(
            retrans,
            vec![
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
    }

    #[test]
    fn timer_e_uses_t2_in_proceeding() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(options(), false, TimerConfig::default(), t0);
        let r = tx.request().clone();
        assert_eq!(
            tx.handle_response(t0, &resp(&r, 100)),
            ResponseAction::PassUp
        );
        let at = tx.poll_timeout().unwrap();
        assert_eq!(at - t0, Duration::from_millis(500));
        tx.handle_timeout(at);
        assert_eq!(tx.poll_timeout().unwrap() - at, Duration::from_secs(4));
    }

    #[test]
    fn reliable_transport_does_not_retransmit() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(invite(), true, TimerConfig::default(), t0);
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(32)),
            Some(TimerAction::Timeout)
        );
    }

    #[test]
    fn invite_non_2xx_is_acked_and_retransmissions_re_acked_then_timer_d() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(invite(), false, TimerConfig::default(), t0);
        let r = tx.request().clone();
        assert_eq!(
            tx.handle_response(t0, &resp(&r, 180)),
            ResponseAction::PassUp
        );
        assert_eq!(tx.poll_timeout(), None, "A and B stop in Proceeding");
        let busy = resp(&r, 486);
        let ResponseAction::PassUpAndAck(ack) = tx.handle_response(t0, &busy) else {
            panic!()
        };
        assert_eq!(ack.method, Method::Ack);
        assert_eq!(ack.uri, r.uri);
        assert_eq!(ack.headers.cseq().unwrap().seq, 1);
        assert_eq!(ack.headers.top_via().unwrap().branch(), Some("z9hG4bKt1"));
        assert_eq!(ack.headers.to_tag().as_deref(), Some("t"));
        assert_eq!(ack.headers.get(&HeaderName::Route), Some("<sip:proxy;lr>"));
        assert!(matches!(
            tx.handle_response(t0, &busy),
            ResponseAction::Ack(_)
        ));
        assert_eq!(
            fire_all(&mut tx, t0 + Duration::from_secs(3600)),
            vec![(Duration::from_secs(32), TimerAction::Terminated)]
        );
    }

    #[test]
    fn invite_2xx_and_its_retransmissions_go_up_until_timer_m() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(invite(), false, TimerConfig::default(), t0);
        let r = tx.request().clone();
        let ok = resp(&r, 200);
        assert_eq!(tx.handle_response(t0, &ok), ResponseAction::PassUp);
        assert_eq!(tx.handle_response(t0, &ok), ResponseAction::PassUp);
        assert_eq!(
            tx.handle_response(t0, &resp(&r, 486)),
            ResponseAction::Absorb
        );
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(32)),
            Some(TimerAction::Terminated)
        );
    }

    #[test]
    fn non_invite_final_then_timer_k() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(options(), false, TimerConfig::default(), t0);
        let r = tx.request().clone();
        assert_eq!(
            tx.handle_response(t0, &resp(&r, 200)),
            ResponseAction::PassUp
        );
        assert_eq!(
            tx.handle_response(t0, &resp(&r, 200)),
            ResponseAction::Absorb
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(5)));
        assert_eq!(
            tx.handle_timeout(t0 + Duration::from_secs(5)),
            Some(TimerAction::Terminated)
        );
    }

    #[test]
    fn tcp_completed_terminates_immediately() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::new(options(), true, TimerConfig::default(), t0);
        let r = tx.request().clone();
        tx.handle_response(t0, &resp(&r, 404));
        assert_eq!(tx.poll_timeout(), Some(t0));
        assert_eq!(tx.handle_timeout(t0), Some(TimerAction::Terminated));
    }
}
