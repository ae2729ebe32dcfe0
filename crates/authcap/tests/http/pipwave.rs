//! The Pipwave dialect: signature, form and JSON bodies, every refusal code, the timestamp
//! window, pw_id vs txn_id, the full-capture fallback, requery, cancel and refund.

use std::time::Duration;

use authcap_api::Config;
use authcap_api::credentials::IssuedCredentials;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::support::*;

const FORM: &str = "application/x-www-form-urlencoded";

/// Pipwave's signature, written independently of the server: ksort, `key:value`, no separator.
fn sign(pairs: &[(&str, &str)], secret: &str) -> String {
    let mut all: Vec<(&str, &str)> = pairs.to_vec();
    all.push(("api_secret", secret));
    all.sort();
    let text: String = all.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    hex::encode(Sha1::digest(text.as_bytes()))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request's fields: `action`, `timestamp` (now, a little earlier for each new request so
/// that no two are signed alike: a signature is used once), `api_key`, the `extra` ones, and a
/// `signature` over all of them.
fn signed(
    merchant: &IssuedCredentials,
    action: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    static SIGNED: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let earlier = SIGNED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 200;
    signed_at(merchant, action, extra, now_secs() - earlier)
}

fn signed_at(
    merchant: &IssuedCredentials,
    action: &str,
    extra: &[(&str, &str)],
    timestamp: i64,
) -> Vec<(String, String)> {
    let timestamp = timestamp.to_string();
    let mut pairs: Vec<(&str, &str)> = vec![
        ("action", action),
        ("timestamp", &timestamp),
        ("api_key", &merchant.pipwave_api_key),
    ];
    pairs.extend_from_slice(extra);
    let signature = sign(&pairs, &merchant.pipwave_api_secret);
    let mut fields: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    fields.push(("signature".into(), signature));
    fields
}

fn encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

fn form_body(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn json_body(fields: &[(String, String)]) -> String {
    let map: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    Value::Object(map).to_string()
}

async fn send_raw(
    app: &TestApp,
    path: &str,
    api_key: Option<&str>,
    content_type: &str,
    body: String,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", content_type)
        .body(body);
    if let Some(key) = api_key {
        request = request.header("x-api-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "application/json");
    (status, response.json().await.unwrap(), headers)
}

/// Posts form data with the merchant's `x-api-key`.
async fn form(app: &TestApp, fields: &[(String, String)]) -> (u16, Value) {
    let (status, body, _) = send_raw(
        app,
        "/pipwave/payment",
        Some(&app.merchant.pipwave_api_key),
        FORM,
        form_body(fields),
    )
    .await;
    (status, body)
}

/// Posts a JSON body labelled as a form, as Pipwave's own PHP code does.
async fn json(app: &TestApp, fields: &[(String, String)]) -> (u16, Value) {
    let (status, body, _) = send_raw(
        app,
        "/pipwave/payment",
        Some(&app.merchant.pipwave_api_key),
        FORM,
        json_body(fields),
    )
    .await;
    (status, body)
}

fn assert_code(got: &(u16, Value), http: u16, status: i64) {
    assert_eq!(got.0, http, "{}", got.1);
    assert_eq!(got.1["status"], status, "{}", got.1);
    assert!(got.1["message"].is_string(), "{}", got.1);
}

fn assert_message_names(got: &(u16, Value), field: &str) {
    let message = got.1["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("`{field}`")),
        "message should name `{field}`: {message}"
    );
}

async fn order_of(app: &TestApp, amount: i64, card: &str) -> (String, String) {
    let order = app.authorized_order(amount, card).await;
    (
        order["id"].as_str().unwrap().to_owned(),
        order["reference"].as_str().unwrap().to_owned(),
    )
}

async fn native_order(app: &TestApp, id: &str) -> Value {
    json_of(app.get(&format!("/v1/orders/{id}")).await).await
}

#[test]
fn worked_example_signature() {
    let pairs = [
        ("timestamp", "1700000000"),
        ("action", "capture-payment"),
        ("api_key", "KEY123"),
        ("pw_id", "PW0001"),
        ("capture_amount", "10.00"),
    ];
    assert_eq!(
        sign(&pairs, "SECRET456"),
        "c9192da595b7495e87b49b57581d12206a2d13bb"
    );
}

#[tokio::test]
async fn capture_in_full_with_form_data_is_the_native_capture() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(&app.merchant, "capture-payment", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&got, 200, 200);
    let body = got.1;
    assert_eq!(body["message"], "OK");
    assert_eq!(body["pw_id"], id.as_str());
    assert_eq!(body["txn_id"], reference.as_str());
    assert_eq!(body["capture_amount"], "10.00");
    assert_eq!(body["currency_code"], "EUR");
    assert_eq!(body["transaction_status"], 10);
    assert_eq!(body["require_capture"], false);
    assert_eq!(body["full_capture_fallback"], false);
    let order = native_order(&app, &id).await;
    assert_eq!(order["status"], "captured");
    assert_eq!(order["captured_amount"], 1000);
    assert_eq!(order["captures"][0]["id"], body["capture_id"]);
    assert_eq!(order["captures"][0]["amount"], 1000);

    // A new timestamp makes it a new request (the same one in the same second is a replay).
    let fields = signed_at(
        &app.merchant,
        "capture-payment",
        &[("pw_id", &id)],
        now_secs() - 1,
    );
    let again = form(&app, &fields).await;
    assert_code(&again, 409, 400);
    assert!(
        again.1["message"]
            .as_str()
            .unwrap()
            .contains("AUTHORISATION")
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn the_worked_example_shape_is_accepted_over_http() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 2000, APPROVE).await;
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &id), ("capture_amount", "10.00")],
        ),
    )
    .await;
    assert_code(&got, 200, 200);
    assert_eq!(got.1["capture_amount"], "10.00");
    // Only payments under AUTHORISATION can be captured: a capture ends the authorization.
    assert_eq!(got.1["require_capture"], false);
    let order = native_order(&app, &id).await;
    assert_eq!(order["released_amount"], 1000);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn json_bodies_under_any_content_type_and_partial_captures() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    // JSON labelled as a form (Pipwave's PHP), amount as a JSON number: signed as its literal.
    let timestamp = now_secs().to_string();
    let key = app.merchant.pipwave_api_key.clone();
    let pairs = [
        ("action", "capture-payment"),
        ("timestamp", timestamp.as_str()),
        ("api_key", key.as_str()),
        ("pw_id", id.as_str()),
        ("capture_amount", "4.50"),
    ];
    let signature = sign(&pairs, &app.merchant.pipwave_api_secret);
    let body = format!(
        r#" {{"action":"capture-payment","timestamp":{timestamp},"api_key":"{key}","pw_id":"{id}","capture_amount":4.50,"signature":"{signature}"}}"#
    );
    let (status, first, _) = send_raw(&app, "/pipwave/payment", Some(&key), FORM, body).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], 200);
    assert_eq!(first["capture_amount"], "4.50");
    assert_eq!(first["transaction_status"], 10);
    assert_eq!(first["require_capture"], false);

    // The same number signed as PHP would print the float (4.5) does not match the literal.
    let pairs_php = [
        ("action", "capture-payment"),
        ("timestamp", timestamp.as_str()),
        ("api_key", key.as_str()),
        ("pw_id", id.as_str()),
        ("capture_amount", "4.5"),
    ];
    let php = sign(&pairs_php, &app.merchant.pipwave_api_secret);
    let body = format!(
        r#"{{"action":"capture-payment","timestamp":{timestamp},"api_key":"{key}","pw_id":"{id}","capture_amount":4.50,"signature":"{php}"}}"#
    );
    let (status, refused, _) = send_raw(&app, "/pipwave/payment", Some(&key), FORM, body).await;
    assert_eq!((status, refused["status"].as_i64()), (401, Some(401)));

    // A second capture is refused: the first ended the authorization.
    let fields = signed(&app.merchant, "capture-payment", &[("txn_id", &reference)]);
    let (status, again, _) = send_raw(
        &app,
        "/pipwave/v1/payment",
        Some(&key),
        "application/json",
        json_body(&fields),
    )
    .await;
    assert_eq!(
        (status, again["status"].as_i64()),
        (409, Some(400)),
        "{again}"
    );

    // JSON with its own content type, by txn_id only: captures everything.
    let (other, other_reference) = order_of(&app, 1000, APPROVE).await;
    let fields = signed(
        &app.merchant,
        "capture-payment",
        &[("txn_id", &other_reference)],
    );
    let (status, rest, _) = send_raw(
        &app,
        "/pipwave/v1/payment",
        Some(&key),
        "application/json",
        json_body(&fields),
    )
    .await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!(rest["capture_amount"], "10.00");
    assert_eq!(rest["require_capture"], false);
    let order = native_order(&app, &id).await;
    assert_eq!(order["captured_amount"], 450);
    assert_eq!(order["released_amount"], 550);
    assert_eq!(order["captures"].as_array().unwrap().len(), 1);
    assert_eq!(native_order(&app, &other).await["captured_amount"], 1000);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn pw_id_and_txn_id() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    let (other_id, other_reference) = order_of(&app, 1000, APPROVE).await;
    let requery = |extra: Vec<(&'static str, String)>| {
        let extra: Vec<(&str, String)> = extra;
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        signed(&app.merchant, "requery", &pairs)
    };
    let by_id = form(&app, &requery(vec![("pw_id", id.clone())])).await;
    assert_code(&by_id, 200, 200);
    assert_eq!(by_id.1["txn_id"], reference.as_str());
    let by_reference = json(&app, &requery(vec![("txn_id", reference.clone())])).await;
    assert_code(&by_reference, 200, 200);
    assert_eq!(by_reference.1["pw_id"], id.as_str());
    let both = form(
        &app,
        &requery(vec![("pw_id", id.clone()), ("txn_id", reference.clone())]),
    )
    .await;
    assert_code(&both, 200, 200);
    // An empty pw_id counts as not sent (and is signed as received: `pw_id:`).
    let empty = form(
        &app,
        &requery(vec![
            ("pw_id", String::new()),
            ("txn_id", reference.clone()),
        ]),
    )
    .await;
    assert_code(&empty, 200, 200);
    assert_eq!(empty.1["pw_id"], id.as_str());

    let mismatch = form(
        &app,
        &requery(vec![("pw_id", id.clone()), ("txn_id", other_reference)]),
    )
    .await;
    assert_code(&mismatch, 400, 9001);
    assert_message_names(&mismatch, "txn_id");
    let neither = form(&app, &requery(vec![])).await;
    assert_code(&neither, 400, 9001);
    assert_message_names(&neither, "pw_id");
    let unknown = form(&app, &requery(vec![("pw_id", "ord_nope".into())])).await;
    assert_code(&unknown, 404, 9001);
    assert_message_names(&unknown, "pw_id");
    let unknown = form(&app, &requery(vec![("txn_id", "nope".into())])).await;
    assert_code(&unknown, 404, 9001);
    assert_message_names(&unknown, "txn_id");

    // Writes with a mismatched pair change nothing.
    let capture = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &other_id), ("txn_id", &reference)],
        ),
    )
    .await;
    assert_code(&capture, 400, 9001);
    assert_eq!(native_order(&app, &other_id).await["captured_amount"], 0);
}

#[tokio::test]
async fn another_merchants_transaction_is_not_found() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    let other = app.new_merchant().await;
    for (action, field, value) in [
        ("capture-payment", "pw_id", &id),
        ("capture-payment", "txn_id", &reference),
        ("requery", "pw_id", &id),
        ("cancel-payment", "pw_id", &id),
        ("refund", "txn_id", &reference),
    ] {
        let fields = signed(&other, action, &[(field, value)]);
        let (status, body, _) = send_raw(
            &app,
            "/pipwave/payment",
            Some(&other.pipwave_api_key),
            FORM,
            form_body(&fields),
        )
        .await;
        assert_eq!(
            (status, body["status"].as_i64()),
            (404, Some(9001)),
            "{body}"
        );
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("no such transaction")
        );
    }
    // The other merchant's key cannot sign for this merchant either.
    let mut fields = signed(&other, "capture-payment", &[("pw_id", &id)]);
    for (k, v) in fields.iter_mut() {
        if k == "api_key" {
            *v = app.merchant.pipwave_api_key.clone();
        }
    }
    assert_code(&form(&app, &fields).await, 401, 401);
    assert_eq!(native_order(&app, &id).await["status"], "authorized");
}

#[tokio::test]
async fn partial_capture_on_a_full_capture_only_method_captures_everything() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, FULL_CAPTURE_ONLY).await;
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &id), ("capture_amount", "3.00")],
        ),
    )
    .await;
    assert_code(&got, 200, 200);
    assert_eq!(got.1["capture_amount"], "10.00");
    assert_eq!(got.1["full_capture_fallback"], true);
    let order = native_order(&app, &id).await;
    assert_eq!(order["status"], "captured");
    assert_eq!(order["captured_amount"], 1000);
    assert_eq!(order["captures"].as_array().unwrap().len(), 1);
    // More than authorized is still refused, not silently captured.
    let (over, _) = order_of(&app, 1000, FULL_CAPTURE_ONLY).await;
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &over), ("capture_amount", "10.01")],
        ),
    )
    .await;
    assert_code(&got, 422, 9001);
    assert_message_names(&got, "capture_amount");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn api_key_refusals() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    let fields = signed(&app.merchant, "requery", &[("pw_id", &id)]);
    let key = app.merchant.pipwave_api_key.clone();
    let send = |header: Option<String>, fields: Vec<(String, String)>| {
        let app = &app;
        async move {
            let (status, body, _) = send_raw(
                app,
                "/pipwave/payment",
                header.as_deref(),
                FORM,
                form_body(&fields),
            )
            .await;
            (status, body)
        }
    };
    assert_code(&send(None, fields.clone()).await, 403, 403);
    assert_code(&send(Some("other".into()), fields.clone()).await, 403, 403);
    assert_code(
        &send(Some(format!("{key}x")), fields.clone()).await,
        403,
        403,
    );
    // Header and body agree but name no merchant.
    let stranger = IssuedCredentials {
        pipwave_api_key: "unknownkey".into(),
        ..app.merchant.clone()
    };
    let unknown = signed(&stranger, "requery", &[("pw_id", &id)]);
    assert_code(&send(Some("unknownkey".into()), unknown).await, 403, 403);
    // No api_key field, or one too long: a parameter error.
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "api_key")
        .cloned()
        .collect();
    let got = send(Some(key.clone()), without).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "api_key");
    let long = "k".repeat(65);
    let too_long = IssuedCredentials {
        pipwave_api_key: long.clone(),
        ..app.merchant.clone()
    };
    let got = send(Some(long), signed(&too_long, "requery", &[("pw_id", &id)])).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "api_key");
    // 64 characters is within the limit: it is looked up (and unknown).
    let longest = "k".repeat(64);
    let at_limit = IssuedCredentials {
        pipwave_api_key: longest.clone(),
        ..app.merchant.clone()
    };
    let got = send(
        Some(longest),
        signed(&at_limit, "requery", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&got, 403, 403);
    assert_code(&send(Some(key), fields).await, 200, 200);
}

#[tokio::test]
async fn amounts_follow_the_currency_of_the_transaction() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let response = app
        .post(
            "/v1/orders",
            json!({
                "reference": unique("ref"), "amount": 1000, "currency": "JPY",
                "payment_method": {"type": "card", "number": APPROVE},
            }),
        )
        .await;
    let id = json_of(response).await["id"].as_str().unwrap().to_owned();
    let capture = |amount: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            form(
                app,
                &signed(
                    &app.merchant,
                    "capture-payment",
                    &[("pw_id", &id), ("capture_amount", amount)],
                ),
            )
            .await
        }
    };
    let got = capture("1.50").await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "capture_amount");
    // Zeros count too: JPY has no decimals to write.
    let got = capture("400.00").await;
    assert_code(&got, 400, 9001);
    let got = capture("400").await;
    assert_code(&got, 200, 200);
    assert_eq!(got.1["capture_amount"], "400");
    assert_eq!(got.1["currency_code"], "JPY");
    assert_eq!(native_order(&app, &id).await["captured_amount"], 400);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn signature_refusals() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    let good = signed(
        &app.merchant,
        "capture-payment",
        &[("pw_id", &id), ("capture_amount", "1.00")],
    );
    let without: Vec<_> = good
        .iter()
        .filter(|(k, _)| k != "signature")
        .cloned()
        .collect();
    assert_code(&form(&app, &without).await, 401, 401);
    let tampered: Vec<_> = good
        .iter()
        .map(|(k, v)| match k.as_str() {
            "capture_amount" => (k.clone(), "9.00".to_owned()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_code(&form(&app, &tampered).await, 401, 401);
    let upper: Vec<_> = good
        .iter()
        .map(|(k, v)| match k.as_str() {
            "signature" => (k.clone(), v.to_uppercase()),
            _ => (k.clone(), v.clone()),
        })
        .collect();
    assert_code(&form(&app, &upper).await, 401, 401);
    let wrong_secret = IssuedCredentials {
        pipwave_api_secret: "not-the-secret".into(),
        ..app.merchant.clone()
    };
    let got = form(
        &app,
        &signed(&wrong_secret, "capture-payment", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&got, 401, 401);
    // `version` is accepted and not signed.
    let mut with_version = good.clone();
    with_version.push(("version".into(), "1.0".into()));
    assert_code(&form(&app, &with_version).await, 200, 200);
    assert_eq!(native_order(&app, &id).await["captured_amount"], 100);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn action_and_parameter_refusals() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(&app.merchant, "initiate-payment", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&got, 404, 404);
    let got = form(&app, &signed(&app.merchant, &"a".repeat(33), &[])).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "action");
    let fields = signed(&app.merchant, "requery", &[("pw_id", &id)]);
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "action")
        .cloned()
        .collect();
    let got = form(&app, &without).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "action");
    let without: Vec<_> = fields
        .iter()
        .filter(|(k, _)| k != "timestamp")
        .cloned()
        .collect();
    let got = form(&app, &without).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "timestamp");
    // A field the action does not take.
    let got = form(
        &app,
        &signed(&app.merchant, "requery", &[("pw_id", &id), ("amount", "1")]),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "amount");
    // A timestamp that is not an integer.
    let mut fields = vec![
        ("action".to_owned(), "requery".to_owned()),
        ("timestamp".to_owned(), "1700000000.5".to_owned()),
        ("api_key".to_owned(), app.merchant.pipwave_api_key.clone()),
        ("pw_id".to_owned(), id.clone()),
    ];
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = sign(&pairs, &app.merchant.pipwave_api_secret);
    fields.push(("signature".into(), signature));
    let got = form(&app, &fields).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "timestamp");

    // Limits: pw_id ≤ 32, txn_id ≤ 255.
    let got = form(
        &app,
        &signed(&app.merchant, "requery", &[("pw_id", &"p".repeat(33))]),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "pw_id");
    let got = form(
        &app,
        &signed(&app.merchant, "requery", &[("txn_id", &"t".repeat(256))]),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "txn_id");
    let got = form(
        &app,
        &signed(&app.merchant, "requery", &[("txn_id", &"t".repeat(255))]),
    )
    .await;
    assert_code(&got, 404, 9001);

    // capture_amount is a decimal(11,2), positive, within the order's currency.
    for bad in [
        "10.001",
        "-1.00",
        "abc",
        "1e3",
        "1234567890.00",
        ".5",
        "5.",
        "1,00",
        " 1",
    ] {
        let got = form(
            &app,
            &signed(
                &app.merchant,
                "capture-payment",
                &[("pw_id", &id), ("capture_amount", bad)],
            ),
        )
        .await;
        assert_code(&got, 400, 9001);
        assert_message_names(&got, "capture_amount");
    }
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &id), ("capture_amount", "0.00")],
        ),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "capture_amount");
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "capture-payment",
            &[("pw_id", &id), ("capture_amount", "999999999.99")],
        ),
    )
    .await;
    assert_code(&got, 422, 9001);
    assert_message_names(&got, "capture_amount");
    assert_eq!(native_order(&app, &id).await["captured_amount"], 0);
}

#[tokio::test]
async fn body_refusals() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let key = app.merchant.pipwave_api_key.clone();
    let send = |body: String| {
        let app = &app;
        let key = key.clone();
        async move {
            let (status, body, _) = send_raw(app, "/pipwave/payment", Some(&key), FORM, body).await;
            (status, body)
        }
    };
    assert_code(&send("{\"action\": ".into()).await, 400, 9001);
    assert_code(
        &send(format!(
            "{{\"api_key\": \"{key}\", \"api_key\": \"{key}\"}}"
        ))
        .await,
        400,
        9001,
    );
    let got = send(format!("{{\"api_key\": \"{key}\", \"action\": true}}")).await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "action");
    assert_code(
        &send(format!("api_key={key}&api_key={key}")).await,
        400,
        9001,
    );
    assert_code(&send("api_key=%zz".into()).await, 400, 9001);
    assert_code(&send(String::new()).await, 400, 9001);
    let huge = format!("api_key={key}&pad={}", "x".repeat(70 * 1024));
    assert_code(&send(huge).await, 413, 9001);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_pipwave_shape() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for path in ["/pipwave/nope", "/pipwave/v2/payment", "/pipwave"] {
        let response = app.client.post(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 404, "{path}");
        let body = json_of(response).await;
        assert_eq!(body["status"], 404);
    }
    let response = app
        .client
        .get(app.url("/pipwave/payment"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(json_of(response).await["status"], 400);
}

/// Sends a requery stamped `offset` seconds from the server's clock (which stands still in
/// tests), so the edge is tested exactly.
async fn requery_at_offset(app: &TestApp, id: &str, offset: i64) -> (u16, Value) {
    let now = app.store.now().millis().div_euclid(1000);
    let fields = signed_at(&app.merchant, "requery", &[("pw_id", id)], now + offset);
    form(app, &fields).await
}

#[tokio::test]
async fn timestamp_window_edges() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    assert_code(&requery_at_offset(&app, &id, -300).await, 200, 200);
    assert_code(&requery_at_offset(&app, &id, 300).await, 200, 200);
    let stale = requery_at_offset(&app, &id, -301).await;
    assert_code(&stale, 400, 9001);
    assert_message_names(&stale, "timestamp");
    assert!(
        stale.1["message"]
            .as_str()
            .unwrap()
            .contains("301 s behind")
    );
    let future = requery_at_offset(&app, &id, 301).await;
    assert_code(&future, 400, 9001);
    assert!(
        future.1["message"]
            .as_str()
            .unwrap()
            .contains("301 s ahead")
    );
    // A stale capture moves nothing.
    let fields = signed_at(
        &app.merchant,
        "capture-payment",
        &[("pw_id", &id)],
        now_secs() - 3600,
    );
    assert_code(&form(&app, &fields).await, 400, 9001);
    assert_eq!(native_order(&app, &id).await["captured_amount"], 0);
}

#[tokio::test]
async fn the_timestamp_window_is_configurable() {
    let Some(app) = TestApp::spawn_with(Config {
        pipwave_timestamp_window: Duration::from_secs(10),
        ..Config::default()
    })
    .await
    else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    assert_code(&requery_at_offset(&app, &id, -10).await, 200, 200);
    assert_code(&requery_at_offset(&app, &id, 10).await, 200, 200);
    assert_code(&requery_at_offset(&app, &id, -11).await, 400, 9001);
    assert_code(&requery_at_offset(&app, &id, 11).await, 400, 9001);
}

#[tokio::test]
async fn a_duplicate_signed_request_replays_the_first_answer() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    let fields = signed(
        &app.merchant,
        "capture-payment",
        &[("pw_id", &id), ("capture_amount", "2.00")],
    );
    let key = app.merchant.pipwave_api_key.clone();
    let (status, first, headers) = send_raw(
        &app,
        "/pipwave/payment",
        Some(&key),
        FORM,
        form_body(&fields),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers.get("idempotent-replayed").is_none());
    // The same request again, even as JSON: the same answer, no second capture.
    let (status, second, headers) = send_raw(
        &app,
        "/pipwave/payment",
        Some(&key),
        FORM,
        json_body(&fields),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(first, second);
    let order = native_order(&app, &id).await;
    assert_eq!(order["captured_amount"], 200);
    assert_eq!(order["captures"].as_array().unwrap().len(), 1);
    // A refusal is replayed too.
    let (declined, _) = order_of(&app, 1000, CAPTURE_DECLINED).await;
    let fields = signed(&app.merchant, "capture-payment", &[("pw_id", &declined)]);
    let first = form(&app, &fields).await;
    assert_code(&first, 402, 400);
    assert_eq!(form(&app, &fields).await, first);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn capture_refusals() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let capture = |id: String| {
        let app = &app;
        async move {
            form(
                app,
                &signed(&app.merchant, "capture-payment", &[("pw_id", &id)]),
            )
            .await
        }
    };
    let (declined_capture, _) = order_of(&app, 1000, CAPTURE_DECLINED).await;
    let got = capture(declined_capture.clone()).await;
    assert_code(&got, 402, 400);
    assert!(got.1["message"].as_str().unwrap().contains("declined"));
    // A declined authorization is not under AUTHORISATION.
    let response = app
        .post("/v1/orders", order_body(&unique("ref"), 1000, DECLINE))
        .await;
    let declined = json_of(response).await["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_code(&capture(declined.clone()).await, 409, 400);
    // Nor is a cancelled one.
    let (voided, _) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(&app.merchant, "cancel-payment", &[("pw_id", &voided)]),
    )
    .await;
    assert_code(&got, 200, 200);
    assert_code(&capture(voided).await, 409, 400);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn requery_reports_pipwave_status_codes() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let requery = |id: String| {
        let app = &app;
        async move {
            let got = form(app, &signed(&app.merchant, "requery", &[("pw_id", &id)])).await;
            assert_code(&got, 200, 200);
            got.1
        }
    };
    let response = app
        .post(
            "/v1/orders",
            json!({
                "reference": unique("ref"), "amount": 1000, "surcharge": 50, "currency": "EUR",
                "payment_method": {"type": "card", "number": APPROVE},
            }),
        )
        .await;
    let id = json_of(response).await["id"].as_str().unwrap().to_owned();
    let body = requery(id.clone()).await;
    assert_eq!(body["transaction_status"], 5);
    assert_eq!(body["require_capture"], true);
    assert_eq!(body["amount"], "10.00");
    assert_eq!(body["processing_fee_amount"], "0.50");
    assert_eq!(body["total_amount"], "10.50");
    assert_eq!(body["capturable_amount"], "10.50");
    assert_eq!(body["currency_code"], "EUR");
    assert_eq!(body["api_key"], app.merchant.pipwave_api_key.as_str());

    let cap = |amount: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            form(
                app,
                &signed(
                    &app.merchant,
                    "capture-payment",
                    &[("pw_id", &id), ("capture_amount", amount)],
                ),
            )
            .await
        }
    };
    assert_code(&cap("10.50").await, 200, 200);
    let body = requery(id.clone()).await;
    assert_eq!(body["transaction_status"], 10);
    assert_eq!(body["require_capture"], false);
    assert_eq!(body["captured_amount"], "10.50");
    assert_eq!(body["final_amount"], "10.50");
    assert_code(&cap("0.50").await, 409, 400);

    let refund = |amount: &'static str| {
        let app = &app;
        let id = id.clone();
        async move {
            form(
                app,
                &signed(
                    &app.merchant,
                    "refund",
                    &[("pw_id", &id), ("refund_amount", amount)],
                ),
            )
            .await
        }
    };
    assert_code(&refund("1.00").await, 200, 200);
    let body = requery(id.clone()).await;
    assert_eq!(body["transaction_status"], 25);
    assert_eq!(body["final_amount"], "9.50");
    assert_code(&refund("9.50").await, 200, 200);
    assert_eq!(requery(id.clone()).await["transaction_status"], 20);

    let (voided, _) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(&app.merchant, "cancel-payment", &[("pw_id", &voided)]),
    )
    .await;
    assert_code(&got, 200, 200);
    assert_eq!(requery(voided).await["transaction_status"], 2);
    let response = app
        .post("/v1/orders", order_body(&unique("ref"), 1000, DECLINE))
        .await;
    let declined = json_of(response).await["order"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = requery(declined).await;
    assert_eq!(body["transaction_status"], 1);
    assert_eq!(body["require_capture"], false);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn cancel_payment_voids_the_authorization() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "cancel-payment",
            &[("pw_id", &id), ("reason", &"r".repeat(33))],
        ),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "reason");
    let got = form(
        &app,
        &signed(
            &app.merchant,
            "cancel-payment",
            &[("txn_id", &reference), ("ref_tag", &"t".repeat(33))],
        ),
    )
    .await;
    assert_code(&got, 400, 9001);
    assert_message_names(&got, "ref_tag");
    let got = json(
        &app,
        &signed(
            &app.merchant,
            "cancel-payment",
            &[
                ("txn_id", &reference),
                ("reason", "Buyer cancelled"),
                ("ref_tag", "A12131415"),
            ],
        ),
    )
    .await;
    assert_code(&got, 200, 200);
    assert_eq!(got.1["transaction_status"], 2);
    assert_eq!(got.1["pw_id"], id.as_str());
    assert_eq!(native_order(&app, &id).await["status"], "voided");
    let again = form(
        &app,
        &signed(&app.merchant, "cancel-payment", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&again, 409, 400);
    // A captured transaction cannot be cancelled.
    let (captured, _) = order_of(&app, 1000, APPROVE).await;
    let got = form(
        &app,
        &signed(&app.merchant, "capture-payment", &[("pw_id", &captured)]),
    )
    .await;
    assert_code(&got, 200, 200);
    let got = form(
        &app,
        &signed(&app.merchant, "cancel-payment", &[("pw_id", &captured)]),
    )
    .await;
    assert_code(&got, 409, 400);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn refund_codes() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, _) = order_of(&app, 1000, APPROVE).await;
    let refund = |extra: Vec<(&'static str, &'static str)>| {
        let app = &app;
        let id = id.clone();
        async move {
            let mut pairs: Vec<(&str, &str)> = vec![("pw_id", &id)];
            pairs.extend(extra);
            form(app, &signed(&app.merchant, "refund", &pairs)).await
        }
    };
    // Nothing captured yet: 4002.
    assert_code(&refund(vec![("op", "submit")]).await, 409, 4002);
    let initiate = refund(vec![("op", "initiate")]).await;
    assert_code(&initiate, 200, 200);
    assert_eq!(initiate.1["supports_refund"], false);

    let got = form(
        &app,
        &signed(&app.merchant, "capture-payment", &[("pw_id", &id)]),
    )
    .await;
    assert_code(&got, 200, 200);
    let initiate = refund(vec![("op", "initiate"), ("refund_amount", "3.00")]).await;
    assert_code(&initiate, 200, 200);
    assert_eq!(initiate.1["supports_refund"], true);
    assert_eq!(initiate.1["supports_partial_refund"], true);
    assert_eq!(initiate.1["refundable_amount"], "10.00");
    assert_eq!(native_order(&app, &id).await["refunded_amount"], 0);

    let bad_op = refund(vec![("op", "cancel")]).await;
    assert_code(&bad_op, 400, 9001);
    assert_message_names(&bad_op, "op");
    let bad = refund(vec![("refund_amount", "1.234")]).await;
    assert_code(&bad, 400, 9001);
    assert_message_names(&bad, "refund_amount");
    let too_much = refund(vec![("op", "submit"), ("refund_amount", "10.01")]).await;
    assert_code(&too_much, 422, 4003);

    let partial = refund(vec![
        ("op", "submit"),
        ("refund_amount", "3.00"),
        ("extra_param", "{}"),
    ])
    .await;
    assert_code(&partial, 200, 200);
    assert!(
        partial.1["reverse_pw_id"]
            .as_str()
            .unwrap()
            .starts_with("ref_")
    );
    assert_eq!(partial.1["refund_amount"], "3.00");
    assert_eq!(partial.1["refund_status"], 10);
    assert_eq!(partial.1["transaction_status"], 25);
    let rest = refund(vec![]).await;
    assert_code(&rest, 200, 200);
    assert_eq!(rest.1["refund_amount"], "7.00");
    assert_eq!(rest.1["transaction_status"], 20);
    assert_code(&refund(vec![("refund_amount", "1.00")]).await, 409, 4001);
    let order = native_order(&app, &id).await;
    assert_eq!(order["status"], "refunded");
    assert_eq!(order["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(order["refunds"][0]["id"], partial.1["reverse_pw_id"]);
    app.assert_ledger_consistent().await;
}

/// The fields of `fields` with `field` set to `value` (or removed when `None`), the signature
/// kept as it was.
fn resigned_not(
    fields: &[(String, String)],
    field: &str,
    value: Option<&str>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> =
        fields.iter().filter(|(k, _)| k != field).cloned().collect();
    if let Some(value) = value {
        out.push((field.to_owned(), value.to_owned()));
    }
    out
}

#[tokio::test]
async fn a_signature_cannot_be_repartitioned_into_a_refund() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for as_json in [false, true] {
        let send = |fields: Vec<(String, String)>| {
            let app = &app;
            async move {
                if as_json {
                    json(app, &fields).await
                } else {
                    form(app, &fields).await
                }
            }
        };
        let (id, _) = order_of(&app, 1000, APPROVE).await;
        let captured = form(
            &app,
            &signed(&app.merchant, "capture-payment", &[("pw_id", &id)]),
        )
        .await;
        assert_code(&captured, 200, 200);
        // A read-only refund report, as a merchant's back office would send it.
        let initiate = signed(
            &app.merchant,
            "refund",
            &[("pw_id", &id), ("op", "initiate"), ("extra_param", "note")],
        );
        let report = send(initiate.clone()).await;
        assert_code(&report, 200, 200);
        assert_eq!(report.1["refundable_amount"], "10.00");
        // The same signed text split differently: `op:initiate` moved into extra_param, no op
        // (which would default to a refund).
        let forged = resigned_not(
            &resigned_not(&initiate, "op", None),
            "extra_param",
            Some("noteop:initiate"),
        );
        let refused = send(forged).await;
        assert!((400..500).contains(&refused.0), "{}", refused.1);
        assert_ne!(refused.1["status"], 200, "{}", refused.1);
        let order = native_order(&app, &id).await;
        assert_eq!(order["refunded_amount"], 0, "nothing was refunded");
        // The identical report again replays its first answer.
        let again = send(initiate.clone()).await;
        assert_eq!(again, report);
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn every_signature_is_used_once_whatever_the_action() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let (id, reference) = order_of(&app, 1000, APPROVE).await;
    // A requery's signature cannot be replayed with other fields, even in another action's
    // clothes: same text, other partition or other content is refused.
    let requery = signed(&app.merchant, "requery", &[("pw_id", &id)]);
    assert_code(&form(&app, &requery).await, 200, 200);
    let with_txn = resigned_not(&requery, "txn_id", Some(&reference));
    let reused = form(&app, &with_txn).await;
    assert_eq!(
        reused.0, 401,
        "the signature does not cover txn_id: {}",
        reused.1
    );
    // An identical request, whatever the field order or the body's format, is the same request.
    let mut reordered = requery.clone();
    reordered.reverse();
    assert_code(&json(&app, &reordered).await, 200, 200);
    // A refusal also uses its signature: the same fields again get the same refusal.
    let too_much = signed(
        &app.merchant,
        "capture-payment",
        &[("pw_id", &id), ("capture_amount", "99.00")],
    );
    let first = form(&app, &too_much).await;
    assert_code(&first, 422, 9001);
    assert_eq!(form(&app, &too_much).await, first);
    // A value that holds another field's `name:` is ambiguous and refused, and its signature
    // is spent: the partition it hides cannot be sent after it.
    let hiding = signed(
        &app.merchant,
        "refund",
        &[
            ("pw_id", &id),
            ("op", "initiate"),
            ("extra_param", "xrefund_amount:1.00"),
        ],
    );
    let ambiguous = form(&app, &hiding).await;
    assert_code(&ambiguous, 400, 9001);
    assert_message_names(&ambiguous, "extra_param");
    let split = resigned_not(
        &resigned_not(&hiding, "extra_param", Some("x")),
        "refund_amount",
        Some("1.00"),
    );
    let refused = form(&app, &split).await;
    assert_ne!(refused.0, 200, "{}", refused.1);
    // Empty values are signed as present (`pw_id:`): leaving one out changes the text.
    let (other, _) = order_of(&app, 1000, APPROVE).await;
    let empty_txn = signed(
        &app.merchant,
        "requery",
        &[("pw_id", &other), ("txn_id", "")],
    );
    assert_code(&form(&app, &empty_txn).await, 200, 200);
    let dropped = resigned_not(&empty_txn, "txn_id", None);
    assert_eq!(form(&app, &dropped).await.0, 401);
    assert_eq!(native_order(&app, &id).await["refunded_amount"], 0);
    app.assert_ledger_consistent().await;
}
