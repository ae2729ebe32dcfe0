//! The write path every dialect shares.
//!
//! A dialect authenticates in its own way, reads the body with [`crate::wire::read_body`],
//! takes the client's idempotency key with [`idempotency_key`] (or makes a claim of its own
//! resource id), parses the body into a core request with a renderer of its own shape, and
//! hands both to [`write`]. The answer — or the replay of the first one — comes back as the
//! HTTP response; a store failure comes back as [`StoreError`] for the dialect's error map.

use authcap_store::{ClaimKind, IdempotencyClaim, Request, StoreError, StoredResponse, Write};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde::Serialize;

use crate::AppState;
use crate::metrics::WriteOutcome;
use crate::wire::{fingerprint, stored_response};

/// Executes one write and answers with the bytes it stored (`Idempotent-Replayed: true` on a
/// replay).
pub async fn write(
    app: &AppState,
    merchant_id: String,
    idempotency: Option<IdempotencyClaim>,
    request: Request,
) -> Result<Response, StoreError> {
    let operation = request.operation();
    let write = Write {
        merchant_id,
        idempotency,
        request,
    };
    let executed = app.store.execute(write).await;
    let outcome = match &executed {
        Ok(executed) if executed.replayed => WriteOutcome::Replayed,
        Ok(executed) if executed.response.status < 300 => WriteOutcome::Succeeded,
        Ok(_) => WriteOutcome::Refused,
        Err(_) => WriteOutcome::Failed,
    };
    app.metrics.write(operation, outcome);
    let executed = executed?;
    Ok(stored_response(executed.response, executed.replayed))
}

/// A JSON answer to keep, as `application/json`.
pub fn json(status: StatusCode, body: &impl Serialize) -> StoredResponse {
    json_as(status, "application/json", body)
}

/// A JSON answer to keep, with the content type the dialect's clients expect.
pub fn json_as(
    status: StatusCode,
    content_type: &'static str,
    body: &impl Serialize,
) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        content_type: content_type.into(),
        body: serde_json::to_vec(body).unwrap_or_default(),
    }
}

/// An idempotency key header that is empty, too long or not printable ASCII.
#[derive(Debug)]
pub struct InvalidKey;

/// The client's idempotency key in `header`, if it sent one: 1..=`chars_max` printable ASCII
/// characters (space to `~`).
pub fn idempotency_key(
    headers: &HeaderMap,
    header: &str,
    chars_max: usize,
) -> Result<Option<String>, InvalidKey> {
    let Some(value) = headers.get(header) else {
        return Ok(None);
    };
    let key = value.to_str().map_err(|_| InvalidKey)?;
    let printable = key.bytes().all(|b| (0x20..0x7f).contains(&b));
    if key.is_empty() || key.len() > chars_max || !printable {
        return Err(InvalidKey);
    }
    Ok(Some(key.to_owned()))
}

/// The claim of a key the client sent, for the request it sent (method, path and parsed body):
/// its first answer, success or refusal, is kept and replayed.
pub fn key_claim(
    scope: &str,
    key: String,
    method: &Method,
    path: &str,
    body: &[u8],
) -> IdempotencyClaim {
    claim(ClaimKind::Key, scope, key, method, path, body)
}

/// The claim of a resource id the client chose (an order or capture reference): taken only by
/// a request that succeeded.
pub fn resource_claim(
    scope: &str,
    id: &str,
    method: &Method,
    path: &str,
    body: &[u8],
) -> IdempotencyClaim {
    claim(
        ClaimKind::ResourceId,
        scope,
        id.to_owned(),
        method,
        path,
        body,
    )
}

fn claim(
    kind: ClaimKind,
    scope: &str,
    key: String,
    method: &Method,
    path: &str,
    body: &[u8],
) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: scope.to_owned(),
        key,
        fingerprint: fingerprint(method, path, body),
        kind,
    }
}
