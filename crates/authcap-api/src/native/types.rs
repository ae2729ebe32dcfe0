//! The native API's wire types. Requests refuse unknown fields; amounts are integers in minor
//! units, read from the JSON literal itself so they never pass through a float.

use authcap_core::{Capture, Currency, Refund, Timestamp};
use authcap_store::OrderRecord;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;

use crate::wire::rfc3339;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    /// Your reference for the order, unique among your orders (1..50 characters).
    pub reference: String,
    /// Minor units: 1050 is 10.50 EUR.
    #[schema(value_type = i64, minimum = 1)]
    pub amount: Box<RawValue>,
    #[schema(value_type = Option<i64>, minimum = 0)]
    pub surcharge: Option<Box<RawValue>>,
    /// ISO 4217, upper case.
    pub currency: String,
    pub payment_method: PaymentMethodRequest,
    /// `manual` (default) or `automatic`.
    pub capture_mode: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodRequest {
    /// Always `card`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A test card number decides the simulator's outcome (see the README).
    pub number: String,
    /// MM/YY
    pub expiry: Option<String>,
    pub cvc: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureOrderRequest {
    /// Minor units; omitted = everything capturable.
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub amount: Option<Box<RawValue>>,
    /// Release whatever remains after this capture.
    pub r#final: Option<bool>,
    /// Unique among this order's captures.
    pub reference: Option<String>,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub shipping: Option<ShippingBody>,
}

#[derive(Deserialize, Serialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShippingBody {
    pub carrier: Option<String>,
    pub method: Option<String>,
    pub tracking_code: Option<String>,
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundOrderRequest {
    /// Minor units; omitted = everything captured and not yet refunded.
    #[schema(value_type = Option<i64>, minimum = 1)]
    pub amount: Option<Box<RawValue>>,
    pub reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EmptyRequest {}

#[derive(Serialize, ToSchema)]
pub struct OrderBody {
    pub id: String,
    pub object: &'static str,
    pub reference: String,
    /// authorized, partially_captured, captured, refunded, voided, expired, declined, failed
    pub status: &'static str,
    pub currency: &'static str,
    pub amount: i64,
    pub surcharge: i64,
    /// The authorized amount, without the surcharge; 0 when not authorized.
    pub authorized_amount: i64,
    pub captured_amount: i64,
    pub refunded_amount: i64,
    /// Released without capture (void, final capture, expiry).
    pub released_amount: i64,
    pub capturable_amount: i64,
    pub refundable_amount: i64,
    pub capture_mode: &'static str,
    pub payment_method: PaymentMethodBody,
    /// Why the authorization failed: card_declined, insufficient_funds, processor_error.
    pub failure_code: Option<&'static str>,
    pub expires_at: String,
    pub created_at: String,
    pub updated_at: String,
    pub captures: Vec<CaptureBody>,
    pub refunds: Vec<RefundBody>,
}

#[derive(Serialize, ToSchema)]
pub struct PaymentMethodBody {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub brand: String,
    pub last4: String,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureBody {
    pub id: String,
    pub object: &'static str,
    pub amount: i64,
    pub currency: &'static str,
    /// `succeeded`, or `pending` until the processor settles it.
    pub status: &'static str,
    pub reference: Option<String>,
    #[serde(rename = "final")]
    pub is_final: bool,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub shipping: Option<ShippingBody>,
    pub created_at: String,
    pub settles_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct RefundBody {
    pub id: String,
    pub object: &'static str,
    pub amount: i64,
    pub status: &'static str,
    pub reason: Option<String>,
    pub created_at: String,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureWithOrder {
    #[serde(flatten)]
    pub capture: CaptureBody,
    pub order: OrderBody,
}

#[derive(Serialize, ToSchema)]
pub struct RefundWithOrder {
    #[serde(flatten)]
    pub refund: RefundBody,
    pub order: OrderBody,
}

#[derive(Serialize, ToSchema)]
pub struct OrderList {
    pub object: &'static str,
    pub data: Vec<OrderBody>,
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct CaptureList {
    pub object: &'static str,
    pub data: Vec<CaptureBody>,
    pub has_more: bool,
}

/// RFC 9457 problem details, with a stable machine `code`.
#[derive(Serialize, ToSchema)]
pub struct ProblemBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    pub code: String,
    /// Present on 402: the order that was declined.
    pub order: Option<OrderBody>,
    /// The request this answers (also its `x-request-id` header): quote it to find its logs.
    pub request_id: String,
}

impl OrderBody {
    pub fn of(record: &OrderRecord, now: Timestamp) -> OrderBody {
        let order = &record.order;
        let currency = order.currency;
        OrderBody {
            id: order.id.clone(),
            object: "order",
            reference: order.reference.clone(),
            status: order.status(now).as_str(),
            currency: currency.code(),
            amount: order.amount.minor_units(),
            surcharge: order.surcharge.minor_units(),
            authorized_amount: order.authorized_amount().minor_units(),
            captured_amount: order.captured_amount.minor_units(),
            refunded_amount: order.refunded_amount.minor_units(),
            released_amount: order.released_amount.minor_units(),
            capturable_amount: order.capturable_amount(now).minor_units(),
            refundable_amount: order.refundable_amount().minor_units(),
            capture_mode: order.capture_mode.as_str(),
            payment_method: PaymentMethodBody {
                kind: "card",
                brand: order.card_brand.clone(),
                last4: order.card_last4.clone(),
            },
            failure_code: order.failure.map(|f| f.code()),
            expires_at: rfc3339(order.expires_at),
            created_at: rfc3339(order.created_at),
            updated_at: rfc3339(order.updated_at),
            captures: record
                .captures
                .iter()
                .map(|c| CaptureBody::of(c, currency, now))
                .collect(),
            refunds: record.refunds.iter().map(RefundBody::of).collect(),
        }
    }
}

impl CaptureBody {
    pub fn of(capture: &Capture, currency: Currency, now: Timestamp) -> CaptureBody {
        CaptureBody {
            id: capture.id.clone(),
            object: "capture",
            amount: capture.amount.minor_units(),
            currency: currency.code(),
            status: if capture.is_settled(now) {
                "succeeded"
            } else {
                "pending"
            },
            reference: capture.reference.clone(),
            is_final: capture.is_final,
            invoice_id: capture.invoice_id.clone(),
            description: capture.description.clone(),
            reason: capture.reason.clone(),
            shipping: capture.shipping.as_ref().map(|s| ShippingBody {
                carrier: s.carrier.clone(),
                method: s.method.clone(),
                tracking_code: s.tracking_code.clone(),
            }),
            created_at: rfc3339(capture.created_at),
            settles_at: capture.settles_at.map(rfc3339),
        }
    }
}

impl RefundBody {
    pub fn of(refund: &Refund) -> RefundBody {
        RefundBody {
            id: refund.id.clone(),
            object: "refund",
            amount: refund.amount.minor_units(),
            status: "succeeded",
            reason: refund.reason.clone(),
            created_at: rfc3339(refund.created_at),
        }
    }
}
