//! How a simulated callee behaves on one call, and a weighted mix to draw personas from.

use std::time::Duration;

use sip::auth::ChallengeKind;
use sip::{HangupBy, IdGen, Outcome};

/// The behaviour of the callee on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Persona {
    /// 180, then 200 after `ring`. `talk: None` waits for the caller's BYE; `Some(t)` makes the
    /// callee send BYE `t` after answering.
    Answer {
        ring: Duration,
        talk: Option<Duration>,
    },
    /// 486 Busy Here.
    Busy,
    /// 180, then never answers; CANCEL gets 200 + 487 (480 after [`crate::UasConfig::max_ring`]).
    NoAnswer,
    /// 603 Decline.
    Reject,
    /// 404 Not Found.
    NotFound,
    /// 503 Service Unavailable.
    ServerError,
    /// 183 with SDP, then 200 after `ring`; waits for the caller's BYE.
    EarlyMediaAnswer { ring: Duration },
    /// 401 (`Www`) or 407 (`Proxy`) with a Digest nonce; a correct answer continues as `then`,
    /// a wrong one gets [`crate::BadAuth`] treatment.
    Challenge {
        kind: ChallengeKind,
        then: Box<Persona>,
    },
    /// 180 from `tags` different To-tags, then 200 from the first two: the caller must keep the
    /// first 2xx and ACK + BYE the other. The kept dialog waits for the caller's BYE.
    Fork { tags: u8 },
    /// 200 with `Session-Expires: se;refresher=uac|uas`. With the UAS as refresher it refreshes
    /// (UPDATE when allowed, else re-INVITE) every `se/2`; with the UAC as refresher it counts
    /// the caller's refreshes and BYEs if one is missing. Waits for the caller's BYE.
    AnswerWithSessionTimer { se: u32, refresher_uac: bool },
    /// 200 with `Session-Expires: se;refresher=uas` and then never refreshes: the caller must
    /// BYE before the session expires.
    SilentSessionTimer { se: u32 },
    /// 180; when CANCEL arrives, 200 to the INVITE first and then 200 to the CANCEL. The caller
    /// must ACK and BYE the 2xx.
    CancelRace,
    /// Answers, then sends a re-INVITE with an SDP offer and expects 200 with SDP; waits for the
    /// caller's BYE.
    ReInvite,
}

/// What the caller's [`sip::CallReport`] should say for a persona, assuming the caller's ring
/// timeout exceeds the persona's ring time and the caller hangs up (`hangup_at`) calls in which
/// the callee never does, after any session-timer expiry of [`Persona::SilentSessionTimer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub outcome: Outcome,
    pub sip_status: Option<u16>,
    pub hangup_by: Option<HangupBy>,
    pub failover: bool,
}

impl Persona {
    /// The persona that finally handles the call (the one behind any challenges).
    pub fn innermost(&self) -> &Persona {
        match self {
            Persona::Challenge { then, .. } => then.innermost(),
            p => p,
        }
    }

    /// True when the call lasts until the caller sends BYE.
    pub fn caller_hangs_up(&self) -> bool {
        match self.innermost() {
            Persona::Answer { talk, .. } => talk.is_none(),
            Persona::EarlyMediaAnswer { .. }
            | Persona::Fork { .. }
            | Persona::AnswerWithSessionTimer { .. }
            | Persona::SilentSessionTimer { .. }
            | Persona::ReInvite => true,
            _ => false,
        }
    }

    /// The report the caller should produce.
    pub fn expected(&self) -> Expected {
        let fail = |outcome, status, failover| Expected {
            outcome,
            sip_status: Some(status),
            hangup_by: None,
            failover,
        };
        let answered = |by| Expected {
            outcome: Outcome::Answered,
            sip_status: Some(200),
            hangup_by: Some(by),
            failover: false,
        };
        match self.innermost() {
            Persona::Answer { talk: Some(_), .. } => answered(HangupBy::Them),
            Persona::Answer { talk: None, .. }
            | Persona::EarlyMediaAnswer { .. }
            | Persona::Fork { .. }
            | Persona::AnswerWithSessionTimer { .. }
            | Persona::SilentSessionTimer { .. }
            | Persona::ReInvite => answered(HangupBy::Us),
            Persona::Busy => fail(Outcome::Busy, 486, false),
            Persona::NoAnswer => fail(Outcome::NoAnswer, 487, false),
            Persona::Reject => fail(Outcome::Rejected, 603, false),
            Persona::NotFound => fail(Outcome::InvalidNumber, 404, false),
            Persona::ServerError => fail(Outcome::Failed, 503, true),
            // The answer won the race, but the caller had given up: it ACKs, BYEs and reports
            // the attempt as not answered.
            Persona::CancelRace => Expected {
                outcome: Outcome::NoAnswer,
                sip_status: Some(200),
                hangup_by: Some(HangupBy::Us),
                failover: false,
            },
            Persona::Challenge { .. } => unreachable_innermost(),
        }
    }

    /// A short stable name for reports and tallies.
    pub fn name(&self) -> &'static str {
        match self {
            Persona::Answer { talk: Some(_), .. } => "answer_callee_bye",
            Persona::Answer { talk: None, .. } => "answer",
            Persona::Busy => "busy",
            Persona::NoAnswer => "no_answer",
            Persona::Reject => "reject",
            Persona::NotFound => "not_found",
            Persona::ServerError => "server_error",
            Persona::EarlyMediaAnswer { .. } => "early_media",
            Persona::Challenge {
                kind: ChallengeKind::Www,
                ..
            } => "challenge_401",
            Persona::Challenge {
                kind: ChallengeKind::Proxy,
                ..
            } => "challenge_407",
            Persona::Fork { .. } => "fork",
            Persona::AnswerWithSessionTimer {
                refresher_uac: true,
                ..
            } => "session_timer_uac",
            Persona::AnswerWithSessionTimer {
                refresher_uac: false,
                ..
            } => "session_timer_uas",
            Persona::SilentSessionTimer { .. } => "session_timer_silent",
            Persona::CancelRace => "cancel_race",
            Persona::ReInvite => "reinvite",
        }
    }
}

/// `innermost` never returns a challenge; this keeps the match exhaustive without a panic.
fn unreachable_innermost() -> Expected {
    Expected {
        outcome: Outcome::Failed,
        sip_status: None,
        hangup_by: None,
        failover: false,
    }
}

/// Personas with integer weights; [`PersonaMix::draw`] picks one deterministically from an
/// [`IdGen`].
#[derive(Debug, Clone, Default)]
pub struct PersonaMix {
    entries: Vec<(u32, Persona)>,
    total: u64,
}

impl PersonaMix {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a persona with `weight` (0 is ignored).
    pub fn with(mut self, weight: u32, persona: Persona) -> Self {
        if weight > 0 {
            self.total += u64::from(weight);
            self.entries.push((weight, persona));
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Draw one persona (`None` when the mix is empty).
    pub fn draw(&self, rng: &mut IdGen) -> Option<Persona> {
        let mut x = rng.below(self.total);
        for (w, p) in &self.entries {
            let w = u64::from(*w);
            if x < w {
                return Some(p.clone());
            }
            x -= w;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_follows_weights_and_is_deterministic() {
        let mix = PersonaMix::new()
            .with(3, Persona::Busy)
            .with(1, Persona::Reject)
            .with(0, Persona::NotFound);
        let mut a = IdGen::new(9);
        let mut b = IdGen::new(9);
        let mut busy = 0;
        for _ in 0..4000 {
            let p = mix.draw(&mut a);
            assert_eq!(p, mix.draw(&mut b));
            match p {
                Some(Persona::Busy) => busy += 1,
                Some(Persona::Reject) => {}
                other => panic!("unexpected draw {other:?}"),
            }
        }
        assert!((2800..3200).contains(&busy), "busy drawn {busy} times");
        assert_eq!(PersonaMix::new().draw(&mut a), None);
    }

    #[test]
    fn challenge_expects_what_its_inner_persona_expects() {
        let p = Persona::Challenge {
            kind: ChallengeKind::Proxy,
            then: Box::new(Persona::Challenge {
                kind: ChallengeKind::Www,
                then: Box::new(Persona::Busy),
            }),
        };
        assert_eq!(p.expected(), Persona::Busy.expected());
        assert!(!p.caller_hangs_up());
        assert_eq!(p.name(), "challenge_407");
    }
}
