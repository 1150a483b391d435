//! SIP messages: the crate's own request/response types.
//!
//! Framing and header indexing are done here (one pass, one allocation per header); the URI
//! grammar is delegated to `rsip` behind [`crate::Uri`]. Nothing of `rsip` appears in this API, so
//! the backend can be swapped. Headers the crate does not know pass through untouched, with the
//! name spelled as received.

mod header;
mod parse;
mod write;

pub(crate) use header::split_host_port;
pub use header::{CSeq, NameAddr, Params, Via, split_list};
pub use parse::{Limits, ParseError, salvage_request};

use std::fmt;

/// A SIP request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Update,
    Notify,
    Refer,
    Prack,
    Subscribe,
    Message,
    Publish,
    /// An extension method, spelled as received (methods are case-sensitive).
    Other(String),
}

impl Method {
    /// Parse a method token. Methods are case-sensitive (RFC 3261 §7.1).
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "MESSAGE" => Method::Message,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! header_names {
    ($( $variant:ident => $canon:literal $(, $compact:literal)? ;)*) => {
        /// A header field name. Known names are matched case-insensitively (compact forms
        /// expanded); any other name is kept exactly as received.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum HeaderName {
            $( $variant, )*
            /// An extension header, spelled as received.
            Other(String),
        }

        impl HeaderName {
            /// Canonical spelling (the received spelling for [`HeaderName::Other`]).
            pub fn as_str(&self) -> &str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other(s) => s,
                }
            }

            /// Classify a received name.
            pub fn from_wire(name: &str) -> HeaderName {
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase();
                    $( $( if c == $compact { return HeaderName::$variant; } )? )*
                }
                $( if name.eq_ignore_ascii_case($canon) { return HeaderName::$variant; } )*
                HeaderName::Other(name.to_owned())
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    Contact => "Contact", b'm';
    MaxForwards => "Max-Forwards";
    ContentLength => "Content-Length", b'l';
    ContentType => "Content-Type", b'c';
    ContentEncoding => "Content-Encoding", b'e';
    RecordRoute => "Record-Route";
    Route => "Route";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    Allow => "Allow";
    Supported => "Supported", b'k';
    Require => "Require";
    Unsupported => "Unsupported";
    SessionExpires => "Session-Expires", b'x';
    MinSe => "Min-SE";
    Reason => "Reason";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Event => "Event", b'o';
    ReferTo => "Refer-To", b'r';
    ReferredBy => "Referred-By", b'b';
    SubscriptionState => "Subscription-State";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    Subject => "Subject", b's';
    PAssertedIdentity => "P-Asserted-Identity";
    RetryAfter => "Retry-After";
    Accept => "Accept";
    Warning => "Warning";
}

/// One header field line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: HeaderName,
    /// The value with surrounding whitespace removed and folded lines joined by one space.
    pub value: String,
}

/// The ordered header fields of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    pub fn new() -> Self {
        Self(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        Self(Vec::with_capacity(n))
    }

    /// Append a header line.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }

    /// Insert a header line before all others (a new top Via).
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }

    /// Replace every line of `name` by one line with `value` (appended if absent).
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.0.iter().position(|h| h.name == name) {
            self.0[pos].value = value;
            let mut i = 0;
            self.0.retain(|h| {
                i += 1;
                i - 1 <= pos || h.name != name
            });
        } else {
            self.push(name, value);
        }
    }

    /// Remove every line of `name`.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }

    /// The first line's value of `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Every line's value of `name`, in order (a line may itself hold a comma list).
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| h.value.as_str())
    }

    /// Look up an extension header by name, case-insensitively.
    pub fn get_other(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every element of the comma-separated lists of `name` (Via, Route, Record-Route, Contact…).
    pub fn list<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_list)
    }

    /// The topmost Via, parsed.
    pub fn top_via(&self) -> Option<Via> {
        self.list(&HeaderName::Via).next().and_then(Via::parse)
    }

    pub fn call_id(&self) -> Option<&str> {
        self.get(&HeaderName::CallId)
    }

    pub fn cseq(&self) -> Option<CSeq> {
        self.get(&HeaderName::CSeq).and_then(CSeq::parse)
    }

    pub fn from(&self) -> Option<NameAddr> {
        self.get(&HeaderName::From).and_then(NameAddr::parse)
    }

    pub fn to(&self) -> Option<NameAddr> {
        self.get(&HeaderName::To).and_then(NameAddr::parse)
    }

    /// The tag of the From header.
    pub fn from_tag(&self) -> Option<String> {
        self.from()
            .and_then(|n| n.params.get("tag").map(str::to_owned))
    }

    /// The tag of the To header.
    pub fn to_tag(&self) -> Option<String> {
        self.to()
            .and_then(|n| n.params.get("tag").map(str::to_owned))
    }

    /// The first Contact, parsed.
    pub fn contact(&self) -> Option<NameAddr> {
        self.list(&HeaderName::Contact)
            .next()
            .and_then(NameAddr::parse)
    }

    /// Content-Type without parameters, lower-cased.
    pub fn content_type(&self) -> Option<String> {
        self.get(&HeaderName::ContentType).map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    /// True if an option tag appears in Supported or Require.
    pub fn has_option_tag(&self, name: &HeaderName, tag: &str) -> bool {
        self.list(name).any(|t| t.trim().eq_ignore_ascii_case(tag))
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = &'a Header;
    type IntoIter = std::slice::Iter<'a, Header>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The Request-URI exactly as written (digest `uri=` must equal it byte for byte).
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A request or a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parse one message (a whole UDP datagram or one framed stream message) with default limits.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        parse::parse(bytes, &Limits::default())
    }

    /// Parse with explicit limits.
    pub fn parse_with(bytes: &[u8], limits: &Limits) -> Result<Message, ParseError> {
        parse::parse(bytes, limits)
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    pub fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }

    /// Serialise (Content-Length is computed from the body).
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

impl Request {
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Self {
            method,
            uri: uri.into(),
            headers: Headers::with_capacity(12),
            body: Vec::new(),
        }
    }

    /// Serialise; Content-Length is always written and always equals the body length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len() + self.headers.len() * 48);
        write::request(&mut out, self);
        out
    }

    /// Build a response to this request copying Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
    /// `to_tag` is added to To when it has none.
    pub fn make_response(&self, status: u16, reason: &str, to_tag: Option<&str>) -> Response {
        let mut headers = Headers::with_capacity(8);
        for h in &self.headers {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name.clone(), h.value.clone())
                }
                HeaderName::To => {
                    let has_tag = NameAddr::parse(&h.value)
                        .map(|n| n.params.get("tag").is_some())
                        .unwrap_or(false);
                    match to_tag {
                        Some(tag) if !has_tag => {
                            headers.push(HeaderName::To, format!("{};tag={tag}", h.value))
                        }
                        _ => headers.push(HeaderName::To, h.value.clone()),
                    }
                }
                _ => {}
            }
        }
        Response {
            status,
            reason: reason.to_owned(),
            headers,
            body: Vec::new(),
        }
    }
}

impl Response {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            headers: Headers::with_capacity(10),
            body: Vec::new(),
        }
    }

    /// Serialise; Content-Length is always written and always equals the body length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.body.len() + self.headers.len() * 48);
        write::response(&mut out, self);
        out
    }

    /// 1xx.
    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        422 => "Session Interval Too Small",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests;
