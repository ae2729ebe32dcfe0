#![allow(dead_code)] // Each test module uses its own subset of these helpers.
//! A real Authcap server on an ephemeral port, over a fresh database, for each test.

use std::path::PathBuf;

use super::BACKEND;
use crate::Backend;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use authcap_api::credentials::{self, IssuedCredentials, ServerSecret};
use authcap_api::{AppState, Config};
use authcap_core::Simulator;
use authcap_store::{ManualClock, PoolSettings, Store};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

fn unique_suffix() -> String {
    let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{n}_{nanos}", std::process::id())
}

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("authcap-test-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh database for one test: a SQLite file in a temporary directory, or a PostgreSQL
/// schema of its own in `AUTHCAP_TEST_POSTGRES_URL`, dropped afterwards.
pub struct TestDatabase {
    pub url: String,
    _dir: Option<TempDir>,
    postgres_schema: Option<(String, String)>,
}

pub const POSTGRES_URL_VARIABLE: &str = "AUTHCAP_TEST_POSTGRES_URL";

/// Says, once and past libtest's output capture, that the PostgreSQL runs were skipped: their
/// tests still report `ok`, so the reason must be visible.
fn announce_postgres_skipped() {
    use std::io::Write;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nSKIPPED: the postgres::* HTTP tests did not run against PostgreSQL; \
             set {POSTGRES_URL_VARIABLE} (e.g. postgres://postgres@127.0.0.1:5432/test) to run them\n"
        );
    });
    eprintln!("SKIPPED on PostgreSQL: set {POSTGRES_URL_VARIABLE} to run it");
}

impl TestDatabase {
    /// `None` (and a note on stderr) when the backend under test is PostgreSQL and no server
    /// was given.
    pub async fn new() -> Option<TestDatabase> {
        match BACKEND {
            Backend::Sqlite => {
                let dir = TempDir::new();
                let url = format!("sqlite://{}", dir.0.join("authcap.db").display());
                Some(TestDatabase {
                    url,
                    _dir: Some(dir),
                    postgres_schema: None,
                })
            }
            Backend::Postgres => {
                let Ok(server) = std::env::var(POSTGRES_URL_VARIABLE) else {
                    announce_postgres_skipped();
                    return None;
                };
                let schema = format!("authcap_test_{}", unique_suffix());
                let (client, connection) = tokio_postgres::connect(&server, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|e| panic!("cannot reach {POSTGRES_URL_VARIABLE}: {e}"));
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("CREATE SCHEMA {schema}"))
                    .await
                    .unwrap();
                let separator = if server.contains('?') { '&' } else { '?' };
                // The application name lets the cleanup find this test's connections.
                let url = format!(
                    "{server}{separator}options=-c%20search_path%3D{schema}&application_name={schema}"
                );
                Some(TestDatabase {
                    url,
                    _dir: None,
                    postgres_schema: Some((server, schema)),
                })
            }
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((server, schema)) = self.postgres_schema.take() else {
            return;
        };
        // Drop runs outside any runtime guarantee; a short-lived thread owns the cleanup.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&server, tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    // The test's runtime is blocked in this drop, so its connections may sit
                    // in a transaction; end them rather than wait on their locks.
                    let _ = client
                        .execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                             WHERE application_name = $1 AND pid <> pg_backend_pid()",
                            &[&schema],
                        )
                        .await;
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub merchant: IssuedCredentials,
    pub store: Store,
    /// The server's clock: tests move it instead of sleeping.
    pub clock: ManualClock,
    pub server_secret: ServerSecret,
    pub database: Arc<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl TestApp {
    /// A server on a fresh database of the backend under test; `None` when that backend is
    /// not available (the test then says it was skipped).
    pub async fn spawn() -> Option<TestApp> {
        TestApp::spawn_with(Config::default()).await
    }

    pub async fn spawn_with(config: Config) -> Option<TestApp> {
        let database = Arc::new(TestDatabase::new().await?);
        Some(TestApp::spawn_on(database, config).await)
    }

    /// A server over an existing database, as after a restart.
    pub async fn spawn_on(database: Arc<TestDatabase>, config: Config) -> TestApp {
        let url = database.url.clone();
        TestApp::spawn_on_url(database, &url, config).await
    }

    /// A server over `database`, reached through `url` (a proxy, say).
    pub async fn spawn_on_url(database: Arc<TestDatabase>, url: &str, config: Config) -> TestApp {
        TestApp::spawn_with_pool(database, url, config, PoolSettings::default()).await
    }

    /// A server over `database` with its own PostgreSQL pool settings.
    pub async fn spawn_with_pool(
        database: Arc<TestDatabase>,
        url: &str,
        config: Config,
        pool: PoolSettings,
    ) -> TestApp {
        let clock = ManualClock::starting_now();
        let store = Store::open_with(url, Arc::new(Simulator), pool, Arc::new(clock.clone()))
            .await
            .expect("open store");
        let server_secret = ServerSecret::load(&store, None).await.unwrap();
        let merchant = credentials::create_merchant(&store, &server_secret, "Test merchant")
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = oneshot::channel::<()>();
        let state = AppState::new(store.clone(), config, server_secret.clone());
        tokio::spawn(authcap_api::serve(listener, state, async {
            let _ = stop.await;
        }));
        TestApp {
            base,
            client: Client::new(),
            merchant,
            store,
            clock,
            server_secret,
            database,
            shutdown: Some(shutdown),
        }
    }

    /// Moves the server's clock on and writes down what that made true (expiries,
    /// settlements), as the server's own sweep would within a second.
    pub async fn advance(&self, by: std::time::Duration) {
        self.clock.advance(by);
        self.store.sweep().await.unwrap();
    }

    pub async fn new_merchant(&self) -> IssuedCredentials {
        credentials::create_merchant(&self.store, &self.server_secret, "Other merchant")
            .await
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// A native API request authenticated as the test merchant.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(&self.merchant.secret_key)
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    /// Creates an authorized order through the native API and returns its body.
    pub async fn authorized_order(&self, amount: i64, card: &str) -> Value {
        let response = self
            .post("/v1/orders", order_body(&unique("ref"), amount, card))
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// Asserts that every order's totals still match the ledger.
    pub async fn assert_ledger_consistent(&self) {
        let found = self.store.check().await.unwrap();
        assert!(found.is_empty(), "ledger check failed: {found:?}");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

pub fn order_body(reference: &str, amount: i64, card: &str) -> Value {
    json!({
        "reference": reference,
        "amount": amount,
        "currency": "EUR",
        "payment_method": {"type": "card", "number": card},
    })
}

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", authcap_api::wire::new_id(""))
}

pub const APPROVE: &str = "4242424242424242";
pub const DECLINE: &str = "4000000000000002";
pub const INSUFFICIENT_FUNDS: &str = "4000000000009995";
pub const PROCESSOR_ERROR: &str = "4000000000000119";
pub const FULL_CAPTURE_ONLY: &str = "4000000000000077";
pub const CAPTURE_DECLINED: &str = "4000000000000341";
pub const SETTLES_LATER: &str = "4000000000000259";

pub async fn json_of(response: Response) -> Value {
    response.json().await.unwrap()
}

/// Where `scripts/install-sdks.sh` puts the official provider SDKs.
fn sdk_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.sdk")
}

/// Runs an SDK compatibility script (`tests/sdk/NAME`, Python or Node by extension) with
/// `args`, and asserts it exits 0. Skips, saying so, when the SDKs are not installed — unless
/// `AUTHCAP_REQUIRE_SDK_TESTS=1`, which `.ci/run` sets.
pub async fn run_sdk_script(name: &str, args: &[&str]) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sdk")
        .join(name);
    let (program, env): (std::path::PathBuf, Vec<(&str, std::path::PathBuf)>) =
        if name.ends_with(".py") {
            (sdk_dir().join("venv/bin/python"), vec![])
        } else {
            (
                "node".into(),
                vec![("NODE_PATH", sdk_dir().join("node/node_modules"))],
            )
        };
    let installed = if name.ends_with(".py") {
        program.exists()
    } else {
        sdk_dir().join("node/node_modules").exists()
    };
    if !installed {
        if std::env::var("AUTHCAP_REQUIRE_SDK_TESTS").as_deref() == Ok("1") {
            panic!("SDKs are not installed: run scripts/install-sdks.sh");
        }
        // Written past libtest's capture: the test reports `ok`, so the skip must be visible.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!("SKIPPED {name}: provider SDKs not installed (run scripts/install-sdks.sh)\n")
                .as_bytes(),
        );
        return;
    }
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(program);
        command.arg(&script).args(&args);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().expect("run the SDK script")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{name} failed\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Runs the futures together on this task (they may borrow the test's state) and collects
/// their outputs in order.
pub async fn join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, future) in done.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(output) => *slot = Some(output),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    done.into_iter().flatten().collect()
}
