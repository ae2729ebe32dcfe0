//! The OpenAPI 3.1 document of the native API: generated from the handlers and wire types, then
//! completed with what the server enforces and answers — every error status in
//! `application/problem+json` with its codes, the limits of every field and parameter, the
//! replay header, examples — so that a client generated from it, or a tool testing against
//! it, sees the server as it is.

use std::sync::OnceLock;

use axum::Json;
use serde_json::{Map, Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::native;
use crate::native::types::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Authcap native API", description = "Authorize now, capture later. Amounts are integers in minor units."),
    paths(native::create_order, native::get_order, native::list_orders, native::capture_order,
          native::list_captures, native::void_order, native::refund_order),
    components(schemas(CreateOrderRequest, PaymentMethodRequest, CaptureOrderRequest, ShippingBody,
        RefundOrderRequest, OrderBody, PaymentMethodBody, CaptureBody, RefundBody, CaptureWithOrder,
        RefundWithOrder, OrderList, CaptureList, ProblemBody)),
    modifiers(&BearerAuth)
)]
pub struct NativeApi;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document() -> Json<Value> {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    Json(DOCUMENT.get_or_init(complete).clone())
}

/// Every `code` a problem can carry.
const CODES: &[&str] = &[
    "invalid_json",
    "invalid_request",
    "invalid_idempotency_key",
    "amount_must_be_positive",
    "amount_too_large",
    "invalid_amount",
    "currency_mismatch",
    "unauthorized",
    "card_declined",
    "insufficient_funds",
    "processor_error",
    "capture_declined",
    "order_not_found",
    "event_not_found",
    "webhook_endpoint_not_found",
    "not_found",
    "method_not_allowed",
    "reference_already_exists",
    "order_not_capturable",
    "authorization_expired",
    "order_not_voidable",
    "order_not_refundable",
    "capture_mode_automatic",
    "idempotency_request_in_progress",
    "body_too_large",
    "amount_exceeds_capturable",
    "amount_exceeds_refundable",
    "partial_capture_unsupported",
    "idempotency_key_reused",
    "too_many_failed_authentications",
    "service_unavailable",
    "overloaded",
];

/// The statuses every operation may answer, and what they mean.
const EVERY_OPERATION: &[(&str, &str)] = &[
    ("401", "Missing or wrong secret key (`unauthorized`)."),
    (
        "405",
        "The path does not take this method (`method_not_allowed`).",
    ),
    (
        "429",
        "Too many failed authentications from this address (`too_many_failed_authentications`); see `Retry-After`.",
    ),
    (
        "503",
        "Storage unavailable (`service_unavailable`) or at capacity (`overloaded`); nothing was written, retry after `Retry-After`.",
    ),
];

/// What each operation may answer besides its success and [`EVERY_OPERATION`].
fn errors_of(operation: &str) -> &'static [(&'static str, &'static str)] {
    const BAD: (&str, &str) = (
        "400",
        "Malformed JSON (`invalid_json`), a wrong, missing, unknown or out-of-range field or parameter (`invalid_request`, `amount_must_be_positive`, `amount_too_large`), or a bad `Idempotency-Key` (`invalid_idempotency_key`).",
    );
    const NOT_FOUND: (&str, &str) = (
        "404",
        "No such order, or another merchant's (`order_not_found`).",
    );
    const TOO_LARGE: (&str, &str) = ("413", "Body over 64 KiB (`body_too_large`).");
    const REUSED: (&str, &str) = (
        "422",
        "The `Idempotency-Key` was used for another request (`idempotency_key_reused`); or an amount above what is left (`amount_exceeds_capturable`, `amount_exceeds_refundable`), or a partial capture a full-only method refuses (`partial_capture_unsupported`).",
    );
    match operation {
        "create_order" => &[
            BAD,
            (
                "402",
                "The authorization failed (`card_declined`, `insufficient_funds`, `processor_error`); the order is in `order`.",
            ),
            (
                "409",
                "The reference is taken (`reference_already_exists`), or a request with this `Idempotency-Key` is still running (`idempotency_request_in_progress`).",
            ),
            TOO_LARGE,
            REUSED,
        ],
        "capture_order" => &[
            BAD,
            (
                "402",
                "The processor declined the capture (`capture_declined`).",
            ),
            NOT_FOUND,
            (
                "409",
                "Nothing left to capture (`order_not_capturable`), the authorization expired (`authorization_expired`), the capture reference is taken (`reference_already_exists`), or the same key is still running (`idempotency_request_in_progress`).",
            ),
            TOO_LARGE,
            REUSED,
        ],
        "void_order" => &[
            BAD,
            NOT_FOUND,
            (
                "409",
                "Nothing left to void (`order_not_voidable`), the authorization expired (`authorization_expired`), or the same key is still running (`idempotency_request_in_progress`).",
            ),
            TOO_LARGE,
            REUSED,
        ],
        "refund_order" => &[
            BAD,
            NOT_FOUND,
            (
                "409",
                "Nothing left to refund (`order_not_refundable`), or the same key is still running (`idempotency_request_in_progress`).",
            ),
            TOO_LARGE,
            REUSED,
        ],
        "get_order" | "list_captures" => &[NOT_FOUND],
        "list_orders" => &[("400", "A bad query parameter (`invalid_request`).")],
        _ => &[],
    }
}

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}
    })
}

fn object<'a>(value: &'a mut Value, path: &[&str]) -> &'a mut Map<String, Value> {
    let mut at = value;
    for key in path {
        at = at
            .as_object_mut()
            .expect("an object in the generated document")
            .entry(*key)
            .or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .expect("an object in the generated document")
}

/// Sets `constraints` on a property of a component schema, whether the property is a plain
/// schema or a `oneOf`/`type` list allowing null.
fn constrain(document: &mut Value, schema: &str, property: &str, constraints: Value) {
    let target = object(
        document,
        &["components", "schemas", schema, "properties", property],
    );
    let Value::Object(constraints) = constraints else {
        return;
    };
    target.remove("oneOf");
    target.remove("$ref");
    for (key, value) in constraints {
        target.insert(key, value);
    }
}

/// Every currency an order can be in: ISO 4217 codes with minor units.
fn currencies() -> Vec<&'static str> {
    authcap_core::Currency::all()
        .iter()
        .map(|currency| currency.code())
        .collect()
}

pub(crate) fn complete() -> Value {
    let mut document = serde_json::to_value(NativeApi::openapi()).unwrap_or_default();
    let text = |min: u64, max: u64| json!({"type": "string", "minLength": min, "maxLength": max});
    let optional_text = |min: u64, max: u64| json!({"type": ["string", "null"], "minLength": min, "maxLength": max});
    let amount_max = authcap_core::money::AMOUNT_MAX;

    // Requests: the limits the server enforces.
    constrain(
        &mut document,
        "CreateOrderRequest",
        "reference",
        text(1, 50),
    );
    constrain(
        &mut document,
        "CreateOrderRequest",
        "amount",
        json!({"type": "integer", "minimum": 1, "maximum": amount_max,
               "description": "Minor units: 1050 is 10.50 EUR. amount + surcharge must not exceed 9007199254740991."}),
    );
    constrain(
        &mut document,
        "CreateOrderRequest",
        "surcharge",
        json!({"type": ["integer", "null"], "minimum": 0, "maximum": amount_max}),
    );
    constrain(
        &mut document,
        "CreateOrderRequest",
        "currency",
        json!({"type": "string", "enum": currencies(), "description": "ISO 4217, upper case, with minor units."}),
    );
    constrain(
        &mut document,
        "CreateOrderRequest",
        "capture_mode",
        json!({"type": ["string", "null"], "enum": ["manual", "automatic", null]}),
    );
    constrain(
        &mut document,
        "PaymentMethodRequest",
        "type",
        json!({"type": "string", "enum": ["card"]}),
    );
    constrain(
        &mut document,
        "PaymentMethodRequest",
        "number",
        json!({"type": "string", "pattern": "^[0-9]{12,19}$",
               "description": "12 to 19 digits passing the Luhn check; a test card decides the simulator's outcome.",
               "examples": ["4242424242424242"]}),
    );
    constrain(
        &mut document,
        "PaymentMethodRequest",
        "expiry",
        json!({"type": ["string", "null"], "pattern": "^(0[1-9]|1[0-2])/[0-9]{2}$", "description": "MM/YY"}),
    );
    constrain(
        &mut document,
        "PaymentMethodRequest",
        "cvc",
        json!({"type": ["string", "null"], "pattern": "^[0-9]{3,4}$"}),
    );
    for (schema, property, max) in [
        ("CaptureOrderRequest", "reference", 255),
        ("CaptureOrderRequest", "invoice_id", 50),
        ("CaptureOrderRequest", "description", 255),
        ("CaptureOrderRequest", "reason", 255),
        ("RefundOrderRequest", "reason", 255),
        ("ShippingBody", "carrier", 255),
        ("ShippingBody", "method", 255),
        ("ShippingBody", "tracking_code", 255),
    ] {
        constrain(&mut document, schema, property, optional_text(1, max));
    }
    for schema in ["CaptureOrderRequest", "RefundOrderRequest"] {
        constrain(
            &mut document,
            schema,
            "amount",
            json!({"type": ["integer", "null"], "minimum": 1, "maximum": amount_max}),
        );
    }
    constrain(
        &mut document,
        "ProblemBody",
        "code",
        json!({"type": "string", "enum": CODES}),
    );
    constrain(
        &mut document,
        "OrderBody",
        "status",
        json!({"type": "string", "enum": authcap_core::OrderStatus::ALL.map(|s| s.as_str())}),
    );
    *object(
        &mut document,
        &["components", "schemas", "CreateOrderRequest"],
    )
    .entry("examples")
    .or_insert(Value::Null) = json!([{
        "reference": "1001", "amount": 1000, "surcharge": 50, "currency": "EUR",
        "payment_method": {"type": "card", "number": "4242424242424242"}
    }]);

    // Operations: parameters and every answer.
    let operations: Vec<(String, String)> = document["paths"]
        .as_object()
        .map(|paths| {
            paths
                .iter()
                .flat_map(|(path, item)| {
                    let methods = item
                        .as_object()
                        .map(|m| m.keys().cloned().collect::<Vec<_>>());
                    methods
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |method| (path.clone(), method))
                })
                .collect()
        })
        .unwrap_or_default();
    for (path, method) in operations {
        let operation = object(&mut document, &["paths", &path, &method]);
        let id = operation
            .get("operationId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if let Some(Value::Array(parameters)) = operation.get_mut("parameters") {
            for parameter in parameters {
                let name = parameter["name"].as_str().unwrap_or_default().to_owned();
                let schema = match name.as_str() {
                    "Idempotency-Key" => {
                        json!({"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"})
                    }
                    "limit" => {
                        json!({"type": "integer", "minimum": 1, "maximum": 100, "default": 10})
                    }
                    "status" => {
                        json!({"type": "string", "enum": authcap_core::OrderStatus::ALL.map(|s| s.as_str())})
                    }
                    "id" => json!({"type": "string", "minLength": 1}),
                    _ => continue,
                };
                parameter["schema"] = schema;
            }
        }
        let responses = operation
            .entry("responses")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("responses are an object");
        responses.retain(|status, _| status.starts_with('2'));
        for (status, response) in responses.iter_mut() {
            response["description"] = json!(match status.as_str() {
                "201" => "Created.",
                _ => "OK.",
            });
            if method == "post" {
                response["headers"] = json!({"Idempotent-Replayed": {
                    "description": "`true` when this is the stored answer of an earlier request with the same `Idempotency-Key`.",
                    "schema": {"type": "string", "enum": ["true"]}
                }});
            }
        }
        for (status, description) in errors_of(&id).iter().chain(EVERY_OPERATION) {
            responses.insert((*status).to_owned(), problem_response(description));
        }
        if id == "create_order" {
            // What can be done with the order just made: for clients and stateful testing.
            let by_id = json!({"id": "$response.body#/id"});
            responses.entry("201").or_insert_with(|| json!({}))["links"] = json!({
                "GetOrder": {"operationId": "get_order", "parameters": by_id},
                "CaptureOrder": {"operationId": "capture_order", "parameters": by_id},
                "ListCaptures": {"operationId": "list_captures", "parameters": by_id},
                "VoidOrder": {"operationId": "void_order", "parameters": by_id},
                "RefundOrder": {"operationId": "refund_order", "parameters": by_id},
            });
        }
    }
    document
}
