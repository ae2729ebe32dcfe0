//! The Mercado Pago Orders API wire types. Requests refuse fields the Orders API does not have;
//! fields it has but Authcap does not act on (items, config, shipment, …) are accepted and
//! ignored. Amounts are decimal strings, kept as raw JSON so they never pass through a float.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    #[serde(rename = "type")]
    pub kind: String,
    pub processing_mode: Option<String>,
    pub capture_mode: Option<String>,
    pub total_amount: Box<RawValue>,
    pub external_reference: String,
    pub currency: Option<String>,
    pub description: Option<String>,
    pub payer: Option<Payer>,
    pub transactions: TransactionsRequest,
    // Accepted and ignored: Authcap has nothing to do with them.
    pub marketplace: Option<Value>,
    pub marketplace_fee: Option<Value>,
    pub items: Option<Value>,
    pub config: Option<Value>,
    pub checkout_available_at: Option<Value>,
    pub expiration_time: Option<Value>,
    pub additional_info: Option<Value>,
    pub shipment: Option<Value>,
    pub integration_data: Option<Value>,
    pub taxes: Option<Value>,
    pub discounts: Option<Value>,
}

#[derive(Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Payer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identification: Option<Identification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<Phone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Identification {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Phone {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub neighborhood: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub complement: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransactionsRequest {
    pub payments: Vec<PaymentRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentRequest {
    pub amount: Box<RawValue>,
    pub payment_method: PaymentMethodRequest,
    // Accepted and ignored.
    pub automatic_payments: Option<Value>,
    pub stored_credential: Option<Value>,
    pub subscription_data: Option<Value>,
    pub expiration_time: Option<Value>,
    pub date_of_expiration: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodRequest {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub token: Option<String>,
    pub installments: Option<u32>,
    pub statement_descriptor: Option<String>,
    // Accepted and ignored.
    pub transaction_security: Option<Value>,
    pub financial_institution: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    pub transactions: Vec<RefundTransaction>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundTransaction {
    pub id: String,
    pub amount: Box<RawValue>,
}

/// What this dialect keeps with an order, under `{"mercadopago": …}` in its metadata.
#[derive(Deserialize, Serialize, Clone, Default)]
pub struct OrderMeta {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing_mode: Option<String>,
    /// `automatic_async` is kept here: the core knows only manual and automatic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<PaymentMethodEcho>,
    /// The sandbox trigger (APRO, FUND, …) that chose the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
}

#[derive(Deserialize, Serialize, Clone, Default)]
pub struct PaymentMethodEcho {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installments: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_descriptor: Option<String>,
}

#[derive(Deserialize, Serialize, Default)]
pub struct Metadata {
    #[serde(default)]
    pub mercadopago: OrderMeta,
}

#[derive(Serialize)]
pub struct OrderBody {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub processing_mode: String,
    pub external_reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub total_amount: String,
    pub total_paid_amount: String,
    pub currency: &'static str,
    pub status: &'static str,
    pub status_detail: &'static str,
    pub capture_mode: String,
    pub created_date: String,
    pub last_updated_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<Payer>,
    pub transactions: TransactionsBody,
}

#[derive(Serialize)]
pub struct TransactionsBody {
    pub payments: Vec<PaymentBody>,
    pub refunds: Vec<RefundBody>,
}

#[derive(Serialize)]
pub struct PaymentBody {
    pub id: String,
    pub reference_id: String,
    pub amount: String,
    pub paid_amount: String,
    pub refunded_amount: String,
    pub status: &'static str,
    pub status_detail: &'static str,
    pub payment_method: PaymentMethodBody,
}

#[derive(Serialize)]
pub struct PaymentMethodBody {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub installments: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statement_descriptor: Option<String>,
}

#[derive(Serialize)]
pub struct RefundBody {
    pub id: String,
    pub transaction_id: String,
    pub reference_id: String,
    pub amount: String,
    pub status: &'static str,
}
