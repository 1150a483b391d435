//! G.711 µ-law and A-law (ITU-T G.711), table-driven.
//!
//! Decoding is one lookup in a 256-entry table; encoding is one lookup in a table indexed by
//! the top bits of the linear sample (µ-law has 14 significant bits, A-law 13), so the hot path
//! has no branches and no loops per sample. The tables are built at compile time from the
//! segment rules of the recommendation.

/// An 8 kHz G.711 codec, as negotiated in SDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Codec {
    /// The RTP static payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// The codec of a static payload type.
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// The encoding of digital silence.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
/// Largest 14-bit magnitude before the bias is added.
const ULAW_CLIP_14: i32 = 8159;
const ULAW_SEGMENT_END: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];

/// G.711 µ-law from the 14-bit linear value (the top 14 bits of a 16-bit sample).
const fn ulaw_encode_slow(pcm: i32) -> u8 {
    let mut v = pcm >> 2;
    let mask: u8 = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    if v > ULAW_CLIP_14 {
        v = ULAW_CLIP_14;
    }
    v += ULAW_BIAS >> 2;
    let mut seg = 0;
    while seg < 8 && v > ULAW_SEGMENT_END[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let uval = ((seg as u8) << 4) | ((v >> (seg + 1)) & 0x0F) as u8;
    uval ^ mask
}

const fn ulaw_decode_slow(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const ALAW_SEGMENT_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

const fn alaw_encode_slow(pcm: i32) -> u8 {
    let mut s = pcm >> 3; // 13 significant bits
    let mask: u8 = if s >= 0 {
        0xD5
    } else {
        s = -s - 1;
        0x55
    };
    let mut seg = 0;
    while seg < 8 && s > ALAW_SEGMENT_END[seg] {
        seg += 1;
    }
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg as u8) << 4;
    if seg < 2 {
        aval |= ((s >> 1) & 0x0F) as u8;
    } else {
        aval |= ((s >> seg) & 0x0F) as u8;
    }
    aval ^ mask
}

const fn alaw_decode_slow(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    if seg == 0 {
        t += 8;
    } else {
        t += 0x108;
        t <<= seg - 1;
    }
    if a & 0x80 != 0 { t as i16 } else { -t as i16 }
}

const fn build_decode(alaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if alaw {
            alaw_decode_slow(i as u8)
        } else {
            ulaw_decode_slow(i as u8)
        };
        i += 1;
    }
    t
}

/// Encode tables indexed by `sample >> 2` (µ-law, 14 bits) or `sample >> 3` (A-law, 13 bits),
/// offset to be non-negative. Every sample in one bucket encodes to the same code because the
/// codecs ignore the dropped low bits.
const fn build_ulaw_encode() -> [u8; 1 << 14] {
    let mut t = [0u8; 1 << 14];
    let mut i = 0;
    while i < (1 << 14) {
        let sample = ((i as i32) - (1 << 13)) << 2;
        t[i] = ulaw_encode_slow(sample);
        i += 1;
    }
    t
}

const fn build_alaw_encode() -> [u8; 1 << 13] {
    let mut t = [0u8; 1 << 13];
    let mut i = 0;
    while i < (1 << 13) {
        let sample = ((i as i32) - (1 << 12)) << 3;
        t[i] = alaw_encode_slow(sample);
        i += 1;
    }
    t
}

static ULAW_DECODE: [i16; 256] = build_decode(false);
static ALAW_DECODE: [i16; 256] = build_decode(true);
static ULAW_ENCODE: [u8; 1 << 14] = build_ulaw_encode();
static ALAW_ENCODE: [u8; 1 << 13] = build_alaw_encode();

/// µ-law code of one 16-bit linear sample.
#[inline]
pub fn ulaw_encode(sample: i16) -> u8 {
    ULAW_ENCODE[((i32::from(sample) >> 2) + (1 << 13)) as usize]
}

/// Linear value of one µ-law code.
#[inline]
pub fn ulaw_decode(code: u8) -> i16 {
    ULAW_DECODE[code as usize]
}

/// A-law code of one 16-bit linear sample.
#[inline]
pub fn alaw_encode(sample: i16) -> u8 {
    ALAW_ENCODE[((i32::from(sample) >> 3) + (1 << 12)) as usize]
}

/// Linear value of one A-law code.
#[inline]
pub fn alaw_decode(code: u8) -> i16 {
    ALAW_DECODE[code as usize]
}

/// Encode `pcm` into `out` (`out.len()` samples are written: the shorter of the two).
pub fn encode(codec: Codec, pcm: &[i16], out: &mut [u8]) {
    match codec {
        Codec::Pcmu => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = ulaw_encode(s);
            }
        }
        Codec::Pcma => {
            for (o, &s) in out.iter_mut().zip(pcm) {
                *o = alaw_encode(s);
            }
        }
    }
}

/// Decode `codes` into `out` (the shorter of the two).
pub fn decode(codec: Codec, codes: &[u8], out: &mut [i16]) {
    let table = match codec {
        Codec::Pcmu => &ULAW_DECODE,
        Codec::Pcma => &ALAW_DECODE,
    };
    for (o, &c) in out.iter_mut().zip(codes) {
        *o = table[c as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference values from the G.711 decision/reconstruction tables (and the classic
    /// `g711.c` reference implementation): code → reconstructed linear value.
    #[test]
    fn decode_matches_reference_points() {
        let ulaw = [
            (0x00u8, -32124i16),
            (0x0F, -16764),
            (0x10, -15996),
            (0x7E, -8),
            (0x7F, 0),
            (0x80, 32124),
            (0xFE, 8),
            (0xFF, 0),
        ];
        for (code, value) in ulaw {
            assert_eq!(ulaw_decode(code), value, "µ-law {code:#04x}");
        }
        let alaw = [
            (0xD5u8, 8i16),
            (0x55, -8),
            (0xAA, 32256),
            (0x2A, -32256),
            (0xD4, 24),
            (0x80, 5504),
            (0x00, -5504),
        ];
        for (code, value) in alaw {
            assert_eq!(alaw_decode(code), value, "A-law {code:#04x}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for code in 0..=255u8 {
            let u = ulaw_encode(ulaw_decode(code));
            // µ-law has two zeros (0x7F and 0xFF); 0 encodes to 0xFF.
            if code == 0x7F {
                assert_eq!(u, 0xFF);
            } else {
                assert_eq!(u, code, "µ-law {code:#04x}");
            }
            assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
        }
    }

    #[test]
    fn tables_equal_the_segment_rules_for_every_sample() {
        for s in i16::MIN..=i16::MAX {
            assert_eq!(ulaw_encode(s), ulaw_encode_slow(i32::from(s)), "µ-law {s}");
            assert_eq!(alaw_encode(s), alaw_encode_slow(i32::from(s)), "A-law {s}");
        }
    }

    #[test]
    fn encoding_is_monotonic_and_error_is_bounded() {
        // Quantisation error grows with the segment but stays within half a step:
        // at most 1/32 of the magnitude plus the smallest step.
        for s in (i16::MIN + 1..=i16::MAX).step_by(7) {
            for (enc, dec) in [
                (ulaw_encode as fn(i16) -> u8, ulaw_decode as fn(u8) -> i16),
                (alaw_encode, alaw_decode),
            ] {
                let back = i32::from(dec(enc(s)));
                let err = (back - i32::from(s)).abs();
                let clip = i32::from(s).abs() > 32_000;
                assert!(
                    clip || err <= i32::from(s).abs() / 32 + 16,
                    "{s} -> {back} (err {err})"
                );
            }
        }
    }

    #[test]
    fn buffers_and_silence() {
        let pcm = [0i16, 1000, -1000, 32767, -32768];
        let mut codes = [0u8; 5];
        let mut back = [0i16; 5];
        for codec in [Codec::Pcmu, Codec::Pcma] {
            encode(codec, &pcm, &mut codes);
            decode(codec, &codes, &mut back);
            assert_eq!(codes[0], codec.silence());
            assert!((back[1] - 1000).abs() < 64 && (back[2] + 1000).abs() < 64);
            assert_eq!(Codec::from_payload_type(codec.payload_type()), Some(codec));
        }
    }
}
