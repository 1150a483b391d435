//! What became of a call attempt, from the SIP point of view.

use std::fmt;

/// The outcome of one INVITE, as a dialer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 2xx: the callee picked up.
    Answered,
    /// 486, 600.
    Busy,
    /// 408/480, or 487 after our CANCEL (ring timeout).
    NoAnswer,
    /// 404, 410, 484, 604.
    InvalidNumber,
    /// 403, 603, 606.
    Rejected,
    /// 5xx, transport errors and timeouts, and anything else unexpected.
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::InvalidNumber => "invalid_number",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Map a final INVITE status to an outcome. `we_cancelled` is true when our CANCEL preceded it.
///
/// Returns the outcome and whether another trunk may be tried (only 5xx and timeouts: a
/// carrier that said busy or "no such number" must not be asked again elsewhere).
pub fn classify(status: u16, we_cancelled: bool) -> (Outcome, bool) {
    match status {
        200..=299 => (Outcome::Answered, false),
        486 | 600 => (Outcome::Busy, false),
        487 if we_cancelled => (Outcome::NoAnswer, false),
        408 | 480 => (Outcome::NoAnswer, false),
        404 | 410 | 484 | 604 => (Outcome::InvalidNumber, false),
        403 | 603 | 606 => (Outcome::Rejected, false),
        500..=599 => (Outcome::Failed, true),
        _ => (Outcome::Failed, false),
    }
}

/// Who ended an answered call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HangupBy {
    Us,
    Them,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Us => "us",
            HangupBy::Them => "them",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_follows_the_dialer_table() {
        let cases = [
            (200, false, Outcome::Answered, false),
            (486, false, Outcome::Busy, false),
            (600, false, Outcome::Busy, false),
            (487, true, Outcome::NoAnswer, false),
            (487, false, Outcome::Failed, false),
            (480, true, Outcome::NoAnswer, false),
            (408, false, Outcome::NoAnswer, false),
            (404, false, Outcome::InvalidNumber, false),
            (410, false, Outcome::InvalidNumber, false),
            (484, false, Outcome::InvalidNumber, false),
            (604, false, Outcome::InvalidNumber, false),
            (403, false, Outcome::Rejected, false),
            (603, false, Outcome::Rejected, false),
            (500, false, Outcome::Failed, true),
            (503, false, Outcome::Failed, true),
            (488, false, Outcome::Failed, false),
        ];
        for (status, cancelled, outcome, failover) in cases {
            assert_eq!(
                classify(status, cancelled),
                (outcome, failover),
                "{status} cancelled={cancelled}"
            );
        }
    }
}
