//! The `authcap` binary: configuration, logging and the three commands.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use authcap_api::credentials::{self, CredentialSet, IssuedCredentials, ServerSecret};
use authcap_api::server::ConnectionLimits;
use authcap_api::wire::rfc3339;
use authcap_api::{AppState, Config};
use authcap_core::Simulator;
use authcap_store::{PoolSettings, Store, SystemClock};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "authcap",
    version,
    about = "Payment authorization and capture server"
)]
struct Cli {
    /// `sqlite://PATH` (embedded, the default), a bare path to a SQLite file, or
    /// `postgres://USER@HOST:PORT/DB` for PostgreSQL (several nodes may share one database).
    #[arg(
        long,
        global = true,
        env = "AUTHCAP_DATABASE",
        default_value = "sqlite://authcap.db"
    )]
    database: String,

    /// PostgreSQL only: the most connections this node opens.
    #[arg(
        long,
        global = true,
        env = "AUTHCAP_DATABASE_CONNECTIONS_MAX",
        default_value_t = 16
    )]
    database_connections_max: usize,

    /// PostgreSQL only: statements and lock waits longer than this are cancelled.
    #[arg(long, global = true, env = "AUTHCAP_DATABASE_STATEMENT_TIMEOUT", default_value = "10s",
          value_parser = bounded_duration)]
    database_statement_timeout: Duration,

    /// PostgreSQL only: how long a request waits for a free connection before it is answered
    /// 503 "overloaded" (with `Retry-After`).
    #[arg(long, global = true, env = "AUTHCAP_DATABASE_POOL_WAIT", default_value = "5s",
          value_parser = bounded_duration)]
    database_pool_wait: Duration,

    /// A file holding the server secret (≥ 32 bytes; surrounding white space is ignored):
    /// the production setting, so that nothing secret is stored in the database. The secret
    /// may instead be given in `AUTHCAP_SERVER_SECRET`. Without either, one is generated and
    /// kept in the database.
    #[arg(long, global = true, env = "AUTHCAP_SERVER_SECRET_FILE")]
    server_secret_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        #[arg(long, env = "AUTHCAP_LISTEN", default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// How long an authorization stays capturable, e.g. `7d`, `90s`.
        #[arg(long, env = "AUTHCAP_AUTHORIZATION_TTL", default_value = "7d", value_parser = bounded_duration)]
        authorization_ttl: Duration,
        /// How long idempotency keys are remembered, e.g. `24h`.
        #[arg(long, env = "AUTHCAP_IDEMPOTENCY_TTL", default_value = "24h", value_parser = bounded_duration)]
        idempotency_ttl: Duration,
        /// How far a Pipwave request's `timestamp` may be from the server clock, either way.
        #[arg(long, env = "AUTHCAP_PIPWAVE_TIMESTAMP_WINDOW", default_value = "300s", value_parser = bounded_duration)]
        pipwave_timestamp_window: Duration,
        /// Logs as JSON lines instead of text.
        #[arg(long, env = "AUTHCAP_LOG_JSON")]
        log_json: bool,
        /// How many client connections are served at once; more wait to be accepted.
        /// Default: what the descriptor limit allows after a reserve, at most 10,000.
        #[arg(long, env = "AUTHCAP_CONNECTIONS_MAX", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        connections_max: Option<u32>,
        /// How long a connection may take to send a request's head, idle keep-alive time
        /// included, before it is closed.
        #[arg(long, env = "AUTHCAP_HEADER_READ_TIMEOUT", default_value = "15s", value_parser = bounded_duration)]
        header_read_timeout: Duration,
        /// Failed authentications allowed per client address and minute; past them the client
        /// is answered 429 until the minute ends.
        #[arg(long, env = "AUTHCAP_FAILED_AUTHENTICATIONS_PER_MINUTE", default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..))]
        failed_authentications_per_minute: u32,
        /// A PEM file of CA certificates trusted for https:// webhook URLs, on top of the
        /// public web roots (a private CA, or a receiver's self-signed certificate).
        #[arg(long, env = "AUTHCAP_WEBHOOK_CA_FILE")]
        webhook_ca_file: Option<std::path::PathBuf>,
        /// How long one webhook attempt may take, connection and answer included (1s to 60s).
        #[arg(long, env = "AUTHCAP_WEBHOOK_TIMEOUT", default_value = "15s", value_parser = webhook_timeout)]
        webhook_timeout: Duration,
        /// When set, `/metrics` answers only `Authorization: Bearer <token>`.
        #[arg(long, env = "AUTHCAP_METRICS_TOKEN", value_parser = metrics_token)]
        metrics_token: Option<String>,
    },
    /// Manage merchants.
    Merchant {
        #[command(subcommand)]
        command: MerchantCommand,
    },
    /// Verify every order's totals against the ledger; exits non-zero on any mismatch.
    Check,
    /// Follow events as they are written.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Print events as they happen (every merchant's, or one's), until interrupted.
    Tail {
        /// Only this merchant's events (`mer_…`).
        #[arg(long)]
        merchant: Option<String>,
        /// Start with the last N events written before now.
        #[arg(long, default_value_t = 10)]
        last: u32,
        /// One JSON object a line, with the order as it stood right after.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum MerchantCommand {
    /// Create a merchant and print its credentials (shown this once only).
    Create {
        #[arg(long)]
        name: String,
        /// Print the credentials as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the merchants and the generations of their credentials (never the credentials).
    List {
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Issue new credentials and retire the old ones (at once, or after `--grace`).
    RotateCredentials {
        /// The merchant (`mer_…`).
        #[arg(long)]
        merchant: String,
        /// Only this dialect's credentials: native, multisafepay, mercadopago, optty, pipwave
        /// (repeatable). Without it, all of them.
        #[arg(long, value_parser = parse_credential_set)]
        dialect: Vec<CredentialSet>,
        /// How long the old credentials keep working, e.g. `1h`. Default: they stop at once.
        #[arg(long, default_value = "0s", value_parser = bounded_duration)]
        grace: Duration,
        /// Print the new credentials as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The server secret from `--server-secret-file` or `AUTHCAP_SERVER_SECRET`, if configured.
fn configured_server_secret(cli: &Cli) -> Result<Option<String>, Error> {
    let from_env = std::env::var("AUTHCAP_SERVER_SECRET")
        .ok()
        .filter(|s| !s.is_empty());
    match (&cli.server_secret_file, from_env) {
        (Some(_), Some(_)) => {
            Err("set either --server-secret-file or AUTHCAP_SERVER_SECRET, not both".into())
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            Ok(Some(text.trim().to_owned()))
        }
        (None, from_env) => Ok(from_env),
    }
}

fn parse_credential_set(text: &str) -> Result<CredentialSet, String> {
    CredentialSet::parse(text)
        .ok_or_else(|| "one of native, multisafepay, mercadopago, optty, pipwave".to_owned())
}

/// Durations are bounded so that every deadline derived from them stays a valid timestamp.
const DURATION_MAX: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn bounded_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration > DURATION_MAX {
        return Err("must be at most 10 years".into());
    }
    Ok(duration)
}

fn metrics_token(text: &str) -> Result<String, String> {
    if (16..=256).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(text.to_owned())
    } else {
        Err("16 to 256 visible ASCII characters".into())
    }
}

fn webhook_timeout(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|e| e.to_string())?;
    if duration < Duration::from_secs(1) || duration > authcap_api::webhooks::ATTEMPT_TIMEOUT_MAX {
        return Err("must be from 1s to 60s".into());
    }
    Ok(duration)
}

fn main() -> ExitCode {
    authcap_api::server::bound_allocator_arenas();
    let cli = Cli::parse();
    let log_json = matches!(cli.command, Command::Serve { log_json: true, .. });
    init_logging(log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("authcap: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("authcap: {error}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AUTHCAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

type Error = Box<dyn std::error::Error>;

async fn run(cli: Cli) -> Result<ExitCode, Error> {
    let pool = PoolSettings {
        connections_max: cli.database_connections_max.max(1),
        statement_timeout: cli.database_statement_timeout,
        wait: cli.database_pool_wait,
    };
    let clock = Arc::new(SystemClock);
    let store = Store::open_with(&cli.database, Arc::new(Simulator), pool, clock).await?;
    let server_secret = ServerSecret::load(&store, configured_server_secret(&cli)?).await?;
    match cli.command {
        Command::Serve {
            listen,
            authorization_ttl,
            idempotency_ttl,
            pipwave_timestamp_window,
            connections_max,
            header_read_timeout,
            failed_authentications_per_minute,
            webhook_ca_file,
            webhook_timeout,
            metrics_token,
            ..
        } => {
            // A signed Pipwave request replayed after its idempotency record is pruned would run
            // again; the window must close first.
            if pipwave_timestamp_window >= idempotency_ttl {
                return Err(
                    "--pipwave-timestamp-window must be shorter than --idempotency-ttl".into(),
                );
            }
            if store.merchant_count().await? == 0 {
                let demo =
                    credentials::create_merchant(&store, &server_secret, "Demo merchant").await?;
                println!("Created a demo merchant (shown once):");
                print_credentials(&demo, false);
            }
            let connections = ConnectionLimits {
                connections_max: connections_max
                    .map_or_else(authcap_api::server::default_connections_max, |max| {
                        max as usize
                    }),
                header_read_timeout,
            };
            let config = Config {
                authorization_ttl,
                idempotency_ttl,
                pipwave_timestamp_window,
                connections,
                failed_authentications_per_minute,
                webhook_ca_certificates: match &webhook_ca_file {
                    Some(path) => authcap_api::webhooks::read_pem_certificates(path)?,
                    None => Vec::new(),
                },
                webhook_attempt_timeout: webhook_timeout,
                metrics_token,
            };
            let listener = tokio::net::TcpListener::bind(listen).await?;
            let address = listener.local_addr()?;
            tracing::info!(%address, backend = store.backend_name(), "authcap listening");
            println!("listening on http://{address}");
            println!(
                "dashboard: http://{address}/dashboard · API reference: http://{address}/docs"
            );
            let state = AppState::new(store, config, server_secret);
            authcap_api::serve(listener, state, shutdown_signal()).await?;
            tracing::info!("stopped");
            Ok(ExitCode::SUCCESS)
        }
        Command::Merchant {
            command: MerchantCommand::Create { name, json },
        } => {
            let issued = credentials::create_merchant(&store, &server_secret, &name).await?;
            print_credentials(&issued, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Merchant {
            command: MerchantCommand::List { json },
        } => {
            let merchants = store.merchants().await?;
            let now = store.now();
            if json {
                let list: Vec<_> = merchants.iter().map(|m| merchant_json(m, now)).collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).unwrap_or_default()
                );
            } else {
                for m in &merchants {
                    println!("{}  {}  created {}", m.id, m.name, rfc3339(m.created_at));
                    for (kind, generation, expires) in &m.credentials {
                        let state = match expires {
                            None => "works".to_owned(),
                            Some(at) if *at > now => format!("works until {}", rfc3339(*at)),
                            Some(at) => format!("retired {}", rfc3339(*at)),
                        };
                        println!("    {kind:<26} generation {generation:<3} {state}");
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Merchant {
            command:
                MerchantCommand::RotateCredentials {
                    merchant,
                    dialect,
                    grace,
                    json,
                },
        } => {
            let Some(rotated) =
                credentials::rotate(&store, &server_secret, &merchant, &dialect, grace).await?
            else {
                eprintln!("no merchant {merchant}");
                return Ok(ExitCode::FAILURE);
            };
            let value = serde_json::to_value(&rotated).unwrap_or_default();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else if let Some(fields) = value.as_object() {
                println!("New credentials (shown once):");
                for (name, value) in fields {
                    println!("  {name}: {}", value.as_str().unwrap_or_default());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Events {
            command:
                EventsCommand::Tail {
                    merchant,
                    last,
                    json,
                },
        } => {
            tail_events(&store, merchant.as_deref(), last, json).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let found = store.check().await?;
            if found.is_empty() {
                println!("ok: every order's totals match its ledger");
                return Ok(ExitCode::SUCCESS);
            }
            for discrepancy in &found {
                for problem in &discrepancy.problems {
                    println!("{}: {problem}", discrepancy.order_id);
                }
            }
            println!("{} order(s) do not match their ledger", found.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Prints events as they are written, polling twice a second, until interrupted.
async fn tail_events(
    store: &Store,
    merchant: Option<&str>,
    last: u32,
    json: bool,
) -> Result<(), Error> {
    // Start with the newest `last` events.
    let mut after = 0;
    let mut recent = Vec::new();
    loop {
        let page = store.events_since(after, merchant, 1000).await?;
        let full = page.len() == 1000;
        if let Some(newest) = page.last() {
            after = newest.seq;
        }
        recent.extend(page);
        let keep = recent.len().saturating_sub(last as usize);
        recent.drain(..keep);
        if !full {
            break;
        }
    }
    let print = |event: &authcap_store::StoredEvent| {
        if json {
            let line = authcap_api::webhooks::event_json(event);
            println!("{}", String::from_utf8_lossy(&line));
        } else {
            let e = &event.event;
            let subject = e.subject_id.as_deref().unwrap_or("");
            println!(
                "{}  {:<18} {}  {}  {} {}  {subject}",
                rfc3339(e.at),
                e.kind.as_str(),
                event.merchant_id,
                e.order_id,
                event.currency.format_decimal(e.amount),
                event.currency.code(),
            );
        }
    };
    recent.iter().for_each(print);
    let stop = shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
        }
        for event in store.events_since(after, merchant, 1000).await? {
            after = event.seq;
            print(&event);
        }
    }
}

fn merchant_json(
    m: &authcap_store::MerchantSummary,
    now: authcap_core::Timestamp,
) -> serde_json::Value {
    let credentials: Vec<_> = m
        .credentials
        .iter()
        .map(|(kind, generation, expires)| {
            serde_json::json!({
                "kind": kind,
                "generation": generation,
                "expires_at": expires.map(rfc3339),
                "works": expires.is_none_or(|at| at > now),
            })
        })
        .collect();
    serde_json::json!({
        "merchant_id": m.id,
        "name": m.name,
        "created_at": rfc3339(m.created_at),
        "credentials": credentials,
    })
}

fn print_credentials(issued: &IssuedCredentials, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(issued).unwrap_or_default()
        );
        return;
    }
    let value = serde_json::to_value(issued).unwrap_or_default();
    if let Some(fields) = value.as_object() {
        for (name, value) in fields {
            println!("  {name}: {}", value.as_str().unwrap_or_default());
        }
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
