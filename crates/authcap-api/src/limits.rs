//! A limit on failed authentications per client, so that guessing credentials is slow for the
//! guesser and cheap for the server.
//!
//! Every answer 401 or 403 counts against the client's address; past the allowed failures in
//! one [`WINDOW`], its requests are answered 429 (with `Retry-After`) before anything is looked
//! up, until the window ends. Successful requests do not count. The table of clients is
//! bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

pub const WINDOW: Duration = Duration::from_secs(60);
/// Failed authentications allowed per client and window, unless configured otherwise.
pub const FAILURES_PER_WINDOW: u32 = 30;
/// How many clients are tracked at once; past it, windows that ended are forgotten, then all.
const CLIENTS_MAX: usize = 10_000;

#[derive(Clone)]
pub struct FailedAuthentications {
    allowed: u32,
    clients: Arc<Mutex<HashMap<IpAddr, (Instant, u32)>>>,
}

impl FailedAuthentications {
    /// `allowed` failures per client and window.
    pub fn new(allowed: u32) -> FailedAuthentications {
        FailedAuthentications {
            allowed,
            clients: Arc::default(),
        }
    }

    /// When the client may try again, if it is over the limit.
    fn blocked_until(&self, client: IpAddr) -> Option<Instant> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let (started, failures) = clients.get(&client)?;
        let ends = *started + WINDOW;
        (*failures >= self.allowed && Instant::now() < ends).then_some(ends)
    }

    fn failed(&self, client: IpAddr) {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if clients.len() >= CLIENTS_MAX && !clients.contains_key(&client) {
            clients.retain(|_, (started, _)| now < *started + WINDOW);
            if clients.len() >= CLIENTS_MAX {
                clients.clear();
            }
        }
        let entry = clients.entry(client).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

pub async fn limit_failed_authentications(
    State(app): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let client = request
        .extensions()
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|info| info.0.ip());
    let Some(client) = client else {
        return next.run(request).await;
    };
    if let Some(until) = app.failed_authentications.blocked_until(client) {
        let seconds = until
            .saturating_duration_since(Instant::now())
            .as_secs()
            .max(1);
        let mut response = crate::native::Problem::TooManyFailedAuthentications.into_response();
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next.run(request).await;
    if matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        app.failed_authentications.failed(client);
    }
    response
}
