//! MultiSafepay wire types: requests as the official SDKs send them, responses as
//! `{"success":true,"data":{…}}`, and the dialect's metadata kept with orders, captures and
//! refunds under the key `multisafepay`.
//!
//! Amounts and ids that MultiSafepay documents as "integer / string" arrive as raw JSON literals
//! (`Box<RawValue>`) so that amounts never pass through a float and ids keep their digits.

use authcap_core::{Capture, Order, Refund, Timestamp};
use authcap_store::OrderRecord;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::wire::rfc3339;

/// `POST /orders`. Fields Authcap does not use (`shopping_cart`, `checkout_options`,
/// `plugin`, …) are accepted and ignored, as MultiSafepay accepts a different set per gateway.
#[derive(Deserialize, Default)]
pub struct CreateOrderRequest {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub order_id: Option<Box<RawValue>>,
    pub gateway: Option<String>,
    pub currency: Option<String>,
    pub amount: Option<Box<RawValue>>,
    pub description: Option<String>,
    /// `"manual"` for a deferred capture; absent captures at once.
    pub capture: Option<String>,
    pub payment_options: Option<Map<String, Value>>,
    pub customer: Option<Map<String, Value>>,
    pub gateway_info: Option<Map<String, Value>>,
    pub var1: Option<String>,
    pub var2: Option<String>,
    pub var3: Option<String>,
    /// MultiSafepay's HTML items list (a string).
    pub items: Option<String>,
}

/// `POST /orders/{order_id}/capture`: the union of both capture documents.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CaptureOrderRequest {
    pub amount: Option<Box<RawValue>>,
    pub new_order_id: Option<Box<RawValue>>,
    pub new_order_status: Option<String>,
    pub invoice_id: Option<Box<RawValue>>,
    pub tracktrace_code: Option<String>,
    pub carrier: Option<String>,
    pub reason: Option<String>,
    pub description: Option<String>,
    pub memo: Option<String>,
    pub checkout_data: Option<Map<String, Value>>,
}

/// `PATCH /capture/{order_id}`: cancel the reservation.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CancelReservationRequest {
    pub status: Option<String>,
    pub reason: Option<String>,
    pub description: Option<String>,
}

/// `PATCH /orders/{order_id}`. Unknown fields are ignored (the Node wrapper adds `plugin`).
#[derive(Deserialize, Default)]
pub struct UpdateOrderRequest {
    pub status: Option<String>,
    pub reason: Option<String>,
    pub tracktrace_code: Option<String>,
    pub tracktrace_url: Option<String>,
    pub carrier: Option<String>,
    pub ship_date: Option<String>,
    pub invoice_id: Option<Box<RawValue>>,
    pub invoice_url: Option<String>,
    pub po_number: Option<String>,
    pub exclude_order: Option<bool>,
    pub extend_expiration: Option<bool>,
}

/// `POST /orders/{order_id}/refunds`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RefundOrderRequest {
    pub currency: Option<String>,
    pub amount: Option<Box<RawValue>>,
    pub description: Option<String>,
    pub checkout_data: Option<Map<String, Value>>,
}

/// What the dialect keeps with an order, under `{"multisafepay": …}`.
/// An id documented as "integer / string", answered as it was sent: a JSON integer (its digits
/// exactly, whatever their length) when it came as one, else a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireId {
    pub text: String,
    pub is_number: bool,
}

impl WireId {
    pub fn string(text: String) -> WireId {
        WireId {
            text,
            is_number: false,
        }
    }

    pub fn of(text: String, is_number: bool) -> WireId {
        let digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        WireId {
            is_number: is_number && digits,
            text,
        }
    }
}

impl Serialize for WireId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match RawValue::from_string(self.text.clone()) {
            Ok(number) if self.is_number => number.serialize(serializer),
            _ => serializer.serialize_str(&self.text),
        }
    }
}

#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct OrderMeta {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// `order_id` came as a JSON integer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub order_id_is_number: bool,
    pub gateway: Option<String>,
    pub description: Option<String>,
    pub var1: Option<String>,
    pub var2: Option<String>,
    pub var3: Option<String>,
    pub items: Option<String>,
    pub customer: Option<Map<String, Value>>,
    pub card_holder_name: Option<String>,
    pub card_expiry_date: Option<String>,
    pub payment_url: Option<String>,
    pub cancel_url: Option<String>,
}

/// What the dialect keeps with a capture.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CaptureMeta {
    pub new_order_status: Option<String>,
    /// `new_order_id` came as a JSON integer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_order_id_is_number: bool,
    /// `invoice_id` came as a JSON integer.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invoice_id_is_number: bool,
    pub memo: Option<String>,
    pub checkout_data: Option<Map<String, Value>>,
}

/// What the dialect keeps with a refund.
#[derive(Serialize, Deserialize, Default)]
#[serde(default)]
pub struct RefundMeta {
    pub description: Option<String>,
    pub checkout_data: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    multisafepay: Option<T>,
}

/// Reads the dialect's part of stored metadata; absent or foreign metadata gives defaults.
pub fn read_meta<T: for<'de> Deserialize<'de> + Default>(metadata: &str) -> T {
    serde_json::from_str::<Envelope<T>>(metadata)
        .ok()
        .and_then(|e| e.multisafepay)
        .unwrap_or_default()
}

pub fn write_meta<T: Serialize>(meta: &T) -> String {
    serde_json::to_string(&serde_json::json!({ "multisafepay": meta })).unwrap_or_default()
}

/// `{"success":true,"data":…}`.
#[derive(Serialize)]
pub struct Success<T> {
    pub success: bool,
    pub data: T,
}

impl<T> Success<T> {
    pub fn of(data: T) -> Success<T> {
        Success {
            success: true,
            data,
        }
    }
}

/// The `data` of a capture, a cancelled reservation or a refund.
#[derive(Serialize)]
pub struct TransactionData {
    pub transaction_id: i64,
    pub order_id: WireId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refund_id: Option<i64>,
}

#[derive(Serialize)]
pub struct PaymentDetails {
    #[serde(rename = "type")]
    pub kind: String,
    pub last4: String,
    pub card_expiry_date: Option<String>,
    pub account_holder_name: Option<String>,
    pub recurring_id: Option<String>,
    pub recurring_flow: Option<String>,
    pub recurring_model: Option<String>,
    pub response_code: Option<String>,
}

/// An order (or a capture's `new_order_id`) as `GET /orders/{order_id}` shows it, after
/// MultiSafepay's `getOrder` response.
#[derive(Serialize)]
pub struct OrderView {
    pub transaction_id: i64,
    pub order_id: WireId,
    /// The merchant's invoice id, set by a capture's `invoice_id`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_id: Option<WireId>,
    pub created: String,
    pub modified: String,
    pub currency: &'static str,
    pub amount: i64,
    pub amount_refunded: i64,
    pub description: Option<String>,
    pub items: Option<String>,
    pub status: &'static str,
    pub financial_status: &'static str,
    pub reason: Option<String>,
    pub reason_code: Option<String>,
    pub fastcheckout: &'static str,
    /// `"manual"` for a deferred capture, else null.
    pub capture: Option<&'static str>,
    pub customer: Option<Map<String, Value>>,
    pub payment_details: PaymentDetails,
    pub var1: Option<String>,
    pub var2: Option<String>,
    pub var3: Option<String>,
    pub related_transactions: Option<Value>,
    pub costs: Vec<Value>,
    pub payment_url: Option<String>,
    pub cancel_url: Option<String>,
}

/// A JSON-safe (below 2^53) transaction number derived from an Authcap id, for captures and
/// refunds, which have no sequence number of their own. Orders use their sequence number,
/// which stays far below 10^15, so the two never meet.
pub fn derived_transaction_id(id: &str) -> i64 {
    let digest = Sha256::digest(id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let value = u64::from_be_bytes(bytes) % 8_000_000_000_000_000;
    (1_000_000_000_000_000 + value) as i64
}

/// `2025-05-14T08:48:10`, as MultiSafepay shows times.
pub fn msp_time(at: Timestamp) -> String {
    let text = rfc3339(at);
    text.get(..19).unwrap_or(&text).to_owned()
}

/// MultiSafepay's (status, financial_status) for an order, after its manual-capture table.
pub fn statuses(order: &Order, now: Timestamp) -> (&'static str, &'static str) {
    use authcap_core::OrderStatus::*;
    let status = order.status(now);
    if !order.refunded_amount.is_zero() {
        return if status == Refunded {
            ("refunded", "refunded")
        } else {
            ("partial_refunded", "partial_refunded")
        };
    }
    match status {
        Authorized => ("completed", "initialized"),
        PartiallyCaptured | Captured | Refunded => ("completed", "completed"),
        Voided | Expired => ("void", "void"),
        Declined | Failed => ("declined", "declined"),
    }
}

fn payment_details(order: &Order, meta: &OrderMeta) -> PaymentDetails {
    let kind = meta
        .gateway
        .clone()
        .unwrap_or_else(|| order.card_brand.to_uppercase());
    PaymentDetails {
        kind,
        last4: order.card_last4.clone(),
        card_expiry_date: meta.card_expiry_date.clone(),
        account_holder_name: meta.card_holder_name.clone(),
        recurring_id: None,
        recurring_flow: None,
        recurring_model: None,
        response_code: None,
    }
}

impl OrderView {
    pub fn of(record: &OrderRecord, now: Timestamp) -> OrderView {
        let order = &record.order;
        let meta: OrderMeta = read_meta(&order.metadata);
        let (status, financial_status) = statuses(order, now);
        OrderView {
            transaction_id: record.number,
            order_id: order_wire_id(order),
            invoice_id: record.captures.iter().rev().find_map(invoice_wire_id),
            created: msp_time(order.created_at),
            modified: msp_time(order.updated_at),
            currency: order.currency.code(),
            amount: order.amount.minor_units(),
            amount_refunded: order.refunded_amount.minor_units(),
            description: meta.description.clone(),
            items: meta.items.clone(),
            status,
            financial_status,
            reason: order.failure.map(|f| f.code().to_owned()),
            reason_code: None,
            fastcheckout: "NO",
            capture: match order.capture_mode {
                authcap_core::CaptureMode::Manual => Some("manual"),
                authcap_core::CaptureMode::Automatic => None,
            },
            payment_details: payment_details(order, &meta),
            customer: meta.customer,
            var1: meta.var1,
            var2: meta.var2,
            var3: meta.var3,
            related_transactions: None,
            costs: Vec::new(),
            payment_url: meta.payment_url,
            cancel_url: meta.cancel_url,
        }
    }

    /// A capture read back by its `new_order_id`: a completed transaction of the captured
    /// amount, with the parent order's customer and payment details.
    pub fn of_capture(record: &OrderRecord, capture: &Capture) -> OrderView {
        let order = &record.order;
        let meta: OrderMeta = read_meta(&order.metadata);
        OrderView {
            transaction_id: derived_transaction_id(&capture.id),
            order_id: capture_wire_id(capture).unwrap_or_else(|| WireId::string(String::new())),
            invoice_id: invoice_wire_id(capture),
            created: msp_time(capture.created_at),
            modified: msp_time(capture.created_at),
            currency: order.currency.code(),
            amount: capture.amount.minor_units(),
            amount_refunded: 0,
            description: capture.description.clone().or(meta.description.clone()),
            items: None,
            status: "completed",
            financial_status: "completed",
            reason: capture.reason.clone(),
            reason_code: None,
            fastcheckout: "NO",
            capture: None,
            payment_details: payment_details(order, &meta),
            customer: meta.customer,
            var1: meta.var1,
            var2: meta.var2,
            var3: meta.var3,
            related_transactions: None,
            costs: Vec::new(),
            payment_url: None,
            cancel_url: None,
        }
    }
}

impl TransactionData {
    pub fn of_refund(order: &Order, refund: &Refund) -> TransactionData {
        let number = derived_transaction_id(&refund.id);
        TransactionData {
            transaction_id: number,
            order_id: order_wire_id(order),
            refund_id: Some(number),
        }
    }
}

/// The order's `order_id` as it was sent.
pub fn order_wire_id(order: &Order) -> WireId {
    let meta: OrderMeta = read_meta(&order.metadata);
    WireId::of(order.reference.clone(), meta.order_id_is_number)
}

/// A capture's `new_order_id` as it was sent, if it had one.
pub fn capture_wire_id(capture: &Capture) -> Option<WireId> {
    let meta: CaptureMeta = read_meta(&capture.metadata);
    let reference = capture.reference.clone()?;
    Some(WireId::of(reference, meta.new_order_id_is_number))
}

/// A capture's `invoice_id` as it was sent, if it had one.
pub fn invoice_wire_id(capture: &Capture) -> Option<WireId> {
    let meta: CaptureMeta = read_meta(&capture.metadata);
    let invoice_id = capture.invoice_id.clone()?;
    Some(WireId::of(invoice_id, meta.invoice_id_is_number))
}
