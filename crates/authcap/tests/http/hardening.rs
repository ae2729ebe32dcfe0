//! What an attacker or a careless client tries: card data sent where it does not belong, tokens
//! for merchants that do not exist or not yet valid, oversized bodies announced up front,
//! requests without `Host`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::support::*;

const PAN: &str = "4111111111111111";
const CVC: &str = "9731";

/// Sends raw bytes on a new connection and returns what the server answered within 5 s.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&chunk[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the server answers at once");
    String::from_utf8_lossy(&answer).into_owned()
}

fn optty_token(app: &TestApp, claims: &Value) -> String {
    let key = app.server_secret.derive("optty-jwt");
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(&key),
    )
    .unwrap()
}

fn claims_for(merchant_id: &str, now: i64) -> Value {
    json!({"sub": merchant_id, "scope": "api-user", "iat": now, "exp": now + 600,
           "iss": "authcap-optty", "aud": "optty-merchant-api"})
}

#[tokio::test]
async fn card_numbers_and_cvcs_are_never_echoed() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let pan: i64 = PAN.parse().unwrap();
    let cvc: i64 = CVC.parse().unwrap();
    let mut as_number = order_body(&unique("pan"), 1000, APPROVE);
    as_number["payment_method"]["number"] = json!(pan);
    let mut cvc_as_number = order_body(&unique("pan"), 1000, APPROVE);
    cvc_as_number["payment_method"]["cvc"] = json!(cvc);
    let mut in_a_field_name = order_body(&unique("pan"), 1000, APPROVE);
    in_a_field_name["payment_method"][PAN] = json!(1);
    let mut answers = Vec::new();
    for body in [as_number, cvc_as_number, in_a_field_name] {
        answers.push(app.post("/v1/orders", body).await);
    }
    let mercadopago = json!({
        "type": "online", "processing_mode": "automatic", "capture_mode": "manual",
        "total_amount": "10.00", "external_reference": unique("mp"),
        "transactions": {"payments": [{"amount": "10.00",
            "payment_method": {"id": "visa", "type": "credit_card", "token": pan}}]}});
    answers.push(
        app.client
            .post(app.url("/mercadopago/v1/orders"))
            .bearer_auth(&app.merchant.mercadopago_access_token)
            .json(&mercadopago)
            .send()
            .await
            .unwrap(),
    );
    let token = {
        let response = app
            .client
            .post(app.url("/optty/token"))
            .form(&[
                ("client_id", app.merchant.optty_client_id.as_str()),
                ("client_secret", app.merchant.optty_client_secret.as_str()),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
        json_of(response).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let optty = json!({"orderReference": unique("op"), "bnplProvider": "KLARNA",
        "purchaseCountry": "AU", "purchaseCurrency": "AUD", "locale": "en_AU",
        "orderAmount": 10, "testCard": pan,
        "customer": {"firstName": "J", "lastName": "D", "email": "j@example.com",
                     "phoneNumber": "+61400000000"},
        "billingAddress": {"line1": "1 George St"},
        "redirectUrls": {"success": "https://shop.example/ok"}});
    answers.push(
        app.client
            .post(app.url("/optty/orders"))
            .bearer_auth(&token)
            .json(&optty)
            .send()
            .await
            .unwrap(),
    );
    for response in answers {
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!((400..500).contains(&status), "{status} {text}");
        assert!(!text.contains(PAN), "the card number is echoed: {text}");
        assert!(!text.contains(CVC), "the CVC is echoed: {text}");
    }
    let listed = json_of(app.get("/v1/orders").await).await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        0,
        "nothing was written"
    );
}

#[tokio::test]
async fn optty_tokens_need_an_existing_merchant_and_their_time() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let now = app.store.now().millis() / 1000;
    let call = |token: String| {
        let app = &app;
        async move {
            app.client
                .request(Method::GET, app.url("/optty/orders/nope"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
        }
    };
    // Well signed, but for a merchant this database does not have.
    let orphan = call(optty_token(&app, &claims_for("mer_gone", now))).await;
    assert_eq!(orphan.status(), 401);
    assert!(
        json_of(orphan).await["message"]
            .as_str()
            .unwrap()
            .contains("merchant")
    );
    let write = app
        .client
        .post(app.url("/optty/orders/nope/capture"))
        .bearer_auth(optty_token(&app, &claims_for("mer_gone", now)))
        .json(&json!({"captureReference": "c", "amount": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 401);
    // `nbf` is honoured: not valid before it, valid from it on.
    let mut early = claims_for(&app.merchant.merchant_id, now);
    early["nbf"] = json!(now + 60);
    let refused = call(optty_token(&app, &early)).await;
    assert_eq!(refused.status(), 401);
    assert!(
        json_of(refused).await["message"]
            .as_str()
            .unwrap()
            .contains("nbf")
    );
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(call(optty_token(&app, &early)).await.status(), 404);
    // Expiry is judged by the same clock.
    app.clock.advance(Duration::from_secs(600));
    assert_eq!(call(optty_token(&app, &early)).await.status(), 401);
}

#[tokio::test]
async fn an_announced_body_over_the_limit_is_refused_at_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    for path in [
        "/v1/orders",
        "/multisafepay/v1/json/orders",
        "/mercadopago/v1/orders",
        "/optty/orders",
        "/pipwave/payment",
    ] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             api_key: {}\r\nx-api-key: {}\r\nContent-Type: application/json\r\n\
             Content-Length: 1000000\r\n\r\n{{",
            app.merchant.secret_key,
            app.merchant.multisafepay_api_key,
            app.merchant.pipwave_api_key
        );
        let answer = raw_exchange(&app, request.as_bytes()).await;
        assert!(
            answer.starts_with("HTTP/1.1 413") || answer.starts_with("HTTP/1.1 401"),
            "{path}: {answer}"
        );
    }
    // The native API, authenticated: 413 from the header alone.
    let request = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 1000000\r\n\r\n",
        app.merchant.secret_key
    );
    let answer = raw_exchange(&app, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
}

#[tokio::test]
async fn http11_requests_without_host_are_refused() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let answer = raw_exchange(&app, b"GET /healthz HTTP/1.1\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = raw_exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = raw_exchange(&app, b"GET /healthz HTTP/1.0\r\n\r\n").await;
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );
}

fn limited(connections_max: usize, header_read_timeout: Duration) -> authcap_api::Config {
    authcap_api::Config {
        connections: authcap_api::server::ConnectionLimits {
            connections_max,
            header_read_timeout,
        },
        ..authcap_api::Config::default()
    }
}

async fn connect(app: &TestApp) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the server closes the connection, within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) {
    let mut buffer = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read_to_end)
        .await
        .expect("the server closed the connection in time");
}

async fn healthz(stream: &mut tokio::net::TcpStream) -> String {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let n = stream.read(&mut buffer).await.unwrap();
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

#[tokio::test]
async fn silent_slow_and_idle_connections_are_closed() {
    let Some(app) = TestApp::spawn_with(limited(64, Duration::from_secs(1))).await else {
        return;
    };
    // Sends nothing.
    let mut silent = connect(&app).await;
    // Sends half a request head and stops.
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo")
        .await
        .unwrap();
    // Sends a request, then sits idle on keep-alive.
    let mut idle = connect(&app).await;
    assert!(healthz(&mut idle).await.starts_with("HTTP/1.1 200"));
    let opened = std::time::Instant::now();
    for stream in [&mut silent, &mut slow, &mut idle] {
        closed_within(stream, Duration::from_secs(5)).await;
    }
    let took = opened.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "closed too early: {took:?}"
    );
    // The server is as it was.
    let mut fresh = connect(&app).await;
    assert!(healthz(&mut fresh).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_and_the_rest_are_served() {
    let Some(app) = TestApp::spawn_with(limited(4, Duration::from_secs(30))).await else {
        return;
    };
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut stream = connect(&app).await;
        assert!(healthz(&mut stream).await.starts_with("HTTP/1.1 200"));
        open.push(stream);
    }
    // A fifth connection is not served while four are open…
    let mut waiting = connect(&app).await;
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buffer)).await;
    assert!(early.is_err(), "served beyond the cap");
    // …while the open ones still are.
    assert!(healthz(&mut open[0]).await.starts_with("HTTP/1.1 200"));
    // When one closes, the waiting one is served.
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), waiting.read(&mut buffer))
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
}

/// Makes files immutable (even to root) until dropped.
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    fn set(paths: Vec<std::path::PathBuf>) -> Option<Immutable> {
        let ok = std::process::Command::new("chattr")
            .arg("+i")
            .args(&paths)
            .status()
            .is_ok_and(|s| s.success());
        let guard = Immutable(paths);
        ok.then_some(guard)
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr")
            .arg("-i")
            .args(&self.0)
            .status();
    }
}

async fn health(app: &TestApp) -> (u16, String) {
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

/// Polls `/healthz` until it answers `status`, for at most 10 s.
async fn health_becomes(app: &TestApp, status: u16) -> String {
    for _ in 0..100 {
        let (now, text) = health(app).await;
        if now == status {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/healthz never answered {status}");
}

#[tokio::test]
async fn sqlite_that_cannot_be_written_says_so_and_recovers_by_itself() {
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    assert_eq!(health(&app).await.0, 200);
    let db = app.database.url.trim_start_matches("sqlite://").to_owned();
    let files: Vec<_> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| std::path::PathBuf::from(format!("{db}{suffix}")))
        .filter(|path| path.exists())
        .collect();
    let Some(frozen) = Immutable::set(files) else {
        eprintln!("SKIPPED: chattr +i is not permitted here; read-only recovery not tested");
        return;
    };
    let path = format!("/v1/orders/{id}/captures");
    let capture = || app.post(&path, json!({"amount": 100}));
    let refused = capture().await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let why = health_becomes(&app, 503).await;
    assert!(why.starts_with("not ready"), "{why}");
    drop(frozen);
    // Writable again: the server recovers without a restart.
    health_becomes(&app, 200).await;
    let mut captured = capture().await;
    for _ in 0..20 {
        if captured.status() == 201 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        captured = capture().await;
    }
    assert_eq!(captured.status(), 201);
    let read = json_of(app.get(&format!("/v1/orders/{id}")).await).await;
    assert_eq!(
        read["captured_amount"], 100,
        "the refused capture wrote nothing"
    );
    app.assert_ledger_consistent().await;
}

#[tokio::test]
async fn guessing_credentials_is_limited_per_client() {
    let Some(app) = TestApp::spawn_with(authcap_api::Config {
        failed_authentications_per_minute: 5,
        ..authcap_api::Config::default()
    })
    .await
    else {
        return;
    };
    let guess = |n: u32| {
        app.client
            .get(app.url("/v1/orders"))
            .bearer_auth(format!("sk_guess{n}"))
            .send()
    };
    for n in 0..5 {
        assert_eq!(guess(n).await.unwrap().status(), 401);
    }
    // Every dialect is closed to this client now, good credentials included, until the
    // minute ends.
    let limited = guess(5).await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(
        json_of(limited).await["code"],
        "too_many_failed_authentications"
    );
    assert_eq!(app.get("/v1/orders").await.status(), 429);
    let pipwave = app
        .client
        .post(app.url("/pipwave/payment"))
        .body("action=requery")
        .send()
        .await
        .unwrap();
    assert_eq!(pipwave.status(), 429);
}
