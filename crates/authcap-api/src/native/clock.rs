//! The sandbox clock, per merchant: see it, move it forward. While the processor is the
//! simulator, every decision about the merchant's orders — expiry, settlement, retries of its
//! webhooks, the age of its idempotency keys — follows this clock, on every node (it is kept
//! in the database). Signature timestamps (Pipwave's window, Optty tokens, webhooks) stay on
//! real time.

use std::time::{Duration, UNIX_EPOCH};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{Problem, authenticate, invalid};
use crate::AppState;
use crate::wire::{parse_json, read_body, rfc3339};

/// The furthest one advance may go.
const ADVANCE_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// How long an advance waits for what became due to be processed.
const SETTLE_WAIT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdvanceRequest {
    seconds: Option<u64>,
    to: Option<String>,
}

#[derive(Serialize)]
struct ClockBody {
    object: &'static str,
    now: String,
    /// How far this merchant's clock is ahead of the server's.
    advanced_by_seconds: i64,
}

async fn clock_body(app: &AppState, merchant_id: &str) -> Result<ClockBody, Problem> {
    let now = app.store.merchant_now(merchant_id).await?;
    Ok(ClockBody {
        object: "test_clock",
        now: rfc3339(now),
        advanced_by_seconds: (now.millis() - app.store.now().millis()).div_euclid(1000),
    })
}

pub async fn get_clock(
    State(app): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    Ok(Json(clock_body(&app, &merchant_id).await?).into_response())
}

pub async fn advance_clock(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let merchant_id = authenticate(&app, &headers).await?;
    let bytes = read_body(body).await?;
    let request: AdvanceRequest = parse_json(&bytes)?;
    let now = app.store.merchant_now(&merchant_id).await?;
    let by = match (request.seconds, request.to) {
        (Some(seconds), None) => Duration::from_secs(seconds),
        (None, Some(to)) => {
            let target = humantime::parse_rfc3339_weak(&to)
                .map_err(|_| invalid("to", "must be an RFC 3339 time"))?;
            let target_ms = target
                .duration_since(UNIX_EPOCH)
                .map_err(|_| invalid("to", "must be after 1970"))?
                .as_millis();
            let now_ms = u128::try_from(now.millis()).unwrap_or(0);
            if target_ms < now_ms {
                return Err(invalid(
                    "to",
                    "must not be before the clock: it only moves forward",
                ));
            }
            Duration::from_millis(u64::try_from(target_ms - now_ms).unwrap_or(u64::MAX))
        }
        _ => return Err(invalid("seconds", "or `to`, one of them, is required")),
    };
    advance(&app, &merchant_id, by).await?;
    Ok(Json(clock_body(&app, &merchant_id).await?).into_response())
}

/// Moves the merchant's clock forward by `by` (at most [`ADVANCE_MAX`]) and writes down what
/// became due, waiting a little for the deliveries due by then.
pub(crate) async fn advance(
    app: &AppState,
    merchant_id: &str,
    by: Duration,
) -> Result<(), Problem> {
    if by.is_zero() || by > ADVANCE_MAX {
        return Err(invalid(
            "seconds",
            "must move the clock forward, by at most 10 years",
        ));
    }
    let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
    app.store
        .advance_merchant_clock(merchant_id, millis)
        .await?;
    // Everything that became due: expiries and settlements (with their events and planned
    // deliveries), idempotency keys past their time, then the deliveries due by now.
    while app.store.sweep().await? > 0 {}
    let ttl_ms = i64::try_from(app.config.idempotency_ttl.as_millis()).unwrap_or(i64::MAX);
    app.store
        .prune_idempotency(app.store.now().millis().saturating_sub(ttl_ms))
        .await?;
    let waited = std::time::Instant::now();
    while app.store.due_deliveries(merchant_id).await? > 0 && waited.elapsed() < SETTLE_WAIT {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
