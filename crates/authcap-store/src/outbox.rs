//! The outbox: webhook endpoints, and the deliveries planned from each event in the same
//! transaction as the event, carried out later by a delivery worker that claims them with a
//! lease. What both backends share: the types and the SQL, written with `$n` parameters whose
//! numbers follow their first appearance (`$1` first, then `$2`, …): SQLite numbers `$n`
//! parameters in the order they appear, so only then does binding by position agree with
//! PostgreSQL.

use authcap_core::Timestamp;

use crate::StoredEvent;

/// Where a merchant wants its events, and in which format. The signing secret is derived
/// from the server secret and the endpoint's id, never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookEndpoint {
    pub id: String,
    pub merchant_id: String,
    pub url: String,
    /// `standard` (Standard Webhooks) or a dialect's own notification format.
    pub format: String,
    /// Event types, or `*` for every one.
    pub enabled_events: Vec<String>,
    /// Cleared when the receiver answers 410 Gone.
    pub enabled: bool,
    pub created_at: Timestamp,
}

impl WebhookEndpoint {
    pub fn wants(&self, kind: &str) -> bool {
        self.enabled_events.iter().any(|e| e == "*" || e == kind)
    }
}

/// One attempt at delivering an event to an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub delivery_id: String,
    pub event_id: String,
    pub attempted_at: Timestamp,
    /// The receiver's HTTP status, when it answered.
    pub status_code: Option<u16>,
    /// Why there was no acceptable answer (timeout, refused, …), when there was none.
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// A delivery the worker has claimed: what to send, and where.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: String,
    pub endpoint: WebhookEndpoint,
    /// Attempts made before this one.
    pub attempts: u32,
    pub event: StoredEvent,
}

/// What came of an attempt, and so what becomes of its delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Not accepted; try again then.
    RetryAt(Timestamp),
    /// Not accepted, and the schedule is spent.
    Failed,
    /// The receiver answered 410 Gone: the endpoint is disabled, its deliveries stop.
    EndpointGone,
}

pub(crate) fn join_events(events: &[String]) -> String {
    events.join(",")
}

pub(crate) fn split_events(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) const INSERT_ENDPOINT: &str = "INSERT INTO webhook_endpoints
    (id, merchant_id, url, format, enabled_events, enabled, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// An order's own endpoint: only its events reach it, and it is never listed.
pub(crate) const INSERT_ORDER_ENDPOINT: &str = "INSERT INTO webhook_endpoints
    (id, merchant_id, url, format, enabled_events, enabled, created_at, order_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const LIVE_ENDPOINTS: &str = "SELECT id, merchant_id, url, format, enabled_events,
    enabled, created_at FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL
    AND order_id IS NULL ORDER BY created_at DESC, id";

pub(crate) const ONE_ENDPOINT: &str = "SELECT id, merchant_id, url, format, enabled_events,
    enabled, created_at FROM webhook_endpoints WHERE merchant_id = $1 AND id = $2
    AND deleted_at IS NULL AND order_id IS NULL";

pub(crate) const DELETE_ENDPOINT: &str = "UPDATE webhook_endpoints SET deleted_at = $1,
    enabled = false WHERE merchant_id = $2 AND id = $3 AND deleted_at IS NULL";

pub(crate) const STOP_DELIVERIES: &str =
    "UPDATE deliveries SET state = 'failed' WHERE endpoint_id = $1 AND state = 'pending'";

/// The endpoints an order's events are planned for: the merchant's, and the order's own.
pub(crate) const RECEIVING_ENDPOINTS: &str = "SELECT id, enabled_events FROM webhook_endpoints
    WHERE merchant_id = $1 AND order_id IS NULL AND enabled AND deleted_at IS NULL
    UNION ALL SELECT id, enabled_events FROM webhook_endpoints
    WHERE order_id = $2 AND merchant_id = $1 AND enabled AND deleted_at IS NULL";

pub(crate) const PENDING_DELIVERIES: &str =
    "SELECT count(*) FROM deliveries WHERE state = 'pending'";

pub(crate) const INSERT_DELIVERY: &str = "INSERT INTO deliveries
    (id, merchant_id, endpoint_id, event_id, state, attempts, next_attempt_at, created_at)
    VALUES ($1, $2, $3, $4, 'pending', 0, $5, $5)";

pub(crate) const ATTEMPTS_OF_ENDPOINT: &str = "SELECT delivery_attempts.delivery_id,
    deliveries.event_id, delivery_attempts.attempted_at, delivery_attempts.status_code,
    delivery_attempts.error, delivery_attempts.duration_ms
    FROM delivery_attempts JOIN deliveries ON deliveries.id = delivery_attempts.delivery_id
    WHERE deliveries.merchant_id = $1 AND deliveries.endpoint_id = $2
    ORDER BY delivery_attempts.seq DESC LIMIT $3";

pub(crate) const INSERT_ATTEMPT: &str = "INSERT INTO delivery_attempts
    (delivery_id, attempted_at, status_code, error, duration_ms) VALUES ($1, $2, $3, $4, $5)";

pub(crate) const DELIVERED: &str = "UPDATE deliveries SET state = 'succeeded',
    attempts = attempts + 1, lease_until = NULL WHERE id = $1";

pub(crate) const RETRY: &str = "UPDATE deliveries SET attempts = attempts + 1,
    next_attempt_at = $1, lease_until = NULL WHERE id = $2";

pub(crate) const FAILED: &str = "UPDATE deliveries SET state = 'failed', attempts = attempts + 1,
    lease_until = NULL WHERE id = $1";

pub(crate) const GONE: &str = "UPDATE webhook_endpoints SET enabled = false
    WHERE id = (SELECT endpoint_id FROM deliveries WHERE id = $1)";

/// After a 410: the rest of that endpoint's pending deliveries stop.
pub(crate) const STOP_ENDPOINT_OF_DELIVERY: &str = "UPDATE deliveries SET state = 'failed'
    WHERE state = 'pending' AND endpoint_id = (SELECT endpoint_id FROM deliveries WHERE id = $1)";

/// The selected deliveries' details, once claimed.
pub(crate) const CLAIMED: &str = "SELECT deliveries.id, deliveries.attempts,
    webhook_endpoints.id, webhook_endpoints.merchant_id, webhook_endpoints.url,
    webhook_endpoints.format, webhook_endpoints.enabled_events, webhook_endpoints.enabled,
    webhook_endpoints.created_at,
    events.seq, events.id, events.merchant_id, events.order_id, events.type, events.amount,
    events.currency, events.subject_id, events.created_at, events.payload
    FROM deliveries JOIN webhook_endpoints ON webhook_endpoints.id = deliveries.endpoint_id
    JOIN events ON events.id = deliveries.event_id WHERE deliveries.id = $1";

#[cfg(test)]
mod tests {
    use super::*;

    /// `$n` parameters must first appear as `$1`, `$2`, …: SQLite numbers them by appearance.
    fn numbered_in_order(sql: &str) -> bool {
        let mut highest = 0;
        let bytes = sql.as_bytes();
        for (at, byte) in bytes.iter().enumerate() {
            if *byte != b'$' {
                continue;
            }
            let digits: String = sql[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let Ok(n) = digits.parse::<u32>() else {
                continue;
            };
            if n > highest + 1 {
                return false;
            }
            highest = highest.max(n);
        }
        true
    }

    #[test]
    fn parameters_are_numbered_by_first_appearance() {
        for sql in [
            INSERT_ENDPOINT,
            INSERT_ORDER_ENDPOINT,
            LIVE_ENDPOINTS,
            ONE_ENDPOINT,
            DELETE_ENDPOINT,
            STOP_DELIVERIES,
            RECEIVING_ENDPOINTS,
            INSERT_DELIVERY,
            ATTEMPTS_OF_ENDPOINT,
            INSERT_ATTEMPT,
            DELIVERED,
            RETRY,
            FAILED,
            GONE,
            STOP_ENDPOINT_OF_DELIVERY,
            CLAIMED,
        ] {
            assert!(numbered_in_order(sql), "{sql}");
        }
        assert!(!numbered_in_order("SET a = $2 WHERE b = $1"));
    }
}
