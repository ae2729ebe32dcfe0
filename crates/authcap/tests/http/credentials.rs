//! The credentials lifecycle: rotating a merchant's credentials retires the old ones (at once,
//! or after a grace period judged by the server clock), per dialect, including derived
//! secrets and issued tokens; the CLI lists merchants without showing a secret.

use std::process::Command;
use std::time::Duration;

use authcap_api::credentials::{self, CredentialSet, RotatedCredentials};
use serde_json::Value;
use sha1::{Digest, Sha1};

use super::support::*;

const BINARY: &str = env!("CARGO_BIN_EXE_authcap");

async fn orders_with(app: &TestApp, secret: &str) -> u16 {
    app.client
        .get(app.url("/v1/orders"))
        .bearer_auth(secret)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls until `secret` gets `status` on the native API: what a running server learnt about
/// a credential is believed for 2 s at most.
async fn settles_to(app: &TestApp, secret: &str, status: u16) {
    for _ in 0..40 {
        if orders_with(app, secret).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{secret} never answered {status}");
}

async fn rotate(app: &TestApp, sets: &[CredentialSet], grace: Duration) -> RotatedCredentials {
    credentials::rotate(
        &app.store,
        &app.server_secret,
        &app.merchant.merchant_id,
        sets,
        grace,
    )
    .await
    .unwrap()
    .expect("the merchant exists")
}

async fn pipwave_requery(app: &TestApp, key: &str, secret: &str, id: &str) -> Value {
    let timestamp = (app.store.now().millis() / 1000).to_string();
    let mut pairs = vec![
        ("action", "requery".to_owned()),
        ("timestamp", timestamp),
        ("api_key", key.to_owned()),
        ("pw_id", id.to_owned()),
    ];
    let mut signed: Vec<(&str, String)> = pairs.clone();
    signed.push(("api_secret", secret.to_owned()));
    signed.sort();
    let text: String = signed.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    pairs.push(("signature", hex::encode(Sha1::digest(text.as_bytes()))));
    let body: serde_json::Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Value::String(v)))
        .collect();
    let response = app
        .client
        .post(app.url("/pipwave/payment"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn optty_token(app: &TestApp, id: &str, secret: &str) -> Option<String> {
    let response = app
        .client
        .post(app.url("/optty/token"))
        .form(&[
            ("client_id", id),
            ("client_secret", secret),
            ("grant_type", "client_credentials"),
        ])
        .send()
        .await
        .unwrap();
    json_of(response).await["access_token"]
        .as_str()
        .map(str::to_owned)
}

async fn optty_read(app: &TestApp, token: &str) -> u16 {
    app.client
        .get(app.url("/optty/orders/none"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rotation_retires_the_old_credentials_at_once() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let old = app.merchant.clone();
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let old_token = optty_token(&app, &old.optty_client_id, &old.optty_client_secret)
        .await
        .unwrap();
    assert_eq!(optty_read(&app, &old_token).await, 404);

    let new = rotate(&app, &[], Duration::ZERO).await;
    let new_key = new.secret_key.clone().unwrap();
    settles_to(&app, &old.secret_key, 401).await;
    assert_eq!(orders_with(&app, &new_key).await, 200);
    // Pipwave: the new key goes with a new secret; the old pair no longer verifies.
    let new_pipwave = (
        new.pipwave_api_key.clone().unwrap(),
        new.pipwave_api_secret.clone().unwrap(),
    );
    assert_ne!(new_pipwave.1, old.pipwave_api_secret);
    let answer = pipwave_requery(&app, &new_pipwave.0, &new_pipwave.1, &id).await;
    assert_eq!(answer["status"], 200, "{answer}");
    let refused = pipwave_requery(&app, &old.pipwave_api_key, &old.pipwave_api_secret, &id).await;
    assert_eq!(refused["status"], 403, "{refused}");
    // Optty: the old client credentials give no token, and a token they gave is void.
    assert!(
        optty_token(&app, &old.optty_client_id, &old.optty_client_secret)
            .await
            .is_none()
    );
    assert_eq!(optty_read(&app, &old_token).await, 401);
    let new_token = optty_token(
        &app,
        new.optty_client_id.as_deref().unwrap(),
        new.optty_client_secret.as_deref().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(optty_read(&app, &new_token).await, 404);
    // The others too.
    let msp = app
        .client
        .get(app.url("/multisafepay/v1/json/orders/none"))
        .header("api_key", &old.multisafepay_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(msp.status(), 401);
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_ones_working_for_a_while() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let old = app.merchant.clone();
    let new = rotate(&app, &[CredentialSet::Native], Duration::from_secs(3600)).await;
    assert!(new.multisafepay_api_key.is_none(), "only the native key");
    let new_key = new.secret_key.unwrap();
    assert_eq!(orders_with(&app, &new_key).await, 200);
    assert_eq!(orders_with(&app, &old.secret_key).await, 200);
    app.clock.advance(Duration::from_secs(3601));
    settles_to(&app, &old.secret_key, 401).await;
    assert_eq!(orders_with(&app, &new_key).await, 200);
    // Other dialects were not touched.
    let msp = app
        .client
        .get(app.url("/multisafepay/v1/json/orders/none"))
        .header("api_key", &old.multisafepay_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(msp.status(), 404);
}

#[tokio::test]
async fn the_cli_lists_merchants_and_rotates_without_showing_old_secrets() {
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let database = app.database.url.clone();
    let list = Command::new(BINARY)
        .args(["merchant", "list", "--json", "--database", &database])
        .output()
        .unwrap();
    assert!(list.status.success());
    let text = String::from_utf8(list.stdout).unwrap();
    assert!(
        !text.contains(&app.merchant.secret_key),
        "no secret is listed"
    );
    let listed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed[0]["merchant_id"], app.merchant.merchant_id.as_str());
    let rotated = Command::new(BINARY)
        .args([
            "merchant",
            "rotate-credentials",
            "--merchant",
            &app.merchant.merchant_id,
            "--dialect",
            "native",
            "--json",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(rotated.status.success());
    let new: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    let new_key = new["secret_key"].as_str().unwrap();
    assert!(new.get("pipwave_api_key").is_none());
    // The CLI retired the old key at its own (system) time; the server's clock stands still
    // in tests, so it is moved past that moment.
    app.clock.advance(Duration::from_secs(1));
    settles_to(&app, &app.merchant.secret_key, 401).await;
    assert_eq!(orders_with(&app, new_key).await, 200);
    let unknown = Command::new(BINARY)
        .args([
            "merchant",
            "rotate-credentials",
            "--merchant",
            "mer_nobody",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    let listed = Command::new(BINARY)
        .args(["merchant", "list", "--json", "--database", &database])
        .output()
        .unwrap();
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let native: Vec<_> = listed[0]["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "secret_key")
        .map(|c| {
            (
                c["generation"].as_i64().unwrap(),
                c["works"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(native, [(0, false), (1, true)]);
}

fn stored_server_secret(path: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row(
        "SELECT value FROM settings WHERE name = 'server_secret'",
        [],
        |r| r.get(0),
    )
    .ok()
}

fn cli(args: &[&str], secret_file: Option<&std::path::Path>) -> std::process::Output {
    let mut command = Command::new(BINARY);
    command.args(args).env_remove("AUTHCAP_SERVER_SECRET");
    if let Some(file) = secret_file {
        command.arg("--server-secret-file").arg(file);
    }
    command.output().unwrap()
}

#[tokio::test]
async fn a_configured_server_secret_is_never_stored() {
    if super::BACKEND != crate::Backend::Sqlite {
        return;
    }
    let dir = TempDir::new();
    let path = dir.0.join("authcap.db");
    let url = format!("sqlite://{}", path.display());
    let secret_file = dir.0.join("secret");
    std::fs::write(&secret_file, format!("{}\n", "a1".repeat(32))).unwrap();
    let create = [
        "merchant",
        "create",
        "--name",
        "Shop",
        "--json",
        "--database",
        &url,
    ];
    let made = cli(&create, Some(&secret_file));
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert_eq!(stored_server_secret(path.to_str().unwrap()), None);

    // A database that kept its own generated secret: moved out when the same one is
    // configured, refused when another is.
    let other = dir.0.join("other.db");
    let other_url = format!("sqlite://{}", other.display());
    let list = ["merchant", "list", "--database", &other_url];
    assert!(cli(&list, None).status.success());
    let generated = stored_server_secret(other.to_str().unwrap()).expect("generated and kept");
    let refused = cli(&list, Some(&secret_file));
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("different server secret"));
    let same = dir.0.join("same");
    std::fs::write(&same, &generated).unwrap();
    assert!(cli(&list, Some(&same)).status.success());
    assert_eq!(
        stored_server_secret(other.to_str().unwrap()),
        None,
        "moved out"
    );
    let short = dir.0.join("short");
    std::fs::write(&short, "too short").unwrap();
    assert!(!cli(&list, Some(&short)).status.success());
}
