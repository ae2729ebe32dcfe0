//! Request ids: every response carries `x-request-id` — the caller's own when it sent a usable
//! one, else a fresh `req_…` — every log line of the request carries it (a tracing span), and
//! every `application/problem+json` body names it in `request_id`, so that a support question
//! ("this capture failed") finds its log lines. A replayed answer keeps its stored bytes except
//! `request_id`, which names the request being answered.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt;
use tracing::Instrument;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a caller; a longer one is replaced by a fresh one.
pub const REQUEST_ID_CHARS_MAX: usize = 128;

/// Problem bodies are small; one larger than this is passed on untouched.
const PROBLEM_BYTES_MAX: usize = 256 * 1024;

/// A caller's id is used when it is 1..=128 visible ASCII characters (no spaces, no controls),
/// so that it is safe in headers and logs.
fn usable(id: &str) -> bool {
    (1..=REQUEST_ID_CHARS_MAX).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|value| usable(value))
        .map_or_else(|| crate::wire::new_id("req_"), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    let response = next.run(request).instrument(span).await;
    let mut response = with_id_in_problem(response, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

async fn with_id_in_problem(response: Response, id: &str) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if !is_problem {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::Limited::new(body, PROBLEM_BYTES_MAX)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let body = match bytes.strip_suffix(b"}") {
        Some(open) if bytes.len() > 2 && bytes.starts_with(b"{") => {
            let mut body = Vec::with_capacity(bytes.len() + id.len() + 16);
            body.extend_from_slice(open);
            body.extend_from_slice(b",\"request_id\":");
            body.extend_from_slice(&serde_json::to_vec(id).unwrap_or_default());
            body.push(b'}');
            body.into()
        }
        _ => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_ascii_ids_of_a_bounded_length_are_used() {
        assert!(usable("abc-123_XYZ"));
        assert!(usable(&"a".repeat(128)));
        assert!(!usable(&"a".repeat(129)));
        assert!(!usable(""));
        assert!(!usable("has space"));
        assert!(!usable("tab\there"));
        assert!(!usable("naïve"));
    }
}
