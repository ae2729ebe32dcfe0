//! Dashboard sessions: a signed cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS)
//! naming the merchant, the generation of the secret key it signed in with, and when it
//! expires; a CSRF token derived from the session for every form; and a same-origin check on
//! every POST. Rotating the merchant's secret key ends its sessions; signing out clears the
//! cookie.

use std::time::Duration;

use authcap_core::Clock;
use authcap_store::SystemClock;
use axum::http::{HeaderMap, header};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::native::SECRET_KEY;

pub const COOKIE: &str = "authcap_session";

/// How long a session lasts after signing in.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// The longest cookie value read (a session is about 120 characters).
const COOKIE_CHARS_MAX: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub merchant_id: String,
    generation: i64,
    expires_ms: i64,
    nonce: String,
}

fn mac(app: &AppState, purpose: &str, text: &str) -> String {
    let key = app.server_secret.derive(purpose);
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

impl Session {
    pub fn new(merchant_id: String, generation: i64) -> Session {
        let ttl = i64::try_from(SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
        Session {
            merchant_id,
            generation,
            expires_ms: SystemClock.now().millis().saturating_add(ttl),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
        }
    }

    fn payload(&self) -> String {
        format!(
            "{}.{}.{}.{}",
            self.merchant_id, self.generation, self.expires_ms, self.nonce
        )
    }

    pub fn cookie_value(&self, app: &AppState) -> String {
        let payload = self.payload();
        let signature = mac(app, "dashboard-session", &payload);
        format!("{payload}.{signature}")
    }

    /// The token every form of this session carries.
    pub fn csrf_token(&self, app: &AppState) -> String {
        mac(app, "dashboard-csrf", &self.nonce)
    }

    pub fn csrf_matches(&self, app: &AppState, presented: &str) -> bool {
        bool::from(self.csrf_token(app).as_bytes().ct_eq(presented.as_bytes()))
    }

    /// The session a request's cookie holds, if it is genuine, unexpired, and the secret key
    /// it signed in with still works.
    pub async fn of(app: &AppState, headers: &HeaderMap) -> Option<Session> {
        let value = cookie(headers, COOKIE)?;
        if value.len() > COOKIE_CHARS_MAX {
            return None;
        }
        let (payload, signature) = value.rsplit_once('.')?;
        let expected = mac(app, "dashboard-session", payload);
        if !bool::from(expected.as_bytes().ct_eq(signature.as_bytes())) {
            return None;
        }
        let mut parts = payload.split('.');
        let session = Session {
            merchant_id: parts.next()?.to_owned(),
            generation: parts.next()?.parse().ok()?,
            expires_ms: parts.next()?.parse().ok()?,
            nonce: parts.next()?.to_owned(),
        };
        if parts.next().is_some() || session.expires_ms <= SystemClock.now().millis() {
            return None;
        }
        let works = app
            .credentials
            .generation_works(&session.merchant_id, SECRET_KEY, session.generation)
            .await
            .ok()?;
        works.then_some(session)
    }
}

/// A cookie's value from the request's `Cookie` headers.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Whether the request came over TLS (to this server or, as it says, to its proxy).
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|proto| proto.as_bytes().eq_ignore_ascii_case(b"https"))
}

pub fn set_cookie(app: &AppState, headers: &HeaderMap, session: &Session) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!(
        "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        session.cookie_value(app),
        SESSION_TTL.as_secs()
    )
}

pub fn clear_cookie(headers: &HeaderMap) -> String {
    let secure = if over_tls(headers) { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// A POST from another site is refused before anything else: the browser says so
/// (`Sec-Fetch-Site`), or its `Origin` names another host than the one it was sent to.
pub fn same_origin(headers: &HeaderMap) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes() == b"cross-site" || site.as_bytes() == b"same-site")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest.trim_end_matches('/'));
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        assert!(same_origin(&headers(&[("host", "localhost:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://evil.example"),
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "localhost:8080"),
            ("sec-fetch-site", "cross-site"),
        ])));
        assert!(!same_origin(&headers(&[("origin", "null"), ("host", "a")])));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let found = cookie(
            &headers(&[("cookie", "a=1; authcap_session=xyz.1; b=2")]),
            COOKIE,
        );
        assert_eq!(found.as_deref(), Some("xyz.1"));
        assert_eq!(cookie(&headers(&[("cookie", "a=1")]), COOKIE), None);
    }
}
