//! The Mercado Pago Orders API dialect: lifecycle, sandbox triggers, statuses, idempotency,
//! every error row, isolation, and the official SDKs.

use std::time::Duration;

use authcap_api::Config;
use authcap_api::mercadopago::ids;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};

use super::support::*;

fn mp(app: &TestApp, method: Method, path: &str) -> RequestBuilder {
    mp_as(app, &app.merchant.mercadopago_access_token, method, path)
}

fn mp_as(app: &TestApp, token: &str, method: Method, path: &str) -> RequestBuilder {
    app.client
        .request(method, app.url(&format!("/mercadopago{path}")))
        .bearer_auth(token)
}

fn order_json(amount: &str, capture_mode: &str, first_name: Option<&str>, token: &str) -> Value {
    let mut payer = json!({"email": "buyer@example.com", "last_name": "Doe"});
    if let Some(name) = first_name {
        payer["first_name"] = json!(name);
    }
    json!({
        "type": "online",
        "processing_mode": "automatic",
        "capture_mode": capture_mode,
        "total_amount": amount,
        "external_reference": unique("ext"),
        "description": "a box",
        "payer": payer,
        "transactions": {"payments": [{
            "amount": amount,
            "payment_method": {"id": "master", "type": "credit_card", "token": token, "installments": 1}
        }]}
    })
}

async fn create_raw(app: &TestApp, body: &Value, key: Option<&str>) -> Response {
    let mut request = mp(app, Method::POST, "/v1/orders").json(body);
    if let Some(key) = key {
        request = request.header("X-Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

/// Creates an order and asserts the status code; returns the body.
async fn create(app: &TestApp, body: Value, expected: u16) -> Value {
    let response = create_raw(app, &body, None).await;
    assert_eq!(response.status(), expected);
    json_of(response).await
}

async fn manual_order(app: &TestApp, first_name: Option<&str>, token: &str) -> Value {
    create(app, order_json("100.00", "manual", first_name, token), 201).await
}

/// A bodyless POST as the SDKs send it: JSON content type, `Content-Length: 0`.
async fn bodyless(app: &TestApp, path: &str, key: Option<&str>) -> Response {
    let mut request = mp(app, Method::POST, path)
        .header("content-type", "application/json")
        .body("");
    if let Some(key) = key {
        request = request.header("X-Idempotency-Key", key);
    }
    request.send().await.unwrap()
}

async fn capture(app: &TestApp, id: &str, key: &str) -> Response {
    bodyless(app, &format!("/v1/orders/{id}/capture"), Some(key)).await
}

async fn get(app: &TestApp, id: &str) -> Value {
    let response = mp(app, Method::GET, &format!("/v1/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    json_of(response).await
}

fn native_id(mp_id: &str) -> String {
    ids::parse(ids::ORDER, "ord_", mp_id).unwrap()
}

async fn native(app: &TestApp, mp_id: &str) -> Value {
    json_of(app.get(&format!("/v1/orders/{}", native_id(mp_id))).await).await
}

/// Asserts Mercado Pago's error shape and code; returns the body.
async fn assert_error(response: Response, status: u16, code: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json_of(response).await;
    assert_eq!(body["errors"][0]["code"], code, "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().len() > 5);
    assert!(body["errors"][0]["details"].is_array());
    assert_eq!(body["status"], status);
    assert_eq!(body["message"], body["errors"][0]["message"]);
    assert!(body["error"].is_string());
    assert_eq!(body["cause"][0]["code"], code);
    body
}

fn status(order: &Value) -> (&str, &str) {
    (
        order["status"].as_str().unwrap(),
        order["status_detail"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn create_capture_get_and_the_native_api_sees_the_same_order() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let body = order_json("100.00", "manual", Some("APRO"), "tok_abc");
    let reference = body["external_reference"].as_str().unwrap().to_owned();
    let order = create(&app, body, 201).await;
    let id = order["id"].as_str().unwrap();
    assert!(id.starts_with("ORD") && id.len() == 29, "{id}");
    assert_eq!(status(&order), ("action_required", "waiting_capture"));
    assert_eq!(order["type"], "online");
    assert_eq!(order["processing_mode"], "automatic");
    assert_eq!(order["capture_mode"], "manual");
    assert_eq!(order["external_reference"], reference.as_str());
    assert_eq!(order["description"], "a box");
    assert_eq!(order["total_amount"], "100.00");
    assert_eq!(order["total_paid_amount"], "0.00");
    assert_eq!(order["currency"], "BRL");
    assert_eq!(order["payer"]["email"], "buyer@example.com");
    assert!(order["created_date"].as_str().unwrap().ends_with('Z'));
    let payment = &order["transactions"]["payments"][0];
    assert_eq!(payment["id"], format!("PAY{}", &id[3..]));
    assert_eq!(payment["amount"], "100.00");
    assert_eq!(payment["status"], "action_required");
    assert_eq!(payment["status_detail"], "waiting_capture");
    assert_eq!(payment["reference_id"].as_str().unwrap().len(), 26);
    assert_eq!(payment["payment_method"]["id"], "master");
    assert_eq!(payment["payment_method"]["type"], "credit_card");
    assert_eq!(payment["payment_method"]["installments"], 1);
    assert!(payment["payment_method"].get("token").is_none());

    let native_order = native(&app, id).await;
    assert_eq!(native_order["status"], "authorized");
    assert_eq!(native_order["amount"], 10000);
    assert_eq!(native_order["currency"], "BRL");
    assert_eq!(native_order["reference"], reference.as_str());

    let captured = capture(&app, id, "cap-1").await;
    assert_eq!(captured.status(), 200);
    let captured = json_of(captured).await;
    assert_eq!(status(&captured), ("processed", "accredited"));
    assert_eq!(captured["id"], id);
    assert_eq!(captured["total_paid_amount"], "100.00");
    let payment = &captured["transactions"]["payments"][0];
    assert_eq!(payment["status"], "processed");
    assert_eq!(payment["status_detail"], "accredited");
    assert_eq!(payment["paid_amount"], "100.00");

    let read = get(&app, id).await;
    assert_eq!(status(&read), ("processed", "accredited"));
    let native_order = native(&app, id).await;
    assert_eq!(native_order["status"], "captured");
    assert_eq!(native_order["captured_amount"], 10000);
    assert_eq!(native_order["captures"].as_array().unwrap().len(), 1);

    // Capturing again is a state conflict.
    assert_error(
        capture(&app, id, "cap-2").await,
        409,
        "cannot_capture_order",
    )
    .await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn orders_created_by_the_native_api_are_reachable() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(2500, APPROVE).await;
    let id = ids::render(ids::ORDER, order["id"].as_str().unwrap());
    let read = get(&app, &id).await;
    assert_eq!(status(&read), ("action_required", "waiting_capture"));
    assert_eq!(read["total_amount"], "25.00");
    assert_eq!(read["currency"], "EUR");
    assert_eq!(read["capture_mode"], "manual");
    assert_eq!(
        read["transactions"]["payments"][0]["payment_method"]["id"],
        "visa"
    );
    let captured = json_of(capture(&app, &id, "k").await).await;
    assert_eq!(status(&captured), ("processed", "accredited"));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn sandbox_cardholder_names_decide_the_outcome() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for (name, detail, native_status) in [
        ("OTHE", "rejected_by_issuer", "declined"),
        ("CALL", "call_for_authorize", "declined"),
        ("FUND", "insufficient_amount", "declined"),
        ("SECU", "bad_filled_security_code", "declined"),
        ("EXPI", "bad_filled_date", "declined"),
        ("FORM", "bad_filled_other", "declined"),
        ("CARD", "bad_filled_card_number", "declined"),
        ("INST", "invalid_installments", "declined"),
        ("DUPL", "duplicated_payment", "declined"),
        ("LOCK", "card_disabled", "declined"),
        ("CTNA", "card_type_not_allowed", "declined"),
        ("ATTE", "max_attempts", "declined"),
        ("BLAC", "rejected_high_risk", "declined"),
        ("UNSU", "processing_error", "failed"),
    ] {
        let response =
            create_raw(&app, &order_json("10.00", "manual", Some(name), "t"), None).await;
        let body = assert_error(response, 402, "failed").await;
        assert_eq!(body["error"], "failed");
        let order = &body["data"];
        assert_eq!(status(order), ("failed", detail), "{name}");
        let payment = &order["transactions"]["payments"][0];
        assert_eq!(payment["status"], "failed");
        assert_eq!(payment["status_detail"], detail);
        let details = body["errors"][0]["details"][0].as_str().unwrap();
        assert!(details.contains(detail), "{details}");
        let id = order["id"].as_str().unwrap();
        assert_eq!(status(&get(&app, id).await), ("failed", detail));
        assert_eq!(native(&app, id).await["status"], native_status);
        assert_error(
            capture(&app, id, &unique("k")).await,
            409,
            "cannot_capture_order",
        )
        .await;
        let cancel = bodyless(&app, &format!("/v1/orders/{id}/cancel"), None).await;
        assert_error(cancel, 409, "cannot_cancel_order").await;
    }
    // Lower case and surrounding spaces still trigger; APRO and TEST approve.
    let fund = create_raw(
        &app,
        &order_json("10.00", "manual", Some(" fund "), "t"),
        None,
    )
    .await;
    assert_eq!(fund.status(), 402);
    for name in ["APRO", "TEST", "Maria"] {
        let order = manual_order(&app, Some(name), "t").await;
        assert_eq!(status(&order), ("action_required", "waiting_capture"));
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_test_card_number_as_token_reaches_every_simulator_card() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let fund = create_raw(
        &app,
        &order_json("10.00", "manual", None, INSUFFICIENT_FUNDS),
        None,
    )
    .await;
    let body = assert_error(fund, 402, "failed").await;
    assert_eq!(status(&body["data"]), ("failed", "insufficient_amount"));
    let declined = create_raw(&app, &order_json("10.00", "manual", None, DECLINE), None).await;
    let body = assert_error(declined, 402, "failed").await;
    assert_eq!(status(&body["data"]), ("failed", "rejected_by_issuer"));
    let failed = create_raw(
        &app,
        &order_json("10.00", "manual", None, PROCESSOR_ERROR),
        None,
    )
    .await;
    let body = assert_error(failed, 402, "failed").await;
    assert_eq!(status(&body["data"]), ("failed", "processing_error"));

    // The cardholder name wins over the token.
    let order = manual_order(&app, Some("APRO"), DECLINE).await;
    assert_eq!(status(&order), ("action_required", "waiting_capture"));

    // 402 at capture: the processor declines it; nothing changes and a retry replays it.
    let order = manual_order(&app, None, CAPTURE_DECLINED).await;
    let id = order["id"].as_str().unwrap();
    let body = assert_error(capture(&app, id, "declined-1").await, 402, "402").await;
    assert!(
        body["errors"][0]["details"][0]
            .as_str()
            .unwrap()
            .contains("declined")
    );
    let replay = capture(&app, id, "declined-1").await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_error(replay, 402, "402").await;
    assert_eq!(
        status(&get(&app, id).await),
        ("action_required", "waiting_capture")
    );
    assert_eq!(native(&app, id).await["captured_amount"], 0);
    // It can still be cancelled.
    let cancelled = bodyless(&app, &format!("/v1/orders/{id}/cancel"), None).await;
    assert_eq!(
        status(&json_of(cancelled).await),
        ("cancelled", "cancelled")
    );

    // The full-capture-only card captures in full.
    let order = manual_order(&app, None, FULL_CAPTURE_ONLY).await;
    let captured = json_of(capture(&app, order["id"].as_str().unwrap(), "f").await).await;
    assert_eq!(status(&captured), ("processed", "accredited"));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn cont_payments_settle_later_and_show_processing_until_then() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, Some("CONT"), "t").await;
    let id = order["id"].as_str().unwrap();
    assert_eq!(status(&order), ("action_required", "waiting_capture"));
    let captured = capture(&app, id, "c").await;
    assert_eq!(captured.status(), 200);
    let captured = json_of(captured).await;
    assert_eq!(status(&captured), ("processing", "in_process"));
    assert_eq!(
        captured["transactions"]["payments"][0]["status"],
        "processing"
    );
    assert_eq!(status(&get(&app, id).await), ("processing", "in_process"));
    assert_eq!(native(&app, id).await["captures"][0]["status"], "pending");

    // Automatic capture of a CONT payment is pending too.
    let automatic = create(
        &app,
        order_json("5.00", "automatic", Some("CONT"), "t"),
        201,
    )
    .await;
    let auto_id = automatic["id"].as_str().unwrap();
    assert_eq!(status(&automatic), ("processing", "in_process"));

    app.advance(Duration::from_millis(2100)).await;
    assert_eq!(status(&get(&app, id).await), ("processed", "accredited"));
    assert_eq!(
        status(&get(&app, auto_id).await),
        ("processed", "accredited")
    );
    assert_eq!(native(&app, id).await["captures"][0]["status"], "succeeded");
    // The capture's own answer is replayed as it was given.
    let replay = json_of(capture(&app, id, "c").await).await;
    assert_eq!(status(&replay), ("processing", "in_process"));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn automatic_orders_are_captured_at_creation_and_refuse_capture() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for mode in ["automatic", "automatic_async"] {
        let order = create(&app, order_json("42.10", mode, None, "t"), 201).await;
        let id = order["id"].as_str().unwrap();
        assert_eq!(status(&order), ("processed", "accredited"));
        assert_eq!(order["capture_mode"], mode);
        assert_eq!(order["total_paid_amount"], "42.10");
        assert_eq!(native(&app, id).await["status"], "captured");
        let body = assert_error(
            capture(&app, id, &unique("k")).await,
            409,
            "operation_not_supported",
        )
        .await;
        assert!(
            body["errors"][0]["details"][0]
                .as_str()
                .unwrap()
                .contains("automatic")
        );
        let cancel = bodyless(&app, &format!("/v1/orders/{id}/cancel"), None).await;
        assert_error(cancel, 409, "cannot_cancel_order").await;
        let refund = bodyless(&app, &format!("/v1/orders/{id}/refund"), None).await;
        assert_eq!(refund.status(), 201);
        assert_eq!(status(&json_of(refund).await), ("refunded", "refunded"));
    }
    // Omitted capture_mode means automatic.
    let mut body = order_json("1.00", "x", None, "t");
    body.as_object_mut().unwrap().remove("capture_mode");
    body.as_object_mut().unwrap().remove("processing_mode");
    let order = create(&app, body, 201).await;
    assert_eq!(order["capture_mode"], "automatic");
    assert_eq!(status(&order), ("processed", "accredited"));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn cancel_releases_the_authorization() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let cancelled = bodyless(&app, &format!("/v1/orders/{id}/cancel"), Some("cancel-1")).await;
    assert_eq!(cancelled.status(), 200);
    let cancelled = json_of(cancelled).await;
    assert_eq!(status(&cancelled), ("cancelled", "cancelled"));
    assert_eq!(
        cancelled["transactions"]["payments"][0]["status"],
        "cancelled"
    );
    assert_eq!(status(&get(&app, id).await), ("cancelled", "cancelled"));
    let native_order = native(&app, id).await;
    assert_eq!(native_order["status"], "voided");
    assert_eq!(native_order["released_amount"], 10000);
    // Replayed with the same key; refused with another.
    let replay = bodyless(&app, &format!("/v1/orders/{id}/cancel"), Some("cancel-1")).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.status(), 200);
    let again = bodyless(&app, &format!("/v1/orders/{id}/cancel"), Some("cancel-2")).await;
    assert_error(again, 409, "cannot_cancel_order").await;
    assert_error(capture(&app, id, "x").await, 409, "cannot_capture_order").await;
    let refund = bodyless(&app, &format!("/v1/orders/{id}/refund"), None).await;
    assert_error(refund, 409, "cannot_refund_order").await;
    // A captured order cannot be cancelled.
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    capture(&app, id, "c").await;
    let cancel = bodyless(&app, &format!("/v1/orders/{id}/cancel"), None).await;
    assert_error(cancel, 409, "cannot_cancel_order").await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn refunds_partial_then_full() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let payment = format!("PAY{}", &id[3..]);
    let refund_path = format!("/v1/orders/{id}/refund");
    let refund = |body: Value| mp(&app, Method::POST, &refund_path).json(&body).send();

    // Nothing captured yet.
    let early = refund(json!({"transactions": [{"id": payment, "amount": "1.00"}]}))
        .await
        .unwrap();
    assert_error(early, 409, "cannot_refund_order").await;
    capture(&app, id, "c").await;

    let partial = refund(json!({"transactions": [{"id": payment, "amount": "25.00"}]}))
        .await
        .unwrap();
    assert_eq!(partial.status(), 201);
    let partial = json_of(partial).await;
    assert_eq!(status(&partial), ("processed", "partially_refunded"));
    let refunds = partial["transactions"]["refunds"].as_array().unwrap();
    assert_eq!(refunds.len(), 1);
    assert!(refunds[0]["id"].as_str().unwrap().starts_with("REF"));
    assert_eq!(refunds[0]["transaction_id"], payment.as_str());
    assert_eq!(refunds[0]["amount"], "25.00");
    assert_eq!(refunds[0]["status"], "processed");
    assert_eq!(
        partial["transactions"]["payments"][0]["refunded_amount"],
        "25.00"
    );

    for (body, code, http) in [
        (
            json!({"transactions": [{"id": payment, "amount": "75.01"}]}),
            "property_value",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": "1.001"}]}),
            "property_value",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": "0.00"}]}),
            "property_value",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": "-1.00"}]}),
            "property_value",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": 5}]}),
            "property_type",
            400,
        ),
        (
            json!({"transactions": [{"id": "pay_1", "amount": "1.00"}]}),
            "invalid_transaction_id",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": "1.00"}, {"id": payment, "amount": "1.00"}]}),
            "maximum_items",
            400,
        ),
        (json!({"transactions": []}), "minimum_items", 400),
        (
            json!({"transactions": [{"id": payment}]}),
            "required_properties",
            400,
        ),
        (
            json!({"transactions": [{"id": payment, "amount": "1.00", "x": 1}]}),
            "unsupported_properties",
            400,
        ),
    ] {
        assert_error(refund(body).await.unwrap(), http, code).await;
    }
    // Another order's payment id.
    let other = manual_order(&app, None, "t").await;
    let other_payment = format!("PAY{}", &other["id"].as_str().unwrap()[3..]);
    let wrong = refund(json!({"transactions": [{"id": other_payment, "amount": "1.00"}]}))
        .await
        .unwrap();
    assert_error(wrong, 404, "transaction_not_found").await;

    let full = bodyless(&app, &refund_path, Some("refund-all")).await;
    assert_eq!(full.status(), 201);
    let full = json_of(full).await;
    assert_eq!(status(&full), ("refunded", "refunded"));
    assert_eq!(full["transactions"]["refunds"][1]["amount"], "75.00");
    assert_eq!(
        full["transactions"]["payments"][0]["refunded_amount"],
        "100.00"
    );
    let again = bodyless(&app, &refund_path, None).await;
    assert_error(again, 409, "cannot_refund_order").await;
    let native_order = native(&app, id).await;
    assert_eq!(native_order["status"], "refunded");
    assert_eq!(native_order["refunded_amount"], 10000);
    assert_eq!(native_order["refunds"].as_array().unwrap().len(), 2);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn idempotency_keys_are_required_on_capture_and_scoped_per_operation() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}/capture");
    assert_error(
        bodyless(&app, &path, None).await,
        400,
        "empty_required_header",
    )
    .await;
    assert_error(
        bodyless(&app, &path, Some("")).await,
        400,
        "invalid_idempotency_key_length",
    )
    .await;
    let long = "k".repeat(65);
    assert_error(
        bodyless(&app, &path, Some(&long)).await,
        400,
        "invalid_idempotency_key_length",
    )
    .await;
    // Over-long keys are refused on every POST.
    let create = create_raw(&app, &order_json("1.00", "manual", None, "t"), Some(&long)).await;
    assert_error(create, 400, "invalid_idempotency_key_length").await;
    assert_eq!(
        status(&get(&app, id).await),
        ("action_required", "waiting_capture")
    );

    // Create: same key and body replays; same key, other body → 409.
    let body = order_json("7.00", "manual", None, "t");
    let sticky = "k".repeat(64);
    let first = create_raw(&app, &body, Some(&sticky)).await;
    assert_eq!(first.status(), 201);
    let first_bytes = first.bytes().await.unwrap();
    let replay = create_raw(&app, &body, Some(&sticky)).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), first_bytes);
    let other = create_raw(
        &app,
        &order_json("8.00", "manual", None, "t"),
        Some(&sticky),
    )
    .await;
    assert_error(other, 409, "idempotency_key_already_used").await;
    let a: Value = serde_json::from_slice(&first_bytes).unwrap();
    let a = a["id"].as_str().unwrap();

    // The Node SDK's sticky key: the create key reused on capture works (another operation).
    let captured = capture(&app, a, &sticky).await;
    assert_eq!(captured.status(), 200);
    // The same capture key on another order → 409, and nothing is captured there.
    let b = manual_order(&app, None, "t").await;
    let b = b["id"].as_str().unwrap();
    assert_error(
        capture(&app, b, &sticky).await,
        409,
        "idempotency_key_already_used",
    )
    .await;
    assert_eq!(
        status(&get(&app, b).await),
        ("action_required", "waiting_capture")
    );
    // …but cancel is its own scope.
    let cancel = bodyless(&app, &format!("/v1/orders/{b}/cancel"), Some(&sticky)).await;
    assert_eq!(cancel.status(), 200);
    // Keys are per merchant: another merchant may use the same key.
    let other = app.new_merchant().await;
    let theirs = mp_as(
        &app,
        &other.mercadopago_access_token,
        Method::POST,
        "/v1/orders",
    )
    .header("X-Idempotency-Key", &sticky)
    .json(&order_json("9.00", "manual", None, "t"))
    .send()
    .await
    .unwrap();
    assert_eq!(theirs.status(), 201);
    // GET ignores the key the Python SDK sends on every request.
    let read = mp(&app, Method::GET, &format!("/v1/orders/{a}"))
        .header("X-Idempotency-Key", &long)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn access_tokens_are_checked() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}");
    let unauthorized = app
        .client
        .get(app.url(&format!("/mercadopago{path}")))
        .header(
            "authorization",
            format!("Basic {}", app.merchant.mercadopago_access_token),
        )
        .send()
        .await
        .unwrap();
    let body = assert_error(unauthorized, 401, "401").await;
    assert_eq!(body["error"], "unauthorized");
    let none = app
        .client
        .get(app.url(&format!("/mercadopago{path}")))
        .send()
        .await
        .unwrap();
    assert_error(none, 401, "401").await;
    for token in [
        "APP_USR-1234567890123456-123456-0123456789abcdef0123456789abcdef-123456789",
        "TEST-token",
        app.merchant.secret_key.as_str(),
        app.merchant.multisafepay_api_key.as_str(),
    ] {
        let response = mp_as(&app, token, Method::GET, &path).send().await.unwrap();
        assert_error(response, 401, "401").await;
    }
    let test_token = "TEST-1234567890123456-123456-0123456789abcdef0123456789abcdef-123456789";
    let response = mp_as(&app, test_token, Method::GET, &path)
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 401, "invalid_credentials").await;
    assert_eq!(body["error"], "invalid_credentials");
    let response = mp_as(&app, test_token, Method::POST, "/v1/orders")
        .json(&order_json("1.00", "manual", None, "t"))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn merchants_never_see_each_others_orders() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let other = app.new_merchant().await;
    let token = other.mercadopago_access_token.as_str();
    let read = mp_as(&app, token, Method::GET, &format!("/v1/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(read, 404, "order_not_found").await;
    for (op, key) in [("capture", true), ("cancel", false), ("refund", false)] {
        let mut request = mp_as(&app, token, Method::POST, &format!("/v1/orders/{id}/{op}"))
            .header("content-type", "application/json")
            .body("");
        if key {
            request = request.header("X-Idempotency-Key", "k");
        }
        assert_error(request.send().await.unwrap(), 404, "order_not_found").await;
    }
    let payment = format!("PAY{}", &id[3..]);
    let refund = mp_as(
        &app,
        token,
        Method::POST,
        &format!("/v1/orders/{id}/refund"),
    )
    .json(&json!({"transactions": [{"id": payment, "amount": "1.00"}]}))
    .send()
    .await
    .unwrap();
    assert_error(refund, 404, "order_not_found").await;
    assert_eq!(
        status(&get(&app, id).await),
        ("action_required", "waiting_capture")
    );
    // A well-formed id nobody has.
    let unknown = format!("ORD{}", "0".repeat(26));
    let read = mp(&app, Method::GET, &format!("/v1/orders/{unknown}"))
        .send()
        .await
        .unwrap();
    assert_error(read, 404, "order_not_found").await;
    assert_error(capture(&app, &unknown, "k").await, 404, "order_not_found").await;
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let base = || order_json("10.00", "manual", None, "t");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut body = base();
        edit(&mut body);
        body
    };
    let long_reference = "r".repeat(65);
    let cases: Vec<(Value, &str)> = vec![
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("transactions");
            }),
            "required_properties",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("total_amount");
            }),
            "required_properties",
        ),
        (
            with(&|b| {
                b.as_object_mut().unwrap().remove("external_reference");
            }),
            "required_properties",
        ),
        (
            with(&|b| b["surprise"] = json!(1)),
            "unsupported_properties",
        ),
        (
            with(&|b| b["payer"]["nickname"] = json!("x")),
            "unsupported_properties",
        ),
        (with(&|b| b["total_amount"] = json!(10)), "property_type"),
        (
            with(&|b| {
                b["transactions"]["payments"][0]["payment_method"]["installments"] = json!("1")
            }),
            "property_type",
        ),
        (
            with(&|b| b["total_amount"] = json!("10.001")),
            "property_value",
        ),
        (
            with(&|b| b["total_amount"] = json!("-10.00")),
            "property_value",
        ),
        (
            with(&|b| b["total_amount"] = json!("1e3")),
            "property_value",
        ),
        (
            with(&|b| b["total_amount"] = json!("abc")),
            "property_value",
        ),
        (
            with(&|b| b["total_amount"] = json!("99999999999999999999.00")),
            "property_value",
        ),
        (
            with(&|b| {
                b["total_amount"] = json!("0.00");
                b["transactions"]["payments"][0]["amount"] = json!("0.00");
            }),
            "property_value",
        ),
        (
            with(&|b| b["total_amount"] = json!("10.01")),
            "invalid_total_amount",
        ),
        (
            with(&|b| {
                let p = b["transactions"]["payments"][0].clone();
                b["transactions"]["payments"] = json!([p.clone(), p]);
            }),
            "maximum_items",
        ),
        (
            with(&|b| b["transactions"]["payments"] = json!([])),
            "minimum_items",
        ),
        (with(&|b| b["type"] = json!("point")), "property_value"),
        (
            with(&|b| b["capture_mode"] = json!("later")),
            "property_value",
        ),
        (
            with(&|b| b["processing_mode"] = json!("manual")),
            "property_value",
        ),
        (with(&|b| b["currency"] = json!("XXX")), "property_value"),
        (with(&|b| b["currency"] = json!("eur")), "property_value"),
        (
            with(&|b| {
                b["currency"] = json!("JPY");
                b["total_amount"] = json!("10.50");
                b["transactions"]["payments"][0]["amount"] = json!("10.50");
            }),
            "property_value",
        ),
        (
            with(&|b| b["external_reference"] = json!("")),
            "property_value",
        ),
        (
            with(&|b| b["external_reference"] = json!(long_reference)),
            "property_value",
        ),
        (
            with(&|b| b["description"] = json!("d".repeat(256))),
            "property_value",
        ),
        (
            with(&|b| b["payer"]["email"] = json!("not-an-email")),
            "property_value",
        ),
        (
            with(&|b| {
                b["transactions"]["payments"][0]["payment_method"]["installments"] = json!(0)
            }),
            "property_value",
        ),
        (
            with(&|b| b["transactions"]["payments"][0]["payment_method"]["id"] = json!("")),
            "property_value",
        ),
    ];
    for (body, code) in cases {
        let response = create_raw(&app, &body, None).await;
        assert_error(response, 400, code).await;
    }
    let syntax = mp(&app, Method::POST, "/v1/orders")
        .header("content-type", "application/json")
        .body("{\"type\":")
        .send()
        .await
        .unwrap();
    assert_error(syntax, 400, "json_syntax_error").await;
    let huge = mp(&app, Method::POST, "/v1/orders")
        .header("content-type", "application/json")
        .body(vec![b' '; 64 * 1024 + 1])
        .send()
        .await
        .unwrap();
    assert_error(huge, 413, "request_entity_too_large").await;
    // JPY has no decimals: "100" is fine.
    let mut yen = base();
    yen["currency"] = json!("JPY");
    yen["total_amount"] = json!("100");
    yen["transactions"]["payments"][0]["amount"] = json!("100");
    let yen = create(&app, yen, 201).await;
    assert_eq!(yen["total_amount"], "100");
    // A taken external_reference.
    let body = base();
    create(&app, body.clone(), 201).await;
    assert_error(create_raw(&app, &body, None).await, 400, "property_value").await;
    let listed = json_of(app.get("/v1/orders?limit=100").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);

    // Paths, bodies and methods.
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    // Notifications carry the id lowercased: it reads the same order.
    let lower = mp(
        &app,
        Method::GET,
        &format!("/v1/orders/{}", id.to_lowercase()),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(json_of(lower).await["id"], id);
    for bad in [
        "nope",
        "ord_123",
        &format!("{id}0"),
        &format!("PAY{}", &id[3..]),
    ] {
        let read = mp(&app, Method::GET, &format!("/v1/orders/{bad}"))
            .send()
            .await
            .unwrap();
        assert_error(read, 400, "invalid_path_param").await;
        assert_error(capture(&app, bad, "k").await, 400, "invalid_path_param").await;
    }
    let with_body = mp(&app, Method::POST, &format!("/v1/orders/{id}/capture"))
        .header("X-Idempotency-Key", "k")
        .json(&json!({"amount": "1.00"}))
        .send()
        .await
        .unwrap();
    assert_error(with_body, 400, "unsupported_properties").await;
    let empty_object = mp(&app, Method::POST, &format!("/v1/orders/{id}/cancel"))
        .json(&json!({"reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_error(empty_object, 400, "unsupported_properties").await;
    assert_eq!(
        status(&get(&app, id).await),
        ("action_required", "waiting_capture")
    );
    let missing = mp(&app, Method::GET, "/v1/payments/1")
        .send()
        .await
        .unwrap();
    assert_error(missing, 404, "not_found").await;
    let process = bodyless(&app, &format!("/v1/orders/{id}/process"), Some("k")).await;
    assert_error(process, 404, "not_found").await;
    let delete = mp(&app, Method::DELETE, &format!("/v1/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_error(delete, 405, "method_not_allowed").await;
    // `{}` and `null` are accepted as empty bodies.
    let ok = mp(&app, Method::POST, &format!("/v1/orders/{id}/capture"))
        .header("X-Idempotency-Key", "k2")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn the_sandbox_fault_header_answers_500_and_writes_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    let path = format!("/v1/orders/{id}/capture");
    for (fault, code) in [
        ("internal_error", "internal_error"),
        (
            "idempotency_validation_failed",
            "idempotency_validation_failed",
        ),
    ] {
        let response = mp(&app, Method::POST, &path)
            .header("X-Idempotency-Key", "fault-key")
            .header("X-Authcap-Sandbox-Fault", fault)
            .header("content-type", "application/json")
            .body("")
            .send()
            .await
            .unwrap();
        assert_error(response, 500, code).await;
        let create = mp(&app, Method::POST, "/v1/orders")
            .header("X-Authcap-Sandbox-Fault", fault)
            .json(&order_json("1.00", "manual", None, "t"))
            .send()
            .await
            .unwrap();
        assert_error(create, 500, code).await;
    }
    let bogus = mp(&app, Method::POST, &path)
        .header("X-Idempotency-Key", "fault-key")
        .header("X-Authcap-Sandbox-Fault", "boom")
        .send()
        .await
        .unwrap();
    assert_error(bogus, 400, "property_value").await;
    // Nothing was written: the order is untouched and the key is still fresh.
    assert_eq!(
        status(&get(&app, id).await),
        ("action_required", "waiting_capture")
    );
    let listed = json_of(app.get("/v1/orders").await).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    let captured = capture(&app, id, "fault-key").await;
    assert_eq!(captured.status(), 200);
    assert!(captured.headers().get("idempotent-replayed").is_none());
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn expired_authorizations_read_expired_and_cannot_be_captured() {
    let Some(app) = TestApp::spawn_with(Config {
        authorization_ttl: Duration::from_millis(300),
        ..Config::default()
    })
    .await
    else {
        return;
    };
    let order = manual_order(&app, None, "t").await;
    let id = order["id"].as_str().unwrap();
    app.advance(Duration::from_millis(400)).await;
    assert_eq!(status(&get(&app, id).await), ("expired", "expired"));
    assert_error(capture(&app, id, "k").await, 409, "cannot_capture_order").await;
    let cancel = bodyless(&app, &format!("/v1/orders/{id}/cancel"), None).await;
    assert_error(cancel, 409, "cannot_cancel_order").await;
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_works_against_authcap() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let base = format!("{}/mercadopago", app.base);
    run_sdk_script(
        "mercadopago_sdk.py",
        &[&base, &app.merchant.mercadopago_access_token],
    )
    .await;
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_node_sdk_works_against_authcap() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let base = format!("{}/mercadopago", app.base);
    run_sdk_script(
        "mercadopago_sdk.js",
        &[&base, &app.merchant.mercadopago_access_token],
    )
    .await;
    app.assert_ledger_consistent().await;
}
