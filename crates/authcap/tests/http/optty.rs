//! The Optty Merchant API dialect: token flow and every bad token, orders, the capture schema,
//! the sum rule with surcharge, references as idempotency keys, void, refund, isolation.

use authcap_api::credentials::IssuedCredentials;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use super::support::*;

/// Form fields, expected status, a word of the expected message.
type TokenCase<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str);

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn token_request(app: &TestApp, body: String) -> Response {
    app.client
        .post(app.url("/optty/token?expires_in=1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn token_for(app: &TestApp, merchant: &IssuedCredentials) -> String {
    let response = token_request(
        app,
        form(&[
            ("client_id", &merchant.optty_client_id),
            ("client_secret", &merchant.optty_client_secret),
            ("grant_type", "client_credentials"),
            ("scope", "api-user"),
        ]),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    body["access_token"].as_str().unwrap().to_owned()
}

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(&format!("/optty{path}")))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.unwrap()
}

async fn raw(app: &TestApp, token: &str, path: &str, body: &str) -> Response {
    app.client
        .post(app.url(&format!("/optty{path}")))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn order_body(reference: &str, amount: Value) -> Value {
    json!({
        "orderReference": reference,
        "bnplProvider": "KLARNA",
        "purchaseCountry": "AU",
        "purchaseCurrency": "AUD",
        "locale": "en_AU",
        "orderAmount": amount,
        "customer": {"firstName": "Jane", "lastName": "Doe", "email": "jane@example.com",
                     "phoneNumber": "+61400000000"},
        "billingAddress": {"line1": "1 George St"},
        "redirectUrls": {"success": "https://shop.example/ok"},
    })
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let response = call(app, token, Method::POST, "/orders", Some(body)).await;
    assert_eq!(response.status(), 201);
    json_of(response).await
}

async fn order(app: &TestApp, token: &str, reference: &str) -> Value {
    let response = call(
        app,
        token,
        Method::GET,
        &format!("/orders/{reference}"),
        None,
    )
    .await;
    assert_eq!(response.status(), 200);
    json_of(response).await
}

async fn expect_error(response: Response, status: u16, needle: &str) -> Value {
    assert_eq!(response.status(), status);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body = json_of(response).await;
    assert_eq!(body["statusCode"], status, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(needle), "`{message}` lacks `{needle}`");
    body
}

fn b64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(merchant: &str, scope: &str, exp: i64) -> Value {
    json!({"sub": merchant, "scope": scope, "iat": now_secs(), "exp": exp,
           "iss": "authcap-optty", "aud": "optty-merchant-api"})
}

fn sign(alg: Algorithm, key: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn token_flow_and_every_bad_token() {
    // Dozens of bad tokens from one address: more than the failed-authentication limit.
    let Some(app) = TestApp::spawn_with(authcap_api::Config {
        failed_authentications_per_minute: 1_000,
        ..authcap_api::Config::default()
    })
    .await
    else {
        return;
    };
    let other = app.new_merchant().await;
    let response = token_request(
        &app,
        form(&[
            ("client_id", &app.merchant.optty_client_id),
            ("client_secret", &app.merchant.optty_client_secret),
            ("grant_type", "client_credentials"),
            ("scope", "api-user"),
        ]),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = json_of(response).await;
    assert_eq!(body["expires_in"], 86400);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "api-user");
    let good = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(good.split('.').count(), 3);
    // A valid token reaches the API: an unknown order is a 404, not a 401.
    expect_error(
        call(&app, &good, Method::GET, "/orders/nope", None).await,
        404,
        "nope",
    )
    .await;

    // JSON bodies are accepted too; scope may be omitted.
    let json_token = app
        .client
        .post(app.url("/optty/token"))
        .json(&json!({"client_id": app.merchant.optty_client_id,
                      "client_secret": app.merchant.optty_client_secret,
                      "grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_token.status(), 200);

    // Bad token requests.
    let id = app.merchant.optty_client_id.as_str();
    let secret = app.merchant.optty_client_secret.as_str();
    let cases: Vec<TokenCase> = vec![
        (
            vec![
                ("client_id", id),
                ("client_secret", "wrong"),
                ("grant_type", "client_credentials"),
            ],
            401,
            "invalid client",
        ),
        (
            vec![
                ("client_id", "wrong"),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
            ],
            401,
            "invalid client",
        ),
        (
            vec![
                ("client_id", id),
                ("client_secret", &other.optty_client_secret),
                ("grant_type", "client_credentials"),
            ],
            401,
            "invalid client",
        ),
        (
            vec![
                ("client_id", secret),
                ("client_secret", id),
                ("grant_type", "client_credentials"),
            ],
            401,
            "invalid client",
        ),
        (
            vec![("client_id", id), ("client_secret", secret)],
            400,
            "grant_type",
        ),
        (
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "password"),
            ],
            400,
            "grant_type",
        ),
        (
            vec![
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
                ("scope", "merchant"),
            ],
            400,
            "scope",
        ),
        (
            vec![
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
            ],
            400,
            "client_id",
        ),
        (
            vec![("client_id", id), ("grant_type", "client_credentials")],
            400,
            "client_secret",
        ),
        (
            vec![
                ("client_id", id),
                ("client_id", id),
                ("client_secret", secret),
                ("grant_type", "client_credentials"),
            ],
            400,
            "more than once",
        ),
    ];
    for (pairs, status, needle) in cases {
        let body = expect_error(token_request(&app, form(&pairs)).await, status, needle).await;
        assert!(body.get("access_token").is_none());
    }

    // Bad bearer tokens on every endpoint kind.
    let key = app.server_secret.derive("optty-jwt");
    let merchant = app.merchant.merchant_id.as_str();
    let header_none = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(claims(merchant, "api-user", now_secs() + 600)
        .to_string()
        .as_bytes());
    let mut no_exp = claims(merchant, "api-user", 0);
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut wrong_issuer = claims(merchant, "api-user", now_secs() + 600);
    wrong_issuer["iss"] = json!("someone-else");
    let tampered = {
        let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
        parts[1] = b64(claims(&other.merchant_id, "api-user", now_secs() + 600)
            .to_string()
            .as_bytes());
        parts.join(".")
    };
    let bad_tokens: Vec<(String, &str)> = vec![
        ("garbage".into(), "invalid"),
        ("a.b.c".into(), "invalid"),
        (
            sign(
                Algorithm::HS256,
                &key,
                &claims(merchant, "api-user", now_secs() - 10),
            ),
            "expired",
        ),
        (
            sign(
                Algorithm::HS256,
                b"not the server key",
                &claims(merchant, "api-user", now_secs() + 600),
            ),
            "signature",
        ),
        (tampered, "signature"),
        (format!("{header_none}.{payload}."), "invalid"),
        (format!("{header_none}.{payload}"), "invalid"),
        (
            sign(
                Algorithm::HS512,
                &key,
                &claims(merchant, "api-user", now_secs() + 600),
            ),
            "HS256",
        ),
        (
            sign(
                Algorithm::HS256,
                &key,
                &claims(merchant, "merchant", now_secs() + 600),
            ),
            "scope",
        ),
        (
            sign(
                Algorithm::HS256,
                &key,
                &claims(merchant, "", now_secs() + 600),
            ),
            "scope",
        ),
        (sign(Algorithm::HS256, &key, &no_exp), "invalid"),
        (sign(Algorithm::HS256, &key, &wrong_issuer), "invalid"),
    ];
    for (token, needle) in &bad_tokens {
        for (method, path) in [
            (Method::GET, "/orders/x"),
            (Method::POST, "/orders"),
            (Method::POST, "/orders/x/capture"),
            (Method::POST, "/orders/x/void"),
            (Method::POST, "/orders/x/refund"),
        ] {
            let response = call(&app, token, method, path, Some(json!({}))).await;
            let body = expect_error(response, 401, needle).await;
            assert_eq!(body["error"], "Unauthorized");
        }
    }
    // A correctly signed, unexpired, api-user token made by hand works.
    let handmade = sign(
        Algorithm::HS256,
        &key,
        &claims(merchant, "api-user", now_secs() + 60),
    );
    expect_error(
        call(&app, &handmade, Method::GET, "/orders/x", None).await,
        404,
        "x",
    )
    .await;
    // Missing or non-bearer Authorization.
    let missing = app
        .client
        .get(app.url("/optty/orders/x"))
        .send()
        .await
        .unwrap();
    expect_error(missing, 401, "Bearer").await;
    let basic = app
        .client
        .get(app.url("/optty/orders/x"))
        .header("authorization", format!("Basic {good}"))
        .send()
        .await
        .unwrap();
    expect_error(basic, 401, "Bearer").await;
    // The native secret key is not an Optty token.
    let native = app
        .client
        .get(app.url("/optty/orders/x"))
        .bearer_auth(&app.merchant.secret_key)
        .send()
        .await
        .unwrap();
    expect_error(native, 401, "invalid").await;
}

#[tokio::test]
async fn create_read_capture_with_surcharge_and_sum_rule() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    let mut body = order_body("ORD-1", json!(100.00));
    body["surcharge"] = json!(5.5);
    body["taxAmount"] = json!(9.09);
    body["shippingAmount"] = json!(10);
    body["discountAmount"] = json!(4.09);
    body["orderItems"] = json!([
        {"name": "Shirt", "sku": "SH-1", "quantity": 2, "unitPrice": 30, "totalAmount": 60},
        {"name": "Hat", "sku": 77, "quantity": 1, "unitPrice": 25.00, "totalAmount": 25.00},
    ]);
    let created = create(&app, &token, body).await;
    assert!(created["orderId"].as_str().unwrap().starts_with("ord_"));
    assert!(created["orderToken"].as_str().unwrap().starts_with("otk_"));
    assert_eq!(created["orderReference"], "ORD-1");
    assert_eq!(created["bnplProvider"], "KLARNA");
    assert_eq!(created["status"], "SUCCESSFUL");
    assert_eq!(created["captureStatus"], "NOT_CAPTURED");
    assert_eq!(created["redirectUrl"], Value::Null);

    let read = order(&app, &token, "ORD-1").await;
    for field in [
        "merchantReference",
        "status",
        "amount",
        "surcharge",
        "currency",
        "provider",
        "updatedAt",
        "failureReason",
        "bnplOrderId",
        "transactionReference",
        "rejectReason",
        "partnerConfiguration",
        "cancelledBy",
        "captureStatus",
    ] {
        assert!(read.get(field).is_some(), "GET lacks {field}");
    }
    assert_eq!(read["merchantReference"], "ORD-1");
    assert_eq!(read["amount"], json!(100));
    assert_eq!(read["surcharge"], json!(5.5));
    assert_eq!(read["currency"], "AUD");
    assert_eq!(read["provider"], "KLARNA");
    assert_eq!(read["transactionReference"], created["orderId"]);
    assert_eq!(read["cancelledBy"], Value::Null);

    // 60 + 45.50 = amount + surcharge; one cent more is refused.
    let first = call(
        &app,
        &token,
        Method::POST,
        "/orders/ORD-1/capture",
        Some(
            json!({"captureReference": "cap-1", "amount": 60, "description": "first box",
                    "shippingInfo": {"shippingCompany": "DHL", "shippingMethod": "Express",
                                     "trackingNumber": "JD01"}}),
        ),
    )
    .await;
    assert_eq!(first.status(), 200);
    let text = first.text().await.unwrap();
    let first: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(first["captureReference"], "cap-1");
    assert!(first["captureId"].as_str().unwrap().starts_with("cap_"));
    assert!(text.contains(r#""capturedAmount":60"#), "{text}");
    assert_eq!(
        order(&app, &token, "ORD-1").await["captureStatus"],
        "PARTIALLY_CAPTURED"
    );

    let over = raw(
        &app,
        &token,
        "/orders/ORD-1/capture",
        r#"{"captureReference":"cap-2","amount":45.51}"#,
    )
    .await;
    expect_error(over, 400, "45.50 AUD").await;
    let rest = raw(
        &app,
        &token,
        "/orders/ORD-1/capture",
        r#"{"captureReference":"cap-3","amount":45.50}"#,
    )
    .await;
    assert_eq!(rest.status(), 200);
    let rest_text = rest.text().await.unwrap();
    assert!(
        rest_text.contains(r#""capturedAmount":45.5"#),
        "{rest_text}"
    );
    let none_left = raw(
        &app,
        &token,
        "/orders/ORD-1/capture",
        r#"{"captureReference":"cap-4","amount":0.01}"#,
    )
    .await;
    expect_error(none_left, 400, "cannot be captured").await;

    let read = order(&app, &token, "ORD-1").await;
    assert_eq!(read["captureStatus"], "CAPTURED");
    assert_eq!(read["status"], "SUCCESSFUL");
    assert_eq!(read["capturedAmount"], json!(105.5));

    // The native API sees the same order and captures.
    let id = created["orderId"].as_str().unwrap();
    let native = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(native["reference"], "ORD-1");
    assert_eq!(native["amount"], 10000);
    assert_eq!(native["surcharge"], 550);
    assert_eq!(native["captured_amount"], 10550);
    assert_eq!(native["captures"][0]["reference"], "cap-1");
    assert_eq!(native["captures"][0]["shipping"]["carrier"], "DHL");
    assert_eq!(native["captures"][0]["shipping"]["tracking_code"], "JD01");
    assert_eq!(native["captures"][0]["description"], "first box");
    assert_eq!(native["capture_mode"], "manual");
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn capture_body_follows_the_schema() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    create(&app, &token, order_body("ORD-S", json!(50))).await;
    let mut jpy = order_body("ORD-JPY", json!(5000));
    jpy["purchaseCurrency"] = json!("JPY");
    create(&app, &token, jpy).await;

    let cases: &[(&str, &str)] = &[
        ("", "body is required"),
        ("{", "not valid JSON"),
        ("[]", "JSON object"),
        (r#"["r", null, 1, null]"#, "JSON object"),
        ("7", "JSON object"),
        (r#"{"amount": 1}"#, "captureReference"),
        (r#"{"captureReference": "r"}"#, "amount"),
        (
            r#"{"captureReference": 5, "amount": 1}"#,
            "captureReference",
        ),
        (
            r#"{"captureReference": "", "amount": 1}"#,
            "captureReference",
        ),
        (
            r#"{"captureReference": null, "amount": 1}"#,
            "captureReference",
        ),
        (
            r#"{"captureReference": "r", "amount": "1"}"#,
            "`amount` must be a number",
        ),
        (
            r#"{"captureReference": "r", "amount": null}"#,
            "`amount` must be a number",
        ),
        (
            r#"{"captureReference": "r", "amount": true}"#,
            "`amount` must be a number",
        ),
        (
            r#"{"captureReference": "r", "amount": {}}"#,
            "`amount` must be a number",
        ),
        (
            r#"{"captureReference": "r", "amount": -1}"#,
            "`amount` must not be less than 0",
        ),
        (
            r#"{"captureReference": "r", "amount": 1.001}"#,
            "`amount` must have at most 2 decimal places",
        ),
        (
            r#"{"captureReference": "r", "amount": 1e-3}"#,
            "`amount` must have at most 2 decimal places",
        ),
        (
            r#"{"captureReference": "r", "amount": 0}"#,
            "`amount` must be greater than 0",
        ),
        (
            r#"{"captureReference": "r", "amount": 0.00}"#,
            "`amount` must be greater than 0",
        ),
        (
            r#"{"captureReference": "r", "amount": 1e30}"#,
            "`amount` is too large",
        ),
        (
            r#"{"captureReference": "r", "amount": 99999999999999999999}"#,
            "`amount` is too large",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "memo": "x"}"#,
            "unknown field `memo`",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "description": 3}"#,
            "description",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": "DHL"}"#,
            "shippingInfo",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": {}}"#,
            "shippingCompany",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": {"shippingCompany": "DHL", "shippingMethod": "x"}}"#,
            "trackingNumber",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": {"shippingCompany": "DHL", "trackingNumber": "x"}}"#,
            "shippingMethod",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": {"shippingCompany": "DHL", "shippingMethod": "x", "trackingNumber": ""}}"#,
            "shippingInfo.trackingNumber",
        ),
        (
            r#"{"captureReference": "r", "amount": 1, "shippingInfo": {"shippingCompany": "DHL", "shippingMethod": "x", "trackingNumber": "t", "eta": 1}}"#,
            "eta",
        ),
    ];
    for (body, needle) in cases {
        expect_error(
            raw(&app, &token, "/orders/ORD-S/capture", body).await,
            400,
            needle,
        )
        .await;
    }
    let long = "x".repeat(101);
    let too_long = json!({"captureReference": long, "amount": 1});
    expect_error(
        call(
            &app,
            &token,
            Method::POST,
            "/orders/ORD-S/capture",
            Some(too_long),
        )
        .await,
        400,
        "captureReference",
    )
    .await;
    let long_description =
        json!({"captureReference": "r", "amount": 1, "description": "d".repeat(256)});
    expect_error(
        call(
            &app,
            &token,
            Method::POST,
            "/orders/ORD-S/capture",
            Some(long_description),
        )
        .await,
        400,
        "description",
    )
    .await;
    let huge = format!(
        r#"{{"captureReference":"r","amount":1,"description":"{}"}}"#,
        "d".repeat(70_000)
    );
    expect_error(
        raw(&app, &token, "/orders/ORD-S/capture", &huge).await,
        413,
        "too large",
    )
    .await;
    // JPY has no decimals.
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-JPY/capture",
            r#"{"captureReference":"r","amount":10.5}"#,
        )
        .await,
        400,
        "at most 0 decimal places",
    )
    .await;
    // Nothing was captured by any of them.
    assert_eq!(
        order(&app, &token, "ORD-S").await["capturedAmount"],
        json!(0)
    );

    // Accepted forms: integer, trailing zeros, exponent, minimal shippingInfo.
    for (reference, amount, expected) in [
        ("a", "1", "1"),
        ("b", "1.50", "1.5"),
        ("c", "2.5e1", "25"),
        ("d", "0.01", "0.01"),
    ] {
        let body = format!(
            r#"{{"captureReference":"{reference}","amount":{amount},"shippingInfo":{{"shippingCompany":"UPS","shippingMethod":"Ground","trackingNumber":"1Z"}}}}"#
        );
        let response = raw(&app, &token, "/orders/ORD-S/capture", &body).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert!(
            text.contains(&format!(r#""capturedAmount":{expected}"#)),
            "{text}"
        );
    }
    let yen = raw(
        &app,
        &token,
        "/orders/ORD-JPY/capture",
        r#"{"captureReference":"y","amount":1000}"#,
    )
    .await;
    assert!(
        yen.text()
            .await
            .unwrap()
            .contains(r#""capturedAmount":1000"#)
    );
    assert_eq!(
        order(&app, &token, "ORD-S").await["capturedAmount"],
        json!(27.51)
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn references_replay_or_are_refused() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    let created = create(&app, &token, order_body("ORD-R", json!(100))).await;
    create(&app, &token, order_body("ORD-R2", json!(100))).await;

    // Order reference: same body replays, another body is refused.
    let again = call(
        &app,
        &token,
        Method::POST,
        "/orders",
        Some(order_body("ORD-R", json!(100))),
    )
    .await;
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(again).await["orderId"], created["orderId"]);
    let other = call(
        &app,
        &token,
        Method::POST,
        "/orders",
        Some(order_body("ORD-R", json!(99))),
    )
    .await;
    expect_error(other, 400, "orderReference").await;
    // A reference taken by a native order.
    let native = app
        .post(
            "/v1/orders",
            json!({"reference": "NATIVE-1", "amount": 1000, "currency": "AUD",
                                   "payment_method": {"type": "card", "number": APPROVE}}),
        )
        .await;
    assert_eq!(native.status(), 201);
    let taken = call(
        &app,
        &token,
        Method::POST,
        "/orders",
        Some(order_body("NATIVE-1", json!(10))),
    )
    .await;
    expect_error(taken, 400, "orderReference").await;

    // Capture reference.
    let body = r#"{"captureReference":"c1","amount":10,"description":"d"}"#;
    let first = raw(&app, &token, "/orders/ORD-R/capture", body).await;
    assert_eq!(first.status(), 200);
    let first = first.bytes().await.unwrap();
    let replay = raw(
        &app,
        &token,
        "/orders/ORD-R/capture",
        r#"{"amount":10.00,"description":"d","captureReference":"c1"}"#,
    )
    .await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), first);
    let changed = raw(
        &app,
        &token,
        "/orders/ORD-R/capture",
        r#"{"captureReference":"c1","amount":11,"description":"d"}"#,
    )
    .await;
    expect_error(changed, 400, "`captureReference` was already used").await;
    // Unique per transaction: another order may use the same captureReference.
    assert_eq!(
        raw(&app, &token, "/orders/ORD-R2/capture", body)
            .await
            .status(),
        200
    );
    // A refusal leaves the reference free: the corrected retry goes through.
    let refused = r#"{"captureReference":"c-over","amount":1000}"#;
    expect_error(
        raw(&app, &token, "/orders/ORD-R/capture", refused).await,
        400,
        "exceeds",
    )
    .await;
    let refused_again = raw(&app, &token, "/orders/ORD-R/capture", refused).await;
    assert!(refused_again.headers().get("idempotent-replayed").is_none());
    expect_error(refused_again, 400, "exceeds").await;
    let corrected = r#"{"captureReference":"c-over","amount":1}"#;
    assert_eq!(
        raw(&app, &token, "/orders/ORD-R/capture", corrected)
            .await
            .status(),
        200
    );
    // A capture reference set through the native API.
    let id = created["orderId"].as_str().unwrap();
    assert_eq!(
        app.post(
            &format!("/v1/orders/{id}/captures"),
            json!({"amount": 100, "reference": "n1"})
        )
        .await
        .status(),
        201
    );
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-R/capture",
            r#"{"captureReference":"n1","amount":1}"#,
        )
        .await,
        400,
        "already used on this order",
    )
    .await;

    // Void reference: unique per merchant.
    let void = r#"{"voidReference":"v1","amount":5}"#;
    let voided = raw(&app, &token, "/orders/ORD-R/void", void).await;
    assert_eq!(voided.status(), 200);
    let voided = voided.bytes().await.unwrap();
    let replay = raw(&app, &token, "/orders/ORD-R/void", void).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), voided);
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-R/void",
            r#"{"voidReference":"v1","amount":6}"#,
        )
        .await,
        400,
        "`voidReference` was already used",
    )
    .await;
    expect_error(
        raw(&app, &token, "/orders/ORD-R2/void", void).await,
        400,
        "`voidReference` was already used",
    )
    .await;

    // Refund reference.
    let refund = r#"{"refundReference":"rf1","refundAmount":{"amount":3,"currency":"AUD"},"refundDescription":"dent"}"#;
    let refunded = raw(&app, &token, "/orders/ORD-R/refund", refund).await;
    assert_eq!(refunded.status(), 200);
    let refunded = refunded.bytes().await.unwrap();
    let replay = raw(&app, &token, "/orders/ORD-R/refund", refund).await;
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.bytes().await.unwrap(), refunded);
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-R/refund",
            r#"{"refundReference":"rf1","refundAmount":{"amount":4,"currency":"AUD"}}"#,
        )
        .await,
        400,
        "`refundReference` was already used",
    )
    .await;

    let read = order(&app, &token, "ORD-R").await;
    assert_eq!(read["capturedAmount"], json!(12));
    assert_eq!(read["refundedAmount"], json!(3));
    assert_eq!(read["capturableAmount"], json!(83));
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn void_and_refund() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    let mut body = order_body("ORD-V", json!(40));
    body["surcharge"] = json!(2);
    create(&app, &token, body).await;

    let cases: &[(&str, &str)] = &[
        ("", "body is required"),
        (r#"{"amount":1}"#, "voidReference"),
        (r#"{"voidReference":"v"}"#, "amount"),
        (r#"{"voidReference":"v","amount":0}"#, "greater than 0"),
        (
            r#"{"voidReference":"v","amount":"1"}"#,
            "`amount` must be a number",
        ),
        (r#"{"voidReference":"v","amount":1.234}"#, "decimal places"),
        (r#"{"voidReference":"v","amount":-2}"#, "less than 0"),
        (r#"{"voidReference":"v","amount":1,"x":1}"#, "unknown field"),
        (r#"{"voidReference":"v","amount":42.01}"#, "42.00 AUD"),
    ];
    for (body, needle) in cases {
        expect_error(
            raw(&app, &token, "/orders/ORD-V/void", body).await,
            400,
            needle,
        )
        .await;
    }
    // Partial void, then capture, then void the rest.
    let partial = raw(
        &app,
        &token,
        "/orders/ORD-V/void",
        r#"{"voidReference":"v1","amount":2,"description":"surcharge waived"}"#,
    )
    .await;
    assert_eq!(partial.status(), 200);
    let partial = json_of(partial).await;
    assert_eq!(partial["voidReference"], "v1");
    assert!(partial["voidedId"].as_str().unwrap().starts_with("void_"));
    assert_eq!(partial["amount"], json!(2));
    let capture = raw(
        &app,
        &token,
        "/orders/ORD-V/capture",
        r#"{"captureReference":"c1","amount":40.01}"#,
    )
    .await;
    expect_error(capture, 400, "40.00 AUD").await;
    assert_eq!(
        raw(
            &app,
            &token,
            "/orders/ORD-V/capture",
            r#"{"captureReference":"c2","amount":30}"#
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        raw(
            &app,
            &token,
            "/orders/ORD-V/void",
            r#"{"voidReference":"v2","amount":10}"#
        )
        .await
        .status(),
        200
    );
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-V/void",
            r#"{"voidReference":"v3","amount":1}"#,
        )
        .await,
        400,
        "cannot be voided",
    )
    .await;
    let read = order(&app, &token, "ORD-V").await;
    assert_eq!(read["captureStatus"], "CAPTURED");
    assert_eq!(read["status"], "SUCCESSFUL");

    // Refunds.
    let cases: &[(&str, &str)] = &[
        (
            r#"{"refundAmount":{"amount":1,"currency":"AUD"}}"#,
            "refundReference",
        ),
        (r#"{"refundReference":"r"}"#, "refundAmount"),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":1}}"#,
            "currency",
        ),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":1,"currency":"EUR"}}"#,
            "refundAmount.currency",
        ),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":0,"currency":"AUD"}}"#,
            "refundAmount.amount",
        ),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":"1","currency":"AUD"}}"#,
            "refundAmount.amount",
        ),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":30.01,"currency":"AUD"}}"#,
            "30.00 AUD",
        ),
        (
            r#"{"refundReference":"r","refundAmount":{"amount":1,"currency":"AUD"},"x":1}"#,
            "unknown field",
        ),
    ];
    for (body, needle) in cases {
        expect_error(
            raw(&app, &token, "/orders/ORD-V/refund", body).await,
            400,
            needle,
        )
        .await;
    }
    let refund = raw(&app, &token, "/orders/ORD-V/refund", r#"{"refundReference":"rf","refundAmount":{"amount":12.5,"currency":"AUD"},"refundDescription":"returned"}"#).await;
    assert_eq!(refund.status(), 200);
    let refund = json_of(refund).await;
    assert_eq!(refund["refundReference"], "rf");
    assert_eq!(refund["bnplProvider"], "KLARNA");
    assert_eq!(refund["refundedAmount"], json!(12.5));
    assert_eq!(refund["refundStatus"], "SUCCESSFUL");
    assert_eq!(refund["description"], "returned");
    assert!(refund["refundDate"].as_str().unwrap().ends_with('Z'));
    assert!(refund["bnplRefundId"].as_str().unwrap().starts_with("ref_"));
    let read = order(&app, &token, "ORD-V").await;
    assert_eq!(read["refundedAmount"], json!(12.5));

    // A full void before any capture cancels the order.
    create(&app, &token, order_body("ORD-V2", json!(10))).await;
    assert_eq!(
        raw(
            &app,
            &token,
            "/orders/ORD-V2/void",
            r#"{"voidReference":"w","amount":10}"#
        )
        .await
        .status(),
        200
    );
    let read = order(&app, &token, "ORD-V2").await;
    assert_eq!(read["status"], "CANCELLED");
    assert_eq!(read["captureStatus"], "VOIDED");
    assert_eq!(read["cancelledBy"], "MERCHANT");
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-V2/capture",
            r#"{"captureReference":"c","amount":1}"#,
        )
        .await,
        400,
        "cannot be captured",
    )
    .await;
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-V2/refund",
            r#"{"refundReference":"x","refundAmount":{"amount":1,"currency":"AUD"}}"#,
        )
        .await,
        400,
        "no captured amount",
    )
    .await;
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn test_outcomes_and_full_capture_only() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    // Declined by the customer's email tag.
    let mut declined = order_body("ORD-D", json!(20));
    declined["customer"]["email"] = json!("jane+4000000000000002@example.com");
    let created = create(&app, &token, declined).await;
    assert_eq!(created["status"], "DECLINED");
    assert_eq!(created["rejectReason"], "card_declined");
    assert_eq!(created["captureStatus"], "NOT_AUTHORIZED");
    let read = order(&app, &token, "ORD-D").await;
    assert_eq!(read["status"], "DECLINED");
    assert_eq!(read["bnplOrderId"], Value::Null);
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-D/capture",
            r#"{"captureReference":"c","amount":20}"#,
        )
        .await,
        400,
        "cannot be captured",
    )
    .await;
    // Processor error by testCard.
    let mut failed = order_body("ORD-E", json!(20));
    failed["testCard"] = json!("4000000000000119");
    let created = create(&app, &token, failed).await;
    assert_eq!(created["status"], "ERROR");
    assert_eq!(created["failureReason"], "processor_error");
    // Invalid testCard.
    let mut bad = order_body("ORD-X", json!(20));
    bad["testCard"] = json!("1234");
    expect_error(
        call(&app, &token, Method::POST, "/orders", Some(bad)).await,
        400,
        "testCard",
    )
    .await;
    // Capture declined by the processor.
    let mut capture_declined = order_body("ORD-CD", json!(20));
    capture_declined["testCard"] = json!(CAPTURE_DECLINED);
    create(&app, &token, capture_declined).await;
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-CD/capture",
            r#"{"captureReference":"c","amount":20}"#,
        )
        .await,
        400,
        "declined the capture",
    )
    .await;

    // Full capture only: partial capture and partial void are refused.
    let mut full_only = order_body("ORD-F", json!(20));
    full_only["surcharge"] = json!(1);
    full_only["testCard"] = json!(FULL_CAPTURE_ONLY);
    create(&app, &token, full_only).await;
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-F/capture",
            r#"{"captureReference":"c1","amount":20}"#,
        )
        .await,
        400,
        "full remaining amount of 21.00 AUD",
    )
    .await;
    expect_error(
        raw(
            &app,
            &token,
            "/orders/ORD-F/void",
            r#"{"voidReference":"v1","amount":1}"#,
        )
        .await,
        400,
        "does not support partial",
    )
    .await;
    assert_eq!(
        raw(
            &app,
            &token,
            "/orders/ORD-F/capture",
            r#"{"captureReference":"c2","amount":21}"#
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        order(&app, &token, "ORD-F").await["captureStatus"],
        "CAPTURED"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn create_order_validation() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    let with = |field: &str, value: Value| {
        let mut body = order_body("ORD-C", json!(10));
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value;
        }
        body
    };
    let cases = [
        (with("orderReference", Value::Null), "orderReference"),
        (with("orderReference", json!("")), "orderReference"),
        (
            with("orderReference", json!("r".repeat(101))),
            "orderReference",
        ),
        (with("locale", json!("l".repeat(256))), "locale"),
        (with("bnplProvider", Value::Null), "bnplProvider"),
        (with("bnplProvider", json!("klarna")), "bnplProvider"),
        (with("purchaseCountry", json!("AUS")), "purchaseCountry"),
        (with("purchaseCurrency", json!("XXX")), "purchaseCurrency"),
        (with("purchaseCurrency", json!("aud")), "purchaseCurrency"),
        (with("orderAmount", Value::Null), "orderAmount"),
        (with("orderAmount", json!(0)), "orderAmount"),
        (with("orderAmount", json!("10")), "orderAmount"),
        (with("orderAmount", json!(10.001)), "orderAmount"),
        (with("orderAmount", json!(-1)), "orderAmount"),
        (with("surcharge", json!(-1)), "surcharge"),
        (with("surcharge", json!(0.005)), "surcharge"),
        (with("taxAmount", json!("1")), "taxAmount"),
        (
            with("orderItems", json!([{"name": "a", "totalAmount": 9}])),
            "must equal sum",
        ),
        (
            with("orderItems", json!([{"name": "a", "totalAmount": 1.234}])),
            "orderItems[0].totalAmount",
        ),
        (
            with("orderItems", json!([{"name": "", "totalAmount": 10}])),
            "orderItems[0].name",
        ),
        (with("orderItems", json!([{"name": "a"}])), "totalAmount"),
        (with("customer", json!("jane")), "customer"),
    ];
    for (body, needle) in cases {
        expect_error(
            call(&app, &token, Method::POST, "/orders", Some(body)).await,
            400,
            needle,
        )
        .await;
    }
    let mut huge = order_body("ORD-BIG", json!(10));
    huge["customer"]["firstName"] = json!("n".repeat(70_000));
    let response = call(&app, &token, Method::POST, "/orders", Some(huge)).await;
    expect_error(response, 413, "too large").await;
    let mut kwd = order_body("ORD-KWD", json!(1.5));
    kwd["purchaseCurrency"] = json!("KWD");
    let created = create(&app, &token, kwd).await;
    assert_eq!(created["amount"], json!(1.5));
    let native = json_of(
        app.get(&format!(
            "/v1/orders/{}",
            created["orderId"].as_str().unwrap()
        ))
        .await,
    )
    .await;
    assert_eq!(native["amount"], 1500);
    let mut kwd = order_body("ORD-KWD2", json!(1.505));
    kwd["purchaseCurrency"] = json!("KWD");
    expect_error(
        call(&app, &token, Method::POST, "/orders", Some(kwd)).await,
        400,
        "at most 2 decimal places",
    )
    .await;
}

#[tokio::test]
async fn other_merchants_orders_are_not_found_and_native_orders_are_reachable() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let other = app.new_merchant().await;
    let mine = token_for(&app, &app.merchant).await;
    let theirs = token_for(&app, &other).await;
    create(&app, &mine, order_body("SHARED-NAME", json!(10))).await;
    for (path, body) in [
        (
            "/orders/SHARED-NAME/capture",
            r#"{"captureReference":"c","amount":1}"#,
        ),
        (
            "/orders/SHARED-NAME/void",
            r#"{"voidReference":"v","amount":1}"#,
        ),
        (
            "/orders/SHARED-NAME/refund",
            r#"{"refundReference":"r","refundAmount":{"amount":1,"currency":"AUD"}}"#,
        ),
    ] {
        expect_error(raw(&app, &theirs, path, body).await, 404, "SHARED-NAME").await;
    }
    expect_error(
        call(&app, &theirs, Method::GET, "/orders/SHARED-NAME", None).await,
        404,
        "not found",
    )
    .await;
    // The other merchant may use the same reference for its own order.
    create(&app, &theirs, order_body("SHARED-NAME", json!(99))).await;
    assert_eq!(order(&app, &mine, "SHARED-NAME").await["amount"], json!(10));
    assert_eq!(
        order(&app, &theirs, "SHARED-NAME").await["amount"],
        json!(99)
    );

    // Unknown routes and methods answer in Optty's shape.
    expect_error(
        call(&app, &mine, Method::GET, "/nothing", None).await,
        404,
        "Cannot GET /optty/nothing",
    )
    .await;
    expect_error(
        call(&app, &mine, Method::DELETE, "/orders/SHARED-NAME", None).await,
        404,
        "Cannot DELETE",
    )
    .await;
    expect_error(
        call(
            &app,
            &mine,
            Method::GET,
            "/orders/SHARED-NAME/capture",
            None,
        )
        .await,
        404,
        "Cannot GET",
    )
    .await;

    // An order made by the native API, reached and captured by its reference.
    let native = app
        .post("/v1/orders", json!({"reference": "web 42/ä", "amount": 1050, "surcharge": 25,
                                   "currency": "EUR", "payment_method": {"type": "card", "number": APPROVE}}))
        .await;
    assert_eq!(native.status(), 201);
    let native = json_of(native).await;
    let read = order(&app, &mine, "web%2042%2F%C3%A4").await;
    assert_eq!(read["merchantReference"], "web 42/ä");
    assert_eq!(read["amount"], json!(10.5));
    assert_eq!(read["surcharge"], json!(0.25));
    assert_eq!(read["currency"], "EUR");
    assert_eq!(read["provider"], "AUTHCAP");
    assert_eq!(read["captureStatus"], "NOT_CAPTURED");
    let captured = raw(
        &app,
        &mine,
        "/orders/web%2042%2F%C3%A4/capture",
        r#"{"captureReference":"x","amount":10.75}"#,
    )
    .await;
    assert_eq!(captured.status(), 200);
    let id = native["id"].as_str().unwrap();
    let after = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(after["status"], "captured");
    assert_eq!(after["captured_amount"], 1075);
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn expired_authorization_is_cancelled_by_the_system() {
    let Some(app) = TestApp::spawn_with(authcap_api::Config {
        authorization_ttl: std::time::Duration::from_millis(300),
        ..authcap_api::Config::default()
    })
    .await
    else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    create(&app, &token, order_body("ORD-EXP", json!(10))).await;
    app.advance(std::time::Duration::from_millis(400)).await;
    let read = order(&app, &token, "ORD-EXP").await;
    assert_eq!(read["status"], "CANCELLED");
    assert_eq!(read["captureStatus"], "EXPIRED");
    assert_eq!(read["cancelledBy"], "SYSTEM");
    assert_eq!(read["capturableAmount"], json!(0));
    let capture = raw(
        &app,
        &token,
        "/orders/ORD-EXP/capture",
        r#"{"captureReference":"c","amount":10}"#,
    )
    .await;
    expect_error(capture, 400, "expired").await;
    let void = raw(
        &app,
        &token,
        "/orders/ORD-EXP/void",
        r#"{"voidReference":"v","amount":10}"#,
    )
    .await;
    expect_error(void, 400, "expired").await;
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_captures_never_exceed_amount_plus_surcharge() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let token = token_for(&app, &app.merchant).await;
    let mut body = order_body("ORD-RACE", json!(90));
    body["surcharge"] = json!(10);
    create(&app, &token, body).await;
    let mut tasks = Vec::new();
    for i in 0..12 {
        let client = app.client.clone();
        let url = app.url("/optty/orders/ORD-RACE/capture");
        let token = token.clone();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"captureReference": format!("c{i}"), "amount": 20}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            200 => ok += 1,
            400 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok, 5);
    let read = order(&app, &token, "ORD-RACE").await;
    assert_eq!(read["capturedAmount"], json!(100));
    assert_eq!(read["captureStatus"], "CAPTURED");
    app.assert_ledger_consistent().await;
}
