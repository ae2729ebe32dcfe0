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

/// A database row as both backends can read it: the shared row types below read their columns
/// through it, in the order of their column lists, so no backend keeps column indices.
pub trait RowSource {
    fn text(&self, index: usize) -> Result<String, CorruptData>;
    fn optional_text(&self, index: usize) -> Result<Option<String>, CorruptData>;
    fn integer(&self, index: usize) -> Result<i64, CorruptData>;
    fn optional_integer(&self, index: usize) -> Result<Option<i64>, CorruptData>;
    fn flag(&self, index: usize) -> Result<bool, CorruptData>;
    fn optional_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, CorruptData>;
}

/// Reads a row's columns one after another.
struct Columns<'a, R: RowSource> {
    row: &'a R,
    next: usize,
}

impl<'a, R: RowSource> Columns<'a, R> {
    fn of(row: &'a R) -> Columns<'a, R> {
        Columns { row, next: 0 }
    }

    fn advance(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    fn text(&mut self) -> Result<String, CorruptData> {
        let index = self.advance();
        self.row.text(index)
    }

    fn optional_text(&mut self) -> Result<Option<String>, CorruptData> {
        let index = self.advance();
        self.row.optional_text(index)
    }

    fn integer(&mut self) -> Result<i64, CorruptData> {
        let index = self.advance();
        self.row.integer(index)
    }

    fn optional_integer(&mut self) -> Result<Option<i64>, CorruptData> {
        let index = self.advance();
        self.row.optional_integer(index)
    }

    fn flag(&mut self) -> Result<bool, CorruptData> {
        let index = self.advance();
        self.row.flag(index)
    }

    fn optional_bytes(&mut self) -> Result<Option<Vec<u8>>, CorruptData> {
        let index = self.advance();
        self.row.optional_bytes(index)
    }

    /// Starts reading at column `index`.
    fn from(row: &'a R, index: usize) -> Columns<'a, R> {
        Columns { row, next: index }
    }
}

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
    /// Reads the columns of [`ORDER_COLUMNS`], in that order.
    pub fn read(row: &impl RowSource) -> Result<OrderRow, CorruptData> {
        let mut c = Columns::of(row);
        Ok(OrderRow {
            number: c.integer()?,
            id: c.text()?,
            merchant_id: c.text()?,
            reference: c.text()?,
            currency: c.text()?,
            amount: c.integer()?,
            surcharge: c.integer()?,
            capture_mode: c.text()?,
            card_brand: c.text()?,
            card_last4: c.text()?,
            processor_reference: c.optional_text()?,
            capture_partial: c.flag()?,
            capture_multiple: c.flag()?,
            failure: c.optional_text()?,
            captured_amount: c.integer()?,
            released_amount: c.integer()?,
            refunded_amount: c.integer()?,
            closure: c.optional_text()?,
            capture_count: c.integer()?,
            expires_at: c.integer()?,
            created_at: c.integer()?,
            updated_at: c.integer()?,
            metadata: c.text()?,
        })
    }

    /// An order row read through [`RowSource`], as the domain's order and its number.
    pub fn order_of(row: &impl RowSource) -> Result<(i64, Order), CorruptData> {
        OrderRow::read(row)?.into_order()
    }

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
    /// Reads the columns of [`CAPTURE_COLUMNS`], in that order, as the domain's capture.
    pub fn capture_of(row: &impl RowSource) -> Result<Capture, CorruptData> {
        let mut c = Columns::of(row);
        CaptureRow {
            id: c.text()?,
            order_id: c.text()?,
            amount: c.integer()?,
            reference: c.optional_text()?,
            is_final: c.flag()?,
            invoice_id: c.optional_text()?,
            description: c.optional_text()?,
            reason: c.optional_text()?,
            has_shipping: c.flag()?,
            carrier: c.optional_text()?,
            shipping_method: c.optional_text()?,
            tracking_code: c.optional_text()?,
            metadata: c.text()?,
            created_at: c.integer()?,
            settles_at: c.optional_integer()?,
            settled_at: c.optional_integer()?,
        }
        .into_capture()
    }

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
    /// Reads the columns of [`REFUND_COLUMNS`], in that order, as the domain's refund.
    pub fn refund_of(row: &impl RowSource) -> Result<Refund, CorruptData> {
        let mut c = Columns::of(row);
        RefundRow {
            id: c.text()?,
            order_id: c.text()?,
            amount: c.integer()?,
            reference: c.optional_text()?,
            reason: c.optional_text()?,
            metadata: c.text()?,
            created_at: c.integer()?,
        }
        .into_refund()
    }

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
    "seq, id, merchant_id, order_id, type, amount, currency, subject_id, created_at, payload";

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
    pub payload: Option<Vec<u8>>,
}

impl EventRow {
    /// Reads the columns of [`EVENT_COLUMNS`], in that order, as a stored event.
    pub fn event_of(row: &impl RowSource) -> Result<StoredEvent, CorruptData> {
        EventRow::event_at(row, 0)
    }

    /// Reads the columns of [`EVENT_COLUMNS`] from column `index` on.
    pub fn event_at(row: &impl RowSource, index: usize) -> Result<StoredEvent, CorruptData> {
        let mut c = Columns::from(row, index);
        EventRow {
            seq: c.integer()?,
            id: c.text()?,
            merchant_id: c.text()?,
            order_id: c.text()?,
            kind: c.text()?,
            amount: c.integer()?,
            currency: c.text()?,
            subject_id: c.optional_text()?,
            created_at: c.integer()?,
            payload: c.optional_bytes()?,
        }
        .into_event()
    }

    pub fn into_event(self) -> Result<StoredEvent, CorruptData> {
        Ok(StoredEvent {
            seq: self.seq,
            id: self.id,
            merchant_id: self.merchant_id,
            payload: self.payload,
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

/// Reads an endpoint (id, merchant, url, format, events, enabled, created) from column
/// `index` on.
pub fn endpoint_at(
    row: &impl RowSource,
    index: usize,
) -> Result<crate::WebhookEndpoint, CorruptData> {
    let mut c = Columns::from(row, index);
    Ok(crate::WebhookEndpoint {
        id: c.text()?,
        merchant_id: c.text()?,
        url: c.text()?,
        format: c.text()?,
        enabled_events: crate::outbox::split_events(&c.text()?),
        enabled: c.flag()?,
        created_at: Timestamp(c.integer()?),
    })
}

/// Reads a delivery attempt: delivery id, event id, time, status, error, duration.
pub fn attempt_of(row: &impl RowSource) -> Result<crate::DeliveryAttempt, CorruptData> {
    let mut c = Columns::of(row);
    Ok(crate::DeliveryAttempt {
        delivery_id: c.text()?,
        event_id: c.text()?,
        attempted_at: Timestamp(c.integer()?),
        status_code: c
            .optional_integer()?
            .map(|code| u16::try_from(code).map_err(|_| CorruptData(format!("status {code}"))))
            .transpose()?,
        error: c.optional_text()?,
        duration_ms: c.integer()?,
    })
}

/// Reads a claimed delivery (`outbox::CLAIMED`).
pub fn due_delivery_of(row: &impl RowSource) -> Result<crate::DueDelivery, CorruptData> {
    let mut c = Columns::of(row);
    let id = c.text()?;
    let attempts = c.integer()?;
    Ok(crate::DueDelivery {
        id,
        attempts: u32::try_from(attempts).map_err(|_| CorruptData("attempts".into()))?,
        endpoint: endpoint_at(row, 2)?,
        event: EventRow::event_at(row, 9)?,
    })
}
