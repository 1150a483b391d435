//! Personas files: a TOML list of `[[persona]]` tables, each becoming a [`Profile`] of the
//! [`Crowd`]. The commented reference is `config/personas.toml`.
//!
//! ```toml
//! [[persona]]
//! name = "human_key_1"     # unique; tallies are kept by name
//! weight = 30              # relative, >= 0 (fractions allowed); 0 keeps it but never draws it
//! kind = "human_dtmf"      # answer | busy | no_answer | reject | not_found | voicemail
//!                          # | human_dtmf | human_speech | hangup_mid_prompt
//! ring_secs = 1.0          # answering kinds: ring this long first (default 0)
//! hello = "audio/allo.wav" # optional: what the human says on answer (default: synthetic)
//! delay_secs = 1.5         # after the hello (default 1)
//! digits = "1"             # required
//! dtmf = "rfc4733"         # or "inband" (default rfc4733)
//! max_secs = 60            # optional: hang up this long after the answer
//! ```
//!
//! WAV paths are relative to the personas file. Every error names the file, the persona's line,
//! number and name, and the field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use media::Prompt;
use serde::Deserialize;

use crate::callee::{Crowd, DtmfMode, Kind, Profile, render};
use crate::voice;

/// A personas file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// TOML syntax, an unknown field or a value of the wrong type (the message has the line).
    #[error("{}: {message}", file.display())]
    Syntax { file: PathBuf, message: String },
    /// A persona's field is missing, out of range or does not apply to its kind.
    #[error(
        "{}:{line}: persona #{index} ({name}): field `{field}`: {reason}",
        file.display()
    )]
    Invalid {
        file: PathBuf,
        line: usize,
        /// 1-based position in the file.
        index: usize,
        name: String,
        field: &'static str,
        reason: String,
    },
    /// No persona, or none with a weight above 0.
    #[error("{}: {reason}", file.display())]
    Empty { file: PathBuf, reason: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    persona: Vec<toml::Spanned<Raw>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Option<String>,
    weight: Option<f64>,
    kind: Option<String>,
    ring_secs: Option<f64>,
    prompt: Option<String>,
    talk_secs: Option<f64>,
    greeting: Option<String>,
    beep_hz: Option<f64>,
    beep_ms: Option<f64>,
    max_secs: Option<f64>,
    hello: Option<String>,
    delay_secs: Option<f64>,
    digits: Option<String>,
    dtmf: Option<String>,
    phrase: Option<String>,
    after_secs: Option<f64>,
}

impl Raw {
    /// The optional fields that are set, by name.
    fn present(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        let mut add = |name, set: bool| {
            if set {
                v.push(name);
            }
        };
        add("ring_secs", self.ring_secs.is_some());
        add("prompt", self.prompt.is_some());
        add("talk_secs", self.talk_secs.is_some());
        add("greeting", self.greeting.is_some());
        add("beep_hz", self.beep_hz.is_some());
        add("beep_ms", self.beep_ms.is_some());
        add("max_secs", self.max_secs.is_some());
        add("hello", self.hello.is_some());
        add("delay_secs", self.delay_secs.is_some());
        add("digits", self.digits.is_some());
        add("dtmf", self.dtmf.is_some());
        add("phrase", self.phrase.is_some());
        add("after_secs", self.after_secs.is_some());
        v
    }
}

/// The fields each kind accepts besides `name`, `weight` and `kind`.
fn allowed(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Answer => &["ring_secs", "prompt", "talk_secs"],
        Kind::Busy | Kind::NoAnswer | Kind::Reject | Kind::NotFound => &[],
        Kind::Voicemail => &["ring_secs", "greeting", "beep_hz", "beep_ms", "max_secs"],
        Kind::HumanDtmf => &[
            "ring_secs",
            "hello",
            "delay_secs",
            "digits",
            "dtmf",
            "max_secs",
        ],
        Kind::HumanSpeech => &["ring_secs", "hello", "delay_secs", "phrase", "max_secs"],
        Kind::HangupMidPrompt => &["ring_secs", "hello", "after_secs"],
    }
}

/// Longest duration accepted for any `*_secs` field.
const MAX_SECS: f64 = 86_400.0;
/// Most digits one persona keys.
const MAX_DIGITS: usize = 32;

/// One persona being checked: where it is, for error messages.
struct At<'a> {
    file: &'a Path,
    dir: &'a Path,
    line: usize,
    index: usize,
    name: String,
    wavs: &'a mut HashMap<PathBuf, Arc<Prompt>>,
}

impl At<'_> {
    fn err(&self, field: &'static str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_path_buf(),
            line: self.line,
            index: self.index,
            name: self.name.clone(),
            field,
            reason: reason.into(),
        }
    }

    fn secs(&self, field: &'static str, v: Option<f64>) -> Result<Option<Duration>, ConfigError> {
        match v {
            None => Ok(None),
            Some(x) if x.is_finite() && (0.0..=MAX_SECS).contains(&x) => {
                Ok(Some(Duration::from_secs_f64(x)))
            }
            Some(x) => Err(self.err(
                field,
                format!("{x} is not a duration in seconds (0..={MAX_SECS})"),
            )),
        }
    }

    fn wav(&mut self, field: &'static str, path: &str) -> Result<Arc<Prompt>, ConfigError> {
        if path.is_empty() {
            return Err(self.err(field, "empty path"));
        }
        let full = self.dir.join(path);
        if let Some(p) = self.wavs.get(&full) {
            return Ok(Arc::clone(p));
        }
        match Prompt::load(&full) {
            Ok(p) => {
                let p = Arc::new(p);
                self.wavs.insert(full, Arc::clone(&p));
                Ok(p)
            }
            Err(e) => Err(self.err(field, format!("cannot load WAV {}: {e}", full.display()))),
        }
    }

    /// The WAV's audio as PCM (without the padding of its last frame), or `default`.
    fn pcm(
        &mut self,
        field: &'static str,
        path: Option<&str>,
        default: fn() -> Vec<i16>,
    ) -> Result<Vec<i16>, ConfigError> {
        match path {
            Some(p) => {
                let prompt = self.wav(field, p)?;
                Ok(prompt.pcm()[..prompt.samples()].to_vec())
            }
            None => Ok(default()),
        }
    }
}

/// Read and check a personas file; load its WAVs (each once).
pub fn load(path: &Path) -> Result<Crowd, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

/// Check the text of a personas file named `path` (WAV paths are relative to its directory).
pub fn parse(path: &Path, text: &str) -> Result<Crowd, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
        file: path.to_path_buf(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut wavs = HashMap::new();
    let mut profiles: Vec<Profile> = Vec::new();
    for (i, spanned) in file.persona.iter().enumerate() {
        let line = text[..spanned.span().start.min(text.len())]
            .matches('\n')
            .count()
            + 1;
        let raw = spanned.get_ref();
        let mut at = At {
            file: path,
            dir,
            line,
            index: i + 1,
            name: raw.name.clone().unwrap_or_else(|| "unnamed".to_owned()),
            wavs: &mut wavs,
        };
        let profile = persona(&mut at, raw)?;
        if profiles.iter().any(|p| p.name == profile.name) {
            return Err(at.err("name", format!("{:?} is used twice", profile.name)));
        }
        profiles.push(profile);
    }
    if profiles.is_empty() {
        return Err(ConfigError::Empty {
            file: path.to_path_buf(),
            reason: "no [[persona]] table".into(),
        });
    }
    if profiles.iter().all(|p| p.weight == 0) {
        return Err(ConfigError::Empty {
            file: path.to_path_buf(),
            reason: "every persona has weight 0".into(),
        });
    }
    Ok(Crowd::new(profiles))
}

fn persona(at: &mut At<'_>, raw: &Raw) -> Result<Profile, ConfigError> {
    let name = match &raw.name {
        None => return Err(at.err("name", "missing")),
        Some(n) if n.is_empty() || n.len() > 64 => {
            return Err(at.err("name", "must be 1 to 64 characters"));
        }
        Some(n) => n.clone(),
    };
    let weight = match raw.weight {
        None => return Err(at.err("weight", "missing")),
        Some(w) if !w.is_finite() => return Err(at.err("weight", "not a number")),
        Some(w) if w < 0.0 => return Err(at.err("weight", format!("{w} is negative"))),
        Some(w) if w > 1_000_000.0 => return Err(at.err("weight", "at most 1000000")),
        Some(w) => (w * 1000.0).round() as u32,
    };
    let kind = match raw.kind.as_deref() {
        None => return Err(at.err("kind", "missing")),
        Some(k) => Kind::parse(k).ok_or_else(|| {
            let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
            at.err(
                "kind",
                format!("unknown kind {k:?} (expected one of {})", all.join(", ")),
            )
        })?,
    };
    let ok = allowed(kind);
    if let Some(f) = raw.present().into_iter().find(|f| !ok.contains(f)) {
        return Err(at.err(f, format!("does not apply to kind {:?}", kind.as_str())));
    }
    let ring = at
        .secs("ring_secs", raw.ring_secs)?
        .unwrap_or(Duration::ZERO);
    let max = at.secs("max_secs", raw.max_secs)?;
    let delay = at
        .secs("delay_secs", raw.delay_secs)?
        .unwrap_or(Duration::from_secs(1));
    Ok(match kind {
        Kind::Busy | Kind::NoAnswer | Kind::Reject | Kind::NotFound => {
            Profile::sip_only(&name, weight, kind, ring)
        }
        Kind::Answer => {
            let prompt = match raw.prompt.as_deref() {
                Some(p) => Some(at.wav("prompt", p)?),
                None => None,
            };
            let talk = at.secs("talk_secs", raw.talk_secs)?;
            render::answer(&name, weight, ring, prompt, talk)
        }
        Kind::Voicemail => {
            let greeting = at.pcm("greeting", raw.greeting.as_deref(), voice::greeting)?;
            let hz = match raw.beep_hz {
                None => 1000.0,
                Some(hz) if hz.is_finite() && (300.0..=3400.0).contains(&hz) => hz,
                Some(hz) => return Err(at.err("beep_hz", format!("{hz} is not in 300..=3400"))),
            };
            let beep = match raw.beep_ms {
                None => Duration::from_millis(400),
                Some(ms) if ms.is_finite() && (20.0..=10_000.0).contains(&ms) => {
                    Duration::from_secs_f64(ms / 1000.0)
                }
                Some(ms) => {
                    return Err(at.err("beep_ms", format!("{ms} is not in 20..=10000")));
                }
            };
            render::voicemail(&name, weight, ring, &greeting, hz, beep, max)
        }
        Kind::HumanDtmf => {
            let digits = match raw.digits.as_deref() {
                None => return Err(at.err("digits", "missing")),
                Some(d)
                    if d.is_empty()
                        || d.len() > MAX_DIGITS
                        || !d
                            .chars()
                            .all(|c| media::dtmf::Digit::from_char(c).is_some()) =>
                {
                    return Err(at.err(
                        "digits",
                        format!("{d:?}: expected 1 to {MAX_DIGITS} of 0-9 * # A-D"),
                    ));
                }
                Some(d) => d,
            };
            let mode = match raw.dtmf.as_deref() {
                None | Some("rfc4733") => DtmfMode::Rfc4733,
                Some("inband") => DtmfMode::InBand,
                Some(m) => {
                    return Err(
                        at.err("dtmf", format!("{m:?}: expected \"rfc4733\" or \"inband\""))
                    );
                }
            };
            let hello = at.pcm("hello", raw.hello.as_deref(), voice::hello)?;
            render::human_dtmf(&name, weight, ring, &hello, delay, digits, mode, max)
        }
        Kind::HumanSpeech => {
            let phrase = at.pcm("phrase", raw.phrase.as_deref(), voice::phrase)?;
            let hello = at.pcm("hello", raw.hello.as_deref(), voice::hello)?;
            render::human_speech(&name, weight, ring, &hello, delay, &phrase, max)
        }
        Kind::HangupMidPrompt => {
            let Some(after) = at.secs("after_secs", raw.after_secs)? else {
                return Err(at.err("after_secs", "missing"));
            };
            let hello = at.pcm("hello", raw.hello.as_deref(), voice::hello)?;
            render::hangup_mid_prompt(&name, weight, ring, &hello, after)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match parse(Path::new("/etc/p.toml"), text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_shipped_example_is_the_builtin_mix() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/personas.toml");
        let crowd = load(&path).unwrap_or_else(|e| panic!("{e}"));
        let builtin = Crowd::builtin();
        let sig = |c: &Crowd| -> Vec<(String, u32, Kind, Option<Duration>)> {
            c.profiles()
                .iter()
                .map(|p| (p.name.clone(), p.weight, p.kind, p.script.hangup_after))
                .collect()
        };
        assert_eq!(sig(&crowd), sig(&builtin));
        for (a, b) in crowd.profiles().iter().zip(builtin.profiles()) {
            assert_eq!(a.persona, b.persona, "{}", a.name);
            let frames = |p: &Profile| p.script.audio.as_ref().map(|a| a.frames());
            assert_eq!(frames(a), frames(b), "{}", a.name);
            let keys = |p: &Profile| {
                p.script
                    .keys
                    .as_ref()
                    .map(|k| (k.at, k.digits.to_string(), k.mode))
            };
            assert_eq!(keys(a), keys(b), "{}", a.name);
        }
    }

    #[test]
    fn errors_name_the_file_line_persona_and_field() {
        let e = err("[[persona]]\nname = \"a\"\nweight = 1\nkind = \"busy\"\n\n\
                     [[persona]]\nname = \"b\"\nweight = 1\nkind = \"robot\"\n");
        assert!(
            e.starts_with("/etc/p.toml:6: persona #2 (b): field `kind`: unknown kind \"robot\""),
            "{e}"
        );
        let e = err("[[persona]]\nname = \"a\"\nweight = -2\nkind = \"busy\"\n");
        assert_eq!(
            e,
            "/etc/p.toml:1: persona #1 (a): field `weight`: -2 is negative"
        );
        let e = err("[[persona]]\nweight = 1\nkind = \"busy\"\n");
        assert!(
            e.contains("persona #1 (unnamed): field `name`: missing"),
            "{e}"
        );
        let e = err("[[persona]]\nname = \"h\"\nweight = 1\nkind = \"human_dtmf\"\n");
        assert!(e.contains("(h): field `digits`: missing"), "{e}");
        let e =
            err("[[persona]]\nname = \"h\"\nweight = 1\nkind = \"human_dtmf\"\ndigits = \"12x\"\n");
        assert!(e.contains("field `digits`: \"12x\""), "{e}");
        let e = err("[[persona]]\nname = \"h\"\nweight = 1\nkind = \"busy\"\ndigits = \"1\"\n");
        assert!(
            e.contains("field `digits`: does not apply to kind \"busy\""),
            "{e}"
        );
        let e = err(
            "[[persona]]\nname = \"v\"\nweight = 1\nkind = \"voicemail\"\n\
                     greeting = \"nowhere/greeting.wav\"\n",
        );
        assert!(
            e.contains("(v): field `greeting`: cannot load WAV /etc/nowhere/greeting.wav"),
            "{e}"
        );
        let e = err("[[persona]]\nname = \"m\"\nweight = 1\nkind = \"hangup_mid_prompt\"\n");
        assert!(e.contains("field `after_secs`: missing"), "{e}");
        let e = err("[[persona]]\nname = \"m\"\nweight = 1\nkind = \"answer\"\ntalk_secs = -1\n");
        assert!(e.contains("field `talk_secs`: -1 is not a duration"), "{e}");
        let e = err("[[persona]]\nname = \"a\"\nweight = 1\nkind = \"busy\"\n\
                     [[persona]]\nname = \"a\"\nweight = 1\nkind = \"reject\"\n");
        assert!(
            e.contains("persona #2 (a): field `name`: \"a\" is used twice"),
            "{e}"
        );
    }

    #[test]
    fn syntax_unknown_fields_and_empty_files_are_refused() {
        let e = err("[[persona]]\nname = \"a\"\nweight = 1\nkind = \"busy\"\ncolour = 3\n");
        assert!(
            e.starts_with("/etc/p.toml: ") && e.contains("colour"),
            "{e}"
        );
        assert!(e.contains("line 5"), "{e}");
        let e = err("[[persona]\n");
        assert!(e.contains("line 1"), "{e}");
        assert_eq!(err("# nothing\n"), "/etc/p.toml: no [[persona]] table");
        let e = err("[[persona]]\nname = \"a\"\nweight = 0\nkind = \"busy\"\n");
        assert_eq!(e, "/etc/p.toml: every persona has weight 0");
    }

    #[test]
    fn wavs_load_relative_to_the_file_and_fractional_weights_count() {
        let dir = std::env::temp_dir().join(format!("sim-personas-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("audio")).unwrap();
        // A 16 kHz 16-bit mono WAV of 0.25 s.
        let samples: Vec<i16> = (0..4000).map(|i| ((i % 40) * 500 - 10000) as i16).collect();
        let mut wav = Vec::new();
        let data_len = (samples.len() * 2) as u32;
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data_len).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes());
        wav.extend_from_slice(&16000u32.to_le_bytes());
        wav.extend_from_slice(&32000u32.to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_len.to_le_bytes());
        for s in &samples {
            wav.extend_from_slice(&s.to_le_bytes());
        }
        std::fs::write(dir.join("audio/hello.wav"), &wav).unwrap();
        let file = dir.join("p.toml");
        std::fs::write(
            &file,
            "[[persona]]\nname = \"h\"\nweight = 0.5\nkind = \"human_dtmf\"\n\
             hello = \"audio/hello.wav\"\ndelay_secs = 0\ndigits = \"5\"\n\
             [[persona]]\nname = \"m\"\nweight = 2\nkind = \"answer\"\nprompt = \"audio/hello.wav\"\n",
        )
        .unwrap();
        let crowd = load(&file).unwrap_or_else(|e| panic!("{e}"));
        let _ = std::fs::remove_dir_all(&dir);
        let h = &crowd.profiles()[0];
        assert_eq!(h.weight, 500);
        // 0.3 s pickup + 0.25 s hello: the digit starts 0.55 s after the answer.
        let keys = h.script.keys.as_ref().unwrap();
        assert_eq!(keys.at, Duration::from_millis(550));
        let m = &crowd.profiles()[1];
        assert_eq!(m.script.audio.as_ref().unwrap().frames(), 13);
        assert_eq!(m.script.hangup_after, None);
    }
}
