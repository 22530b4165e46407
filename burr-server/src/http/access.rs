//! Who may do what: read-only and admin tokens, compared in constant time.
//!
//! With no token configured (the default, on 127.0.0.1), everyone on this machine may
//! read and act. With tokens, every `/v1` request needs one — `Authorization: Bearer
//! <token>`, or `?access_token=` where a header cannot be set (a browser's
//! `EventSource`) — and acting (submit, cancel, rerun) needs the admin token. A missing
//! or wrong token is a bare 401.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::problem::Problem;
use super::Api;

/// The tokens a server accepts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Access {
    pub(crate) read: Option<String>,
    pub(crate) admin: Option<String>,
}

/// What a request may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Grant {
    None,
    Read,
    Admin,
}

impl Access {
    /// Whether any token is required.
    pub(crate) fn enabled(&self) -> bool {
        self.read.is_some() || self.admin.is_some()
    }

    fn grant(&self, presented: Option<&str>) -> Grant {
        if !self.enabled() {
            return Grant::Admin;
        }
        let Some(presented) = presented else {
            return Grant::None;
        };
        let matches = |token: &Option<String>| {
            token
                .as_deref()
                .is_some_and(|t| bool::from(t.as_bytes().ct_eq(presented.as_bytes())))
        };
        // Both are compared, whichever matches, so the time taken tells nothing.
        let admin = matches(&self.admin);
        let read = matches(&self.read);
        if admin {
            Grant::Admin
        } else if read {
            Grant::Read
        } else {
            Grant::None
        }
    }
}

/// The token of a request: its bearer token, or its `access_token` query parameter.
fn presented(request: &Request) -> Option<String> {
    if let Some(value) = request.headers().get(header::AUTHORIZATION) {
        return value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
    }
    request.uri().query().and_then(|query| {
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=')?;
            (key == "access_token").then(|| value.to_owned())
        })
    })
}

/// The middleware guarding `/v1`: reads need a read or admin token, everything else
/// (POST) the admin token.
pub(crate) async fn guard(State(api): State<Api>, request: Request, next: Next) -> Response {
    let grant = api.access.grant(presented(&request).as_deref());
    let needed = if request.method() == Method::GET || request.method() == Method::HEAD {
        Grant::Read
    } else {
        Grant::Admin
    };
    if grant == Grant::None {
        return unauthorized();
    }
    if grant < needed {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "admin-only",
            "this needs the admin token (submit, cancel and rerun do)",
        )
        .into_response();
    }
    next.run(request).await
}

/// A bare 401: nothing else is revealed.
fn unauthorized() -> Response {
    let mut response = Problem::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid token is required",
    )
    .into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_grant_read_or_admin_and_nothing_else() {
        let open = Access::default();
        assert_eq!(open.grant(None), Grant::Admin);
        let access = Access {
            read: Some("r-token".into()),
            admin: Some("a-token".into()),
        };
        assert_eq!(access.grant(None), Grant::None);
        assert_eq!(access.grant(Some("r-token")), Grant::Read);
        assert_eq!(access.grant(Some("a-token")), Grant::Admin);
        assert_eq!(access.grant(Some("a-toke")), Grant::None);
        assert_eq!(access.grant(Some("")), Grant::None);
        let admin_only = Access {
            read: None,
            admin: Some("a".into()),
        };
        assert_eq!(admin_only.grant(Some("a")), Grant::Admin);
        assert_eq!(admin_only.grant(Some("b")), Grant::None);
    }
}
