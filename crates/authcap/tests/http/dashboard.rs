//! The dashboard over HTTP, as a browser without script sees it: sign-in and sessions, an
//! order created through Mercado Pago found and captured from its page (a double submission
//! captures once), refusals in words, the clock, sign-out, CSRF and cross-site posts refused,
//! other merchants' orders absent, and `/docs`.

use reqwest::redirect::Policy;
use reqwest::{Client, Response};
use serde_json::{Value, json};

use super::support::*;

struct Browser<'a> {
    app: &'a TestApp,
    client: Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Browser<'a> {
        let client = Client::builder().redirect(Policy::none()).build().unwrap();
        Browser {
            app,
            client,
            cookie: None,
        }
    }

    async fn sign_in(&mut self, secret_key: &str) -> Response {
        let response = self
            .client
            .post(self.app.url("/dashboard/sign-in"))
            .form(&[("secret_key", secret_key)])
            .send()
            .await
            .unwrap();
        if let Some(set) = response.headers().get("set-cookie") {
            let set = set.to_str().unwrap().to_owned();
            self.cookie = Some(set.split(';').next().unwrap().to_owned());
        }
        response
    }

    async fn get(&self, path: &str) -> Response {
        let mut request = self.client.get(self.app.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        response.text().await.unwrap()
    }

    async fn post(&self, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Response {
        let mut request = self.client.post(self.app.url(path)).form(form);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send().await.unwrap()
    }
}

/// A hidden field's value in the first form posting to `action`.
fn field(html: &str, action: &str, name: &str) -> String {
    let form = html
        .split("<form")
        .find(|form| form.contains(&format!("action=\"{action}\"")))
        .unwrap_or_else(|| panic!("no form to {action}"));
    let marker = format!("name=\"{name}\" value=\"");
    let start = form.find(&marker).unwrap_or_else(|| panic!("no {name}")) + marker.len();
    form[start..].split('"').next().unwrap().to_owned()
}

fn location(response: &Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn mercadopago_order(app: &TestApp, amount: &str) -> String {
    let body = json!({
        "type": "online",
        "processing_mode": "automatic",
        "capture_mode": "manual",
        "total_amount": amount,
        "external_reference": unique("dash"),
        "payer": {"email": "buyer@example.com"},
        "transactions": {"payments": [{
            "amount": amount,
            "payment_method": {"id": "master", "type": "credit_card", "token": APPROVE, "installments": 1}
        }]}
    });
    let response = app
        .client
        .post(app.url("/mercadopago/v1/orders"))
        .bearer_auth(&app.merchant.mercadopago_access_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let mp_id = created["id"].as_str().unwrap();
    authcap_api::mercadopago::ids::parse("ORD", "ord_", mp_id).unwrap()
}

#[tokio::test]
async fn a_merchant_signs_in_finds_an_order_and_captures_part_of_it_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut browser = Browser::new(&app);
    // Signed out, every page leads to the sign-in page.
    let away = browser.get("/dashboard/orders").await;
    assert_eq!(away.status(), 303);
    assert_eq!(location(&away), "/dashboard/sign-in");

    let wrong = browser.sign_in("sk_not_a_key").await;
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("not one of a merchant")
    );
    assert!(browser.cookie.is_none());

    let signed_in = browser.sign_in(&app.merchant.secret_key).await;
    assert_eq!(signed_in.status(), 303);
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: no Secure");

    let id = mercadopago_order(&app, "10.50").await;
    let euros = app
        .post(
            "/v1/orders",
            json!({"reference": unique("eur"), "amount": 1050, "currency": "EUR",
            "payment_method": {"type": "card", "number": APPROVE}}),
        )
        .await;
    assert_eq!(euros.status(), 201);
    let yen = app
        .post(
            "/v1/orders",
            json!({"reference": unique("jpy"), "amount": 400, "currency": "JPY",
            "payment_method": {"type": "card", "number": APPROVE}}),
        )
        .await;
    assert_eq!(yen.status(), 201);
    let list = browser.page("/dashboard/orders").await;
    assert!(list.contains(&id));
    assert!(
        list.contains("€10.50") && list.contains("¥400"),
        "amounts in the currency's format"
    );
    let mp_currency = json_of(app.get(&format!("/v1/orders/{id}")).await).await["currency"]
        .as_str()
        .unwrap()
        .to_owned();
    let found = browser.page(&format!("/dashboard/orders?q={id}")).await;
    assert!(found.contains(&id));
    let none = browser.page("/dashboard/orders?status=voided").await;
    assert!(!none.contains(&id), "filtered by status");

    let path = format!("/dashboard/orders/{id}");
    let page = browser.page(&path).await;
    assert!(
        page.contains("created through <strong>mercadopago</strong>"),
        "the dialect is shown"
    );
    assert!(page.contains("order.authorized"));
    let action = format!("/dashboard/orders/{id}/capture");
    let csrf = field(&page, &action, "csrf");
    let key = field(&page, &action, "idempotency_key");
    let form = [
        ("csrf", csrf.as_str()),
        ("idempotency_key", key.as_str()),
        ("amount", "4.00"),
    ];
    // A double click: the same form twice.
    for _ in 0..2 {
        let captured = browser.post(&action, &form, None).await;
        assert_eq!(captured.status(), 303);
        assert_eq!(location(&captured), format!("{path}?done=captured"));
    }
    let order = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(order["captured_amount"], 400, "captured once");
    assert_eq!(order["captures"].as_array().unwrap().len(), 1);
    let page = browser.page(&format!("{path}?done=captured")).await;
    assert!(page.contains("Captured."));
    assert!(
        page.contains("capture.succeeded"),
        "the capture is in the timeline"
    );
    assert!(page.contains("6.50"), "capturable now ({mp_currency})");

    // A refusal, in words, and nothing written.
    let page = browser.page(&path).await;
    let key = field(&page, &action, "idempotency_key");
    let csrf = field(&page, &action, "csrf");
    let too_much = browser
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("amount", "99.00"),
            ],
            None,
        )
        .await;
    let back = location(&too_much);
    assert!(back.starts_with(&format!("{path}?error=")), "{back}");
    let shown = browser.page(&back).await;
    assert!(shown.contains("capturable"), "{shown}");
    let order = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(order["captured_amount"], 400);
    // Decimals the currency does not have are refused too.
    let page = browser.page(&path).await;
    let key = field(&page, &action, "idempotency_key");
    let refused = browser
        .post(
            &action,
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("amount", "1.005"),
            ],
            None,
        )
        .await;
    assert!(location(&refused).contains("?error="));

    // Void the rest.
    let page = browser.page(&path).await;
    let void = format!("/dashboard/orders/{id}/void");
    let key = field(&page, &void, "idempotency_key");
    let voided = browser
        .post(&void, &[("csrf", &csrf), ("idempotency_key", &key)], None)
        .await;
    assert_eq!(location(&voided), format!("{path}?done=voided"));
    let order = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(order["released_amount"], 650);

    // Refund part of the capture.
    let page = browser.page(&path).await;
    let refund = format!("/dashboard/orders/{id}/refund");
    let key = field(&page, &refund, "idempotency_key");
    let refunded = browser
        .post(
            &refund,
            &[
                ("csrf", &csrf),
                ("idempotency_key", &key),
                ("amount", "1.50"),
                ("reason", "damaged"),
            ],
            None,
        )
        .await;
    assert_eq!(location(&refunded), format!("{path}?done=refunded"));
    let page = browser.page(&path).await;
    assert!(page.contains("refund.succeeded") && page.contains("reason: damaged"));
    app.assert_ledger_consistent().await;

    // Signing out clears the cookie.
    let out = browser
        .post("/dashboard/sign-out", &[("csrf", &csrf)], None)
        .await;
    assert_eq!(out.status(), 303);
    assert!(
        out.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn forged_and_cross_site_posts_are_refused_and_write_nothing() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.merchant.secret_key).await;
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let action = format!("/dashboard/orders/{id}/capture");
    let page = browser.page(&format!("/dashboard/orders/{id}")).await;
    let csrf = field(&page, &action, "csrf");
    let key = field(&page, &action, "idempotency_key");

    let cross_site = browser
        .post(
            &action,
            &[("csrf", &csrf), ("idempotency_key", &key)],
            Some("http://evil.example"),
        )
        .await;
    assert_eq!(cross_site.status(), 403);
    let huge = "9".repeat(100 * 1024);
    let too_large = browser
        .post(
            &action,
            &[
                ("csrf", csrf.as_str()),
                ("idempotency_key", key.as_str()),
                ("amount", huge.as_str()),
            ],
            None,
        )
        .await;
    assert_eq!(
        too_large.status(),
        413,
        "the body limit holds for forms too"
    );
    let long_amount = "9".repeat(40);
    let refused = browser
        .post(
            &action,
            &[
                ("csrf", csrf.as_str()),
                ("idempotency_key", key.as_str()),
                ("amount", long_amount.as_str()),
            ],
            None,
        )
        .await;
    assert!(
        location(&refused).contains("error="),
        "an over-long amount is refused in words"
    );
    let no_token = browser
        .post(&action, &[("idempotency_key", key.as_str())], None)
        .await;
    assert_eq!(no_token.status(), 403);
    let wrong_token = browser
        .post(
            &action,
            &[("csrf", "0".repeat(64).as_str()), ("idempotency_key", &key)],
            None,
        )
        .await;
    assert_eq!(wrong_token.status(), 403);
    let order = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(order["captured_amount"], 0, "nothing was written");

    // A forged or tampered cookie is no session.
    let mut forged = Browser::new(&app);
    let genuine = browser.cookie.clone().unwrap();
    let flipped = if genuine.ends_with('0') { '1' } else { '0' };
    forged.cookie = Some(format!("{}{flipped}", &genuine[..genuine.len() - 1]));
    assert_eq!(forged.get("/dashboard/orders").await.status(), 303);
    forged.cookie = Some(genuine.replace(&app.merchant.merchant_id, "mer_someone_else"));
    assert_eq!(forged.get("/dashboard/orders").await.status(), 303);

    // Another merchant's order is not found, and cannot be captured.
    let other = app.new_merchant().await;
    let mut theirs = Browser::new(&app);
    theirs.sign_in(&other.secret_key).await;
    let missing = theirs.get(&format!("/dashboard/orders/{id}")).await;
    assert_eq!(missing.status(), 404);
    let their_page = theirs.page("/dashboard/orders").await;
    assert!(!their_page.contains(id));
    let their_csrf = field(&their_page, "/dashboard/sign-out", "csrf");
    let attempt = theirs
        .post(
            &action,
            &[
                ("csrf", &their_csrf),
                ("idempotency_key", "k-1"),
                ("amount", "1.00"),
            ],
            None,
        )
        .await;
    assert!(location(&attempt).contains("error="));
    let order = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(order["captured_amount"], 0);
}

#[tokio::test]
async fn the_clock_page_advances_the_clock_and_orders_expire() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.merchant.secret_key).await;
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let page = browser.page("/dashboard/clock").await;
    let csrf = field(&page, "/dashboard/clock/advance", "csrf");
    let advanced = browser
        .post(
            "/dashboard/clock/advance",
            &[("csrf", csrf.as_str()), ("by", "8d")],
            None,
        )
        .await;
    assert_eq!(advanced.status(), 303);
    let page = browser.page(&location(&advanced)).await;
    assert!(page.contains("moved forward by 8days"), "{page}");
    let expired = browser.page("/dashboard/orders?status=expired").await;
    assert!(expired.contains(id));
    let page = browser.page(&format!("/dashboard/orders/{id}")).await;
    assert!(page.contains("order.expired"));
    let unknown = browser
        .post(
            "/dashboard/clock/advance",
            &[("csrf", csrf.as_str()), ("by", "1000y")],
            None,
        )
        .await;
    assert!(location(&unknown).contains("error="));
}

#[tokio::test]
async fn webhook_endpoints_are_added_from_the_dashboard_and_their_deliveries_shown() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.merchant.secret_key).await;
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", receiver.local_addr().unwrap());
    let hooks = axum::Router::new().route("/hooks", axum::routing::post(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(receiver, hooks).await });
    let page = browser.page("/dashboard/webhooks").await;
    let csrf = field(&page, "/dashboard/webhooks", "csrf");
    let refused = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("csrf", csrf.as_str()),
                ("url", "ftp://x"),
                ("format", "standard"),
                ("events", "*"),
            ],
            None,
        )
        .await;
    assert_eq!(refused.status(), 200);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("http:// or https://")
    );
    let added = browser
        .post(
            "/dashboard/webhooks",
            &[
                ("csrf", csrf.as_str()),
                ("url", url.as_str()),
                ("format", "standard"),
                ("events", "*"),
            ],
            None,
        )
        .await;
    let added = added.text().await.unwrap();
    assert!(
        added.contains("shown this once") && added.contains("whsec_"),
        "{added}"
    );
    let endpoint_id = added
        .split("/dashboard/webhooks/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();

    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap();
    let mut shown = String::new();
    for _ in 0..100 {
        shown = browser.page(&format!("/dashboard/orders/{id}")).await;
        if !shown.contains("No attempts yet") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        shown.contains(&url) && shown.contains("<td>200</td>"),
        "{shown}"
    );
    let tested = browser
        .post(
            &format!("/dashboard/webhooks/{endpoint_id}/test"),
            &[("csrf", csrf.as_str())],
            None,
        )
        .await;
    let shown = browser.page(&location(&tested)).await;
    assert!(
        shown.contains("Accepted: the endpoint answered 200"),
        "{shown}"
    );
    let endpoint_page = browser
        .page(&format!("/dashboard/webhooks/{endpoint_id}"))
        .await;
    let event_id = endpoint_page
        .split("/dashboard/events/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let redelivered = browser
        .post(
            &format!("/dashboard/events/{event_id}/redeliver"),
            &[("csrf", csrf.as_str()), ("endpoint", endpoint_id.as_str())],
            None,
        )
        .await;
    assert_eq!(
        location(&redelivered),
        format!("/dashboard/webhooks/{endpoint_id}?done=redelivered")
    );
}

#[tokio::test]
async fn the_api_reference_lists_every_operation() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let response = app.client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = response.text().await.unwrap();
    let spec: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in spec["paths"].as_object().unwrap().keys() {
        assert!(page.contains(&format!("<code>{path}</code>")), "{path}");
    }
    assert!(
        !page.contains("<script"),
        "no script, nothing fetched from elsewhere"
    );
    assert!(page.contains("href=\"/dashboard/style.css\""));
    let style = app
        .client
        .get(app.url("/dashboard/style.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(style.status(), 200);
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let chromium = std::env::var("AUTHCAP_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        if std::env::var("AUTHCAP_REQUIRE_SDK_TESTS").as_deref() == Ok("1") {
            panic!("Chromium is not installed: apt-get install chromium (see .ci/run)");
        }
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            b"SKIPPED the_dashboard_works_in_a_real_browser: no Chromium at /usr/bin/chromium\n",
        );
        return;
    }
    // A receiver for the merchant's webhooks: the capture's delivery must reach it.
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let kept = received.clone();
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks", receiver.local_addr().unwrap());
    let hooks = axum::Router::new().route(
        "/hooks",
        axum::routing::post(move |body: axum::body::Bytes| {
            let kept = kept.clone();
            async move {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
                "ok"
            }
        }),
    );
    tokio::spawn(async move { axum::serve(receiver, hooks).await });
    let endpoint = app
        .post(
            "/v1/webhook_endpoints",
            json!({"url": url, "enabled_events": ["*"]}),
        )
        .await;
    assert_eq!(endpoint.status(), 201);
    let mp_order = mercadopago_order(&app, "10.00").await;
    let expiring = app.authorized_order(500, APPROVE).await;
    let expiring = expiring["id"].as_str().unwrap().to_owned();
    let screenshots = format!(
        "{}/../../target/screenshots/{}",
        env!("CARGO_MANIFEST_DIR"),
        match super::BACKEND {
            crate::Backend::Sqlite => "sqlite",
            crate::Backend::Postgres => "postgres",
        }
    );
    run_sdk_script(
        "dashboard_browser.py",
        &[
            &app.base,
            &app.merchant.secret_key,
            &mp_order,
            &expiring,
            &screenshots,
        ],
    )
    .await;
    let order = json_of(app.get(&format!("/v1/orders/{mp_order}")).await).await;
    assert_eq!(
        order["captured_amount"], 400,
        "one capture, none from the other site"
    );
    let got = received.lock().unwrap().clone();
    assert!(
        got.iter().any(|event| event["type"] == "capture.succeeded"),
        "{got:?}"
    );
}
