//! Callees with a voice: what a simulated person or machine does on a call after the SIP
//! persona answered it — the audio it plays, the digits it keys, when it hangs up.
//!
//! A [`Profile`] is one `[[persona]]` of a personas file (or of the built-in mix): a SIP
//! [`Persona`] for the UAS plus a [`Script`] whose audio is rendered once, when the profile is
//! built, into one shared [`Prompt`] (a voicemail's greeting + beep, a human's "алло" + pause +
//! in-band tones, ...). The [`Crowd`] draws a profile per incoming call by weight. Per call, a
//! [`Callee`] (a few dozen bytes) walks the script in time:
//!
//! ```text
//! callee.on_answered(now)                    // the UAS sent 200 OK
//! callee.on_media_event(now, &ev)            // from the call's CallMedia (RTP timeout ends it)
//! callee.handle_timeout(now)                 // on the media clock, when poll_timeout() is due
//! while let Some(a) = callee.poll_action() { // Play(prompt) | SendDigits{..} | Hangup
//!     apply to the call's media / the UAS
//! }
//! ```
//!
//! No clock, no socket, no allocation per call beyond the `Callee` itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use media::Prompt;
use media::session::MediaEvent;
use sip::IdGen;

use crate::persona::Persona;
use crate::voice;

/// The `kind` of a persona, as written in a personas file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Answer,
    Busy,
    NoAnswer,
    Reject,
    NotFound,
    Voicemail,
    HumanDtmf,
    HumanSpeech,
    HangupMidPrompt,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Answer,
        Kind::Busy,
        Kind::NoAnswer,
        Kind::Reject,
        Kind::NotFound,
        Kind::Voicemail,
        Kind::HumanDtmf,
        Kind::HumanSpeech,
        Kind::HangupMidPrompt,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Answer => "answer",
            Kind::Busy => "busy",
            Kind::NoAnswer => "no_answer",
            Kind::Reject => "reject",
            Kind::NotFound => "not_found",
            Kind::Voicemail => "voicemail",
            Kind::HumanDtmf => "human_dtmf",
            Kind::HumanSpeech => "human_speech",
            Kind::HangupMidPrompt => "hangup_mid_prompt",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// True for kinds whose SIP persona answers (and so need RTP).
    pub fn answers(self) -> bool {
        !matches!(
            self,
            Kind::Busy | Kind::NoAnswer | Kind::Reject | Kind::NotFound
        )
    }
}

/// How a human keys digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfMode {
    /// RFC 4733 telephone-events (in-band tones when the caller did not agree telephone-event).
    Rfc4733,
    /// Tones mixed into the callee's audio.
    InBand,
}

/// Digits a callee keys.
#[derive(Debug, Clone)]
pub struct Keys {
    /// After the answer.
    pub at: Duration,
    pub digits: Arc<str>,
    pub mode: DtmfMode,
    /// The same digits as in-band tones (the fallback for RFC 4733 without telephone-event).
    pub tones: Option<Arc<Prompt>>,
}

/// What a callee does once answered. Times count from the 200 OK.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Played from the answer (in-band digits are already mixed in); `None`: silence.
    pub audio: Option<Arc<Prompt>>,
    pub keys: Option<Keys>,
    /// BYE this long after the answer; `None`: wait for the caller's BYE.
    pub hangup_after: Option<Duration>,
}

/// One persona of the crowd: a name, a weight, the SIP behaviour and the media script.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    /// Relative weight in thousandths (a file's `weight = 1.5` is 1500).
    pub weight: u32,
    pub kind: Kind,
    pub persona: Persona,
    pub script: Script,
}

impl Profile {
    /// A profile that does not answer (busy, reject, not found, no answer) or answers silently.
    pub fn sip_only(name: &str, weight: u32, kind: Kind, ring: Duration) -> Profile {
        let persona = match kind {
            Kind::Busy => Persona::Busy,
            Kind::NoAnswer => Persona::NoAnswer,
            Kind::Reject => Persona::Reject,
            Kind::NotFound => Persona::NotFound,
            _ => Persona::Answer { ring, talk: None },
        };
        Profile {
            name: name.to_owned(),
            weight,
            kind,
            persona,
            script: Script::default(),
        }
    }

    pub fn answers(&self) -> bool {
        self.kind.answers()
    }
}

/// Builders that render a persona's audio once.
pub mod render {
    use super::*;

    /// [`voice::PICKUP`] of silence, then `pcm`.
    fn picked_up(pcm: &[i16]) -> Vec<i16> {
        let mut out = vec![0i16; voice::samples(voice::PICKUP)];
        out.extend_from_slice(pcm);
        out
    }

    fn prompt(name: &str, pcm: &[i16]) -> Option<Arc<Prompt>> {
        if pcm.is_empty() {
            return None;
        }
        Prompt::from_pcm(name, pcm).ok().map(Arc::new)
    }

    /// `answer`: rings, then plays `prompt` (if any), hangs up after `talk`.
    pub fn answer(
        name: &str,
        weight: u32,
        ring: Duration,
        prompt: Option<Arc<Prompt>>,
        talk: Option<Duration>,
    ) -> Profile {
        Profile {
            name: name.to_owned(),
            weight,
            kind: Kind::Answer,
            persona: Persona::Answer { ring, talk: None },
            script: Script {
                audio: prompt,
                keys: None,
                hangup_after: talk,
            },
        }
    }

    /// `voicemail`: after [`voice::PICKUP`], the greeting, 200 ms, the beep, then silence;
    /// hangs up after `max`.
    pub fn voicemail(
        name: &str,
        weight: u32,
        ring: Duration,
        greeting: &[i16],
        beep_hz: f64,
        beep: Duration,
        max: Option<Duration>,
    ) -> Profile {
        let mut pcm = picked_up(greeting);
        pcm.resize(pcm.len() + voice::samples(Duration::from_millis(200)), 0);
        pcm.extend(voice::beep(beep_hz, beep));
        Profile {
            name: name.to_owned(),
            weight,
            kind: Kind::Voicemail,
            persona: Persona::Answer { ring, talk: None },
            script: Script {
                audio: prompt(&format!("{name}: greeting + beep"), &pcm),
                keys: None,
                hangup_after: max,
            },
        }
    }

    /// `human_dtmf`: after [`voice::PICKUP`] says `hello`, then `delay` after it keys `digits`.
    #[allow(clippy::too_many_arguments)]
    pub fn human_dtmf(
        name: &str,
        weight: u32,
        ring: Duration,
        hello: &[i16],
        delay: Duration,
        digits: &str,
        mode: DtmfMode,
        max: Option<Duration>,
    ) -> Profile {
        let mut pcm = picked_up(hello);
        let at = voice::samples(voice::duration_of(pcm.len()) + delay);
        let tones = voice::dtmf(digits);
        if mode == DtmfMode::InBand {
            voice::mix_at(&mut pcm, at, &tones);
        }
        let tones = prompt(&format!("{name}: tones"), &tones);
        Profile {
            name: name.to_owned(),
            weight,
            kind: Kind::HumanDtmf,
            persona: Persona::Answer { ring, talk: None },
            script: Script {
                audio: prompt(&format!("{name}: voice"), &pcm),
                keys: Some(Keys {
                    at: voice::duration_of(at),
                    digits: Arc::from(digits),
                    mode,
                    tones,
                }),
                hangup_after: max,
            },
        }
    }

    /// `human_speech`: after [`voice::PICKUP`] says `hello`, then `delay` after it says `phrase`.
    pub fn human_speech(
        name: &str,
        weight: u32,
        ring: Duration,
        hello: &[i16],
        delay: Duration,
        phrase: &[i16],
        max: Option<Duration>,
    ) -> Profile {
        let mut pcm = picked_up(hello);
        let at = voice::samples(voice::duration_of(pcm.len()) + delay);
        voice::mix_at(&mut pcm, at, phrase);
        Profile {
            name: name.to_owned(),
            weight,
            kind: Kind::HumanSpeech,
            persona: Persona::Answer { ring, talk: None },
            script: Script {
                audio: prompt(&format!("{name}: voice"), &pcm),
                keys: None,
                hangup_after: max,
            },
        }
    }

    /// `hangup_mid_prompt`: after [`voice::PICKUP`] says `hello`; hangs up `after` the answer.
    pub fn hangup_mid_prompt(
        name: &str,
        weight: u32,
        ring: Duration,
        hello: &[i16],
        after: Duration,
    ) -> Profile {
        Profile {
            name: name.to_owned(),
            weight,
            kind: Kind::HangupMidPrompt,
            persona: Persona::Answer { ring, talk: None },
            script: Script {
                audio: prompt(&format!("{name}: voice"), &picked_up(hello)),
                keys: None,
                hangup_after: Some(after),
            },
        }
    }
}

/// Profiles with weights; draws one per call.
#[derive(Debug, Clone, Default)]
pub struct Crowd {
    profiles: Vec<Arc<Profile>>,
    total: u64,
}

impl Crowd {
    /// Profiles with weight 0 are kept (for tallies) but never drawn.
    pub fn new(profiles: Vec<Profile>) -> Crowd {
        let total = profiles.iter().map(|p| u64::from(p.weight)).sum();
        Crowd {
            profiles: profiles.into_iter().map(Arc::new).collect(),
            total,
        }
    }

    pub fn profiles(&self) -> &[Arc<Profile>] {
        &self.profiles
    }

    /// Draw a profile's index (`None` when every weight is 0).
    pub fn draw(&self, rng: &mut IdGen) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let mut x = rng.below(self.total);
        for (i, p) in self.profiles.iter().enumerate() {
            let w = u64::from(p.weight);
            if x < w {
                return Some(i);
            }
            x -= w;
        }
        None
    }

    /// The built-in mix used without a personas file: every kind, synthetic voices (no WAV
    /// files), weights summing to 100. Documented in `config/personas.toml`.
    pub fn builtin() -> Crowd {
        use render::*;
        let s = Duration::from_secs_f64;
        let hello = voice::hello();
        let greeting = voice::greeting();
        let phrase = voice::phrase();
        let max = Some(s(60.0));
        let w = |n: u32| n * 1000;
        Crowd::new(vec![
            human_dtmf(
                "human_key_1",
                w(10),
                s(1.0),
                &hello,
                s(1.0),
                "1",
                DtmfMode::Rfc4733,
                max,
            ),
            human_dtmf(
                "human_key_2",
                w(10),
                s(2.0),
                &hello,
                s(1.5),
                "2",
                DtmfMode::Rfc4733,
                max,
            ),
            human_dtmf(
                "human_key_3_inband",
                w(8),
                s(1.5),
                &hello,
                s(1.0),
                "3",
                DtmfMode::InBand,
                max,
            ),
            human_dtmf(
                "human_key_4",
                w(10),
                s(1.0),
                &hello,
                s(2.0),
                "4",
                DtmfMode::Rfc4733,
                max,
            ),
            human_dtmf(
                "human_key_9",
                w(4),
                s(1.0),
                &hello,
                s(1.0),
                "9",
                DtmfMode::Rfc4733,
                max,
            ),
            human_speech("human_speech", w(8), s(1.5), &hello, s(1.0), &phrase, max),
            hangup_mid_prompt("hangup_mid_prompt", w(6), s(1.0), &hello, s(3.0)),
            voicemail(
                "voicemail",
                w(12),
                s(3.0),
                &greeting,
                1000.0,
                s(0.4),
                Some(s(30.0)),
            ),
            answer("silent_answer", w(4), s(1.0), None, Some(s(20.0))),
            Profile::sip_only("busy", w(10), Kind::Busy, Duration::ZERO),
            Profile::sip_only("no_answer", w(10), Kind::NoAnswer, Duration::ZERO),
            Profile::sip_only("reject", w(4), Kind::Reject, Duration::ZERO),
            Profile::sip_only("not_found", w(4), Kind::NotFound, Duration::ZERO),
        ])
    }
}

/// What a callee wants done now.
#[derive(Debug, Clone)]
pub enum Action {
    /// Start playing this (from the answer).
    Play(Arc<Prompt>),
    /// Key these digits: send RFC 4733 events (falling back to playing `tones` when the caller
    /// agreed no telephone-event), or, in-band, nothing to do (the tones are in the audio
    /// already) but count them.
    SendDigits {
        digits: Arc<str>,
        mode: DtmfMode,
        tones: Option<Arc<Prompt>>,
    },
    /// End the call (BYE).
    Hangup,
}

/// One call's walk through its profile's script.
#[derive(Debug, Clone)]
pub struct Callee {
    profile: Arc<Profile>,
    answered_at: Option<Instant>,
    now: Option<Instant>,
    played: bool,
    keyed: bool,
    hung_up: bool,
    /// Hang up at the next poll whatever the script says (the caller's RTP stopped).
    hangup_now: bool,
}

impl Callee {
    pub fn new(profile: Arc<Profile>) -> Callee {
        Callee {
            profile,
            answered_at: None,
            now: None,
            played: false,
            keyed: false,
            hung_up: false,
            hangup_now: false,
        }
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The 200 OK went out: the script's clock starts.
    pub fn on_answered(&mut self, now: Instant) {
        if self.answered_at.is_none() {
            self.answered_at = Some(now);
            self.now = Some(now);
        }
    }

    /// Something happened to the call's media. No RTP from the caller for the media layer's
    /// timeout means the caller is gone: hang up.
    pub fn on_media_event(&mut self, now: Instant, ev: &MediaEvent) {
        self.now = Some(now);
        if matches!(ev, MediaEvent::RtpTimeout) {
            self.hangup_now = true;
        }
    }

    /// Move the script's clock to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = Some(now);
    }

    /// When the next action is due (`None`: nothing scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t0 = self.answered_at?;
        if self.hung_up {
            return None;
        }
        if !self.played {
            return Some(t0);
        }
        if self.hangup_now {
            return self.now;
        }
        let s = &self.profile.script;
        let keys = s.keys.as_ref().filter(|_| !self.keyed).map(|k| t0 + k.at);
        let bye = s.hangup_after.filter(|_| !self.hung_up).map(|h| t0 + h);
        match (keys, bye) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next action due at the current time.
    pub fn poll_action(&mut self) -> Option<Action> {
        let t0 = self.answered_at?;
        let now = self.now?;
        let s = &self.profile.script;
        if self.hung_up {
            return None;
        }
        if self.hangup_now {
            self.hung_up = true;
            return Some(Action::Hangup);
        }
        if !self.played {
            self.played = true;
            if let Some(a) = &s.audio {
                return Some(Action::Play(Arc::clone(a)));
            }
        }
        if !self.keyed
            && let Some(k) = &s.keys
            && now >= t0 + k.at
        {
            self.keyed = true;
            return Some(Action::SendDigits {
                digits: Arc::clone(&k.digits),
                mode: k.mode,
                tones: k.tones.clone(),
            });
        }
        if !self.hung_up
            && let Some(h) = s.hangup_after
            && now >= t0 + h
        {
            self.hung_up = true;
            return Some(Action::Hangup);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use media::amd::{AmdConfig, Verdict};
    use media::g711::Codec;
    use media::session::{CallMedia, MediaParams};
    use std::net::SocketAddr;

    const CALLER: &str = "127.0.0.1:30000";
    const CALLEE: &str = "127.0.0.1:40000";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// What the caller (with AMD, like `dialer call`) made of a call to `profile`, run for
    /// `secs` of media-clock ticks in simulated time.
    struct Heard {
        digits: String,
        amd: Option<Verdict>,
        beep: bool,
        hangup_at: Option<Duration>,
        digits_sent: usize,
    }

    fn call(profile: &Profile, te: Option<u8>, secs: u64) -> Heard {
        let t0 = Instant::now();
        let mut p = MediaParams::new(Codec::Pcma, te, addr(CALLEE), 1 << 40 | 3);
        p.amd = Some(AmdConfig::default());
        let mut caller = CallMedia::new(t0, p);
        let mut q = MediaParams::new(Codec::Pcma, te, addr(CALLER), 2 << 40 | 5);
        q.inband_dtmf = false;
        let mut callee_media = CallMedia::new(t0, q);
        let mut callee = Callee::new(Arc::new(profile.clone()));
        callee.on_answered(t0);
        let mut heard = Heard {
            digits: String::new(),
            amd: None,
            beep: false,
            hangup_at: None,
            digits_sent: 0,
        };
        let mut buf = [0u8; 512];
        for k in 0..secs * 50 {
            let now = t0 + Duration::from_millis(20 * k);
            if callee.poll_timeout().is_some_and(|t| t <= now) {
                callee.handle_timeout(now);
            }
            while let Some(a) = callee.poll_action() {
                match a {
                    Action::Play(p) => callee_media.play(p),
                    Action::SendDigits {
                        digits,
                        mode,
                        tones,
                    } => {
                        heard.digits_sent += digits.len();
                        if mode == DtmfMode::Rfc4733
                            && callee_media.send_digits(&digits) == 0
                            && let Some(t) = tones
                        {
                            callee_media.play(t);
                        }
                    }
                    Action::Hangup => heard.hangup_at = Some(now - t0),
                }
            }
            if heard.hangup_at.is_some() {
                break;
            }
            if let Some(n) = caller.tick(now, &mut buf) {
                callee_media.receive(now, addr(CALLER), &buf[..n]);
            }
            if let Some(n) = callee_media.tick(now, &mut buf) {
                caller.receive(now, addr(CALLEE), &buf[..n]);
            }
            while let Some(ev) = caller.poll_event() {
                match ev {
                    MediaEvent::Digit { digit, .. } => heard.digits.push(digit),
                    MediaEvent::Amd(d) => heard.amd = heard.amd.or(Some(d.verdict)),
                    MediaEvent::Beep(_) => heard.beep = true,
                    _ => {}
                }
            }
            while let Some(ev) = callee_media.poll_event() {
                callee.on_media_event(now, &ev);
            }
        }
        heard
    }

    fn builtin(name: &str) -> Profile {
        let crowd = Crowd::builtin();
        let p = crowd.profiles().iter().find(|p| p.name == name);
        (**p.unwrap_or_else(|| panic!("no built-in {name}"))).clone()
    }

    #[test]
    fn human_keys_rfc4733_digits_after_a_hello_the_caller_takes_for_a_human() {
        let h = call(&builtin("human_key_1"), Some(101), 6);
        assert_eq!(h.digits, "1");
        assert_eq!(h.amd, Some(Verdict::Human));
        assert_eq!(h.digits_sent, 1);
        assert_eq!(h.hangup_at, None, "waits for the caller's BYE");
    }

    #[test]
    fn rfc4733_persona_falls_back_to_tones_without_telephone_event() {
        let h = call(&builtin("human_key_4"), None, 6);
        assert_eq!(h.digits, "4");
    }

    #[test]
    fn in_band_digits_are_heard_by_the_callers_goertzel() {
        let p = render::human_dtmf(
            "x",
            1,
            Duration::ZERO,
            &voice::hello(),
            Duration::from_millis(1500),
            "7#",
            DtmfMode::InBand,
            None,
        );
        let h = call(&p, Some(101), 6);
        assert_eq!(h.digits, "7#");
        assert_eq!(h.amd, Some(Verdict::Human));
    }

    #[test]
    fn voicemail_is_a_machine_with_a_beep_and_hangs_up_at_max() {
        let p = render::voicemail(
            "vm",
            1,
            Duration::ZERO,
            &voice::greeting(),
            1000.0,
            Duration::from_millis(400),
            Some(Duration::from_secs(7)),
        );
        let h = call(&p, Some(101), 10);
        assert_eq!(h.amd, Some(Verdict::Machine));
        assert!(h.beep, "the caller hears the beep");
        assert_eq!(h.hangup_at, Some(Duration::from_secs(7)));
        assert_eq!(h.digits, "");
    }

    #[test]
    fn speech_and_mid_prompt_hangup() {
        let h = call(&builtin("human_speech"), Some(101), 6);
        assert_eq!(h.amd, Some(Verdict::Human));
        assert_eq!(h.digits, "", "speech is no digit");
        let h = call(&builtin("hangup_mid_prompt"), Some(101), 6);
        assert_eq!(h.hangup_at, Some(Duration::from_secs(3)));
    }

    #[test]
    fn the_caller_going_silent_ends_the_call() {
        let p = builtin("human_key_1");
        let t0 = Instant::now();
        let mut c = Callee::new(Arc::new(p));
        assert_eq!(c.poll_timeout(), None, "nothing before the answer");
        c.on_answered(t0);
        assert!(matches!(c.poll_action(), Some(Action::Play(_))));
        assert!(
            c.poll_action().is_none(),
            "nothing due at the answer but the audio"
        );
        c.on_media_event(t0 + Duration::from_secs(2), &MediaEvent::RtpTimeout);
        assert!(matches!(c.poll_action(), Some(Action::Hangup)));
        assert!(c.poll_action().is_none());
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn builtin_mix_draws_every_kind_by_weight() {
        let crowd = Crowd::builtin();
        let total: u32 = crowd.profiles().iter().map(|p| p.weight).sum();
        assert_eq!(total, 100_000);
        let mut rng = IdGen::new(5);
        let mut counts = vec![0u32; crowd.profiles().len()];
        for _ in 0..20_000 {
            counts[crowd.draw(&mut rng).unwrap()] += 1;
        }
        for (p, n) in crowd.profiles().iter().zip(&counts) {
            let expected = 20_000.0 * f64::from(p.weight) / f64::from(total);
            assert!(
                (f64::from(*n) - expected).abs() < expected * 0.2 + 30.0,
                "{}: drawn {n}, expected ~{expected}",
                p.name
            );
        }
        for k in Kind::ALL {
            assert!(
                crowd.profiles().iter().any(|p| p.kind == k),
                "{} missing from the built-in mix",
                k.as_str()
            );
        }
        assert_eq!(Crowd::new(vec![]).draw(&mut rng), None);
    }
}
