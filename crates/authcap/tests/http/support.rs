#![allow(dead_code)] // Each test module uses its own subset of these helpers.
//! A real Authcap server on an ephemeral port, over a fresh database, for each test.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use authcap_api::credentials::{self, IssuedCredentials, ServerSecret};
use authcap_api::{AppState, Config};
use authcap_core::Simulator;
use authcap_store::Store;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{Value, json};
use tokio::sync::oneshot;

static NEXT_DATABASE: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let n = NEXT_DATABASE.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("authcap-test-{}-{n}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestApp {
    pub base: String,
    pub client: Client,
    pub merchant: IssuedCredentials,
    pub store: Store,
    pub server_secret: ServerSecret,
    pub database: String,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Arc<TempDir>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(Config::default()).await
    }

    pub async fn spawn_with(config: Config) -> TestApp {
        let dir = Arc::new(TempDir::new());
        let database = format!("sqlite://{}", dir.0.join("authcap.db").display());
        TestApp::spawn_on(database, dir, config).await
    }

    /// A server over an existing database, as after a restart.
    pub async fn spawn_on(database: String, dir: Arc<TempDir>, config: Config) -> TestApp {
        let store = Store::open(&database, Arc::new(Simulator)).expect("open store");
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
            server_secret,
            database,
            shutdown: Some(shutdown),
            _dir: dir,
        }
    }

    pub fn dir(&self) -> Arc<TempDir> {
        self._dir.clone()
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
        eprintln!("SKIPPED {name}: provider SDKs not installed (run scripts/install-sdks.sh)");
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
