//! The Optty Merchant API's wire types. Amounts are JSON numbers in major units (`10.5` is
//! 10.50 AUD), read from the literal text and rendered from minor units, never via a float.
//!
//! The capture, void and refund bodies refuse unknown fields (the capture schema is the
//! contract); the create-order body tolerates the many optional fields of Optty's
//! `CreateOrderDto` that Authcap has no use for (addresses, redirect URLs, …).

use authcap_core::{Amount, Currency};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderRequest {
    pub order_reference: String,
    pub bnpl_provider: String,
    pub purchase_country: String,
    pub purchase_currency: String,
    pub locale: Option<String>,
    pub order_amount: Box<RawValue>,
    /// Fee borne by the customer, on top of `orderAmount`; captures may reach amount + surcharge.
    pub surcharge: Option<Box<RawValue>>,
    pub tax_amount: Option<Box<RawValue>>,
    pub shipping_amount: Option<Box<RawValue>>,
    pub discount_amount: Option<Box<RawValue>>,
    pub order_items: Option<Vec<OrderItem>>,
    pub customer: Option<Customer>,
    /// Authcap sandbox: a simulator test card number deciding the outcome.
    pub test_card: Option<String>,
    /// Where this order's `ORDER_ASYNC_CALLBACK` goes.
    pub dynamic_callback_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderItem {
    pub name: String,
    pub sku: Option<Value>,
    pub quantity: Option<Value>,
    pub unit_price: Option<Box<RawValue>>,
    pub total_amount: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Customer {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CaptureOrderDto {
    pub capture_reference: String,
    pub description: Option<String>,
    pub amount: Box<RawValue>,
    pub shipping_info: Option<ShippingInfo>,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShippingInfo {
    pub shipping_company: String,
    pub shipping_method: String,
    pub tracking_number: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct VoidOrderDto {
    pub void_reference: String,
    pub description: Option<String>,
    pub amount: Box<RawValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RefundOrderDto {
    pub refund_reference: String,
    pub refund_amount: RefundAmount,
    pub refund_description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundAmount {
    pub amount: Box<RawValue>,
    pub currency: String,
}

/// Wire-only fields kept in the order's metadata as `{"optty": {...}}`.
#[derive(Deserialize, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OrderMetadata {
    pub bnpl_provider: Option<String>,
    pub purchase_country: Option<String>,
    pub locale: Option<String>,
    pub order_token: Option<String>,
}

#[derive(Deserialize, Serialize)]
pub struct MetadataEnvelope {
    pub optty: OrderMetadata,
}

impl OrderMetadata {
    /// This dialect's part of an order's metadata; defaults for orders made elsewhere.
    pub fn of(text: &str) -> OrderMetadata {
        serde_json::from_str::<MetadataEnvelope>(text)
            .map(|e| e.optty)
            .unwrap_or_default()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateOrderResponse {
    pub order_id: String,
    pub order_token: String,
    /// Authcap authorizes at once: there is no page to send the customer to.
    pub redirect_url: Option<String>,
    pub bnpl_provider: String,
    pub order_reference: String,
    pub status: &'static str,
    pub amount: Box<RawValue>,
    pub surcharge: Box<RawValue>,
    pub currency: &'static str,
    pub capture_status: &'static str,
    pub reject_reason: Option<&'static str>,
    pub failure_reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderResponse {
    pub merchant_reference: String,
    pub status: &'static str,
    pub amount: Box<RawValue>,
    pub surcharge: Box<RawValue>,
    pub currency: &'static str,
    pub provider: String,
    pub updated_at: String,
    pub failure_reason: Option<&'static str>,
    pub bnpl_order_id: Option<String>,
    pub transaction_reference: String,
    pub reject_reason: Option<&'static str>,
    pub partner_configuration: Option<Value>,
    pub cancelled_by: Option<&'static str>,
    pub capture_status: &'static str,
    // Authcap additions.
    pub order_id: String,
    pub captured_amount: Box<RawValue>,
    pub refunded_amount: Box<RawValue>,
    pub capturable_amount: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CaptureOrderResponse {
    pub capture_reference: String,
    pub capture_id: String,
    pub captured_amount: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VoidOrderResponse {
    pub void_reference: String,
    pub voided_id: String,
    pub amount: Box<RawValue>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RefundOrderResponse {
    pub refund_reference: String,
    pub bnpl_provider: String,
    pub refunded_amount: Box<RawValue>,
    pub refund_status: &'static str,
    pub description: Option<String>,
    pub refund_date: String,
    pub bnpl_refund_id: String,
}

/// Minor units as the shortest exact JSON number in major units: 10000 AUD cents → `100`,
/// 1050 → `10.5`, 1 → `0.01`.
pub fn number(amount: Amount, currency: Currency) -> Box<RawValue> {
    let mut text = currency.format_decimal(amount);
    if text.contains('.') {
        while text.ends_with('0') {
            text.pop();
        }
        if text.ends_with('.') {
            text.pop();
        }
    }
    RawValue::from_string(text)
        .unwrap_or_else(|_| RawValue::from_string("0".to_owned()).expect("0 is JSON"))
}
