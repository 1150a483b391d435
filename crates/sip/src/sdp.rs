//! SDP (RFC 8866) parsing and serialisation plus RFC 3264 offer/answer for the
//! dialer's G.711 audio (PCMU/PCMA + RFC 4733 telephone-event).
//!
//! Owns: the SDP wire format, our offer, answering a remote offer
//! (INVITE/re-INVITE/UPDATE), and checking a remote answer (18x/2xx) into a
//! [`Negotiated`] result for the media layer. Sans-IO, never panics on input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Largest SDP body accepted by [`SessionDescription::parse`], in bytes.
pub const MAX_SDP_LEN: usize = 16 * 1024;
/// Most m= lines accepted in one SDP.
pub const MAX_MEDIA: usize = 64;
/// Most payload formats accepted across all m= lines of one SDP.
pub const MAX_FORMATS: usize = 256;
/// Default RFC 4733 telephone-event payload type.
pub const DEFAULT_TELEPHONE_EVENT_PT: u8 = 101;
/// Default packetisation time, milliseconds.
pub const DEFAULT_PTIME: u32 = 20;

/// Pseudo entry in [`MediaDescription::other_attributes`] holding the format
/// tokens of a non-RTP m= line (e.g. `udptl t38`), which are not payload types.
const FMT_TOKENS_PREFIX: &str = "fmt:";
/// Longest piece of peer text echoed into an error message.
const SNIPPET_LEN: usize = 40;

/// Why an SDP body could not be parsed or negotiated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SdpError {
    /// The body exceeds [`MAX_SDP_LEN`].
    #[error("SDP body is {size} bytes, limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// More than [`MAX_MEDIA`] m= lines.
    #[error("line {line}: more than {limit} m= lines")]
    TooManyMedia { line: usize, limit: usize },
    /// More than [`MAX_FORMATS`] formats in total.
    #[error("line {line}: more than {limit} media formats")]
    TooManyFormats { line: usize, limit: usize },
    /// A line is not valid UTF-8.
    #[error("line {line}: not valid UTF-8")]
    InvalidUtf8 { line: usize },
    /// A line is malformed (1-based line number).
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// A mandatory line (`v`, `o` or `m`) is absent.
    #[error("missing required {0}= line")]
    MissingLine(char),
    /// No usable (non-rejected RTP/AVP) audio stream.
    #[error("no usable audio stream")]
    NoAudio,
    /// Audio offered/answered, but with no codec we both support.
    #[error("no audio codec in common")]
    NoCommonCodec,
    /// The answer rejected our audio stream (port 0).
    #[error("the audio stream was rejected (port 0)")]
    AudioRejected,
    /// The answer does not have one m= line per offered m= line.
    #[error("answer has {answer} m= lines, offer has {offer}")]
    MediaCountMismatch { offer: usize, answer: usize },
    /// Neither the session nor the audio m= line has a c= address.
    #[error("no connection address (c=) for the audio stream")]
    MissingConnection,
}

fn syntax(line: usize, reason: impl Into<String>) -> SdpError {
    SdpError::Syntax {
        line,
        reason: reason.into(),
    }
}

/// At most [`SNIPPET_LEN`] characters of peer text, for error messages.
fn snippet(s: &str) -> String {
    let mut out: String = s.chars().take(SNIPPET_LEN).collect();
    if s.chars().nth(SNIPPET_LEN).is_some() {
        out.push('…');
    }
    out
}

/// Media direction attribute (RFC 3264 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The answer direction for an offered one (sendonly <-> recvonly).
    pub fn reversed(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            other => other,
        }
    }

    /// Whether this side sends media.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether this side receives media.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// Build from send/receive flags.
    pub fn from_flags(send: bool, receive: bool) -> Direction {
        match (send, receive) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// The attribute name (`sendrecv`, ...).
    pub fn attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parse an attribute name (`sendrecv`, ...).
    pub fn from_attribute(s: &str) -> Option<Direction> {
        match s {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// Effective direction of a side whose address is `addr`: an unspecified
    /// address (legacy RFC 2543 hold, `c=0.0.0.0`) means it receives nothing.
    pub fn with_address(self, addr: IpAddr) -> Direction {
        if addr.is_unspecified() {
            Direction::from_flags(self.sends(), false)
        } else {
            self
        }
    }
}

/// The audio codecs we implement (static payload types, 8000 Hz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Pcmu,
    Pcma,
}

impl Codec {
    /// RTP static payload type: 0 for PCMU, 8 for PCMA.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Encoding name as used in a=rtpmap.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// RTP clock rate, Hz.
    pub fn clock_rate(self) -> u32 {
        8000
    }

    /// The m= format describing this codec.
    pub fn format(self) -> Format {
        Format {
            pt: self.payload_type(),
            encoding: self.name().to_owned(),
            clock_rate: self.clock_rate(),
            channels: None,
            fmtp: None,
        }
    }
}

/// One RTP payload format in an m= line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    pub pt: u8,
    /// Encoding name from a=rtpmap (or implied for static types); empty if unknown.
    pub encoding: String,
    /// Clock rate from a=rtpmap (or implied); 0 if unknown.
    pub clock_rate: u32,
    pub channels: Option<u8>,
    /// a=fmtp parameters (text after `a=fmtp:<pt> `).
    pub fmtp: Option<String>,
}

/// RFC 3551 static payload types: (encoding, clock rate, channels).
fn static_payload(pt: u8) -> Option<(&'static str, u32, Option<u8>)> {
    Some(match pt {
        0 => ("PCMU", 8000, None),
        3 => ("GSM", 8000, None),
        4 => ("G723", 8000, None),
        5 => ("DVI4", 8000, None),
        6 => ("DVI4", 16000, None),
        7 => ("LPC", 8000, None),
        8 => ("PCMA", 8000, None),
        9 => ("G722", 8000, None),
        10 => ("L16", 44100, Some(2)),
        11 => ("L16", 44100, None),
        12 => ("QCELP", 8000, None),
        13 => ("CN", 8000, None),
        14 => ("MPA", 90000, None),
        15 => ("G728", 8000, None),
        16 => ("DVI4", 11025, None),
        17 => ("DVI4", 22050, None),
        18 => ("G729", 8000, None),
        25 => ("CelB", 90000, None),
        26 => ("JPEG", 90000, None),
        28 => ("nv", 90000, None),
        31 => ("H261", 90000, None),
        32 => ("MPV", 90000, None),
        33 => ("MP2T", 90000, None),
        34 => ("H263", 90000, None),
        _ => return None,
    })
}

impl Format {
    /// A format as implied by the payload type alone (before any a=rtpmap):
    /// RFC 3551 static types get their encoding, others are left unknown.
    pub fn implied(pt: u8) -> Format {
        let (encoding, clock_rate, channels) = static_payload(pt).unwrap_or(("", 0, None));
        Format {
            pt,
            encoding: encoding.to_owned(),
            clock_rate,
            channels,
            fmtp: None,
        }
    }

    /// RFC 4733 telephone-event/8000 with events 0-16.
    pub fn telephone_event(pt: u8) -> Format {
        Format {
            pt,
            encoding: "telephone-event".to_owned(),
            clock_rate: 8000,
            channels: None,
            fmtp: Some("0-16".to_owned()),
        }
    }

    /// The codec this format is, if it is PCMU/PCMA on its static payload type.
    pub fn codec(&self) -> Option<Codec> {
        [Codec::Pcmu, Codec::Pcma].into_iter().find(|c| {
            self.pt == c.payload_type()
                && self.encoding.eq_ignore_ascii_case(c.name())
                && self.clock_rate == c.clock_rate()
                && matches!(self.channels, None | Some(1))
        })
    }

    /// Whether this is telephone-event at 8000 Hz.
    pub fn is_telephone_event(&self) -> bool {
        self.encoding.eq_ignore_ascii_case("telephone-event") && self.clock_rate == 8000
    }
}

/// One m= section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type, e.g. "audio".
    pub media: String,
    /// 0 = stream rejected/declined.
    pub port: u16,
    /// Transport, e.g. "RTP/AVP".
    pub proto: String,
    /// Payload formats in m= order (empty for non-RTP transports).
    pub formats: Vec<Format>,
    /// Media-level c= (overrides the session-level one).
    pub connection: Option<IpAddr>,
    pub ptime: Option<u32>,
    pub maxptime: Option<u32>,
    /// Effective direction: media-level attribute, else session-level, else sendrecv.
    pub direction: Direction,
    /// a=rtcp port (any address part is not kept).
    pub rtcp: Option<u16>,
    /// Lines of this section we do not interpret, verbatim with their prefix
    /// (e.g. `a=ssrc:1 cname:x`, `b=AS:64`).
    pub other_attributes: Vec<String>,
}

impl MediaDescription {
    /// Whether the transport is RTP-based (formats are payload types).
    pub fn is_rtp(&self) -> bool {
        is_rtp_proto(&self.proto)
    }

    /// Whether this is an audio stream.
    pub fn is_audio(&self) -> bool {
        self.media.eq_ignore_ascii_case("audio")
    }

    /// The m= line's format tokens (payload types, or e.g. `t38` for non-RTP).
    pub fn format_tokens(&self) -> Vec<String> {
        if !self.formats.is_empty() {
            return self.formats.iter().map(|f| f.pt.to_string()).collect();
        }
        self.other_attributes
            .iter()
            .find_map(|a| a.strip_prefix(FMT_TOKENS_PREFIX))
            .map(|t| t.split_ascii_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }

    /// The first SSRC this section announces (`a=ssrc:<id> <attribute>`, RFC 5576 §4.1);
    /// a malformed id is ignored.
    pub fn ssrc(&self) -> Option<u32> {
        self.other_attributes.iter().find_map(|a| {
            let rest = a.strip_prefix("a=ssrc:")?;
            let id = rest.split(|c: char| c.is_ascii_whitespace()).next()?;
            id.parse().ok()
        })
    }

    /// Payload type of telephone-event/8000, if listed.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.formats
            .iter()
            .find(|f| f.is_telephone_event())
            .map(|f| f.pt)
    }

    /// A copy with port 0 and the same format list (RFC 3264 §6 rejection).
    pub fn rejected(&self) -> MediaDescription {
        MediaDescription {
            media: self.media.clone(),
            port: 0,
            proto: self.proto.clone(),
            formats: self.formats.clone(),
            connection: None,
            ptime: None,
            maxptime: None,
            direction: Direction::Inactive,
            rtcp: None,
            other_attributes: self
                .other_attributes
                .iter()
                .filter(|a| a.starts_with(FMT_TOKENS_PREFIX))
                .cloned()
                .collect(),
        }
    }
}

fn is_rtp_proto(proto: &str) -> bool {
    proto
        .as_bytes()
        .windows(4)
        .any(|w| w.eq_ignore_ascii_case(b"RTP/"))
}

/// A parsed or generated session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionDescription {
    pub origin_username: String,
    pub session_id: u64,
    pub session_version: u64,
    /// o= address (a hostname there is replaced by the unspecified address).
    pub origin_address: IpAddr,
    pub session_name: String,
    /// Session-level c=.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute.
    pub direction: Option<Direction>,
    pub media: Vec<MediaDescription>,
    /// Session-level lines we do not interpret, verbatim with their prefix
    /// (e.g. `b=AS:80`, `a=group:BUNDLE 0`, `t=` other than `0 0`).
    pub other_lines: Vec<String>,
}

/// Digits-only number parse (no sign, no whitespace).
fn parse_num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// ptime-like value: integer, or a decimal whose fraction is dropped.
fn parse_ptime(s: &str) -> Option<u32> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    parse_num(int)
}

fn addr_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

/// Parse `IP4 1.2.3.4` / `IP6 ::1` (multicast `/ttl` suffix dropped).
fn parse_address(addrtype: &str, addr: &str) -> Result<IpAddr, String> {
    let addr = addr.split('/').next().unwrap_or(addr);
    match addrtype {
        "IP4" => addr
            .parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| format!("not an IPv4 address: {}", snippet(addr))),
        "IP6" => addr
            .parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| format!("not an IPv6 address: {}", snippet(addr))),
        other => Err(format!("unsupported address type {}", snippet(other))),
    }
}

fn parse_connection(value: &str, line: usize) -> Result<IpAddr, SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    let [nettype, addrtype, addr] = t.as_slice() else {
        return Err(syntax(line, "c= needs <nettype> <addrtype> <address>"));
    };
    if *nettype != "IN" {
        return Err(syntax(
            line,
            format!("unsupported network type {}", snippet(nettype)),
        ));
    }
    parse_address(addrtype, addr).map_err(|r| syntax(line, r))
}

fn parse_origin(value: &str, line: usize) -> Result<(String, u64, u64, IpAddr), SdpError> {
    let t: Vec<&str> = value.split_ascii_whitespace().collect();
    let [user, id, version, nettype, addrtype, addr] = t.as_slice() else {
        return Err(syntax(
            line,
            "o= needs <username> <sess-id> <sess-version> <nettype> <addrtype> <address>",
        ));
    };
    let id = parse_num(id).ok_or_else(|| syntax(line, "o= session id is not a 64-bit number"))?;
    let version = parse_num(version)
        .ok_or_else(|| syntax(line, "o= session version is not a 64-bit number"))?;
    if *nettype != "IN" {
        return Err(syntax(
            line,
            format!("unsupported network type {}", snippet(nettype)),
        ));
    }
    // The origin address is informational; tolerate a hostname there.
    let address = match *addrtype {
        "IP4" => addr
            .parse::<Ipv4Addr>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), IpAddr::V4),
        "IP6" => addr
            .parse::<Ipv6Addr>()
            .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), IpAddr::V6),
        other => {
            return Err(syntax(
                line,
                format!("unsupported address type {}", snippet(other)),
            ));
        }
    };
    Ok(((*user).to_owned(), id, version, address))
}

/// Media section being parsed: direction is resolved at the end.
struct MediaBuilder {
    md: MediaDescription,
    direction: Option<Direction>,
    has_connection: bool,
}

fn parse_media_line(
    value: &str,
    line: usize,
    format_count: &mut usize,
) -> Result<MediaBuilder, SdpError> {
    let mut t = value.split_ascii_whitespace();
    let (Some(media), Some(port), Some(proto)) = (t.next(), t.next(), t.next()) else {
        return Err(syntax(line, "m= needs <media> <port> <proto> <fmt> ..."));
    };
    let (port, count) = match port.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (port, None),
    };
    let port: u16 =
        parse_num(port).ok_or_else(|| syntax(line, format!("bad m= port {}", snippet(port))))?;
    // A port count (`/2`) is validated but not kept.
    if let Some(c) = count
        && parse_num::<u16>(c).is_none()
    {
        return Err(syntax(line, format!("bad m= port count {}", snippet(c))));
    }
    let tokens: Vec<&str> = t.collect();
    if tokens.is_empty() {
        return Err(syntax(line, "m= line has no formats"));
    }
    *format_count = format_count.saturating_add(tokens.len());
    if *format_count > MAX_FORMATS {
        return Err(SdpError::TooManyFormats {
            line,
            limit: MAX_FORMATS,
        });
    }
    let mut formats = Vec::new();
    let mut other_attributes = Vec::new();
    if is_rtp_proto(proto) {
        for tok in tokens {
            let pt: u8 = parse_num(tok)
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| syntax(line, format!("bad RTP payload type {}", snippet(tok))))?;
            if formats.iter().any(|f: &Format| f.pt == pt) {
                return Err(syntax(line, format!("payload type {pt} listed twice")));
            }
            formats.push(Format::implied(pt));
        }
    } else {
        other_attributes.push(format!("{FMT_TOKENS_PREFIX}{}", tokens.join(" ")));
    }
    Ok(MediaBuilder {
        md: MediaDescription {
            media: media.to_owned(),
            port,
            proto: proto.to_owned(),
            formats,
            connection: None,
            ptime: None,
            maxptime: None,
            direction: Direction::SendRecv,
            rtcp: None,
            other_attributes,
        },
        direction: None,
        has_connection: false,
    })
}

/// `a=rtpmap:` argument: `<pt> <encoding>/<clock>[/<channels>]`.
fn parse_rtpmap(arg: &str, line: usize) -> Result<(u8, String, u32, Option<u8>), SdpError> {
    let bad = || syntax(line, format!("bad a=rtpmap:{}", snippet(arg)));
    let (pt, rest) = arg.split_once(' ').ok_or_else(bad)?;
    let pt: u8 = parse_num(pt).ok_or_else(bad)?;
    let mut parts = rest.trim().split('/');
    let encoding = parts.next().unwrap_or("");
    if encoding.is_empty() || encoding.contains(|c: char| c.is_whitespace()) {
        return Err(bad());
    }
    let clock: u32 = parts.next().and_then(parse_num).ok_or_else(bad)?;
    let channels = match parts.next() {
        Some(c) => Some(parse_num::<u8>(c).ok_or_else(bad)?),
        None => None,
    };
    if parts.next().is_some() {
        return Err(bad());
    }
    Ok((pt, encoding.to_owned(), clock, channels))
}

/// Apply one media-level `a=` line.
fn parse_media_attribute(
    m: &mut MediaBuilder,
    value: &str,
    whole: &str,
    line: usize,
) -> Result<(), SdpError> {
    let (name, arg) = match value.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (value, None),
    };
    // Parsed RTP m= lines always have formats; non-RTP ones never do.
    let rtp = !m.md.formats.is_empty();
    match (name, arg) {
        ("rtpmap", Some(arg)) if rtp => {
            let (pt, encoding, clock_rate, channels) = parse_rtpmap(arg, line)?;
            match m.md.formats.iter_mut().find(|f| f.pt == pt) {
                Some(f) => {
                    f.encoding = encoding;
                    f.clock_rate = clock_rate;
                    f.channels = channels;
                }
                None => m.md.other_attributes.push(whole.to_owned()),
            }
        }
        ("fmtp", Some(arg)) if rtp => {
            let (pt, params) = arg.split_once(' ').unwrap_or((arg, ""));
            let pt: u8 = parse_num(pt)
                .ok_or_else(|| syntax(line, format!("bad a=fmtp:{}", snippet(arg))))?;
            match m.md.formats.iter_mut().find(|f| f.pt == pt) {
                Some(f) => f.fmtp = Some(params.to_owned()),
                None => m.md.other_attributes.push(whole.to_owned()),
            }
        }
        ("ptime", Some(arg)) => {
            m.md.ptime = Some(
                parse_ptime(arg)
                    .ok_or_else(|| syntax(line, format!("bad a=ptime:{}", snippet(arg))))?,
            );
        }
        ("maxptime", Some(arg)) => {
            m.md.maxptime = Some(
                parse_ptime(arg)
                    .ok_or_else(|| syntax(line, format!("bad a=maxptime:{}", snippet(arg))))?,
            );
        }
        ("rtcp", Some(arg)) => {
            let port = arg.split_ascii_whitespace().next().unwrap_or("");
            m.md.rtcp = Some(
                parse_num(port)
                    .ok_or_else(|| syntax(line, format!("bad a=rtcp:{}", snippet(arg))))?,
            );
        }
        (name, None) if Direction::from_attribute(name).is_some() => {
            m.direction = Direction::from_attribute(name);
        }
        _ => m.md.other_attributes.push(whole.to_owned()),
    }
    Ok(())
}

/// Output group of a session-level kept line (RFC 8866 §5 order).
fn session_rank(line: &str) -> u8 {
    match line.as_bytes().first() {
        Some(b'i' | b'u' | b'e' | b'p') => 0, // before c=
        Some(b'b') => 1,                      // after c=
        Some(b't' | b'r') => 2,               // timing
        Some(b'z' | b'k') => 3,
        Some(b'a') => 4,
        _ => 5,
    }
}

/// Output group of a media-level kept line.
fn media_rank(line: &str) -> u8 {
    if line.starts_with(FMT_TOKENS_PREFIX) {
        return 0;
    }
    match line.as_bytes().first() {
        Some(b'i') => 0,        // before c=
        Some(b'b' | b'k') => 1, // after c=
        Some(b'a') => 2,        // after the attributes we model
        _ => 3,
    }
}

fn is_zero_time(line: &str) -> bool {
    line.strip_prefix("t=")
        .is_some_and(|v| v.split_ascii_whitespace().eq(["0", "0"]))
}

/// Write one line, replacing control characters so that values built in code
/// cannot inject extra lines.
fn push_line(out: &mut String, line: &str) {
    out.extend(
        line.chars()
            .map(|c| if c.is_control() && c != '\t' { ' ' } else { c }),
    );
    out.push_str("\r\n");
}

impl SessionDescription {
    /// Parse an SDP body. Accepts CRLF or bare LF, IPv4/IPv6, static payload
    /// types without a=rtpmap; keeps unknown lines. Requires v=, o= and m=.
    pub fn parse(text: &[u8]) -> Result<Self, SdpError> {
        if text.len() > MAX_SDP_LEN {
            return Err(SdpError::TooLarge {
                size: text.len(),
                limit: MAX_SDP_LEN,
            });
        }
        let mut seen_v = false;
        let mut origin = None;
        let mut session_name = None;
        let mut connection = None;
        let mut direction = None;
        let mut other_lines = Vec::new();
        let mut media: Vec<MediaBuilder> = Vec::new();
        let mut format_count = 0usize;

        for (idx, raw) in text.split(|&b| b == b'\n').enumerate() {
            let line = idx + 1;
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let s = std::str::from_utf8(raw).map_err(|_| SdpError::InvalidUtf8 { line })?;
            if s.chars().any(|c| c.is_control() && c != '\t') {
                return Err(syntax(line, "control character in line"));
            }
            let Some((kind, value)) = s.split_once('=') else {
                return Err(syntax(line, "expected <type>=<value>"));
            };
            let mut kind_chars = kind.chars();
            let kind = match (kind_chars.next(), kind_chars.next()) {
                (Some(k), None) if k.is_ascii_lowercase() => k,
                _ => {
                    return Err(syntax(line, format!("bad line type {}", snippet(kind))));
                }
            };
            if !seen_v {
                if kind != 'v' {
                    return Err(SdpError::MissingLine('v'));
                }
                if value != "0" {
                    return Err(syntax(
                        line,
                        format!("unsupported SDP version {}", snippet(value)),
                    ));
                }
                seen_v = true;
                continue;
            }
            match (kind, media.last_mut()) {
                ('v', _) => return Err(syntax(line, "duplicate v= line")),
                ('m', _) => {
                    if media.len() >= MAX_MEDIA {
                        return Err(SdpError::TooManyMedia {
                            line,
                            limit: MAX_MEDIA,
                        });
                    }
                    media.push(parse_media_line(value, line, &mut format_count)?);
                }
                ('o', None) => {
                    if origin.is_some() {
                        return Err(syntax(line, "duplicate o= line"));
                    }
                    origin = Some(parse_origin(value, line)?);
                }
                ('s', None) => {
                    if session_name.is_some() {
                        return Err(syntax(line, "duplicate s= line"));
                    }
                    session_name = Some(value.to_owned());
                }
                ('c', None) => {
                    if connection.is_some() {
                        return Err(syntax(line, "duplicate session-level c= line"));
                    }
                    connection = Some(parse_connection(value, line)?);
                }
                ('t', None) => {
                    let mut t = value.split_ascii_whitespace();
                    let ok = matches!(
                        (
                            t.next().and_then(parse_num::<u64>),
                            t.next().and_then(parse_num::<u64>),
                            t.next()
                        ),
                        (Some(_), Some(_), None)
                    );
                    if !ok {
                        return Err(syntax(line, "t= needs <start> <stop>"));
                    }
                    other_lines.push(s.to_owned());
                }
                ('a', None) => match Direction::from_attribute(value) {
                    Some(d) => direction = Some(d),
                    None => other_lines.push(s.to_owned()),
                },
                (_, None) => other_lines.push(s.to_owned()),
                ('o' | 's' | 't' | 'r' | 'z', Some(_)) => {
                    return Err(syntax(line, format!("{kind}= not allowed after m=")));
                }
                ('c', Some(m)) => {
                    if m.has_connection {
                        return Err(syntax(line, "duplicate media-level c= line"));
                    }
                    m.md.connection = Some(parse_connection(value, line)?);
                    m.has_connection = true;
                }
                ('a', Some(m)) => parse_media_attribute(m, value, s, line)?,
                (_, Some(m)) => m.md.other_attributes.push(s.to_owned()),
            }
        }

        if !seen_v {
            return Err(SdpError::MissingLine('v'));
        }
        let Some((origin_username, session_id, session_version, origin_address)) = origin else {
            return Err(SdpError::MissingLine('o'));
        };
        if media.is_empty() {
            return Err(SdpError::MissingLine('m'));
        }
        // A single `t=0 0` is the default we always write; keep anything else.
        if other_lines.iter().filter(|l| l.starts_with("t=")).count() == 1 {
            other_lines.retain(|l| !is_zero_time(l));
        }
        other_lines.sort_by_key(|l| session_rank(l));
        let media = media
            .into_iter()
            .map(|mut b| {
                b.md.direction = b.direction.or(direction).unwrap_or(Direction::SendRecv);
                b.md.other_attributes.sort_by_key(|l| media_rank(l));
                b.md
            })
            .collect();
        Ok(SessionDescription {
            origin_username,
            session_id,
            session_version,
            origin_address,
            session_name: session_name.unwrap_or_else(|| "-".to_owned()),
            connection,
            direction,
            media,
            other_lines,
        })
    }

    /// Canonical serialisation with CRLF line ends.
    pub fn to_string_crlf(&self) -> String {
        let mut out = String::with_capacity(256);
        push_line(&mut out, "v=0");
        let user = if self.origin_username.is_empty()
            || self.origin_username.contains(char::is_whitespace)
        {
            "-"
        } else {
            self.origin_username.as_str()
        };
        push_line(
            &mut out,
            &format!(
                "o={user} {} {} IN {} {}",
                self.session_id,
                self.session_version,
                addr_type(self.origin_address),
                self.origin_address
            ),
        );
        push_line(&mut out, &format!("s={}", self.session_name));
        let group = |out: &mut String, rank: u8| {
            for l in self.other_lines.iter().filter(|l| session_rank(l) == rank) {
                push_line(out, l);
            }
        };
        group(&mut out, 0);
        if let Some(c) = self.connection {
            push_line(&mut out, &format!("c=IN {} {c}", addr_type(c)));
        }
        group(&mut out, 1);
        if !self.other_lines.iter().any(|l| l.starts_with("t=")) {
            push_line(&mut out, "t=0 0");
        }
        group(&mut out, 2);
        group(&mut out, 3);
        if let Some(d) = self.direction {
            push_line(&mut out, &format!("a={}", d.attribute()));
        }
        group(&mut out, 4);
        group(&mut out, 5);
        for m in &self.media {
            write_media(&mut out, m);
        }
        out
    }

    /// Effective connection address of the m= line at `index`
    /// (media-level c= overrides session-level).
    pub fn media_connection(&self, index: usize) -> Option<IpAddr> {
        self.media
            .get(index)
            .and_then(|m| m.connection.or(self.connection))
    }

    /// Address and port of the first non-rejected audio m= line.
    pub fn audio_connection(&self) -> Option<(IpAddr, u16)> {
        let (i, m) = self
            .media
            .iter()
            .enumerate()
            .find(|(_, m)| m.is_audio() && m.port != 0)?;
        Some((self.media_connection(i)?, m.port))
    }

    /// Make `self` the next SDP of the session that `previous` belongs to
    /// (RFC 3264 §8): same origin user and id; version unchanged if the content
    /// is identical, else `previous` version + 1. Returns whether it changed.
    pub fn continue_from(&mut self, previous: &SessionDescription) -> bool {
        self.origin_username.clone_from(&previous.origin_username);
        self.session_id = previous.session_id;
        self.session_version = previous.session_version;
        let changed = self != previous;
        if changed {
            self.session_version = previous.session_version.wrapping_add(1);
        }
        changed
    }
}

fn write_media(out: &mut String, m: &MediaDescription) {
    push_line(
        out,
        &format!(
            "m={} {} {} {}",
            m.media,
            m.port,
            m.proto,
            m.format_tokens().join(" ")
        ),
    );
    let group = |out: &mut String, rank: u8| {
        for l in m
            .other_attributes
            .iter()
            .filter(|l| !l.starts_with(FMT_TOKENS_PREFIX) && media_rank(l) == rank)
        {
            push_line(out, l);
        }
    };
    group(out, 0);
    if let Some(c) = m.connection {
        push_line(out, &format!("c=IN {} {c}", addr_type(c)));
    }
    group(out, 1);
    for f in &m.formats {
        if !f.encoding.is_empty() {
            let channels = f.channels.map(|c| format!("/{c}")).unwrap_or_default();
            push_line(
                out,
                &format!(
                    "a=rtpmap:{} {}/{}{channels}",
                    f.pt, f.encoding, f.clock_rate
                ),
            );
        }
        match f.fmtp.as_deref() {
            Some("") => push_line(out, &format!("a=fmtp:{}", f.pt)),
            Some(p) => push_line(out, &format!("a=fmtp:{} {p}", f.pt)),
            None => {}
        }
    }
    if let Some(p) = m.ptime {
        push_line(out, &format!("a=ptime:{p}"));
    }
    if let Some(p) = m.maxptime {
        push_line(out, &format!("a=maxptime:{p}"));
    }
    push_line(out, &format!("a={}", m.direction.attribute()));
    if let Some(p) = m.rtcp {
        push_line(out, &format!("a=rtcp:{p}"));
    }
    group(out, 2);
    group(out, 3);
}

impl fmt::Display for SessionDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_crlf())
    }
}

/// Our local media parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    pub address: IpAddr,
    pub rtp_port: u16,
    /// Preference order.
    pub codecs: Vec<Codec>,
    /// Default `Some(101)`.
    pub telephone_event_pt: Option<u8>,
    /// Milliseconds, default 20.
    pub ptime: u32,
    pub session_id: u64,
    pub session_version: u64,
    /// Our RTP SSRC and CNAME, announced as `a=ssrc:<id> cname:<cname>` (RFC 5576) when set.
    /// A media engine that receives many calls on one socket needs it: the far end's packets
    /// all come from one address, and only the SSRC tells the calls apart.
    pub ssrc: Option<(u32, String)>,
}

/// A ptime a G.711 media layer can reasonably use.
fn sane_ptime(p: &u32) -> bool {
    (10..=200).contains(p)
}

impl LocalMedia {
    /// Defaults: PCMU then PCMA, telephone-event 101, ptime 20, version = id.
    pub fn new(address: IpAddr, rtp_port: u16, session_id: u64) -> LocalMedia {
        LocalMedia {
            address,
            rtp_port,
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: Some(DEFAULT_TELEPHONE_EVENT_PT),
            ptime: DEFAULT_PTIME,
            session_id,
            session_version: session_id,
            ssrc: None,
        }
    }

    /// Announce `ssrc` with `cname` in offers and answers (RFC 5576 §4.1).
    pub fn with_ssrc(mut self, ssrc: u32, cname: impl Into<String>) -> LocalMedia {
        self.ssrc = Some((ssrc, cname.into()));
        self
    }

    /// The `a=ssrc` line of our media section, if any (the CNAME is the attribute RFC 5576
    /// requires with it).
    fn ssrc_attributes(&self) -> Vec<String> {
        self.ssrc
            .iter()
            .map(|(id, cname)| format!("a=ssrc:{id} cname:{cname}"))
            .collect()
    }

    fn session(&self, media: Vec<MediaDescription>) -> SessionDescription {
        SessionDescription {
            origin_username: "-".to_owned(),
            session_id: self.session_id,
            session_version: self.session_version,
            origin_address: self.address,
            session_name: "-".to_owned(),
            connection: Some(self.address),
            direction: None,
            media,
            other_lines: Vec::new(),
        }
    }

    /// Our offer: `m=audio <port> RTP/AVP 0 8 101` with rtpmaps,
    /// `fmtp:101 0-16`, `ptime:20`, `sendrecv`.
    pub fn offer(&self) -> SessionDescription {
        let mut formats: Vec<Format> = Vec::new();
        for c in &self.codecs {
            if !formats.iter().any(|f| f.pt == c.payload_type()) {
                formats.push(c.format());
            }
        }
        if let Some(pt) = self.telephone_event_pt
            && pt <= 127
            && !formats.iter().any(|f| f.pt == pt)
        {
            formats.push(Format::telephone_event(pt));
        }
        self.session(vec![MediaDescription {
            media: "audio".to_owned(),
            port: self.rtp_port,
            proto: "RTP/AVP".to_owned(),
            formats,
            connection: None,
            ptime: Some(self.ptime),
            maxptime: None,
            direction: Direction::SendRecv,
            rtcp: None,
            other_attributes: self.ssrc_attributes(),
        }])
    }

    /// Answer a remote offer (INVITE, re-INVITE or UPDATE). The first usable
    /// RTP/AVP audio line is accepted with the first codec in the offer's order
    /// that we support (plus telephone-event on the offer's PT); every other
    /// m= line is answered with port 0.
    pub fn answer(
        &self,
        offer: &SessionDescription,
    ) -> Result<(SessionDescription, Negotiated), SdpError> {
        let mut media = Vec::with_capacity(offer.media.len());
        let mut negotiated = None;
        let mut saw_audio = false;
        for (i, m) in offer.media.iter().enumerate() {
            let usable = negotiated.is_none()
                && m.port != 0
                && m.is_audio()
                && m.proto.eq_ignore_ascii_case("RTP/AVP");
            if usable {
                saw_audio = true;
                if let Some((md, n)) = self.accept_audio(offer, i, m)? {
                    media.push(md);
                    negotiated = Some(n);
                    continue;
                }
            }
            media.push(m.rejected());
        }
        match negotiated {
            Some(n) => Ok((self.session(media), n)),
            None if saw_audio => Err(SdpError::NoCommonCodec),
            None => Err(SdpError::NoAudio),
        }
    }

    fn accept_audio(
        &self,
        offer: &SessionDescription,
        index: usize,
        m: &MediaDescription,
    ) -> Result<Option<(MediaDescription, Negotiated)>, SdpError> {
        let Some(codec) = m
            .formats
            .iter()
            .filter_map(Format::codec)
            .find(|c| self.codecs.contains(c))
        else {
            return Ok(None);
        };
        let remote_ip = offer
            .media_connection(index)
            .ok_or(SdpError::MissingConnection)?;
        let telephone_event_pt = self.telephone_event_pt.and_then(|_| m.telephone_event_pt());
        let direction = m.direction.with_address(remote_ip).reversed();
        let mut formats = vec![codec.format()];
        formats.extend(telephone_event_pt.map(Format::telephone_event));
        let md = MediaDescription {
            media: m.media.clone(),
            port: self.rtp_port,
            proto: m.proto.clone(),
            formats,
            connection: None,
            ptime: Some(self.ptime),
            maxptime: None,
            direction,
            rtcp: None,
            other_attributes: self.ssrc_attributes(),
        };
        let negotiated = Negotiated {
            codec,
            remote_rtp: SocketAddr::new(remote_ip, m.port),
            remote_ssrc: m.ssrc(),
            telephone_event_pt,
            ptime: m.ptime.filter(sane_ptime).unwrap_or(self.ptime),
            direction,
        };
        Ok(Some((md, negotiated)))
    }
}

/// What the media layer needs from a completed offer/answer exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Where to send RTP (unspecified address when the far end holds).
    pub remote_rtp: SocketAddr,
    /// The far end's RTP SSRC when its description announced one (`a=ssrc`, RFC 5576).
    pub remote_ssrc: Option<u32>,
    pub telephone_event_pt: Option<u8>,
    /// Packetisation time to send with, milliseconds.
    pub ptime: u32,
    /// OUR direction.
    pub direction: Direction,
}

/// We sent `offer`, the far end answered `answer` (18x or 2xx): check it and
/// extract what was agreed.
pub fn negotiate(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Negotiated, SdpError> {
    let (index, ours) = offer
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.is_audio() && m.port != 0 && m.is_rtp())
        .ok_or(SdpError::NoAudio)?;
    if answer.media.len() != offer.media.len() {
        return Err(SdpError::MediaCountMismatch {
            offer: offer.media.len(),
            answer: answer.media.len(),
        });
    }
    let theirs = answer.media.get(index).ok_or(SdpError::NoAudio)?;
    if !theirs.is_audio() {
        return Err(SdpError::NoAudio);
    }
    if theirs.port == 0 {
        return Err(SdpError::AudioRejected);
    }
    let codec = theirs
        .formats
        .iter()
        .filter_map(Format::codec)
        .find(|c| ours.formats.iter().any(|f| f.codec() == Some(*c)))
        .ok_or(SdpError::NoCommonCodec)?;
    let telephone_event_pt = ours.telephone_event_pt().and(theirs.telephone_event_pt());
    let remote_ip = answer
        .media_connection(index)
        .ok_or(SdpError::MissingConnection)?;
    let our_dir = match offer.media_connection(index) {
        Some(ip) => ours.direction.with_address(ip),
        None => ours.direction,
    };
    let their_dir = theirs.direction.with_address(remote_ip);
    let direction = Direction::from_flags(
        our_dir.sends() && their_dir.receives(),
        our_dir.receives() && their_dir.sends(),
    );
    let ptime = theirs
        .ptime
        .filter(sane_ptime)
        .or(ours.ptime.filter(sane_ptime))
        .unwrap_or(DEFAULT_PTIME);
    Ok(Negotiated {
        codec,
        remote_rtp: SocketAddr::new(remote_ip, theirs.port),
        remote_ssrc: theirs.ssrc(),
        telephone_event_pt,
        ptime,
        direction,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> SessionDescription {
        match SessionDescription::parse(s.as_bytes()) {
            Ok(sdp) => sdp,
            Err(e) => panic!("parse failed: {e}\n{s}"),
        }
    }

    fn crlf(lines: &[&str]) -> String {
        lines.iter().map(|l| format!("{l}\r\n")).collect()
    }

    /// parse(print(x)) == x and print is a fixed point.
    fn assert_round_trip(sdp: &SessionDescription) {
        let text = sdp.to_string_crlf();
        let again = parse(&text);
        assert_eq!(&again, sdp, "round trip changed:\n{text}");
        assert_eq!(again.to_string_crlf(), text);
    }

    fn local() -> LocalMedia {
        LocalMedia::new("192.0.2.10".parse().unwrap(), 40000, 1000)
    }

    fn offer_with(m_and_attrs: &[&str]) -> SessionDescription {
        let mut lines = vec![
            "v=0",
            "o=far 5 5 IN IP4 198.51.100.7",
            "s=call",
            "c=IN IP4 198.51.100.7",
            "t=0 0",
        ];
        lines.extend_from_slice(m_and_attrs);
        parse(&crlf(&lines))
    }

    #[test]
    fn every_line_type_round_trips() {
        let text = crlf(&[
            "v=0",
            "o=alice 2890844526 2890844527 IN IP4 203.0.113.5",
            "s=Talk",
            "c=IN IP4 203.0.113.5",
            "t=0 0",
            "m=audio 49170 RTP/AVP 0 8 97 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000/1",
            "a=rtpmap:97 L16/16000/2",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=ptime:30",
            "a=maxptime:60",
            "a=sendonly",
            "a=rtcp:49171",
        ]);
        let sdp = parse(&text);
        assert_eq!(sdp.origin_username, "alice");
        assert_eq!(sdp.session_id, 2890844526);
        assert_eq!(sdp.session_version, 2890844527);
        assert_eq!(sdp.origin_address, "203.0.113.5".parse::<IpAddr>().unwrap());
        assert_eq!(sdp.session_name, "Talk");
        assert_eq!(sdp.connection, Some("203.0.113.5".parse().unwrap()));
        assert!(sdp.other_lines.is_empty());
        let m = &sdp.media[0];
        assert_eq!(
            (m.media.as_str(), m.port, m.proto.as_str()),
            ("audio", 49170, "RTP/AVP")
        );
        assert_eq!(m.formats[1].channels, Some(1));
        assert_eq!(
            m.formats[2],
            Format {
                pt: 97,
                encoding: "L16".into(),
                clock_rate: 16000,
                channels: Some(2),
                fmtp: None
            }
        );
        assert_eq!(m.formats[3].fmtp.as_deref(), Some("0-15"));
        assert_eq!(
            (m.ptime, m.maxptime, m.rtcp),
            (Some(30), Some(60), Some(49171))
        );
        assert_eq!(m.direction, Direction::SendOnly);
        assert!(m.other_attributes.is_empty());
        // Our canonical form of this input is the input itself.
        assert_eq!(sdp.to_string_crlf(), text);
        assert_round_trip(&sdp);
    }

    #[test]
    fn ipv6_and_all_directions_round_trip() {
        for dir in [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ] {
            let attr = format!("a={}", dir.attribute());
            let text = crlf(&[
                "v=0",
                "o=- 1 2 IN IP6 2001:db8::1",
                "s=-",
                "c=IN IP6 ::1",
                "t=0 0",
                "m=audio 5004 RTP/AVP 0",
                "c=IN IP6 2001:db8::2",
                "a=rtpmap:0 PCMU/8000",
                &attr,
            ]);
            let sdp = parse(&text);
            assert_eq!(sdp.connection, Some("::1".parse().unwrap()));
            assert_eq!(sdp.media[0].direction, dir);
            assert_eq!(
                sdp.audio_connection(),
                Some(("2001:db8::2".parse().unwrap(), 5004))
            );
            assert_eq!(sdp.to_string_crlf(), text);
            assert_round_trip(&sdp);
        }
    }

    #[test]
    fn session_level_direction_and_kept_lines() {
        let text = "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\ni=info\nc=IN IP4 10.0.0.1\nb=AS:80\nt=0 0\na=sendonly\na=group:BUNDLE 0\nm=audio 4000 RTP/AVP 8\nb=TIAS:64000\na=mid:0\n";
        let sdp = parse(text);
        assert_eq!(sdp.direction, Some(Direction::SendOnly));
        assert_eq!(sdp.media[0].direction, Direction::SendOnly);
        assert_eq!(sdp.other_lines, ["i=info", "b=AS:80", "a=group:BUNDLE 0"]);
        assert_eq!(sdp.media[0].other_attributes, ["b=TIAS:64000", "a=mid:0"]);
        assert_eq!(
            sdp.to_string_crlf(),
            crlf(&[
                "v=0",
                "o=- 1 1 IN IP4 10.0.0.1",
                "s=x",
                "i=info",
                "c=IN IP4 10.0.0.1",
                "b=AS:80",
                "t=0 0",
                "a=sendonly",
                "a=group:BUNDLE 0",
                "m=audio 4000 RTP/AVP 8",
                "b=TIAS:64000",
                "a=rtpmap:8 PCMA/8000",
                "a=sendonly",
                "a=mid:0",
            ])
        );
        assert_round_trip(&sdp);
    }

    #[test]
    fn non_zero_timing_is_kept() {
        let sdp = parse(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=x\nt=3034423619 3042462419\nr=7d 1h 0 25h\nm=audio 4000 RTP/AVP 0\n",
        );
        assert_eq!(
            sdp.other_lines,
            ["t=3034423619 3042462419", "r=7d 1h 0 25h"]
        );
        assert!(!sdp.to_string_crlf().contains("t=0 0"));
        assert_round_trip(&sdp);
    }

    const ASTERISK_ANSWER: &str = "v=0\r\n\
o=- 1904468735 1904468737 IN IP4 203.0.113.10\r\n\
s=Asterisk\r\n\
c=IN IP4 203.0.113.10\r\n\
b=AS:64\r\n\
t=0 0\r\n\
m=audio 17046 RTP/AVP 0 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=rtcp:17047\r\n\
a=ssrc:1376482637 cname:5c2a8a4b-6b2f-4c3e-9d11-2a0c4fd4a1b7\r\n\
a=ptime:20\r\n\
a=maxptime:150\r\n\
a=sendrecv\r\n";

    const FREESWITCH_ANSWER: &str = "v=0\r\n\
o=FreeSWITCH 1712345678 1712345679 IN IP4 198.51.100.20\r\n\
s=FreeSWITCH\r\n\
c=IN IP4 198.51.100.20\r\n\
t=0 0\r\n\
m=audio 24594 RTP/AVP 8 101\r\n\
b=AS:64\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n\
a=rtcp:24595 IN IP4 198.51.100.20\r\n\
a=ssrc:2846231963 cname:Hk0xq3pWcYzqKZNL\r\n\
a=ssrc:2846231963 msid:fs audio0\r\n";

    #[test]
    fn asterisk_answer() {
        let answer = parse(ASTERISK_ANSWER);
        assert_eq!(answer.other_lines, ["b=AS:64"]);
        let m = &answer.media[0];
        assert_eq!(m.rtcp, Some(17047));
        assert_eq!(m.maxptime, Some(150));
        assert_eq!(
            m.other_attributes,
            ["a=ssrc:1376482637 cname:5c2a8a4b-6b2f-4c3e-9d11-2a0c4fd4a1b7"]
        );
        let n = negotiate(&local().offer(), &answer).unwrap();
        assert_eq!(
            n,
            Negotiated {
                codec: Codec::Pcmu,
                remote_rtp: "203.0.113.10:17046".parse().unwrap(),
                remote_ssrc: Some(1_376_482_637),
                telephone_event_pt: Some(101),
                ptime: 20,
                direction: Direction::SendRecv,
            }
        );
        assert_round_trip(&answer);
    }

    #[test]
    fn freeswitch_answer() {
        let answer = parse(FREESWITCH_ANSWER);
        assert_eq!(answer.origin_username, "FreeSWITCH");
        let m = &answer.media[0];
        assert_eq!(m.rtcp, Some(24595));
        assert_eq!(
            m.other_attributes,
            [
                "b=AS:64",
                "a=ssrc:2846231963 cname:Hk0xq3pWcYzqKZNL",
                "a=ssrc:2846231963 msid:fs audio0"
            ]
        );
        let n = negotiate(&local().offer(), &answer).unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.remote_rtp, "198.51.100.20:24594".parse().unwrap());
        assert_eq!(n.remote_ssrc, Some(2_846_231_963));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.direction, Direction::SendRecv);
        assert_round_trip(&answer);
        // Bare-LF form parses identically.
        assert_eq!(parse(&FREESWITCH_ANSWER.replace("\r\n", "\n")), answer);
    }

    #[test]
    fn announced_ssrc_goes_both_ways() {
        let caller = local().with_ssrc(0xDEAD_BEEF, "dialer-1@192.0.2.1");
        let offer = caller.offer();
        let text = offer.to_string_crlf();
        assert!(
            text.contains("a=ssrc:3735928559 cname:dialer-1@192.0.2.1\r\n"),
            "{text}"
        );
        assert_round_trip(&offer);
        let callee = LocalMedia::new("192.0.2.2".parse().unwrap(), 40000, 7).with_ssrc(42, "sim");
        let (answer, n) = callee.answer(&parse(&text)).unwrap();
        assert_eq!(n.remote_ssrc, Some(0xDEAD_BEEF));
        let back = negotiate(&offer, &parse(&answer.to_string_crlf())).unwrap();
        assert_eq!(back.remote_ssrc, Some(42));
        // No announcement, or a malformed one: no SSRC.
        let plain = LocalMedia::new("192.0.2.2".parse().unwrap(), 40000, 7);
        let (_, n) = plain.answer(&local().offer()).unwrap();
        assert_eq!(n.remote_ssrc, None);
        let bad = offer_with(&["m=audio 30000 RTP/AVP 0", "a=ssrc:x cname:y"]);
        assert_eq!(bad.media[0].ssrc(), None);
    }

    #[test]
    fn offer_is_exactly_as_specified() {
        let offer = local().offer();
        assert_eq!(
            offer.to_string_crlf(),
            crlf(&[
                "v=0",
                "o=- 1000 1000 IN IP4 192.0.2.10",
                "s=-",
                "c=IN IP4 192.0.2.10",
                "t=0 0",
                "m=audio 40000 RTP/AVP 0 8 101",
                "a=rtpmap:0 PCMU/8000",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-16",
                "a=ptime:20",
                "a=sendrecv",
            ])
        );
        assert_round_trip(&offer);
        let mut v6 = local();
        v6.address = "2001:db8::10".parse().unwrap();
        let text = v6.offer().to_string_crlf();
        assert!(text.contains("o=- 1000 1000 IN IP6 2001:db8::10\r\n"));
        assert!(text.contains("c=IN IP6 2001:db8::10\r\n"));
    }

    #[test]
    fn answer_to_pcma_first_offer_picks_pcma() {
        let offer = offer_with(&[
            "m=audio 30000 RTP/AVP 8 0 96",
            "a=rtpmap:96 telephone-event/8000",
            "a=fmtp:96 0-15",
            "a=ptime:30",
        ]);
        let (answer, n) = local().answer(&offer).unwrap();
        assert_eq!(
            n,
            Negotiated {
                codec: Codec::Pcma,
                remote_rtp: "198.51.100.7:30000".parse().unwrap(),
                remote_ssrc: None,
                telephone_event_pt: Some(96),
                ptime: 30,
                direction: Direction::SendRecv,
            }
        );
        assert_eq!(
            answer.to_string_crlf(),
            crlf(&[
                "v=0",
                "o=- 1000 1000 IN IP4 192.0.2.10",
                "s=-",
                "c=IN IP4 192.0.2.10",
                "t=0 0",
                "m=audio 40000 RTP/AVP 8 96",
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:96 telephone-event/8000",
                "a=fmtp:96 0-16",
                "a=ptime:20",
                "a=sendrecv",
            ])
        );
        // The offerer's view of our answer agrees.
        let theirs = negotiate(&offer, &answer).unwrap();
        assert_eq!(theirs.codec, Codec::Pcma);
        assert_eq!(theirs.telephone_event_pt, Some(96));
    }

    #[test]
    fn answer_without_telephone_event_support() {
        let offer = offer_with(&[
            "m=audio 30000 RTP/AVP 0 101",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let mut me = local();
        me.telephone_event_pt = None;
        let (answer, n) = me.answer(&offer).unwrap();
        assert_eq!(n.telephone_event_pt, None);
        assert_eq!(answer.media[0].formats, [Codec::Pcmu.format()]);
    }

    #[test]
    fn answer_with_no_supported_codec_errors() {
        let offer = offer_with(&[
            "m=audio 30000 RTP/AVP 18 9 101",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        assert_eq!(local().answer(&offer), Err(SdpError::NoCommonCodec));
        let mut me = local();
        me.codecs = vec![Codec::Pcmu];
        let offer = offer_with(&["m=audio 30000 RTP/AVP 8"]);
        assert_eq!(me.answer(&offer), Err(SdpError::NoCommonCodec));
        let video = offer_with(&["m=video 30000 RTP/AVP 31"]);
        assert_eq!(local().answer(&video), Err(SdpError::NoAudio));
        let srtp = offer_with(&["m=audio 30000 RTP/SAVP 0"]);
        assert_eq!(local().answer(&srtp), Err(SdpError::NoAudio));
    }

    #[test]
    fn hold_offers_are_answered_accordingly() {
        let sendonly = offer_with(&["m=audio 30000 RTP/AVP 0", "a=sendonly"]);
        let (a, n) = local().answer(&sendonly).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert!(a.to_string_crlf().contains("a=recvonly\r\n"));

        let session_level = parse(
            "v=0\no=- 1 2 IN IP4 198.51.100.7\ns=-\nc=IN IP4 198.51.100.7\nt=0 0\na=sendonly\nm=audio 30000 RTP/AVP 0\n",
        );
        assert_eq!(
            local().answer(&session_level).unwrap().1.direction,
            Direction::RecvOnly
        );

        let zero = parse(
            "v=0\no=- 1 2 IN IP4 198.51.100.7\ns=-\nc=IN IP4 0.0.0.0\nt=0 0\nm=audio 30000 RTP/AVP 0\n",
        );
        let (a, n) = local().answer(&zero).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        assert_eq!(n.remote_rtp, "0.0.0.0:30000".parse().unwrap());
        assert_eq!(a.media[0].direction, Direction::RecvOnly);

        let inactive = offer_with(&["m=audio 30000 RTP/AVP 0", "a=inactive"]);
        assert_eq!(
            local().answer(&inactive).unwrap().1.direction,
            Direction::Inactive
        );
        let recvonly = offer_with(&["m=audio 30000 RTP/AVP 0", "a=recvonly"]);
        assert_eq!(
            local().answer(&recvonly).unwrap().1.direction,
            Direction::SendOnly
        );
    }

    #[test]
    fn declined_and_non_audio_streams_get_port_zero() {
        let offer = offer_with(&[
            "m=audio 0 RTP/AVP 0",
            "m=video 30002 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
            "m=image 30004 udptl t38",
            "a=T38FaxVersion:0",
            "m=audio 30000 RTP/AVP 18 8",
            "c=IN IP4 198.51.100.8",
        ]);
        let (answer, n) = local().answer(&offer).unwrap();
        assert_eq!(answer.media.len(), 4);
        assert_eq!(n.codec, Codec::Pcma);
        assert_eq!(n.remote_rtp, "198.51.100.8:30000".parse().unwrap());
        let text = answer.to_string_crlf();
        assert!(text.contains("m=audio 0 RTP/AVP 0\r\n"), "{text}");
        assert!(text.contains("m=video 0 RTP/AVP 96\r\n"), "{text}");
        assert!(text.contains("m=image 0 udptl t38\r\n"), "{text}");
        assert!(text.contains("m=audio 40000 RTP/AVP 8\r\n"), "{text}");
        assert!(!text.contains("T38FaxVersion"));
        assert_eq!(answer.media[2].format_tokens(), ["t38"]);
        assert_round_trip(&answer);
        // The offerer's view: its first usable audio line (index 3) agrees.
        let theirs = negotiate(&offer, &answer).unwrap();
        assert_eq!(theirs.codec, Codec::Pcma);
        assert_eq!(theirs.remote_rtp, "192.0.2.10:40000".parse().unwrap());
        // An answer that rejects that line is reported as such.
        let mut rejected = answer.clone();
        rejected.media[3] = rejected.media[3].rejected();
        assert_eq!(negotiate(&offer, &rejected), Err(SdpError::AudioRejected));
    }

    #[test]
    fn negotiate_picks_from_answer() {
        let offer = local().offer();
        let answer = |m: &str, extra: &[&str]| {
            let mut lines = vec![
                "v=0",
                "o=- 9 9 IN IP4 198.51.100.1",
                "s=-",
                "c=IN IP4 198.51.100.1",
                "t=0 0",
                m,
            ];
            lines.extend_from_slice(extra);
            parse(&crlf(&lines))
        };
        let n = negotiate(&offer, &answer("m=audio 6000 RTP/AVP 8 0", &[])).unwrap();
        assert_eq!((n.codec, n.telephone_event_pt), (Codec::Pcma, None));
        let n = negotiate(
            &offer,
            &answer("m=audio 6000 RTP/AVP 18 0", &["a=ptime:40"]),
        )
        .unwrap();
        assert_eq!((n.codec, n.ptime), (Codec::Pcmu, 40));
        assert_eq!(
            negotiate(&offer, &answer("m=audio 6000 RTP/AVP 18", &[])),
            Err(SdpError::NoCommonCodec)
        );
        let mut pcmu_only = local();
        pcmu_only.codecs = vec![Codec::Pcmu];
        assert_eq!(
            negotiate(&pcmu_only.offer(), &answer("m=audio 6000 RTP/AVP 8", &[])),
            Err(SdpError::NoCommonCodec)
        );
        assert_eq!(
            negotiate(&offer, &answer("m=audio 0 RTP/AVP 0", &[])),
            Err(SdpError::AudioRejected)
        );
        let n = negotiate(&offer, &answer("m=audio 6000 RTP/AVP 0", &["a=sendonly"])).unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        let n = negotiate(&offer, &answer("m=audio 6000 RTP/AVP 0", &["a=recvonly"])).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
        let n = negotiate(&offer, &answer("m=audio 6000 RTP/AVP 0", &["a=inactive"])).unwrap();
        assert_eq!(n.direction, Direction::Inactive);
        let n = negotiate(
            &offer,
            &answer("m=audio 6000 RTP/AVP 0", &["c=IN IP4 0.0.0.0"]),
        )
        .unwrap();
        assert_eq!(n.direction, Direction::RecvOnly);
        let two = answer("m=audio 6000 RTP/AVP 0", &["m=audio 0 RTP/AVP 0"]);
        assert_eq!(
            negotiate(&offer, &two),
            Err(SdpError::MediaCountMismatch {
                offer: 1,
                answer: 2
            })
        );
        let no_c = parse("v=0\no=- 1 1 IN IP4 1.2.3.4\ns=-\nt=0 0\nm=audio 6000 RTP/AVP 0\n");
        assert_eq!(negotiate(&offer, &no_c), Err(SdpError::MissingConnection));
        // We offered sendonly (hold): a sendrecv answer leaves us sendonly.
        let mut hold = offer.clone();
        hold.media[0].direction = Direction::SendOnly;
        let n = negotiate(&hold, &answer("m=audio 6000 RTP/AVP 0", &["a=recvonly"])).unwrap();
        assert_eq!(n.direction, Direction::SendOnly);
    }

    #[test]
    fn static_payload_types_without_rtpmap() {
        let sdp = parse(
            "v=0\no=- 1 1 IN IP4 10.0.0.1\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 18 8 0 96\n",
        );
        let f = &sdp.media[0].formats;
        assert_eq!(f[0].encoding, "G729");
        assert_eq!(f[1], Codec::Pcma.format());
        assert_eq!(f[2], Codec::Pcmu.format());
        assert_eq!((f[3].encoding.as_str(), f[3].clock_rate), ("", 0));
        let text = sdp.to_string_crlf();
        assert!(text.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(!text.contains("a=rtpmap:96"));
        assert_round_trip(&sdp);
        assert_eq!(local().answer(&sdp).unwrap().1.codec, Codec::Pcma);
        // A dynamic PT mapped to PCMU is not our static codec.
        let dynamic = offer_with(&["m=audio 4000 RTP/AVP 97", "a=rtpmap:97 PCMU/8000"]);
        assert_eq!(local().answer(&dynamic), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn audio_connection_prefers_media_level() {
        let sdp = offer_with(&[
            "m=video 7000 RTP/AVP 31",
            "m=audio 8000 RTP/AVP 0",
            "c=IN IP4 10.9.9.9",
        ]);
        assert_eq!(
            sdp.audio_connection(),
            Some(("10.9.9.9".parse().unwrap(), 8000))
        );
        let sdp = offer_with(&["m=audio 8000 RTP/AVP 0"]);
        assert_eq!(
            sdp.audio_connection(),
            Some(("198.51.100.7".parse().unwrap(), 8000))
        );
        let sdp = offer_with(&["m=audio 0 RTP/AVP 0"]);
        assert_eq!(sdp.audio_connection(), None);
    }

    #[test]
    fn version_changes_only_with_content() {
        let me = local();
        let first = me.offer();
        let mut same = me.offer();
        same.session_version = 77;
        assert!(!same.continue_from(&first));
        assert_eq!(same.session_version, first.session_version);
        let mut moved = me.clone();
        moved.rtp_port = 40002;
        let mut next = moved.offer();
        assert!(next.continue_from(&first));
        assert_eq!(next.session_version, first.session_version + 1);
        assert_eq!(next.session_id, first.session_id);
    }

    #[test]
    fn direction_helpers() {
        use Direction::*;
        assert_eq!(SendOnly.reversed(), RecvOnly);
        assert_eq!(RecvOnly.reversed(), SendOnly);
        assert_eq!(SendRecv.reversed(), SendRecv);
        assert_eq!(Inactive.reversed(), Inactive);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::Pcmu.name(), "PCMU");
    }

    fn err(input: &[u8]) -> SdpError {
        match SessionDescription::parse(input) {
            Ok(sdp) => panic!("accepted: {sdp:?}"),
            Err(e) => e,
        }
    }

    const HEAD: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n";

    #[test]
    fn garbage_is_rejected_without_panic() {
        assert_eq!(err(b""), SdpError::MissingLine('v'));
        assert_eq!(err(b"\r\n\r\n"), SdpError::MissingLine('v'));
        assert_eq!(err(b"v=0\r\n"), SdpError::MissingLine('o'));
        assert_eq!(err(HEAD.as_bytes()), SdpError::MissingLine('m'));
        assert_eq!(err(b"s=-\r\nv=0\r\n"), SdpError::MissingLine('v'));
        assert!(matches!(err(b"v=1\r\n"), SdpError::Syntax { line: 1, .. }));
        assert!(matches!(
            err(b"\x00\x01\x02\xff\xfe"),
            SdpError::InvalidUtf8 { line: 1 }
        ));
        assert!(matches!(
            err(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=\xff\r\n"),
            SdpError::InvalidUtf8 { line: 3 }
        ));
        assert!(matches!(
            err(b"v=0\r\no\r\n"),
            SdpError::Syntax { line: 2, .. }
        ));
        assert!(matches!(
            err(b"v=0\r\no=- 1 1 IN"),
            SdpError::Syntax { line: 2, .. }
        ));
        assert!(matches!(
            err(b"v=0\r\nO=x\r\n"),
            SdpError::Syntax { line: 2, .. }
        ));
        assert!(matches!(
            err(b"v=0\r\nab=x\r\n"),
            SdpError::Syntax { line: 2, .. }
        ));
        assert!(matches!(
            err(b"v=0\r\no=- 1 1 IN IP4 1.2.3.4\rs=x\r\n"),
            SdpError::Syntax { line: 2, .. }
        ));
        let with = |tail: &str| format!("{HEAD}{tail}\r\n");
        for bad in [
            "m=audio 65536 RTP/AVP 0",
            "m=audio 99999999999999999999999 RTP/AVP 0",
            "m=audio abc RTP/AVP 0",
            "m=audio -1 RTP/AVP 0",
            "m=audio 4000 RTP/AVP",
            "m=audio 4000",
            "m=audio 4000 RTP/AVP 128",
            "m=audio 4000 RTP/AVP 0 0",
            "m=audio 4000 RTP/AVP x",
            "m=audio 4000/x RTP/AVP 0",
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0",
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU",
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/abc",
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000/300",
            "m=audio 4000 RTP/AVP 0\r\na=rtpmap:0 /8000",
            "m=audio 4000 RTP/AVP 0\r\na=ptime:x",
            "m=audio 4000 RTP/AVP 0\r\na=rtcp:70000",
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 300.1.1.1",
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 ::1",
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP6 1.2.3.4",
            "m=audio 4000 RTP/AVP 0\r\nc=IN IP4 pbx.example.com",
            "m=audio 4000 RTP/AVP 0\r\nc=ATM NSAP 1",
            "m=audio 4000 RTP/AVP 0\r\no=- 1 1 IN IP4 1.2.3.4",
            "c=IN IP4 1.1.1.1\r\nm=audio 4000 RTP/AVP 0",
            "t=0\r\nm=audio 4000 RTP/AVP 0",
        ] {
            let e = err(with(bad).as_bytes());
            assert!(
                matches!(e, SdpError::Syntax { line: 6.., .. }),
                "{bad:?} gave {e:?}"
            );
            assert!(!e.to_string().is_empty());
        }
        assert!(matches!(
            err(b"v=0\r\no=- 18446744073709551616 1 IN IP4 1.2.3.4\r\n"),
            SdpError::Syntax { line: 2, .. }
        ));
        // 1 MB of anything.
        let huge = vec![b'a'; 1 << 20];
        assert_eq!(
            err(&huge),
            SdpError::TooLarge {
                size: 1 << 20,
                limit: MAX_SDP_LEN
            }
        );
        // Limits on m= lines and formats.
        let many_m = format!("{HEAD}{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA + 1));
        assert!(matches!(
            err(many_m.as_bytes()),
            SdpError::TooManyMedia { .. }
        ));
        let ok_m = format!("{HEAD}{}", "m=audio 1 RTP/AVP 0\r\n".repeat(MAX_MEDIA));
        assert_eq!(parse(&ok_m).media.len(), MAX_MEDIA);
        let pts: Vec<String> = (0..128).map(|p| p.to_string()).collect();
        let many_f = format!(
            "{HEAD}{}",
            format!("m=audio 1 RTP/AVP {}\r\n", pts.join(" ")).repeat(3)
        );
        assert!(matches!(
            err(many_f.as_bytes()),
            SdpError::TooManyFormats { line: 8, .. }
        ));
    }

    #[test]
    fn tolerated_oddities() {
        // Hostname in o=, multicast TTL, decimal ptime, rtcp with address,
        // unknown lines, port count, empty s=, blank lines, fmtp without params.
        let sdp = parse(
            "v=0\n\no=root 1 2 IN IP4 pbx.example.com\ns=\nc=IN IP4 224.2.1.1/127\nt=0 0\nx=unknown\nm=audio 4000/1 RTP/AVP 0 101\na=ptime:20.0\na=rtcp:4001 IN IP4 10.0.0.1\na=fmtp:101\na=rtpmap:99 foo/8000\na=weird\nk=prompt\n",
        );
        assert_eq!(sdp.origin_address, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(sdp.session_name, "");
        assert_eq!(sdp.connection, Some("224.2.1.1".parse().unwrap()));
        assert_eq!(sdp.other_lines, ["x=unknown"]);
        let m = &sdp.media[0];
        assert_eq!((m.port, m.ptime, m.rtcp), (4000, Some(20), Some(4001)));
        assert_eq!(m.formats[1].fmtp.as_deref(), Some(""));
        assert_eq!(
            m.other_attributes,
            ["k=prompt", "a=rtpmap:99 foo/8000", "a=weird"]
        );
        assert_round_trip(&sdp);
    }

    /// xorshift64* — deterministic, no extra crates.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    const TOKENS: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b"\r",
        b"=",
        b" ",
        b"/",
        b":",
        b"0",
        b"8",
        b"101",
        b"127",
        b"128",
        b"65535",
        b"65536",
        b"99999999999999999999",
        b"m=audio ",
        b"a=rtpmap:",
        b"a=fmtp:",
        b"c=IN IP6 ::",
        b"c=IN IP4 0.0.0.0",
        b"a=sendonly",
        b"a=inactive",
        b"RTP/AVP",
        b"udptl t38",
        b"\xff",
        b"\xc3",
        b"\x00",
        b"\t",
        b"v=0",
        b"o=",
        b".",
        b"-",
    ];

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        let pos = rng.below(input.len() + 1);
        match rng.below(7) {
            0 => {
                if let Some(b) = input.get_mut(pos) {
                    *b ^= 1 << rng.below(8);
                }
            }
            1 => input.insert(pos, rng.next() as u8),
            2 => {
                let end = (pos + rng.below(16)).min(input.len());
                input.drain(pos..end);
            }
            3 => {
                let tok = TOKENS[rng.below(TOKENS.len())];
                input.splice(pos..pos, tok.iter().copied());
            }
            4 => input.truncate(pos),
            5 => {
                // Duplicate a random slice somewhere else.
                let end = (pos + rng.below(64)).min(input.len());
                let chunk: Vec<u8> = input[pos..end].to_vec();
                let at = rng.below(input.len() + 1);
                input.splice(at..at, chunk);
            }
            _ => {
                if let Some(b) = input.get_mut(pos) {
                    *b = b"0123456789 =:/\r\namvocst"[rng.below(23)];
                }
            }
        }
    }

    #[test]
    fn mutated_sdp_never_panics() {
        let seeds = [
            ASTERISK_ANSWER.to_owned(),
            FREESWITCH_ANSWER.to_owned(),
            local().offer().to_string_crlf(),
            format!(
                "{HEAD}m=audio 0 RTP/AVP 0\r\nm=image 4000 udptl t38\r\nm=audio 5000 RTP/AVP 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\na=sendonly\r\n"
            ),
        ];
        let offer = local().offer();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut parsed = 0;
        for i in 0..6000 {
            let mut input = seeds[i % seeds.len()].clone().into_bytes();
            for _ in 0..=rng.below(4) {
                mutate(&mut rng, &mut input);
            }
            if let Ok(sdp) = SessionDescription::parse(&input) {
                parsed += 1;
                assert_round_trip(&sdp);
                let _ = sdp.audio_connection();
                let _ = negotiate(&offer, &sdp);
                let _ = negotiate(&sdp, &sdp);
                if let Ok((answer, _)) = local().answer(&sdp) {
                    assert_round_trip(&answer);
                    assert_eq!(answer.media.len(), sdp.media.len());
                }
            }
        }
        // The mutations should leave a fair share parseable.
        assert!(parsed > 500, "only {parsed} parsed");
    }
}
