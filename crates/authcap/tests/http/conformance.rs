//! The properties every dialect shares, written once over a small client per dialect and run
//! for each of them: racing captures and refunds never move more than there is, a retried
//! request replays, another merchant's orders are not found and cannot be touched, the clock
//! expires authorizations, bad amounts are refused with nothing written, unknown routes answer
//! in the dialect's shape, and orders made anywhere are seen everywhere. The dialect test files
//! keep their wire-shape tables.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use authcap_api::credentials::IssuedCredentials;
use reqwest::Method;
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::support::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dialect {
    Native,
    MultiSafepay,
    MercadoPago,
    Optty,
    Pipwave,
}

const DIALECTS: [Dialect; 5] = [
    Dialect::Native,
    Dialect::MultiSafepay,
    Dialect::MercadoPago,
    Dialect::Optty,
    Dialect::Pipwave,
];

impl Dialect {
    /// Whether an order can be captured in several parts here (Mercado Pago captures the whole
    /// payment; a Pipwave capture ends the authorization).
    fn partial_captures(self) -> bool {
        matches!(
            self,
            Dialect::Native | Dialect::MultiSafepay | Dialect::Optty
        )
    }

    /// Where the dialect is mounted, for unknown routes.
    fn prefix(self) -> &'static str {
        match self {
            Dialect::Native => "/v1",
            Dialect::MultiSafepay => "/multisafepay/v1/json",
            Dialect::MercadoPago => "/mercadopago/v1",
            Dialect::Optty => "/optty",
            Dialect::Pipwave => "/pipwave",
        }
    }
}

/// An order as the tests know it: the core's id, its reference, and the id the dialect uses.
#[derive(Clone, Debug)]
struct Order {
    id: String,
    handle: String,
}

/// What a dialect answered.
#[derive(Clone, Debug, PartialEq)]
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

impl Answer {
    fn succeeded(&self, dialect: Dialect) -> bool {
        let pipwave_ok = dialect != Dialect::Pipwave || self.body["status"] == 200;
        (200..300).contains(&self.status) && pipwave_ok
    }

    async fn of(response: reqwest::Response) -> Answer {
        let status = response.status().as_u16();
        let replayed = response.headers().get("idempotent-replayed").is_some();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        assert!(
            content_type.contains("json"),
            "every answer is JSON, got `{content_type}` ({status})"
        );
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            body,
            replayed,
        }
    }
}

/// A client of one dialect, acting as one merchant.
struct Client<'a> {
    app: &'a TestApp,
    dialect: Dialect,
    merchant: IssuedCredentials,
    optty_token: Option<String>,
}

static UNIQUE: AtomicI64 = AtomicI64::new(0);

fn next() -> i64 {
    UNIQUE.fetch_add(1, Ordering::Relaxed)
}

fn major(minor: i64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

impl<'a> Client<'a> {
    async fn new(app: &'a TestApp, dialect: Dialect, merchant: IssuedCredentials) -> Client<'a> {
        let optty_token = match dialect {
            Dialect::Optty => {
                let response = app
                    .client
                    .post(app.url("/optty/token"))
                    .form(&[
                        ("client_id", merchant.optty_client_id.as_str()),
                        ("client_secret", merchant.optty_client_secret.as_str()),
                        ("grant_type", "client_credentials"),
                    ])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                Some(
                    json_of(response).await["access_token"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            }
            _ => None,
        };
        Client {
            app,
            dialect,
            merchant,
            optty_token,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.app.client.request(method, self.app.url(path));
        match self.dialect {
            Dialect::Native => request.bearer_auth(&self.merchant.secret_key),
            Dialect::MultiSafepay => request.header("api_key", &self.merchant.multisafepay_api_key),
            Dialect::MercadoPago => request
                .bearer_auth(&self.merchant.mercadopago_access_token)
                .header("X-Idempotency-Key", format!("k-{}", next())),
            Dialect::Optty => request.bearer_auth(self.optty_token.as_deref().unwrap_or("")),
            Dialect::Pipwave => request.header("x-api-key", &self.merchant.pipwave_api_key),
        }
    }

    /// A POST of JSON written as text (Optty amounts must be JSON numbers as written).
    async fn post_text(&self, path: &str, body: String) -> Answer {
        let response = self
            .request(Method::POST, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        Answer::of(response).await
    }

    /// A signed Pipwave request; `key` chooses its timestamp, so the same key signs the same.
    async fn pipwave(&self, action: &str, extra: &[(&str, String)], key: Option<i64>) -> Answer {
        let now = self.app.store.now().millis().div_euclid(1000);
        let timestamp = (now - key.unwrap_or_else(next) % 250).to_string();
        let mut fields: Vec<(String, String)> = vec![
            ("action".into(), action.into()),
            ("timestamp".into(), timestamp),
            ("api_key".into(), self.merchant.pipwave_api_key.clone()),
        ];
        fields.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut signed = fields.clone();
        signed.push((
            "api_secret".into(),
            self.merchant.pipwave_api_secret.clone(),
        ));
        signed.sort();
        let text: String = signed.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        fields.push((
            "signature".into(),
            hex::encode(Sha1::digest(text.as_bytes())),
        ));
        let body: serde_json::Map<String, Value> = fields
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
        let response = self
            .request(Method::POST, "/pipwave/payment")
            .json(&Value::Object(body))
            .send()
            .await
            .unwrap();
        Answer::of(response).await
    }

    /// Creates an authorized order of `amount` EUR cents, manual capture.
    async fn create(&self, amount: i64) -> Order {
        let reference = unique("cf");
        let (path, body) = match self.dialect {
            Dialect::Native | Dialect::Pipwave => (
                "/v1/orders".to_owned(),
                order_body(&reference, amount, APPROVE),
            ),
            Dialect::MultiSafepay => (
                "/multisafepay/v1/json/orders".to_owned(),
                json!({"type": "direct", "order_id": reference, "currency": "EUR",
                       "amount": amount, "description": "conformance", "capture": "manual"}),
            ),
            Dialect::MercadoPago => (
                "/mercadopago/v1/orders".to_owned(),
                json!({"type": "online", "processing_mode": "automatic", "capture_mode": "manual",
                       "currency": "EUR", "total_amount": major(amount),
                       "external_reference": reference,
                       "payer": {"email": "buyer@example.com"},
                       "transactions": {"payments": [{"amount": major(amount),
                           "payment_method": {"id": "master", "type": "credit_card", "token": "t"}}]}}),
            ),
            Dialect::Optty => (
                "/optty/orders".to_owned(),
                // The amount must be a JSON number written as it is meant.
                serde_json::from_str(&format!(
                    r#"{{"orderReference":"{reference}","bnplProvider":"KLARNA",
                    "purchaseCountry":"AU","purchaseCurrency":"EUR","locale":"en_AU",
                    "orderAmount":{},
                    "customer":{{"firstName":"Jane","lastName":"Doe",
                    "email":"jane@example.com","phoneNumber":"+61400000000"}},
                    "billingAddress":{{"line1":"1 George St"}},
                    "redirectUrls":{{"success":"https://shop.example/ok"}}}}"#,
                    major(amount)
                ))
                .unwrap(),
            ),
        };
        let dialect = if self.dialect == Dialect::Pipwave {
            Dialect::Native
        } else {
            self.dialect
        };
        let creator = Client {
            app: self.app,
            dialect,
            merchant: self.merchant.clone(),
            optty_token: self.optty_token.clone(),
        };
        let created = Answer::of(
            creator
                .request(Method::POST, &path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert!(
            created.succeeded(dialect),
            "{:?} create: {}",
            self.dialect,
            created.body
        );
        let native = self.native_by_reference(&reference).await;
        let id = native["id"].as_str().unwrap().to_owned();
        let handle = match self.dialect {
            Dialect::Native | Dialect::Pipwave => id.clone(),
            Dialect::MultiSafepay | Dialect::Optty => reference,
            Dialect::MercadoPago => created.body["id"].as_str().unwrap().to_owned(),
        };
        assert_eq!(native["status"], "authorized");
        Order { id, handle }
    }

    async fn native_by_reference(&self, reference: &str) -> Value {
        let listed = self
            .app
            .client
            .get(self.app.url(&format!("/v1/orders?reference={reference}")))
            .bearer_auth(&self.merchant.secret_key)
            .send()
            .await
            .unwrap();
        json_of(listed).await["data"][0].clone()
    }

    /// Captures `amount` (or everything, where the dialect captures only everything). `key`
    /// makes the request's idempotency key or resource id: the same key, the same request.
    async fn capture(&self, order: &Order, amount: i64, key: i64) -> Answer {
        let h = &order.handle;
        let send = |method: Method, path: String, body: Value| async move {
            Answer::of(
                self.request(method, &path)
                    .json(&body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        };
        match self.dialect {
            Dialect::Native => {
                let response = self
                    .request(Method::POST, &format!("/v1/orders/{h}/captures"))
                    .header("Idempotency-Key", format!("cap-{key}"))
                    .json(&json!({"amount": amount}))
                    .send()
                    .await
                    .unwrap();
                Answer::of(response).await
            }
            Dialect::MultiSafepay => {
                send(
                    Method::POST,
                    format!("/multisafepay/v1/json/orders/{h}/capture"),
                    json!({"amount": amount, "new_order_status": "completed",
                           "new_order_id": format!("{h}-c{key}")}),
                )
                .await
            }
            Dialect::MercadoPago => {
                let response = self
                    .app
                    .client
                    .post(self.app.url(&format!("/mercadopago/v1/orders/{h}/capture")))
                    .bearer_auth(&self.merchant.mercadopago_access_token)
                    .header("X-Idempotency-Key", format!("cap-{h}-{key}"))
                    .send()
                    .await
                    .unwrap();
                Answer::of(response).await
            }
            Dialect::Optty => {
                let body = format!(
                    r#"{{"captureReference":"c{key}","amount":{}}}"#,
                    major(amount)
                );
                self.post_text(&format!("/optty/orders/{h}/capture"), body)
                    .await
            }
            Dialect::Pipwave => {
                self.pipwave(
                    "capture-payment",
                    &[("pw_id", h.clone()), ("capture_amount", major(amount))],
                    Some(key),
                )
                .await
            }
        }
    }

    async fn refund(&self, order: &Order, amount: i64) -> Answer {
        let h = &order.handle;
        let key = next();
        let path;
        let body = match self.dialect {
            Dialect::Native => {
                path = format!("/v1/orders/{h}/refunds");
                json!({"amount": amount})
            }
            Dialect::MultiSafepay => {
                path = format!("/multisafepay/v1/json/orders/{h}/refunds");
                json!({"amount": amount, "currency": "EUR"})
            }
            Dialect::MercadoPago => {
                path = format!("/mercadopago/v1/orders/{h}/refund");
                let payment = format!("PAY{}", &h[3..]);
                json!({"transactions": [{"id": payment, "amount": major(amount)}]})
            }
            Dialect::Optty => {
                let body = format!(
                    r#"{{"refundReference":"r{key}","refundAmount":{{"amount":{},"currency":"EUR"}}}}"#,
                    major(amount)
                );
                return self
                    .post_text(&format!("/optty/orders/{h}/refund"), body)
                    .await;
            }
            Dialect::Pipwave => {
                return self
                    .pipwave(
                        "refund",
                        &[("pw_id", h.clone()), ("refund_amount", major(amount))],
                        None,
                    )
                    .await;
            }
        };
        Answer::of(
            self.request(Method::POST, &path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Releases what is left of the authorization (`amount` of it, where the dialect names one).
    async fn void(&self, order: &Order, amount: i64) -> Answer {
        let h = &order.handle;
        let (method, path, body) = match self.dialect {
            Dialect::Native => (Method::POST, format!("/v1/orders/{h}/void"), json!({})),
            Dialect::MultiSafepay => (
                Method::PATCH,
                format!("/multisafepay/v1/json/capture/{h}"),
                json!({"status": "cancelled"}),
            ),
            Dialect::MercadoPago => {
                let response = self
                    .request(Method::POST, &format!("/mercadopago/v1/orders/{h}/cancel"))
                    .header("content-type", "application/json")
                    .body("")
                    .send()
                    .await
                    .unwrap();
                return Answer::of(response).await;
            }
            Dialect::Optty => {
                let body = format!(
                    r#"{{"voidReference":"v{}","amount":{}}}"#,
                    next(),
                    major(amount)
                );
                return self
                    .post_text(&format!("/optty/orders/{h}/void"), body)
                    .await;
            }
            Dialect::Pipwave => {
                return self
                    .pipwave("cancel-payment", &[("pw_id", h.clone())], None)
                    .await;
            }
        };
        Answer::of(
            self.request(method, &path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    async fn read(&self, order: &Order) -> Answer {
        let h = &order.handle;
        let path = match self.dialect {
            Dialect::Native => format!("/v1/orders/{h}"),
            Dialect::MultiSafepay => format!("/multisafepay/v1/json/orders/{h}"),
            Dialect::MercadoPago => format!("/mercadopago/v1/orders/{h}"),
            Dialect::Optty => format!("/optty/orders/{h}"),
            Dialect::Pipwave => {
                return self.pipwave("requery", &[("pw_id", h.clone())], None).await;
            }
        };
        Answer::of(self.request(Method::GET, &path).send().await.unwrap()).await
    }

    /// The order as the native API shows it to its merchant.
    async fn native(&self, order: &Order) -> Value {
        let response = self
            .app
            .client
            .get(self.app.url(&format!("/v1/orders/{}", order.id)))
            .bearer_auth(&self.app.merchant.secret_key)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_captures_never_capture_more_than_was_authorized() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let order = client.create(1000).await;
        let racers = (0..24).map(|_| client.capture(&order, 300, next()));
        let answers = join_all(racers).await;
        let won: Vec<_> = answers.iter().filter(|a| a.succeeded(dialect)).collect();
        let native = client.native(&order).await;
        let captured = native["captured_amount"].as_i64().unwrap();
        assert!(captured <= 1000, "{dialect:?}: captured {captured}");
        if dialect.partial_captures() {
            assert_eq!(won.len(), 3, "{dialect:?}: {answers:?}");
            assert_eq!(captured, 900, "{dialect:?}");
        } else {
            assert_eq!(won.len(), 1, "{dialect:?}: {answers:?}");
        }
        for lost in answers.iter().filter(|a| !a.succeeded(dialect)) {
            assert!((400..500).contains(&lost.status), "{dialect:?}: {lost:?}");
        }
        assert_eq!(
            native["captures"].as_array().unwrap().len(),
            won.len(),
            "{dialect:?}"
        );
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_refunds_never_refund_more_than_was_captured() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let order = client.create(1000).await;
        let native = Client::new(&app, Dialect::Native, app.merchant.clone()).await;
        let all = Order {
            id: order.id.clone(),
            handle: order.id.clone(),
        };
        assert!(
            native
                .capture(&all, 1000, next())
                .await
                .succeeded(Dialect::Native)
        );
        let racers = (0..24).map(|_| client.refund(&order, 300));
        let answers = join_all(racers).await;
        let won = answers.iter().filter(|a| a.succeeded(dialect)).count();
        assert_eq!(won, 3, "{dialect:?}: {answers:?}");
        let read = client.native(&order).await;
        assert_eq!(read["refunded_amount"], 900, "{dialect:?}");
        assert_eq!(read["refundable_amount"], 100, "{dialect:?}");
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn a_retried_capture_replays_and_captures_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let order = client.create(1000).await;
        let key = next();
        let first = client.capture(&order, 400, key).await;
        assert!(first.succeeded(dialect), "{dialect:?}: {first:?}");
        let again = client.capture(&order, 400, key).await;
        assert!(again.replayed, "{dialect:?}: {again:?}");
        assert_eq!(again.body, first.body, "{dialect:?}");
        assert_eq!(
            client.native(&order).await["captures"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "{dialect:?}"
        );
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn another_merchants_orders_are_not_found_and_cannot_be_touched() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let other = app.new_merchant().await;
    for dialect in DIALECTS {
        let mine = Client::new(&app, dialect, app.merchant.clone()).await;
        let theirs = Client::new(&app, dialect, other.clone()).await;
        let order = mine.create(1000).await;
        let before = mine.native(&order).await;
        for (what, answer) in [
            ("read", theirs.read(&order).await),
            ("capture", theirs.capture(&order, 100, next()).await),
            ("void", theirs.void(&order, 1000).await),
            ("refund", theirs.refund(&order, 100).await),
        ] {
            assert_eq!(answer.status, 404, "{dialect:?} {what}: {answer:?}");
        }
        assert_eq!(
            mine.native(&order).await,
            before,
            "{dialect:?}: nothing changed"
        );
        assert!(mine.read(&order).await.succeeded(dialect), "{dialect:?}");
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn the_clock_expires_authorizations_in_every_dialect() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut orders = Vec::new();
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        orders.push((dialect, client.create(1000).await));
    }
    app.advance(Duration::from_secs(8 * 24 * 3600)).await;
    for (dialect, order) in orders {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let refused = client.capture(&order, 100, next()).await;
        assert!(!refused.succeeded(dialect), "{dialect:?}: {refused:?}");
        assert!(
            (400..500).contains(&refused.status),
            "{dialect:?}: {refused:?}"
        );
        let native = client.native(&order).await;
        assert_eq!(native["status"], "expired", "{dialect:?}");
        assert_eq!(native["released_amount"], 1000, "{dialect:?}: written down");
        assert!(client.read(&order).await.succeeded(dialect), "{dialect:?}");
        let events = app
            .store
            .events(&app.merchant.merchant_id, Some(&order.id), 10)
            .await
            .unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.event.kind.as_str()).collect();
        assert_eq!(kinds, ["order.authorized", "order.expired"], "{dialect:?}");
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn bad_amounts_are_refused_and_write_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let order = client.create(1000).await;
        let before = client.native(&order).await;
        // More than is left (Mercado Pago names no amount: it captures the whole payment),
        // then a refund of nothing captured: refused in the dialect's shape.
        if dialect != Dialect::MercadoPago {
            let over = client.capture(&order, 5000, next()).await;
            assert!((400..500).contains(&over.status), "{dialect:?}: {over:?}");
            assert!(!over.succeeded(dialect), "{dialect:?}");
        }
        let refund = client.refund(&order, 100).await;
        assert!(
            (400..500).contains(&refund.status),
            "{dialect:?}: {refund:?}"
        );
        assert_eq!(
            client.native(&order).await,
            before,
            "{dialect:?}: nothing written"
        );
    }
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn orders_are_one_order_in_every_dialect() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    // An order made in each dialect is captured, voided and read in each of the others.
    for made_in in DIALECTS {
        let maker = Client::new(&app, made_in, app.merchant.clone()).await;
        let order = maker.create(1000).await;
        for reader in DIALECTS {
            let client = Client::new(&app, reader, app.merchant.clone()).await;
            let handle = match reader {
                Dialect::Native | Dialect::Pipwave => order.id.clone(),
                Dialect::MultiSafepay | Dialect::Optty => client.native(&order).await["reference"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                Dialect::MercadoPago => authcap_api::mercadopago::ids::render(
                    authcap_api::mercadopago::ids::ORDER,
                    &order.id,
                ),
            };
            let seen = Order {
                id: order.id.clone(),
                handle,
            };
            let read = client.read(&seen).await;
            assert!(
                read.succeeded(reader),
                "{made_in:?} read by {reader:?}: {read:?}"
            );
        }
        let last = Client::new(&app, Dialect::Native, app.merchant.clone()).await;
        let native = Order {
            id: order.id.clone(),
            handle: order.id.clone(),
        };
        assert!(
            last.capture(&native, 100, next())
                .await
                .succeeded(Dialect::Native)
        );
        assert_eq!(maker.native(&order).await["captured_amount"], 100);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_dialects_shape() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for dialect in DIALECTS {
        let client = Client::new(&app, dialect, app.merchant.clone()).await;
        let path = format!("{}/no/such/route", dialect.prefix());
        let unknown = Answer::of(client.request(Method::GET, &path).send().await.unwrap()).await;
        assert_eq!(unknown.status, 404, "{dialect:?}: {unknown:?}");
        let path = match dialect {
            Dialect::Native => "/v1/orders".to_owned(),
            Dialect::MultiSafepay => "/multisafepay/v1/json/orders".to_owned(),
            Dialect::MercadoPago => "/mercadopago/v1/orders".to_owned(),
            Dialect::Optty => "/optty/orders".to_owned(),
            Dialect::Pipwave => "/pipwave/payment".to_owned(),
        };
        let wrong = Answer::of(client.request(Method::DELETE, &path).send().await.unwrap()).await;
        assert!(matches!(wrong.status, 404 | 405), "{dialect:?}: {wrong:?}");
    }
}
