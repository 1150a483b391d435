//! Bearer-token auth: an interceptor in front of every `dialer.v1` service. It runs before the
//! request body is read, so a refused call executes nothing.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

/// Who made a call, put into the request's extensions by the interceptor: `api` with auth
/// off, `api:token<N>` (the index of the matching token, never the token) with auth on. Used
/// as the audit log's actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    /// The caller of a request (`api` when the interceptor did not run).
    pub fn of<T>(req: &Request<T>) -> String {
        req.extensions()
            .get::<Caller>()
            .map(|c| c.0.clone())
            .unwrap_or_else(|| "api".to_string())
    }
}

/// The interceptor.
#[derive(Clone)]
pub(crate) struct Auth {
    tokens: Arc<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Auth {
    pub(crate) fn new(tokens: &[String]) -> Auth {
        Auth {
            tokens: Arc::new(tokens.iter().map(|t| t.as_bytes().to_vec()).collect()),
        }
    }
}

/// Equal length and equal bytes, without an early exit on the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if self.tokens.is_empty() {
            req.extensions_mut().insert(Caller("api".into()));
            return Ok(req);
        }
        let Some(value) = req.metadata().get("authorization") else {
            return Err(Status::unauthenticated(
                "missing `authorization: Bearer <token>` metadata",
            ));
        };
        let presented = value
            .as_bytes()
            .strip_prefix(b"Bearer ")
            .or_else(|| value.as_bytes().strip_prefix(b"bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization is not `Bearer <token>`"))?;
        // Compare with every token (no early exit), remember the match.
        let mut matched = None;
        for (i, t) in self.tokens.iter().enumerate() {
            if same(presented, t) && matched.is_none() {
                matched = Some(i);
            }
        }
        match matched {
            Some(i) => {
                req.extensions_mut().insert(Caller(format!("api:token{i}")));
                Ok(req)
            }
            None => Err(Status::unauthenticated("invalid token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(auth: Option<&str>) -> Request<()> {
        let mut r = Request::new(());
        if let Some(a) = auth {
            r.metadata_mut()
                .insert("authorization", a.parse().expect("ascii"));
        }
        r
    }

    #[test]
    fn tokens_are_checked() {
        let mut a = Auth::new(&["secret-one".into(), "secret-two".into()]);
        assert_eq!(
            a.call(with(None)).expect_err("missing").code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.call(with(Some("Bearer nope"))).expect_err("wrong").code(),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            a.call(with(Some("secret-two")))
                .expect_err("no scheme")
                .code(),
            tonic::Code::Unauthenticated
        );
        let ok = a.call(with(Some("Bearer secret-two"))).expect("valid");
        assert_eq!(Caller::of(&ok), "api:token1");
        let mut open = Auth::new(&[]);
        assert_eq!(Caller::of(&open.call(with(None)).expect("open")), "api");
    }
}
