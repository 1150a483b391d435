//! Contact import from CSV: streaming parse, per-row validation, E.164 normalisation and
//! merging of duplicates inside one file. No database code: the store's `insert_contacts`
//! takes the [`ImportedContact`]s produced here.
//!
//! # File format
//! - A header row is required and must have a `phone` column. Known columns (matched
//!   case-insensitively): `phone`, `name`, `timezone`, `language`, `consent_source`,
//!   `consent_at`, `consent_text_version`. Every other column is a free attribute, stored
//!   under its header name as written (trimmed). Names must be non-empty and unique
//!   (case-insensitively).
//! - UTF-8, an optional BOM; `,`, `;` or TAB as the delimiter, detected from the header
//!   line (or fixed with [`ImportOptions::delimiter`]); RFC 4180 quoting (`""` inside
//!   quotes); LF, CRLF or CR line ends. Blank lines are skipped and are not rows.
//! - Row numbers count data records: the header is row 0, the first record row 1. A quoted
//!   field with line breaks is one row, so row numbers can differ from line numbers.
//!
//! # Per row
//! A row is either accepted (first occurrence of its E.164 number), merged (a later
//! occurrence) or refused with exactly one [`RowError`] — the first problem found, checked
//! in the order: field count, UTF-8 and field lengths (column order), phone, name, timezone,
//! language, consent_source, consent_at, consent_text_version, attributes (column order).
//! So `rows_read == accepted + merged_in_file + errors_total` always holds.
//!
//! - `phone`: see [`PhoneNormaliser`]; the default region comes from [`ImportOptions`].
//! - `name`: trimmed, no control characters, at most [`MAX_NAME_CHARS`].
//! - `timezone`: an IANA name known to chrono-tz (exact spelling, `Europe/Kyiv`); empty →
//!   `None` (the campaign's default applies).
//! - `language`: `ru`, `uk` or `en` (any case).
//! - consent: when any of `consent_source`, `consent_at`, `consent_text_version` is set,
//!   all three are required. `consent_source` is one of `web_form`, `paper_form`, `sms`,
//!   `phone_call`; `consent_at` is RFC 3339 or `YYYY-MM-DD HH:MM[:SS]` **interpreted as
//!   UTC**, and may not be later than the import time plus [`CONSENT_FUTURE_SKEW_MS`].
//! - attributes: trimmed; empty values are left out; tabs and line breaks allowed, other
//!   control characters not.
//!
//! # Duplicates
//! Rows with the same E.164 number are merged: fields of the later row that are set
//! replace the earlier ones, attributes are merged key by key (later wins), a later consent
//! replaces the earlier one. [`ImportReport::merged`] names the rows (row numbers only).
//!
//! Nothing here logs numbers or names; error reasons quote the offending value (at most 40
//! characters) because they go back to the person who uploaded the file.

mod fields;
mod phone;
mod reader;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::{self, Read};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use crate::model::ConsentSource;
pub use phone::{PhoneE164, PhoneError, PhoneNormaliser, PhoneType, PhoneTypeFilter};
use reader::{Rec, RecordReader};

/// Longest record (all fields of one row, after unquoting). Longer → row error, and the
/// reader resynchronises at the next line break.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Longest single field.
pub const MAX_FIELD_BYTES: usize = 4096;
/// Most columns in the header.
pub const MAX_COLUMNS: usize = 256;
/// Longest column name in the header.
pub const MAX_HEADER_NAME_BYTES: usize = 128;
/// Longest phone field (as written, trimmed).
pub const MAX_PHONE_BYTES: usize = 64;
/// Longest name.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest `consent_text_version`.
pub const MAX_TEXT_VERSION_CHARS: usize = 64;
/// How far in the future `consent_at` may be (clock skew between systems).
pub const CONSENT_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;
/// Default cap of [`ImportReport::errors`] and [`ImportReport::merged`] entries kept.
pub const DEFAULT_MAX_REPORTED: usize = 1000;
/// The progress callback is called every this many rows (and once at the end).
pub const PROGRESS_EVERY: u64 = 10_000;

/// One contact ready for the store.
///
/// Mapping to the store: `phone_e164` → `contacts.phone` (unique per campaign), `name`,
/// `timezone` (`None` → the campaign's default zone), `language`, `attributes` (JSON object
/// of strings), `consent` → one row in `consents` (source, given_at in UTC ms, text version);
/// `From<ImportedContact> for NewContact` does it. `Debug` redacts the number, the name and
/// the attribute values.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportedContact {
    /// 1-based data row number in the file (header is row 0): the first row of this number
    /// within the batch it is returned in.
    pub row: u64,
    /// `+` and digits, e.g. `+380441234567`.
    pub phone_e164: String,
    pub name: Option<String>,
    /// IANA name, validated (chrono-tz); `None` → campaign default.
    pub timezone: Option<String>,
    /// `ru` | `uk` | `en`.
    pub language: Option<String>,
    /// Every extra column with a non-empty value, keyed by its header name.
    pub attributes: BTreeMap<String, String>,
    /// Present when the row has `consent_source` (and then `consent_at` and
    /// `consent_text_version` too).
    pub consent: Option<ImportedConsent>,
}

impl fmt::Debug for ImportedContact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |o: &Option<String>| {
            if o.is_some() {
                "Some(<redacted>)"
            } else {
                "None"
            }
        };
        f.debug_struct("ImportedContact")
            .field("row", &self.row)
            .field("phone_e164", &format_args!("<redacted>"))
            .field("name", &format_args!("{}", redacted(&self.name)))
            .field("timezone", &self.timezone)
            .field("language", &self.language)
            .field("attributes", &self.attributes.keys().collect::<Vec<_>>())
            .field("consent", &self.consent)
            .finish()
    }
}

impl ImportedContact {
    /// Merge semantics of duplicates: `later`'s set fields replace ours, attributes are
    /// merged (later wins per key), a later consent replaces ours; `row` and the number stay.
    /// The store can use the same rule to apply a contact that comes again in a later batch
    /// (see [`Importer::next_batch`]).
    pub fn merge_from(&mut self, later: ImportedContact) {
        debug_assert_eq!(self.phone_e164, later.phone_e164);
        if later.name.is_some() {
            self.name = later.name;
        }
        if later.timezone.is_some() {
            self.timezone = later.timezone;
        }
        if later.language.is_some() {
            self.language = later.language;
        }
        if later.consent.is_some() {
            self.consent = later.consent;
        }
        self.attributes.extend(later.attributes);
    }
}

impl From<ImportedContact> for crate::model::NewContact {
    /// What [`Store::insert_contacts`](crate::Store::insert_contacts) takes (`row` dropped:
    /// keep the batch to map its `suppressed` indexes back to rows).
    fn from(c: ImportedContact) -> Self {
        crate::model::NewContact {
            phone_e164: c.phone_e164,
            name: c.name,
            timezone: c.timezone,
            language: c.language,
            attributes: c.attributes,
            consent: c.consent.map(|k| crate::model::NewConsent {
                source: k.source,
                given_at_ms: k.given_at_ms,
                text_version: k.text_version,
                evidence: None,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedConsent {
    pub source: ConsentSource,
    /// Unix milliseconds, UTC.
    pub given_at_ms: i64,
    pub text_version: String,
}

/// A refused row. `field` is the column (`phone`, `name`, … or an attribute's header name),
/// empty for problems of the whole row. Display: `row 17, field phone: not a valid number
/// for region UA: "12345"` or `row 3: has 5 fields, the header has 7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub row: u64,
    pub field: String,
    pub reason: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "row {}: {}", self.row, self.reason)
        } else {
            write!(f, "row {}, field {}: {}", self.row, self.field, self.reason)
        }
    }
}

impl std::error::Error for RowError {}

/// A duplicate row and the earlier row it was merged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergedRow {
    pub row: u64,
    pub into_row: u64,
}

/// Outcome of an import.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Data rows read (header not counted).
    pub rows_read: u64,
    /// Rows whose number was new in this file.
    pub accepted: u64,
    /// Rows merged into an earlier row with the same number.
    pub merged_in_file: u64,
    /// The first [`ImportOptions::max_reported`] merges.
    pub merged: Vec<MergedRow>,
    /// The first [`ImportOptions::max_reported`] row errors, in row order.
    pub errors: Vec<RowError>,
    /// All refused rows (`errors` may hold fewer).
    pub errors_total: u64,
    pub elapsed: Duration,
}

impl ImportReport {
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_read as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rows read: {} accepted, {} duplicates merged, {} refused ({:.2} s)",
            self.rows_read,
            self.accepted,
            self.merged_in_file,
            self.errors_total,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Settings of one import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// ISO 3166-1 alpha-2 region for numbers written without a country code, e.g. `UA`.
    pub default_region: String,
    pub phone_types: PhoneTypeFilter,
    /// `None`: detect `,` `;` or TAB from the header line.
    pub delimiter: Option<u8>,
    /// Cap of the `errors` and `merged` lists in the report.
    pub max_reported: usize,
    /// The import time that `consent_at` is checked against (Unix ms); `None` = now.
    pub now_ms: Option<i64>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            default_region: "UA".into(),
            phone_types: PhoneTypeFilter::Any,
            delimiter: None,
            max_reported: DEFAULT_MAX_REPORTED,
            now_ms: None,
        }
    }
}

impl ImportOptions {
    pub fn with_region(region: &str) -> Self {
        Self {
            default_region: region.into(),
            ..Self::default()
        }
    }
}

/// An import that cannot go on at all (problems of single rows are [`RowError`]s).
#[derive(Debug)]
pub enum ImportError {
    Io(io::Error),
    /// No header row: the input is empty (or has only blank lines).
    NoHeader,
    /// The header row is unusable; the text says why.
    Header(String),
    /// Invalid [`ImportOptions`].
    Options(String),
}

impl fmt::Display for ImportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImportError::Io(e) => write!(f, "reading the CSV input: {e}"),
            ImportError::NoHeader => f.write_str(
                "empty input: a header row with at least a \"phone\" column is required",
            ),
            ImportError::Header(m) => write!(f, "header row: {m}"),
            ImportError::Options(m) => write!(f, "import options: {m}"),
        }
    }
}

impl std::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ImportError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ImportError {
    fn from(e: io::Error) -> Self {
        ImportError::Io(e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Phone,
    Name,
    Timezone,
    Language,
    ConsentSource,
    ConsentAt,
    ConsentTextVersion,
    Attribute,
}

const KNOWN: [(&str, Kind); 7] = [
    ("phone", Kind::Phone),
    ("name", Kind::Name),
    ("timezone", Kind::Timezone),
    ("language", Kind::Language),
    ("consent_source", Kind::ConsentSource),
    ("consent_at", Kind::ConsentAt),
    ("consent_text_version", Kind::ConsentTextVersion),
];

#[derive(Debug, Clone)]
struct Column {
    /// Canonical lowercase name for known columns, the trimmed header text for attributes.
    name: String,
    kind: Kind,
}

fn parse_header(bytes: &[u8], ends: &[usize]) -> Result<Vec<Column>, ImportError> {
    let mut cols: Vec<Column> = Vec::with_capacity(ends.len());
    let mut lower: Vec<String> = Vec::with_capacity(ends.len());
    let mut start = 0;
    for (i, &end) in ends.iter().enumerate() {
        let n = i + 1;
        let raw = std::str::from_utf8(&bytes[start..end])
            .map_err(|_| ImportError::Header(format!("column {n}: name is not valid UTF-8")))?;
        start = end;
        let name = raw.trim();
        if name.is_empty() {
            return Err(ImportError::Header(format!("column {n}: empty name")));
        }
        if name.len() > MAX_HEADER_NAME_BYTES {
            return Err(ImportError::Header(format!(
                "column {n}: name longer than {MAX_HEADER_NAME_BYTES} bytes"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(ImportError::Header(format!(
                "column {n}: name contains control characters"
            )));
        }
        let low = name.to_lowercase();
        if let Some(j) = lower.iter().position(|l| *l == low) {
            return Err(ImportError::Header(format!(
                "duplicate column {name:?} (columns {} and {n})",
                j + 1
            )));
        }
        let col = match KNOWN.iter().find(|(k, _)| *k == low) {
            Some((k, kind)) => Column {
                name: (*k).to_string(),
                kind: *kind,
            },
            None => Column {
                name: name.to_string(),
                kind: Kind::Attribute,
            },
        };
        lower.push(low);
        cols.push(col);
    }
    if !cols.iter().any(|c| c.kind == Kind::Phone) {
        return Err(ImportError::Header("no \"phone\" column".into()));
    }
    Ok(cols)
}

/// Where a number was first seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    first_row: u64,
    batch: u32,
    index: u32,
}

/// Streaming import over any `Read`.
///
/// ```ignore
/// let mut imp = Importer::new(file, ImportOptions::with_region("UA"))?
///     .on_progress(|rows| bar.set_position(rows));
/// while let Some(batch) = imp.next_batch(10_000)? {
///     store.insert_contacts(campaign, &batch).await?;
/// }
/// let report = imp.finish();
/// ```
pub struct Importer<R> {
    reader: RecordReader<R>,
    columns: Vec<Column>,
    phones: PhoneNormaliser,
    latest_consent_ms: i64,
    max_reported: usize,
    seen: HashMap<u64, Seen>,
    batch_no: u32,
    report: ImportReport,
    progress: Option<Box<dyn FnMut(u64) + Send>>,
    next_progress: u64,
    started: Instant,
    done: bool,
}

impl<R> fmt::Debug for Importer<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Importer")
            .field("region", &self.phones.region())
            .field("columns", &self.columns.len())
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

impl<R: Read> Importer<R> {
    /// Reads and checks the header row.
    pub fn new(input: R, options: ImportOptions) -> Result<Self, ImportError> {
        let started = Instant::now();
        let phones = PhoneNormaliser::new(&options.default_region, options.phone_types)
            .map_err(ImportError::Options)?;
        if let Some(d) = options.delimiter
            && (d == b'"' || d == b'\n' || d == b'\r' || !d.is_ascii())
        {
            return Err(ImportError::Options(format!(
                "delimiter {:?} cannot be used",
                d as char
            )));
        }
        let (mut reader, _delimiter) = RecordReader::new(input, options.delimiter, MAX_COLUMNS)?;
        let columns = match reader.read()? {
            Rec::End => return Err(ImportError::NoHeader),
            Rec::TooLong => {
                return Err(ImportError::Header(format!(
                    "longer than {MAX_RECORD_BYTES} bytes"
                )));
            }
            Rec::TooManyFields(n) => {
                return Err(ImportError::Header(format!(
                    "{n} columns, at most {MAX_COLUMNS}"
                )));
            }
            Rec::Fields(_) => {
                let (bytes, ends) = reader.record();
                parse_header(bytes, ends)?
            }
        };
        // One more than the header so that a row with too many fields is counted as such.
        reader.set_max_fields(columns.len() + 1);
        let now_ms = options.now_ms.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0)
        });
        Ok(Self {
            reader,
            columns,
            phones,
            latest_consent_ms: now_ms.saturating_add(CONSENT_FUTURE_SKEW_MS),
            max_reported: options.max_reported,
            seen: HashMap::new(),
            batch_no: 0,
            report: ImportReport::default(),
            progress: None,
            next_progress: PROGRESS_EVERY,
            started,
            done: false,
        })
    }

    /// Calls `f(rows_read)` every [`PROGRESS_EVERY`] rows and once when the input ends.
    pub fn on_progress(mut self, f: impl FnMut(u64) + Send + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Header names of the free attribute columns, in file order.
    pub fn attribute_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.kind == Kind::Attribute)
            .map(|c| c.name.as_str())
    }

    /// Up to `max` contacts (at least 1), or `None` when the input is exhausted.
    ///
    /// Duplicates within one batch are merged into one contact. A number that was already
    /// returned in an earlier batch is returned again in a later batch carrying only the
    /// later row's values (and that row's number in `row`): the store applies it with
    /// [`ImportedContact::merge_from`] semantics (set fields replace, attributes merge —
    /// an upsert), which gives the same result as merging in memory. It is counted as
    /// merged in the report either way. [`import_all`] returns fully merged contacts.
    pub fn next_batch(&mut self, max: usize) -> Result<Option<Vec<ImportedContact>>, ImportError> {
        let max = max.max(1);
        self.batch_no += 1;
        let mut batch = Vec::with_capacity(max.min(16 * 1024));
        while batch.len() < max && !self.done {
            let rec = self.reader.read()?;
            if rec == Rec::End {
                self.done = true;
                let rows = self.report.rows_read;
                if let Some(p) = &mut self.progress {
                    p(rows);
                }
                break;
            }
            self.on_record(rec, &mut batch);
        }
        Ok(if batch.is_empty() { None } else { Some(batch) })
    }

    /// The report so far (complete once `next_batch` returned `None`).
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// The final report; `elapsed` counts from [`Importer::new`]. Rows not yet read are
    /// not counted.
    pub fn finish(mut self) -> ImportReport {
        self.report.elapsed = self.started.elapsed();
        self.report
    }

    fn on_record(&mut self, rec: Rec, batch: &mut Vec<ImportedContact>) {
        self.report.rows_read += 1;
        let row = self.report.rows_read;
        let result = match rec {
            Rec::Fields(_) => {
                let (bytes, ends) = self.reader.record();
                parse_row(
                    row,
                    bytes,
                    ends,
                    &self.columns,
                    &mut self.phones,
                    self.latest_consent_ms,
                )
            }
            Rec::TooLong => Err(RowError {
                row,
                field: String::new(),
                reason: format!(
                    "longer than {MAX_RECORD_BYTES} bytes; skipped up to the next line break"
                ),
            }),
            Rec::TooManyFields(n) => Err(field_count_error(row, n, self.columns.len())),
            Rec::End => unreachable!("handled by next_batch"),
        };
        match result {
            Ok((contact, key)) => self.add(contact, key, batch),
            Err(e) => {
                self.report.errors_total += 1;
                if self.report.errors.len() < self.max_reported {
                    self.report.errors.push(e);
                }
            }
        }
        if row >= self.next_progress {
            self.next_progress = row + PROGRESS_EVERY;
            if let Some(p) = &mut self.progress {
                p(row);
            }
        }
    }

    fn add(&mut self, contact: ImportedContact, key: u64, batch: &mut Vec<ImportedContact>) {
        let row = contact.row;
        match self.seen.get_mut(&key) {
            None => {
                self.report.accepted += 1;
                self.seen.insert(
                    key,
                    Seen {
                        first_row: row,
                        batch: self.batch_no,
                        index: batch.len() as u32,
                    },
                );
                batch.push(contact);
            }
            Some(seen) => {
                self.report.merged_in_file += 1;
                if self.report.merged.len() < self.max_reported {
                    self.report.merged.push(MergedRow {
                        row,
                        into_row: seen.first_row,
                    });
                }
                if seen.batch == self.batch_no {
                    batch[seen.index as usize].merge_from(contact);
                } else {
                    seen.batch = self.batch_no;
                    seen.index = batch.len() as u32;
                    batch.push(contact);
                }
            }
        }
    }
}

/// Reads everything and returns the fully merged contacts (in order of first occurrence)
/// with the report. Holds all contacts in memory: for large files use [`Importer`] batches.
pub fn import_all<R: Read>(
    input: R,
    options: ImportOptions,
) -> Result<(Vec<ImportedContact>, ImportReport), ImportError> {
    let mut imp = Importer::new(input, options)?;
    let contacts = imp.next_batch(usize::MAX)?.unwrap_or_default();
    Ok((contacts, imp.finish()))
}

fn field_count_error(row: u64, got: usize, want: usize) -> RowError {
    RowError {
        row,
        field: String::new(),
        reason: format!("has {got} fields, the header has {want}"),
    }
}

fn row_err(row: u64, field: &str, reason: impl Into<String>) -> RowError {
    RowError {
        row,
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn parse_row(
    row: u64,
    bytes: &[u8],
    ends: &[usize],
    columns: &[Column],
    phones: &mut PhoneNormaliser,
    latest_consent_ms: i64,
) -> Result<(ImportedContact, u64), RowError> {
    if ends.len() != columns.len() {
        return Err(field_count_error(row, ends.len(), columns.len()));
    }
    let mut phone = "";
    let mut name = "";
    let mut timezone = "";
    let mut language = "";
    let mut consent_source = "";
    let mut consent_at = "";
    let mut consent_version = "";
    let mut attr_fields: Vec<(&str, &str)> = Vec::new();
    let mut start = 0;
    for (col, &end) in columns.iter().zip(ends) {
        let raw = &bytes[start..end];
        start = end;
        if raw.len() > MAX_FIELD_BYTES {
            return Err(row_err(
                row,
                &col.name,
                format!("too long ({} bytes, at most {MAX_FIELD_BYTES})", raw.len()),
            ));
        }
        let s = std::str::from_utf8(raw).map_err(|_| row_err(row, &col.name, "not valid UTF-8"))?;
        match col.kind {
            Kind::Phone => phone = s,
            Kind::Name => name = s,
            Kind::Timezone => timezone = s,
            Kind::Language => language = s,
            Kind::ConsentSource => consent_source = s.trim(),
            Kind::ConsentAt => consent_at = s.trim(),
            Kind::ConsentTextVersion => consent_version = s.trim(),
            Kind::Attribute => attr_fields.push((&col.name, s)),
        }
    }
    let phone = phones
        .normalise(phone)
        .map_err(|e| row_err(row, "phone", e.to_string()))?;
    let name = fields::name(name).map_err(|e| row_err(row, "name", e))?;
    let timezone = fields::timezone(timezone).map_err(|e| row_err(row, "timezone", e))?;
    let language = fields::language(language).map_err(|e| row_err(row, "language", e))?;

    let consent =
        if consent_source.is_empty() && consent_at.is_empty() && consent_version.is_empty() {
            None
        } else {
            const REQUIRED: &str = "required when any consent column is set";
            if consent_source.is_empty() {
                return Err(row_err(row, "consent_source", REQUIRED));
            }
            let source = fields::consent_source(consent_source)
                .map_err(|e| row_err(row, "consent_source", e))?;
            if consent_at.is_empty() {
                return Err(row_err(row, "consent_at", REQUIRED));
            }
            let given_at_ms = fields::consent_at(consent_at, latest_consent_ms)
                .map_err(|e| row_err(row, "consent_at", e))?;
            if consent_version.is_empty() {
                return Err(row_err(row, "consent_text_version", REQUIRED));
            }
            let text_version = fields::text_version(consent_version)
                .map_err(|e| row_err(row, "consent_text_version", e))?;
            Some(ImportedConsent {
                source,
                given_at_ms,
                text_version,
            })
        };

    let mut attributes = BTreeMap::new();
    for (key, raw) in attr_fields {
        if let Some(v) = fields::attribute(raw).map_err(|e| row_err(row, key, e))? {
            attributes.insert(key.to_string(), v);
        }
    }
    Ok((
        ImportedContact {
            row,
            phone_e164: phone.e164,
            name,
            timezone,
            language,
            attributes,
            consent,
        },
        phone.key,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ImportOptions {
        ImportOptions {
            now_ms: Some(1_750_000_000_000),
            ..ImportOptions::default()
        }
    }

    #[test]
    fn header_errors() {
        let err = |s: &str| Importer::new(s.as_bytes(), opts()).unwrap_err().to_string();
        assert_eq!(
            err(""),
            "empty input: a header row with at least a \"phone\" column is required"
        );
        assert_eq!(
            err("\n\n"),
            "empty input: a header row with at least a \"phone\" column is required"
        );
        assert_eq!(err("name,city\n"), "header row: no \"phone\" column");
        assert_eq!(err("phone,,city\n"), "header row: column 2: empty name");
        assert_eq!(
            err("phone,City, city \n"),
            "header row: duplicate column \"city\" (columns 2 and 3)"
        );
        assert_eq!(
            err("Phone,PHONE\n"),
            "header row: duplicate column \"PHONE\" (columns 1 and 2)"
        );
        assert_eq!(
            err("phone,\"a\u{1}\"\n"),
            "header row: column 2: name contains control characters"
        );
        let many = (0..300)
            .map(|i| format!("c{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            err(&format!("phone,{many}\n")),
            "header row: 301 columns, at most 256"
        );
        let long = "x".repeat(129);
        assert_eq!(
            err(&format!("phone,{long}\n")),
            "header row: column 2: name longer than 128 bytes"
        );
        let e = Importer::new(&b"phone,\xff\n"[..], opts())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "header row: column 2: name is not valid UTF-8");
        let e = Importer::new(&b"phone\n"[..], ImportOptions::with_region("ZZ"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("import options: unknown default region \"ZZ\""),
            "{e}"
        );
    }

    #[test]
    fn header_columns() {
        let imp = Importer::new(&b" Phone ;NAME;City;Segment\n"[..], opts()).unwrap();
        assert_eq!(
            imp.attribute_columns().collect::<Vec<_>>(),
            ["City", "Segment"]
        );
    }

    #[test]
    fn merge_from_rules() {
        let mut a = ImportedContact {
            row: 1,
            phone_e164: "+380441234567".into(),
            name: Some("A".into()),
            timezone: Some("Europe/Kyiv".into()),
            language: None,
            attributes: [("x".to_string(), "1".to_string()), ("y".into(), "2".into())].into(),
            consent: None,
        };
        let b = ImportedContact {
            row: 5,
            name: None,
            timezone: Some("UTC".into()),
            language: Some("uk".into()),
            attributes: [("y".to_string(), "3".to_string())].into(),
            ..a.clone()
        };
        a.merge_from(b);
        assert_eq!(a.row, 1);
        assert_eq!(a.name.as_deref(), Some("A"));
        assert_eq!(a.timezone.as_deref(), Some("UTC"));
        assert_eq!(a.language.as_deref(), Some("uk"));
        assert_eq!(a.attributes["x"], "1");
        assert_eq!(a.attributes["y"], "3");
    }
}
