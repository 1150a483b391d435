//! Serialisation. Known headers are written with their canonical names; extension headers as
//! received. Content-Length is always written last among the headers and always equals the body.

use std::io::Write as _;

use super::{HeaderName, Headers, Request, Response};

pub(super) fn request(out: &mut Vec<u8>, r: &Request) {
    out.extend_from_slice(r.method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(r.uri.as_bytes());
    out.extend_from_slice(b" SIP/2.0\r\n");
    headers(out, &r.headers, r.body.len());
    out.extend_from_slice(&r.body);
}

pub(super) fn response(out: &mut Vec<u8>, r: &Response) {
    out.extend_from_slice(b"SIP/2.0 ");
    let _ = write!(out, "{} ", r.status);
    out.extend_from_slice(r.reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    headers(out, &r.headers, r.body.len());
    out.extend_from_slice(&r.body);
}

fn headers(out: &mut Vec<u8>, headers: &Headers, body_len: usize) {
    for h in headers {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.extend_from_slice(h.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(h.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
}
