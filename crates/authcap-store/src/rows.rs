//! What both backends share: plain rows as the database holds them, and their conversion into
//! domain types.

use authcap_core::ledger::LedgerTotals;
use authcap_core::order::{AuthorizationFailure, Closure};
use authcap_core::{
    Amount, Authorization, Capture, CaptureMode, CaptureSupport, Currency, Event, EventKind, Order,
    Refund, Shipping, Timestamp,
};

use crate::{Discrepancy, StoredEvent};

/// Data in the database that the domain cannot accept: a bug or tampering, never client input.
#[derive(Debug)]
pub struct CorruptData(pub String);

impl std::fmt::Display for CorruptData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "corrupt or unexpected data: {}", self.0)
    }
}

impl std::error::Error for CorruptData {}

fn amount(value: i64, what: &str) -> Result<Amount, CorruptData> {
    Amount::new(value).map_err(|_| CorruptData(format!("{what} {value}")))
}

/// The columns of `orders`, in the order every backend selects them.
pub const ORDER_COLUMNS: &str = "number, id, merchant_id, reference, currency, amount, surcharge,
    capture_mode, card_brand, card_last4, processor_reference, capture_partial, capture_multiple,
    failure, captured_amount, released_amount, refunded_amount, closure, capture_count,
    expires_at, created_at, updated_at, metadata";

pub const CAPTURE_COLUMNS: &str = "id, order_id, amount, reference, is_final, invoice_id,
    description, reason, has_shipping, carrier, shipping_method, tracking_code, metadata,
    created_at, settles_at, settled_at";

pub const REFUND_COLUMNS: &str = "id, order_id, amount, reference, reason, metadata, created_at";

pub struct OrderRow {
    pub number: i64,
    pub id: String,
    pub merchant_id: String,
    pub reference: String,
    pub currency: String,
    pub amount: i64,
    pub surcharge: i64,
    pub capture_mode: String,
    pub card_brand: String,
    pub card_last4: String,
    pub processor_reference: Option<String>,
    pub capture_partial: bool,
    pub capture_multiple: bool,
    pub failure: Option<String>,
    pub captured_amount: i64,
    pub released_amount: i64,
    pub refunded_amount: i64,
    pub closure: Option<String>,
    pub capture_count: i64,
    pub expires_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub metadata: String,
}

impl OrderRow {
    pub fn into_order(self) -> Result<(i64, Order), CorruptData> {
        let order = Order {
            currency: Currency::parse(&self.currency)
                .map_err(|_| CorruptData(format!("currency {}", self.currency)))?,
            amount: amount(self.amount, "amount")?,
            surcharge: amount(self.surcharge, "surcharge")?,
            capture_mode: CaptureMode::parse(&self.capture_mode)
                .ok_or_else(|| CorruptData(format!("capture mode {}", self.capture_mode)))?,
            authorization: self
                .processor_reference
                .map(|processor_reference| Authorization {
                    processor_reference,
                    capture_support: CaptureSupport {
                        partial: self.capture_partial,
                        multiple: self.capture_multiple,
                    },
                }),
            failure: self
                .failure
                .map(|code| {
                    AuthorizationFailure::parse(&code)
                        .ok_or_else(|| CorruptData(format!("failure {code}")))
                })
                .transpose()?,
            captured_amount: amount(self.captured_amount, "captured amount")?,
            released_amount: amount(self.released_amount, "released amount")?,
            refunded_amount: amount(self.refunded_amount, "refunded amount")?,
            closure: self
                .closure
                .map(|text| {
                    Closure::parse(&text).ok_or_else(|| CorruptData(format!("closure {text}")))
                })
                .transpose()?,
            capture_count: u32::try_from(self.capture_count)
                .map_err(|_| CorruptData("capture count".into()))?,
            expires_at: Timestamp(self.expires_at),
            created_at: Timestamp(self.created_at),
            updated_at: Timestamp(self.updated_at),
            id: self.id,
            merchant_id: self.merchant_id,
            reference: self.reference,
            card_brand: self.card_brand,
            card_last4: self.card_last4,
            metadata: self.metadata,
        };
        Ok((self.number, order))
    }
}

pub struct CaptureRow {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    pub reference: Option<String>,
    pub is_final: bool,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub has_shipping: bool,
    pub carrier: Option<String>,
    pub shipping_method: Option<String>,
    pub tracking_code: Option<String>,
    pub metadata: String,
    pub created_at: i64,
    pub settles_at: Option<i64>,
    pub settled_at: Option<i64>,
}

impl CaptureRow {
    pub fn into_capture(self) -> Result<Capture, CorruptData> {
        Ok(Capture {
            amount: amount(self.amount, "capture amount")?,
            shipping: self.has_shipping.then_some(Shipping {
                carrier: self.carrier,
                method: self.shipping_method,
                tracking_code: self.tracking_code,
            }),
            created_at: Timestamp(self.created_at),
            settles_at: self.settles_at.map(Timestamp),
            settled_at: self.settled_at.map(Timestamp),
            id: self.id,
            order_id: self.order_id,
            reference: self.reference,
            is_final: self.is_final,
            invoice_id: self.invoice_id,
            description: self.description,
            reason: self.reason,
            metadata: self.metadata,
        })
    }

    pub fn of(capture: &Capture) -> CaptureRow {
        let shipping = capture.shipping.clone().unwrap_or_default();
        CaptureRow {
            id: capture.id.clone(),
            order_id: capture.order_id.clone(),
            amount: capture.amount.minor_units(),
            reference: capture.reference.clone(),
            is_final: capture.is_final,
            invoice_id: capture.invoice_id.clone(),
            description: capture.description.clone(),
            reason: capture.reason.clone(),
            has_shipping: capture.shipping.is_some(),
            carrier: shipping.carrier,
            shipping_method: shipping.method,
            tracking_code: shipping.tracking_code,
            metadata: capture.metadata.clone(),
            created_at: capture.created_at.millis(),
            settles_at: capture.settles_at.map(Timestamp::millis),
            settled_at: capture.settled_at.map(Timestamp::millis),
        }
    }
}

pub struct RefundRow {
    pub id: String,
    pub order_id: String,
    pub amount: i64,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub metadata: String,
    pub created_at: i64,
}

impl RefundRow {
    pub fn into_refund(self) -> Result<Refund, CorruptData> {
        Ok(Refund {
            amount: amount(self.amount, "refund amount")?,
            created_at: Timestamp(self.created_at),
            id: self.id,
            order_id: self.order_id,
            reference: self.reference,
            reason: self.reason,
            metadata: self.metadata,
        })
    }
}

pub const EVENT_COLUMNS: &str =
    "seq, id, merchant_id, order_id, type, amount, currency, subject_id, created_at";

pub struct EventRow {
    pub seq: i64,
    pub id: String,
    pub merchant_id: String,
    pub order_id: String,
    pub kind: String,
    pub amount: i64,
    pub currency: String,
    pub subject_id: Option<String>,
    pub created_at: i64,
}

impl EventRow {
    pub fn into_event(self) -> Result<StoredEvent, CorruptData> {
        Ok(StoredEvent {
            seq: self.seq,
            id: self.id,
            merchant_id: self.merchant_id,
            currency: Currency::parse(&self.currency)
                .map_err(|_| CorruptData(format!("currency {}", self.currency)))?,
            event: Event {
                kind: EventKind::parse(&self.kind)
                    .ok_or_else(|| CorruptData(format!("event type {}", self.kind)))?,
                order_id: self.order_id,
                amount: amount(self.amount, "event amount")?,
                subject_id: self.subject_id,
                at: Timestamp(self.created_at),
            },
        })
    }
}

/// Every order whose totals disagree with its ledger sums, and every ledger without an order.
pub fn discrepancies_against(
    orders: Vec<Order>,
    mut totals: std::collections::HashMap<String, LedgerTotals>,
) -> Vec<Discrepancy> {
    let mut found = Vec::new();
    for order in orders {
        let ledger = totals.remove(&order.id).unwrap_or_default();
        let problems = order.discrepancies(ledger);
        if !problems.is_empty() {
            found.push(Discrepancy {
                order_id: order.id,
                problems,
            });
        }
    }
    for (order_id, _) in totals {
        found.push(Discrepancy {
            order_id,
            problems: vec!["ledger entries for an order that does not exist".into()],
        });
    }
    found
}
