//! Phone numbers to E.164 with the metadata of the `phonenumber` crate (libphonenumber's
//! PhoneNumberMetadata.xml, compiled into the crate).
//!
//! The parse and validation steps are libphonenumber's own (`parseHelper`,
//! `maybeExtractCountryCode`, `maybeStripNationalPrefixAndCarrierCode`, `testNumberLength`,
//! `getNumberTypeHelper`), written here over that metadata instead of calling
//! `phonenumber::parse`/`is_valid`, for two reasons:
//! - correctness: the crate strips a national prefix even when the rest is no longer a
//!   valid number, so `+7 812 123-45-67` (St Petersburg) and `8 800 …` become invalid;
//! - speed: every regular expression use in the crate goes through one global
//!   mutex-guarded LRU cache (~4.5 µs per number for parse + is_valid); here the patterns
//!   are compiled once per country code and shared (see BENCHMARKS: rows/s of the import).
//!
//! Input is restricted to digits, spaces, `+ - . ( ) /` (and Unicode dashes/no-break
//! spaces): letters (vanity numbers), extensions and `tel:` URIs are refused.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock, RwLock};

use phonenumber::Metadata;
use phonenumber::metadata::{DATABASE, Descriptor};
use regex::{Regex, RegexBuilder};

/// The type of a valid number, from the metadata (libphonenumber's `PhoneNumberType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PhoneType {
    FixedLine,
    Mobile,
    /// The region's fixed-line and mobile patterns cannot be told apart (e.g. `+1`).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
}

impl PhoneType {
    pub fn as_str(self) -> &'static str {
        match self {
            PhoneType::FixedLine => "fixed_line",
            PhoneType::Mobile => "mobile",
            PhoneType::FixedLineOrMobile => "fixed_line_or_mobile",
            PhoneType::TollFree => "toll_free",
            PhoneType::PremiumRate => "premium_rate",
            PhoneType::SharedCost => "shared_cost",
            PhoneType::Voip => "voip",
            PhoneType::PersonalNumber => "personal_number",
            PhoneType::Pager => "pager",
            PhoneType::Uan => "uan",
            PhoneType::Voicemail => "voicemail",
        }
    }
}

impl fmt::Display for PhoneType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which number types an import accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhoneTypeFilter {
    /// Every valid number.
    #[default]
    Any,
    /// Mobile numbers (and numbers that may be either, like `+1`).
    Mobile,
    /// Fixed-line numbers (and numbers that may be either).
    FixedLine,
    /// Mobile or fixed-line: no toll-free, premium, VoIP, pager … numbers.
    MobileOrFixedLine,
}

impl PhoneTypeFilter {
    pub fn accepts(self, t: PhoneType) -> bool {
        use PhoneType::*;
        match self {
            PhoneTypeFilter::Any => true,
            PhoneTypeFilter::Mobile => matches!(t, Mobile | FixedLineOrMobile),
            PhoneTypeFilter::FixedLine => matches!(t, FixedLine | FixedLineOrMobile),
            PhoneTypeFilter::MobileOrFixedLine => {
                matches!(t, Mobile | FixedLine | FixedLineOrMobile)
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            PhoneTypeFilter::Any => "valid",
            PhoneTypeFilter::Mobile => "mobile",
            PhoneTypeFilter::FixedLine => "fixed-line",
            PhoneTypeFilter::MobileOrFixedLine => "mobile or fixed-line",
        }
    }
}

impl std::str::FromStr for PhoneTypeFilter {
    type Err = String;
    /// `any`, `mobile`, `fixed_line` (or `fixed-line`), `mobile_or_fixed_line`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "any" => Ok(Self::Any),
            "mobile" => Ok(Self::Mobile),
            "fixed_line" => Ok(Self::FixedLine),
            "mobile_or_fixed_line" => Ok(Self::MobileOrFixedLine),
            _ => Err(format!(
                "unknown phone type filter {s:?} (any, mobile, fixed_line, mobile_or_fixed_line)"
            )),
        }
    }
}

/// A normalised number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneE164 {
    /// `+` and digits, e.g. `+380441234567`.
    pub e164: String,
    /// The E.164 digits as an integer (unique per number: it never starts with 0).
    pub key: u64,
    pub kind: PhoneType,
}

/// Why a number was refused. `Display` is the reason text of a [`RowError`](super::RowError)
/// and quotes the input (at most 40 characters of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhoneError {
    Empty,
    /// Longer than [`MAX_PHONE_BYTES`](super::MAX_PHONE_BYTES).
    TooLongInput(usize),
    /// Letters, control characters or other symbols than digits, spaces, `+ - . ( ) /`.
    NotANumber(String),
    TooShort(String),
    TooLong(String),
    UnknownCountryCode(String),
    /// Parsed, but no pattern of the region matches. `region` is e.g. `UA`, or
    /// `country code +7` when the country code's region could not be told.
    Invalid {
        region: String,
        input: String,
    },
    /// Valid, but its type is excluded by the [`PhoneTypeFilter`].
    TypeNotAccepted {
        kind: PhoneType,
        filter: PhoneTypeFilter,
        input: String,
    },
}

impl fmt::Display for PhoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhoneError::Empty => f.write_str("required"),
            PhoneError::TooLongInput(n) => {
                write!(
                    f,
                    "too long ({n} bytes, at most {})",
                    super::MAX_PHONE_BYTES
                )
            }
            PhoneError::NotANumber(s) => write!(f, "not a phone number: {s:?}"),
            PhoneError::TooShort(s) => write!(f, "too short: {s:?}"),
            PhoneError::TooLong(s) => write!(f, "too many digits: {s:?}"),
            PhoneError::UnknownCountryCode(s) => write!(f, "unknown country calling code: {s:?}"),
            PhoneError::Invalid { region, input } => {
                write!(f, "not a valid number for region {region}: {input:?}")
            }
            PhoneError::TypeNotAccepted {
                kind,
                filter,
                input,
            } => write!(
                f,
                "{kind} number, but only {} numbers are accepted: {input:?}",
                filter.describe()
            ),
        }
    }
}

impl std::error::Error for PhoneError {}

/// Normalises numbers of one import: a default region for numbers without a country code
/// and a type filter. Cheap to create; compiled patterns are shared process-wide.
#[derive(Debug)]
pub struct PhoneNormaliser {
    region_name: String,
    region_code: u16,
    region_code_str: String,
    /// The default region's country code entry and the region's index in it.
    default: (Arc<CodeMeta>, usize),
    filter: PhoneTypeFilter,
    codes: HashMap<u16, Option<Arc<CodeMeta>>>,
    digits: String,
}

/// Outcome of libphonenumber's `testNumberLength` (type UNKNOWN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    Invalid,
    TooLong,
}

const MIN_LENGTH_FOR_NSN: usize = 2;
const MAX_LENGTH_FOR_NSN: usize = 17;

impl PhoneNormaliser {
    /// `region`: ISO 3166-1 alpha-2 code of the default region, e.g. `"UA"` (case-insensitive).
    pub fn new(region: &str, filter: PhoneTypeFilter) -> Result<Self, String> {
        let name = region.trim().to_ascii_uppercase();
        let unknown = || format!("unknown default region {region:?} (expected e.g. \"UA\")");
        if name.len() != 2 || !name.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(unknown());
        }
        let meta = DATABASE.by_id(name.as_str()).ok_or_else(unknown)?;
        let code = meta.country_code();
        let code_meta = CodeMeta::shared(code).ok_or_else(unknown)?;
        let index = code_meta
            .regions
            .iter()
            .position(|r| r.id == name)
            .ok_or_else(unknown)?;
        Ok(Self {
            region_code_str: code.to_string(),
            region_name: name,
            region_code: code,
            default: (code_meta, index),
            filter,
            codes: HashMap::new(),
            digits: String::with_capacity(32),
        })
    }

    pub fn region(&self) -> &str {
        &self.region_name
    }

    pub fn filter(&self) -> PhoneTypeFilter {
        self.filter
    }

    /// Normalises one number as written in a file (surrounding whitespace ignored).
    pub fn normalise(&mut self, raw: &str) -> Result<PhoneE164, PhoneError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        if raw.len() > super::MAX_PHONE_BYTES {
            return Err(PhoneError::TooLongInput(raw.len()));
        }
        let quoted = || shorten(raw);
        // Only digits and the usual separators, `+` only first: this refuses vanity letters
        // (1-800-FLOWERS), extensions and `tel:` URIs, which libphonenumber would accept.
        let mut digits = std::mem::take(&mut self.digits);
        digits.clear();
        let mut plus = false;
        for (i, c) in raw.char_indices() {
            match c {
                '0'..='9' => digits.push(c),
                '+' if i == 0 => plus = true,
                ' '
                | '-'
                | '.'
                | '('
                | ')'
                | '/'
                | '\u{a0}'
                | '\u{2009}'
                | '\u{202f}'
                | '\u{2010}'..='\u{2015}' => {}
                _ => {
                    self.digits = digits;
                    return Err(PhoneError::NotANumber(quoted()));
                }
            }
        }
        let result = if digits.is_empty() {
            Err(PhoneError::NotANumber(String::new()))
        } else if digits.len() < 3 {
            Err(PhoneError::TooShort(String::new()))
        } else {
            self.parse(&digits, plus)
        };
        let result = result.map_err(|e| e.with_input(quoted()));
        self.digits = digits;
        let (code, national) = result?;
        let meta = match self.codes.get(&code) {
            Some(m) => m.clone(),
            None => {
                let m = CodeMeta::shared(code);
                self.codes.insert(code, m.clone());
                m
            }
        };
        let Some(meta) = meta else {
            return Err(PhoneError::UnknownCountryCode(quoted()));
        };
        let region = meta.region_for(&national);
        let Some(kind) = region.and_then(|r| r.number_type(&national)) else {
            let region = match region {
                Some(r) if r.id != "001" => r.id.clone(),
                _ if code == self.region_code => self.region_name.clone(),
                _ => format!("country code +{code}"),
            };
            return Err(PhoneError::Invalid {
                region,
                input: quoted(),
            });
        };
        if !self.filter.accepts(kind) {
            return Err(PhoneError::TypeNotAccepted {
                kind,
                filter: self.filter,
                input: quoted(),
            });
        }
        let mut e164 = String::with_capacity(1 + 3 + national.len());
        e164.push('+');
        push_u16(&mut e164, code);
        e164.push_str(&national);
        let key = e164[1..]
            .parse::<u64>()
            .map_err(|_| PhoneError::TooLong(quoted()))?;
        Ok(PhoneE164 { e164, key, kind })
    }

    /// libphonenumber's `parseHelper` for a string of digits: the country code and the
    /// national significant number (leading zeros kept).
    fn parse(&self, digits: &str, plus: bool) -> Result<(u16, String), PhoneError> {
        if digits.is_empty() {
            return Err(PhoneError::NotANumber(String::new()));
        }
        if digits.len() < MIN_LENGTH_FOR_NSN {
            return Err(PhoneError::TooShort(String::new()));
        }
        let default = &self.default.0.regions[self.default.1];
        // maybeExtractCountryCode
        let international = if plus {
            Some(digits)
        } else {
            default.idd.as_ref().and_then(|idd| {
                let m = idd.find(digits)?;
                // A country code never starts with 0: then it was not an IDD.
                (!digits[m.end()..].starts_with('0')).then(|| &digits[m.end()..])
            })
        };
        let (code, national, meta): (u16, String, Option<Arc<CodeMeta>>) = match international {
            Some(rest) => {
                if rest.len() <= MIN_LENGTH_FOR_NSN {
                    return Err(PhoneError::TooShort(String::new()));
                }
                let (code, national) = extract_country_code(rest)
                    .ok_or_else(|| PhoneError::UnknownCountryCode(String::new()))?;
                (code, national.to_string(), CodeMeta::shared(code))
            }
            None => {
                let mut national = digits.to_string();
                let mut meta = None;
                if let Some(potential) = digits.strip_prefix(self.region_code_str.as_str()) {
                    let mut potential = potential.to_string();
                    default.strip_national_prefix(&mut potential);
                    if (!default.general.pattern(digits) && default.general.pattern(&potential))
                        || default.length(digits) == Length::TooLong
                    {
                        national = potential;
                        meta = Some(self.default.0.clone());
                    }
                }
                (self.region_code, national, meta)
            }
        };
        // With a country code in the number, the metadata is that of the code's main region;
        // without, the default region's.
        let region = match &meta {
            Some(m) => m
                .regions
                .first()
                .ok_or_else(|| PhoneError::UnknownCountryCode(String::new()))?,
            None => default,
        };
        let mut national = national;
        let mut potential = national.clone();
        region.strip_national_prefix(&mut potential);
        if !matches!(
            region.length(&potential),
            Length::TooShort | Length::LocalOnly | Length::Invalid
        ) {
            national = potential;
        }
        if national.len() < MIN_LENGTH_FOR_NSN {
            return Err(PhoneError::TooShort(String::new()));
        }
        if national.len() > MAX_LENGTH_FOR_NSN {
            return Err(PhoneError::TooLong(String::new()));
        }
        Ok((code, national))
    }
}

impl PhoneError {
    fn with_input(self, input: String) -> Self {
        match self {
            PhoneError::NotANumber(_) => PhoneError::NotANumber(input),
            PhoneError::TooShort(_) => PhoneError::TooShort(input),
            PhoneError::TooLong(_) => PhoneError::TooLong(input),
            PhoneError::UnknownCountryCode(_) => PhoneError::UnknownCountryCode(input),
            other => other,
        }
    }
}

/// libphonenumber's `extractCountryCode`: the first 1–3 digits that are a known code.
fn extract_country_code(digits: &str) -> Option<(u16, &str)> {
    if digits.starts_with('0') {
        return None;
    }
    (1..=3.min(digits.len())).find_map(|i| {
        let code: u16 = digits[..i].parse().ok()?;
        DATABASE.region(&code).map(|_| (code, &digits[i..]))
    })
}

fn push_u16(s: &mut String, v: u16) {
    use std::fmt::Write;
    let _ = write!(s, "{v}");
}

/// At most 40 characters of user input, for error messages.
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Compiled patterns of every region sharing one country calling code; the main region
/// (`mainCountryForCode`) first.
#[derive(Debug)]
struct CodeMeta {
    regions: Vec<RegionMeta>,
}

#[derive(Debug)]
struct RegionMeta {
    id: String,
    leading_digits: Option<Regex>,
    /// International (IDD) prefix, anchored at the start.
    idd: Option<Regex>,
    /// National prefix for parsing (or the national prefix itself), anchored at the start.
    national_prefix: Option<Regex>,
    /// `national_prefix_transform_rule` in the `regex` crate's syntax (`${1}`).
    transform: Option<String>,
    /// Lengths of any valid national number (union over the types, as libphonenumber's
    /// metadata build computes it; this crate's data leaves them empty).
    general: Desc,
    local_lengths: Vec<u16>,
    /// In libphonenumber's order of precedence.
    types: Vec<(PhoneType, Desc)>,
    fixed_line: Option<Desc>,
    mobile: Option<Desc>,
    fixed_line_same_as_mobile: bool,
}

#[derive(Debug)]
struct Desc {
    lengths: Vec<u16>,
    re: Regex,
}

fn compile(src: &str, whole: bool) -> Option<Regex> {
    let pat = if whole {
        format!("^(?:{src})$")
    } else {
        format!("^(?:{src})")
    };
    RegexBuilder::new(&pat)
        .ignore_whitespace(true)
        .unicode(false)
        .build()
        .or_else(|_| RegexBuilder::new(&pat).ignore_whitespace(true).build())
        .ok()
}

impl Desc {
    fn compile(d: &Descriptor) -> Option<Desc> {
        let re = compile(d.national_number().as_str(), true)?;
        Some(Desc {
            lengths: d.possible_length().to_vec(),
            re,
        })
    }

    /// libphonenumber's `matchNationalNumber` (whole match, lengths not checked).
    fn pattern(&self, national: &str) -> bool {
        self.re.is_match(national)
    }

    /// libphonenumber's `isNumberMatchingDesc`.
    fn is_match(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.re.is_match(national)
    }
}

static SHARED: LazyLock<RwLock<HashMap<u16, Option<Arc<CodeMeta>>>>> =
    LazyLock::new(Default::default);

impl CodeMeta {
    fn shared(code: u16) -> Option<Arc<CodeMeta>> {
        if let Some(m) = SHARED.read().unwrap_or_else(|e| e.into_inner()).get(&code) {
            return m.clone();
        }
        let built = CodeMeta::build(code).map(Arc::new);
        SHARED
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_insert(built)
            .clone()
    }

    fn build(code: u16) -> Option<CodeMeta> {
        let metas = DATABASE.by_code(&code)?;
        let regions: Vec<RegionMeta> = metas.into_iter().filter_map(RegionMeta::build).collect();
        (!regions.is_empty()).then_some(CodeMeta { regions })
    }

    /// libphonenumber's `getRegionCodeForNumberFromRegionList`.
    fn region_for(&self, national: &str) -> Option<&RegionMeta> {
        if self.regions.len() == 1 {
            return self.regions.first();
        }
        self.regions.iter().find(|r| match &r.leading_digits {
            Some(re) => re.is_match(national),
            None => r.number_type(national).is_some(),
        })
    }
}

impl RegionMeta {
    fn build(m: &Metadata) -> Option<RegionMeta> {
        let d = m.descriptors();
        let mut general = Desc::compile(d.general())?;
        let mut lengths = Vec::new();
        let mut local_lengths = Vec::new();
        let mut types = Vec::new();
        for (kind, desc) in [
            (PhoneType::PremiumRate, d.premium_rate()),
            (PhoneType::TollFree, d.toll_free()),
            (PhoneType::SharedCost, d.shared_cost()),
            (PhoneType::Voip, d.voip()),
            (PhoneType::PersonalNumber, d.personal_number()),
            (PhoneType::Pager, d.pager()),
            (PhoneType::Uan, d.uan()),
            (PhoneType::Voicemail, d.voicemail()),
            (PhoneType::FixedLine, d.fixed_line()),
            (PhoneType::Mobile, d.mobile()),
        ] {
            let Some(desc) = desc else { continue };
            lengths.extend_from_slice(desc.possible_length());
            local_lengths.extend_from_slice(desc.possible_local_length());
            if matches!(kind, PhoneType::FixedLine | PhoneType::Mobile) {
                continue;
            }
            if let Some(c) = Desc::compile(desc) {
                types.push((kind, c));
            }
        }
        lengths.extend_from_slice(d.general().possible_length());
        lengths.sort_unstable();
        lengths.dedup();
        local_lengths.extend_from_slice(d.general().possible_local_length());
        local_lengths.sort_unstable();
        local_lengths.dedup();
        // As in libphonenumber's metadata build: a length that is also a normal possible
        // length is not local-only.
        local_lengths.retain(|l| !lengths.contains(l));
        general.lengths = lengths;
        let fixed_line_same_as_mobile = match (d.fixed_line(), d.mobile()) {
            (Some(f), Some(m)) => f.national_number().as_str() == m.national_number().as_str(),
            _ => false,
        };
        let national_prefix = match m.national_prefix_for_parsing() {
            Some(re) => compile(re.as_str(), false),
            None => m
                .national_prefix()
                .and_then(|p| compile(&regex::escape(p), false)),
        };
        Some(RegionMeta {
            id: m.id().to_string(),
            leading_digits: m
                .leading_digits()
                .and_then(|re| compile(re.as_str(), false)),
            idd: m
                .international_prefix()
                .and_then(|re| compile(re.as_str(), false)),
            national_prefix,
            transform: m.national_prefix_transform_rule().map(java_rule),
            general,
            local_lengths,
            types,
            fixed_line: d.fixed_line().and_then(Desc::compile),
            mobile: d.mobile().and_then(Desc::compile),
            fixed_line_same_as_mobile,
        })
    }

    /// libphonenumber's `testNumberLength` for type UNKNOWN.
    fn length(&self, national: &str) -> Length {
        let n = national.len() as u16;
        let possible = &self.general.lengths;
        if self.local_lengths.contains(&n) {
            return Length::LocalOnly;
        }
        let (Some(&min), Some(&max)) = (possible.first(), possible.last()) else {
            return Length::Invalid;
        };
        if n == min {
            Length::Possible
        } else if n < min {
            Length::TooShort
        } else if n > max {
            Length::TooLong
        } else if possible.contains(&n) {
            Length::Possible
        } else {
            Length::Invalid
        }
    }

    /// libphonenumber's `maybeStripNationalPrefixAndCarrierCode` (the carrier code is
    /// dropped): strips the national prefix unless that turns a number matching the
    /// general pattern into one that does not.
    fn strip_national_prefix(&self, number: &mut String) {
        let Some(re) = &self.national_prefix else {
            return;
        };
        if number.is_empty() {
            return;
        }
        let Some(caps) = re.captures(number) else {
            return;
        };
        let end = caps.get(0).map_or(0, |m| m.end());
        let viable = self.general.pattern(number);
        let last_group = caps
            .len()
            .checked_sub(1)
            .filter(|&n| n > 0)
            .and_then(|n| caps.get(n));
        let stripped = match (&self.transform, last_group) {
            (Some(rule), Some(_)) => {
                let mut t = String::new();
                caps.expand(rule, &mut t);
                t.push_str(&number[end..]);
                t
            }
            _ => number[end..].to_string(),
        };
        if viable && !self.general.pattern(&stripped) {
            return;
        }
        *number = stripped;
    }

    /// libphonenumber's `getNumberTypeHelper`; `None` means not a valid number.
    fn number_type(&self, national: &str) -> Option<PhoneType> {
        if !self.general.is_match(national) {
            return None;
        }
        for (kind, desc) in &self.types {
            if desc.is_match(national) {
                return Some(*kind);
            }
        }
        let mobile = || self.mobile.as_ref().is_some_and(|d| d.is_match(national));
        if self
            .fixed_line
            .as_ref()
            .is_some_and(|d| d.is_match(national))
        {
            if self.fixed_line_same_as_mobile || mobile() {
                return Some(PhoneType::FixedLineOrMobile);
            }
            return Some(PhoneType::FixedLine);
        }
        if mobile() {
            return Some(PhoneType::Mobile);
        }
        None
    }
}

/// `$1` (Java) → `${1}` (regex crate, where `$1x` would name a group `1x`).
fn java_rule(rule: &str) -> String {
    let mut out = String::with_capacity(rule.len() + 4);
    let mut chars = rule.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push_str("${");
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                out.push(d);
            }
            out.push('}');
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ua() -> PhoneNormaliser {
        PhoneNormaliser::new("UA", PhoneTypeFilter::Any).unwrap()
    }

    #[test]
    fn accepted_formats() {
        let mut n = ua();
        for raw in [
            "+380 44 123 45 67",
            "044 123-45-67",
            "(044)1234567",
            "00380441234567",
            "380441234567",
            "+380441234567",
            " +38 (044) 123.45.67 ",
            "044/123 45 67",
            "+380\u{a0}44\u{a0}123\u{a0}45\u{a0}67",
        ] {
            let p = n.normalise(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(p.e164, "+380441234567", "{raw:?}");
            assert_eq!(p.key, 380441234567);
            assert_eq!(p.kind, PhoneType::FixedLine, "{raw:?}");
        }
        assert_eq!(
            n.normalise("067 123 45 67").unwrap().kind,
            PhoneType::Mobile
        );
        assert_eq!(n.normalise("+49 30 123456").unwrap().e164, "+4930123456");
        assert_eq!(n.normalise("+1 212 555 0123").unwrap().e164, "+12125550123");
        // Italian numbers keep their leading zero.
        assert_eq!(
            n.normalise("+39 06 1234 5678").unwrap().e164,
            "+390612345678"
        );
    }

    #[test]
    fn refused() {
        let mut n = ua();
        let msg = |n: &mut PhoneNormaliser, s: &str| n.normalise(s).unwrap_err().to_string();
        assert_eq!(
            msg(&mut n, "12345"),
            "not a valid number for region UA: \"12345\""
        );
        assert_eq!(msg(&mut n, ""), "required");
        assert_eq!(msg(&mut n, "   "), "required");
        assert_eq!(msg(&mut n, "abc"), "not a phone number: \"abc\"");
        assert_eq!(
            msg(&mut n, "044 123 45 67 ext 5"),
            "not a phone number: \"044 123 45 67 ext 5\""
        );
        assert_eq!(
            msg(&mut n, "1-800-FLOWERS"),
            "not a phone number: \"1-800-FLOWERS\""
        );
        assert_eq!(msg(&mut n, "+-"), "not a phone number: \"+-\"");
        assert_eq!(msg(&mut n, "12"), "too short: \"12\"");
        assert_eq!(
            msg(&mut n, "+999 1234567"),
            "unknown country calling code: \"+999 1234567\""
        );
        assert_eq!(msg(&mut n, "+49 1"), "too short: \"+49 1\"");
        assert_eq!(
            msg(&mut n, "+49 0000000"),
            "not a valid number for region DE: \"+49 0000000\""
        );
        assert_eq!(
            msg(&mut n, "+380 44 123 45 67 89"),
            "not a valid number for region UA: \"+380 44 123 45 67 89\""
        );
        assert_eq!(
            msg(&mut n, "12345678901234567890123"),
            "too many digits: \"12345678901234567890123\""
        );
        let long = "1".repeat(70);
        assert_eq!(msg(&mut n, &long), "too long (70 bytes, at most 64)");
        assert_eq!(
            msg(&mut n, "044\t1234567"),
            "not a phone number: \"044\\t1234567\""
        );
    }

    #[test]
    fn type_filter() {
        let mut n = PhoneNormaliser::new("ua", PhoneTypeFilter::Mobile).unwrap();
        assert_eq!(n.normalise("0671234567").unwrap().e164, "+380671234567");
        assert_eq!(
            n.normalise("044 123 45 67").unwrap_err().to_string(),
            "fixed_line number, but only mobile numbers are accepted: \"044 123 45 67\""
        );
        let mut n = PhoneNormaliser::new("UA", PhoneTypeFilter::FixedLine).unwrap();
        assert!(n.normalise("0671234567").is_err());
        assert!(n.normalise("0441234567").is_ok());
        let mut n = PhoneNormaliser::new("US", PhoneTypeFilter::Mobile).unwrap();
        assert_eq!(
            n.normalise("212 555 0123").unwrap().kind,
            PhoneType::FixedLineOrMobile
        );
        let mut n = PhoneNormaliser::new("UA", PhoneTypeFilter::MobileOrFixedLine).unwrap();
        let e = n.normalise("0 800 123 456").unwrap_err().to_string();
        assert!(
            e.starts_with("toll_free number, but only mobile or fixed-line"),
            "{e}"
        );
        assert!(PhoneNormaliser::new("XX", PhoneTypeFilter::Any).is_err());
        assert_eq!(
            "fixed-line".parse::<PhoneTypeFilter>(),
            Ok(PhoneTypeFilter::FixedLine)
        );
    }

    /// Every example number of every region's metadata normalises to itself, in
    /// international format and (where the region has a national prefix) in national format
    /// with that region as the default; its type is the example's type.
    #[test]
    fn metadata_examples() {
        let mut checked = 0;
        let mut wrong_type = Vec::new();
        let mut national_differs = Vec::new();
        for meta in DATABASE.iter() {
            if meta.id() == "001" {
                continue;
            }
            let mut n = PhoneNormaliser::new(meta.id(), PhoneTypeFilter::Any).unwrap();
            let d = meta.descriptors();
            for (want, desc) in [
                (PhoneType::FixedLine, d.fixed_line()),
                (PhoneType::Mobile, d.mobile()),
                (PhoneType::TollFree, d.toll_free()),
                (PhoneType::PremiumRate, d.premium_rate()),
            ] {
                let Some(example) = desc.and_then(|d| d.example()) else {
                    continue;
                };
                let e164 = format!("+{}{}", meta.country_code(), example);
                let intl = format!("+{} {}", meta.country_code(), example);
                let got = n
                    .normalise(&intl)
                    .unwrap_or_else(|e| panic!("{} {intl}: {e}", meta.id()));
                assert_eq!(got.e164, e164, "{}", meta.id());
                let type_ok = got.kind == want
                    || (got.kind == PhoneType::FixedLineOrMobile
                        && matches!(want, PhoneType::FixedLine | PhoneType::Mobile));
                if !type_ok {
                    wrong_type.push(format!("{} {e164}: {} not {}", meta.id(), got.kind, want));
                }
                let idd = meta
                    .international_prefix()
                    .and_then(|r| compile(r.as_str(), false));
                if let Some(np) = meta.national_prefix() {
                    let national = format!("{np}{example}");
                    // Some national-format numbers begin like the IDD (IL 019…): they are
                    // read as international, as libphonenumber does.
                    if idd.is_some_and(|re| re.is_match(&national)) {
                        continue;
                    }
                    match n.normalise(&national) {
                        Ok(got) if got.e164 == e164 => {}
                        other => {
                            national_differs.push(format!("{} {national}: {other:?}", meta.id()))
                        }
                    }
                }
                checked += 1;
            }
        }
        eprintln!(
            "{checked} examples; types differ: {wrong_type:?}; national format differs: {national_differs:?}"
        );
        assert!(checked > 600, "{checked}");
        assert!(wrong_type.is_empty(), "{wrong_type:#?}");
        // CO: a mobile number after the national prefix reads as a carrier code + number.
        assert!(national_differs.len() <= 2, "{national_differs:#?}");
    }

    /// `phonenumber::parse` strips a national prefix even when that makes the number
    /// invalid (`+7 812…` → `12…`); libphonenumber, and this parser, do not.
    #[test]
    fn russian_numbers_starting_with_8() {
        let mut n = PhoneNormaliser::new("RU", PhoneTypeFilter::Any).unwrap();
        for raw in [
            "+7 812 123-45-67",
            "8 812 123 45 67",
            "8 (812) 1234567",
            "7 812 123 45 67",
            "810 7 812 1234567",
        ] {
            assert_eq!(
                n.normalise(raw).map(|p| p.e164),
                Ok("+78121234567".into()),
                "{raw}"
            );
        }
        assert_eq!(
            n.normalise("8 800 123 45 67").map(|p| p.kind),
            Ok(PhoneType::TollFree)
        );
        assert_eq!(
            n.normalise("+7 800 123 45 67").map(|p| p.e164),
            Ok("+78001234567".into())
        );
        assert_eq!(
            n.normalise("8 912 345 67 89").map(|p| p.kind),
            Ok(PhoneType::Mobile)
        );
        let crate_parse = phonenumber::parse(None, "+7 812 123 45 67").unwrap();
        assert!(
            !phonenumber::is_valid(&crate_parse),
            "the crate got fixed: simplify?"
        );
    }
}
