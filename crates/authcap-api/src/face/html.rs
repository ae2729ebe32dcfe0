//! HTML for the server's own pages (`/docs`, `/dashboard`): escaping, the page frame and its
//! style sheet, all in the binary — nothing is fetched from elsewhere.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The style every page shares: readable on a phone, AA contrast, visible focus.
pub const STYLE: &str = include_str!("style.css");

/// Text made safe for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A complete page: `title` (escaped here), `nav` and `body` (already HTML).
pub fn page(title: &str, nav: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Authcap</title><link rel=\"stylesheet\" href=\"/dashboard/style.css\">\
         </head><body><header class=\"top\"><a class=\"brand\" href=\"/dashboard\">Authcap</a>\
         <nav aria-label=\"Main\">{nav}</nav></header><main id=\"main\">{body}</main></body></html>",
        title = escape(title),
    )
}

/// An HTML answer that no cache keeps and no other site may frame.
pub fn html(status: axum::http::StatusCode, document: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                 frame-ancestors 'none'; base-uri 'none'",
            ),
            (header::REFERRER_POLICY, "same-origin"),
        ],
        document,
    )
        .into_response()
}

pub async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
