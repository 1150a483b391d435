//! Dialog state (RFC 3261 §12) from the UAC side, and where its requests go.

use std::net::{IpAddr, SocketAddr};

use crate::message::{HeaderName, Method, NameAddr, Request, Response};
use crate::uri::Uri;

/// Transport of a hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    /// The Via token.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Our Via header value for a new client transaction (RFC 3261 §18.1.1, RFC 3581 `rport`);
    /// IPv6 hosts are bracketed.
    pub fn via(self, host: &str, port: u16, branch: &str) -> String {
        let token = self.via_token();
        if host.contains(':') && !host.starts_with('[') {
            format!("SIP/2.0/{token} [{host}]:{port};branch={branch};rport")
        } else {
            format!("SIP/2.0/{token} {host}:{port};branch={branch};rport")
        }
    }

    /// The transport a URI's `;transport=` parameter names (`None`: absent or unsupported).
    pub fn of_uri(uri: &Uri) -> Option<Transport> {
        match uri.transport().as_deref() {
            Some("udp") => Some(Transport::Udp),
            Some("tcp") => Some(Transport::Tcp),
            _ => None,
        }
    }

    /// Retransmissions happen only on unreliable transports.
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

/// Where a message must be sent. Host names are resolved by the driver.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dest {
    Addr(SocketAddr),
    Host(String, u16),
}

impl Dest {
    /// The next hop for a URI: its host and port (default 5060).
    pub fn from_uri(uri: &Uri) -> Dest {
        let port = uri.port_or_default();
        match uri.host.parse::<IpAddr>() {
            Ok(ip) => Dest::Addr(SocketAddr::new(ip, port)),
            Err(_) => Dest::Host(uri.host.clone(), port),
        }
    }
}

/// A confirmed (or early) dialog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
    /// Our From header value without the tag.
    pub local_uri: String,
    /// The remote party's To header value without the tag.
    pub remote_uri: String,
    /// Remote target (Contact of the response).
    pub remote_target: String,
    /// Route set: Record-Route of the response, reversed (UAC).
    pub route_set: Vec<String>,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
}

impl Dialog {
    /// Build the dialog state from a response that carries a To tag (RFC 3261 §12.1.2).
    /// `None` when the response lacks the To tag; a missing Contact keeps the request URI.
    pub fn from_response(
        req: &Request,
        resp: &Response,
        local_tag: &str,
        local_seq: u32,
    ) -> Option<Dialog> {
        let to = resp.headers.to()?;
        let remote_tag = to.tag()?.to_owned();
        let mut route_set: Vec<String> = resp
            .headers
            .list(&HeaderName::RecordRoute)
            .map(str::to_owned)
            .collect();
        route_set.reverse();
        let remote_target = resp
            .headers
            .contact()
            .map(|c| c.uri)
            .unwrap_or_else(|| req.uri.clone());
        let local_uri = req
            .headers
            .from()
            .map(|mut f| {
                f.params.0.retain(|(n, _)| !n.eq_ignore_ascii_case("tag"));
                f.to_string()
            })
            .unwrap_or_default();
        let mut to_no_tag = to;
        to_no_tag
            .params
            .0
            .retain(|(n, _)| !n.eq_ignore_ascii_case("tag"));
        Some(Dialog {
            call_id: resp.headers.call_id().unwrap_or_default().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag,
            local_uri,
            remote_uri: to_no_tag.to_string(),
            remote_target,
            route_set,
            local_seq,
            remote_seq: None,
        })
    }

    /// A new in-dialog request with the next CSeq (ACK uses `seq` of the INVITE instead: see
    /// [`Dialog::ack`]). Via must be added by the caller.
    pub fn request(&mut self, method: Method) -> Request {
        self.local_seq = self.local_seq.wrapping_add(1);
        let seq = self.local_seq;
        self.build(method, seq)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_seq` (RFC 3261 §13.2.2.4).
    pub fn ack(&self, invite_seq: u32) -> Request {
        self.build(Method::Ack, invite_seq)
    }

    fn build(&self, method: Method, seq: u32) -> Request {
        let strict = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|n| Uri::parse(&n.uri).ok())
            .is_some_and(|u| !u.is_loose_route());
        let (uri, routes): (String, Vec<String>) = if strict {
            // Strict router: it goes in the Request-URI, the remote target last in Route.
            let first = NameAddr::parse(&self.route_set[0])
                .map(|n| n.uri)
                .unwrap_or_default();
            let mut rest: Vec<String> = self.route_set[1..].to_vec();
            rest.push(format!("<{}>", self.remote_target));
            (first, rest)
        } else {
            (self.remote_target.clone(), self.route_set.clone())
        };
        let mut r = Request::new(method.clone(), uri);
        r.headers.push(HeaderName::MaxForwards, "70");
        for route in routes {
            r.headers.push(HeaderName::Route, route);
        }
        r.headers.push(
            HeaderName::From,
            format!("{};tag={}", self.local_uri, self.local_tag),
        );
        r.headers.push(
            HeaderName::To,
            format!("{};tag={}", self.remote_uri, self.remote_tag),
        );
        r.headers.push(HeaderName::CallId, self.call_id.clone());
        r.headers.push(HeaderName::CSeq, format!("{seq} {method}"));
        r
    }

    /// The URI of the next hop for in-dialog requests: the first Route, else the remote target.
    pub fn next_hop(&self) -> Option<Uri> {
        match self.route_set.first() {
            Some(r) => NameAddr::parse(r).and_then(|n| Uri::parse(&n.uri).ok()),
            None => Uri::parse(&self.remote_target).ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn parse_req(s: &str) -> Request {
        match Message::parse(s.as_bytes()).unwrap() {
            Message::Request(r) => r,
            _ => unreachable!(),
        }
    }

    const INV: &str = "INVITE sip:100@10.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK1\r\nFrom: \"D\" <sip:d@10.0.0.2>;tag=L\r\nTo: <sip:100@10.0.0.1>\r\nCall-ID: cid\r\nCSeq: 7 INVITE\r\n\r\n";

    #[test]
    fn uac_dialog_from_2xx_reverses_record_route_and_targets_contact() {
        let req = parse_req(INV);
        let mut ok = req.make_response(200, "OK", Some("R"));
        ok.headers
            .push(HeaderName::RecordRoute, "<sip:p2;lr>, <sip:p1;lr>");
        ok.headers
            .push(HeaderName::Contact, "<sip:uas@10.0.0.9:5070>");
        let mut d = Dialog::from_response(&req, &ok, "L", 7).unwrap();
        assert_eq!(d.route_set, vec!["<sip:p1;lr>", "<sip:p2;lr>"]);
        assert_eq!(d.remote_target, "sip:uas@10.0.0.9:5070");
        assert_eq!(d.next_hop().unwrap().host, "p1");
        let bye = d.request(Method::Bye);
        assert_eq!(bye.uri, "sip:uas@10.0.0.9:5070");
        assert_eq!(bye.headers.cseq().unwrap().seq, 8);
        assert_eq!(
            bye.headers.get_all(&HeaderName::Route).collect::<Vec<_>>(),
            vec!["<sip:p1;lr>", "<sip:p2;lr>"]
        );
        assert_eq!(bye.headers.from_tag().as_deref(), Some("L"));
        assert_eq!(bye.headers.to_tag().as_deref(), Some("R"));
        assert_eq!(bye.headers.from().unwrap().display.as_deref(), Some("D"));
        let ack = d.ack(7);
        assert_eq!(ack.headers.cseq().unwrap().to_string(), "7 ACK");
    }

    #[test]
    fn strict_router_goes_into_request_uri() {
        let req = parse_req(INV);
        let mut ok = req.make_response(200, "OK", Some("R"));
        ok.headers
            .push(HeaderName::RecordRoute, "<sip:strict.example>");
        ok.headers.push(HeaderName::Contact, "<sip:uas@10.0.0.9>");
        let mut d = Dialog::from_response(&req, &ok, "L", 1).unwrap();
        let bye = d.request(Method::Bye);
        assert_eq!(bye.uri, "sip:strict.example");
        assert_eq!(
            bye.headers.get(&HeaderName::Route),
            Some("<sip:uas@10.0.0.9>")
        );
        assert_eq!(
            Dest::from_uri(&d.next_hop().unwrap()),
            Dest::Host("strict.example".into(), 5060)
        );
    }

    #[test]
    fn via_values_print_and_parse() {
        let v = Transport::Udp.via("127.0.0.1", 5062, "z9hG4bKa");
        assert_eq!(v, "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKa;rport");
        let v = Transport::Tcp.via("::1", 5062, "z9hG4bKb");
        assert_eq!(v, "SIP/2.0/TCP [::1]:5062;branch=z9hG4bKb;rport");
        let parsed = crate::message::Via::parse(&v).unwrap();
        assert_eq!((parsed.host.as_str(), parsed.port), ("[::1]", Some(5062)));
        assert_eq!(parsed.branch(), Some("z9hG4bKb"));
    }

    #[test]
    fn no_to_tag_no_dialog() {
        let req = parse_req(INV);
        let ok = req.make_response(180, "Ringing", None);
        assert!(Dialog::from_response(&req, &ok, "L", 1).is_none());
    }
}
