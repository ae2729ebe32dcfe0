//! The ledger is append-only, and `authcap check` notices any order that disagrees with it.

use std::process::Command;

use serde_json::json;

use super::support::*;
use crate::Backend;

/// Runs SQL straight against the test database, as an intruder or a bug would.
async fn tamper(app: &TestApp, sql: &str) -> Result<(), String> {
    match super::BACKEND {
        Backend::Sqlite => {
            let path = app.database.url.trim_start_matches("sqlite://").to_owned();
            let sql = sql.to_owned();
            tokio::task::spawn_blocking(move || {
                let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
                conn.execute_batch(&sql).map_err(|e| e.to_string())
            })
            .await
            .unwrap()
        }
        Backend::Postgres => {
            let (client, connection) =
                tokio_postgres::connect(&app.database.url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
            tokio::spawn(connection);
            client
                .batch_execute(sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                })
        }
    }
}

fn check(app: &TestApp) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_authcap"))
        .args(["check", "--database", &app.database.url])
        .output()
        .expect("run authcap check");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_then_catches_a_tampered_order_and_the_ledger_refuses_edits() {
    let Some(app) = TestApp::spawn().await else {
        return;
    };
    let order = app.authorized_order(1000, APPROVE).await;
    let id = order["id"].as_str().unwrap().to_owned();
    let captured = app
        .post(&format!("/v1/orders/{id}/captures"), json!({"amount": 300}))
        .await;
    assert_eq!(captured.status(), 201);

    let (ok, output) = check(&app);
    assert!(ok, "{output}");

    for edit in ["UPDATE ledger SET amount = 1", "DELETE FROM ledger"] {
        let refused = tamper(&app, edit).await;
        assert!(
            refused.is_err_and(|e| e.contains("append-only")),
            "{edit} must be refused"
        );
    }

    tamper(
        &app,
        &format!("UPDATE orders SET captured_amount = 299 WHERE id = '{id}'"),
    )
    .await
    .unwrap();
    let (ok, output) = check(&app);
    assert!(!ok, "check must fail on a tampered order");
    assert!(
        output.contains(&id) && output.contains("captured"),
        "{output}"
    );
}
