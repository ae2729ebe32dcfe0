//! The PostgreSQL backend, for several stateless Authcap nodes on one database.
//!
//! Each write is one READ COMMITTED transaction on a pooled connection. Writes to one order are
//! serialized across nodes by `SELECT … FOR UPDATE` on the order row: the second writer waits,
//! then reads the first one's committed totals. Idempotency keys are claimed by inserting their
//! row first; a duplicate on any node blocks on the primary key until the first commits, then
//! replays its stored response (or, past `lock_timeout`, answers "in progress").

use std::time::Duration;

use std::sync::{Arc, OnceLock};

use authcap_core::ledger::LedgerTotals;
use authcap_core::order::Closure;
use authcap_core::{Clock, Command, LedgerKind, Order, Processor, Timestamp};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use crate::observe::{Observer, PoolStatus};
use crate::outbox;
use crate::rows::{
    self, CAPTURE_COLUMNS, CaptureRow, CorruptData, EVENT_COLUMNS, EventRow, ORDER_COLUMNS,
    OrderRow, REFUND_COLUMNS, RefundRow, RowSource,
};
use crate::write::{self, Effects, Job, Loaded};
use crate::{
    Credential, CredentialKind, DeliveryAttempt, DeliveryOutcome, Discrepancy, DueDelivery,
    EventQuery, EventSnapshot, Executed, HashFor, ListQuery, MerchantSummary, NewMerchant,
    OrderLocator, OrderRecord, StoreError, StoredEvent, StoredResponse, WebhookEndpoint,
    WriteError, new_id, unavailable,
};

/// Statements through the connection's statement cache: one round trip each instead of two
/// (parse and describe, then bind and execute).
trait Cached: GenericClient + Sync {
    fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<u64, PgError>> + Send {
        async move { self.execute(&self.prepare_cached(sql).await?, params).await }
    }

    fn rows(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Vec<Row>, PgError>> + Send {
        async move { self.query(&self.prepare_cached(sql).await?, params).await }
    }

    fn row(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Row, PgError>> + Send {
        async move {
            self.query_one(&self.prepare_cached(sql).await?, params)
                .await
        }
    }

    fn row_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> impl Future<Output = Result<Option<Row>, PgError>> + Send {
        async move {
            self.query_opt(&self.prepare_cached(sql).await?, params)
                .await
        }
    }
}

impl<T: GenericClient + Sync> Cached for T {}

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_initial.sql"),
    include_str!("../migrations/postgres/0002_events.sql"),
    include_str!("../migrations/postgres/0003_credential_lifecycle.sql"),
    include_str!("../migrations/postgres/0004_webhooks.sql"),
    include_str!("../migrations/postgres/0005_sandbox_clock.sql"),
    include_str!("../migrations/postgres/0006_order_notifications.sql"),
];

/// Any constant works; it only has to be the same on every node.
const MIGRATION_LOCK_ID: i64 = 0x0061_7574_6863_6170;

pub struct PostgresStore {
    pool: Pool,
    processor: Arc<dyn Processor>,
    clock: Arc<dyn Clock>,
    snapshot: Arc<OnceLock<EventSnapshot>>,
    observer: Observer,
}

/// Settings for the connection pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolSettings {
    pub connections_max: usize,
    pub statement_timeout: Duration,
    /// How long a request waits for a free connection before it is answered "overloaded".
    pub wait: Duration,
}

impl Default for PoolSettings {
    fn default() -> PoolSettings {
        PoolSettings {
            connections_max: 16,
            statement_timeout: Duration::from_secs(10),
            wait: Duration::from_secs(5),
        }
    }
}

type PgError = tokio_postgres::Error;

/// A database error or data the domain cannot accept.
enum Failure {
    Database(PgError),
    Corrupt(CorruptData),
}

impl From<PgError> for Failure {
    fn from(error: PgError) -> Failure {
        Failure::Database(error)
    }
}

impl From<CorruptData> for Failure {
    fn from(error: CorruptData) -> Failure {
        Failure::Corrupt(error)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> StoreError {
        match failure {
            Failure::Database(error) => unavailable(describe(&error)),
            Failure::Corrupt(error) => unavailable(error),
        }
    }
}

fn describe(error: &PgError) -> String {
    match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    }
}

impl PostgresStore {
    pub async fn open(
        url: &str,
        processor: Arc<dyn Processor>,
        settings: PoolSettings,
        clock: Arc<dyn Clock>,
        snapshot: Arc<OnceLock<EventSnapshot>>,
        observer: Observer,
    ) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(unavailable)?;
        let timeout_ms = settings.statement_timeout.as_millis().max(100);
        // Bound every statement and every lock wait, so a node never hangs on the database.
        // Lock waits give up first, so a duplicate waiting on an idempotency claim learns that
        // the first request is still running rather than seeing its statement cancelled.
        // Statements are prepared once per connection (one round trip each instead of two),
        // but planned for their parameters every time: PostgreSQL's generic plans for them,
        // chosen as a merchant's orders grow, cost a third of the throughput within seconds.
        let options = format!(
            "{} -c statement_timeout={timeout_ms} -c lock_timeout={} \
             -c idle_in_transaction_session_timeout={} -c plan_cache_mode=force_custom_plan",
            config.get_options().unwrap_or_default(),
            timeout_ms * 4 / 5,
            timeout_ms * 3
        );
        config.options(options.trim());
        config.connect_timeout(Duration::from_secs(5));
        if config.get_application_name().is_none() {
            config.application_name("authcap");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.connections_max)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(settings.wait))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(unavailable)?;
        let store = PostgresStore {
            pool,
            processor,
            clock,
            snapshot,
            observer,
        };
        store.migrate().await?;
        Ok(store)
    }

    pub fn pool_status(&self) -> PoolStatus {
        let status = self.pool.status();
        PoolStatus {
            size: status.size,
            available: status.available,
            waiting: status.waiting,
            max: status.max_size,
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        let started = std::time::Instant::now();
        let client = self.pool.get().await;
        if let Some(observer) = self.observer.get() {
            observer.connection_waited(started.elapsed());
        }
        client.map_err(|error| match error {
            deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
                StoreError::Overloaded("every database connection stayed busy".into())
            }
            other => unavailable(other),
        })
    }

    /// Applies pending migrations under an advisory lock, so nodes starting together take
    /// turns and each migration runs once.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let run = async {
            client
                .exec("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_ID])
                .await?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS authcap_migrations (
                         version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .await?;
            let applied: i32 = client
                .row(
                    "SELECT coalesce(max(version), 0) FROM authcap_migrations",
                    &[],
                )
                .await?
                .get(0);
            for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied as usize) {
                let tx = client.transaction().await?;
                tx.batch_execute(migration).await?;
                tx.exec(
                    "INSERT INTO authcap_migrations (version, applied_at) VALUES ($1, $2)",
                    &[&(index as i32 + 1), &self.clock.now().millis()],
                )
                .await?;
                tx.commit().await?;
            }
            Ok::<(), PgError>(())
        }
        .await;
        let unlocked = client
            .exec("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_ID])
            .await;
        run.map_err(|e| unavailable(describe(&e)))?;
        unlocked.map_err(unavailable)?;
        Ok(())
    }

    pub async fn execute(&self, job: Job) -> Result<Option<Executed>, StoreError> {
        let mut client = self.client().await?;
        let Job {
            merchant_id,
            idempotency,
            action,
        } = job;
        let tx = client.transaction().await.map_err(unavailable)?;
        // The merchant's sandbox clock (the server's, moved ahead as the merchant asked) and
        // the idempotency claim, in one round trip: the claim reads the offset itself.
        let server_now = self.clock.now();
        let offset = async {
            tx.row_opt(
                "SELECT clock_offset_ms FROM merchants WHERE id = $1",
                &[&merchant_id],
            )
            .await
            .map(|row| row.map_or(0, |row| row.get::<_, i64>(0)))
            .map_err(|error| StoreError::from(Failure::from(error)))
        };
        let claim = async {
            let Some(claim) = &idempotency else {
                return Ok(None);
            };
            tx.exec(
                "INSERT INTO idempotency (merchant_id, scope, key, fingerprint, created_at)
                 VALUES ($1, $2, $3, $4, $5 + coalesce((SELECT clock_offset_ms FROM merchants
                 WHERE id = $1), 0)) ON CONFLICT DO NOTHING",
                &[
                    &merchant_id,
                    &claim.scope,
                    &claim.key,
                    &claim.fingerprint,
                    &server_now.millis(),
                ],
            )
            .await
            .map(|claimed| Some((claim, claimed)))
            .map_err(|error| match error.code() {
                // The first request holding this key has not finished within the wait.
                Some(&SqlState::LOCK_NOT_AVAILABLE) => StoreError::IdempotencyRequestInProgress,
                _ => Failure::from(error).into(),
            })
        };
        let (offset, claimed) = tokio::try_join!(offset, claim)?;
        let now = server_now.plus_millis(offset);
        if let Some((claim, 0)) = claimed {
            let row = tx
                .row(
                    "SELECT fingerprint, status, content_type, body FROM idempotency
                     WHERE merchant_id = $1 AND scope = $2 AND key = $3",
                    &[&merchant_id, &claim.scope, &claim.key],
                )
                .await
                .map_err(Failure::from)?;
            let fingerprint: String = row.get(0);
            if fingerprint != claim.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            let status: Option<i32> = row.get(1);
            let (Some(status), Some(content_type), Some(body)) = (
                status,
                row.get::<_, Option<String>>(2),
                row.get::<_, Option<Vec<u8>>>(3),
            ) else {
                return Err(StoreError::IdempotencyRequestInProgress);
            };
            return Ok(Some(Executed {
                response: StoredResponse {
                    status: status as u16,
                    content_type,
                    body,
                },
                replayed: true,
            }));
        }
        // Owned, so that the action (whose renderers are not `Sync`) is not held across awaits.
        let new_reference = action.new_reference().map(str::to_owned);
        let target = action.target().cloned();
        let exclusive = action.exclusive_reference().map(str::to_owned);
        let loaded = load(&tx, &merchant_id, new_reference, target, exclusive).await?;
        let decision = write::decide(
            merchant_id.clone(),
            action,
            loaded,
            now,
            self.processor.as_ref(),
        );
        let snapshot = self.snapshot.get();
        let (created, mut pipeline) =
            match persist(&tx, &decision.effects, decision.number, snapshot).await {
                Ok(planned) => planned,
                // Two creates with one reference raced; the loser's transaction is void.
                Err(Failure::Database(error))
                    if error.as_db_error().and_then(|db| db.constraint())
                        == Some("orders_reference_unique") =>
                {
                    drop(tx);
                    return Ok(decision.respond.map(|respond| Executed {
                        response: respond(Err(WriteError::ReferenceTaken)),
                        replayed: false,
                    }));
                }
                Err(failure) => return Err(failure.into()),
            };
        let number = created.or(decision.number).unwrap_or_default();
        let kept = idempotency
            .as_ref()
            .is_some_and(|claim| decision.kept_under(claim.kind));
        let response = decision.respond.map(|respond| respond(Ok(number)));
        if let Some(claim) = &idempotency {
            let key = || {
                vec![
                    param(merchant_id.clone()),
                    param(claim.scope.clone()),
                    param(claim.key.clone()),
                ]
            };
            match (&response, kept) {
                (Some(response), true) => {
                    let mut params = key();
                    params.extend([
                        param(i32::from(response.status)),
                        param(response.content_type.clone()),
                        param(response.body.clone()),
                    ]);
                    pipeline.push(
                        "UPDATE idempotency SET status = $4, content_type = $5, body = $6
                         WHERE merchant_id = $1 AND scope = $2 AND key = $3",
                        params,
                    );
                }
                _ => pipeline.push(
                    "DELETE FROM idempotency WHERE merchant_id = $1 AND scope = $2 AND key = $3",
                    key(),
                ),
            }
        }
        pipeline.run(&tx).await.map_err(Failure::from)?;
        tx.commit().await.map_err(Failure::from)?;
        Ok(response.map(|response| Executed {
            response,
            replayed: false,
        }))
    }

    pub async fn order(
        &self,
        merchant_id: String,
        locator: OrderLocator,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        Ok(load_order(&tx, &merchant_id, &locator, false).await?)
    }

    pub async fn order_by_capture_reference(
        &self,
        merchant_id: String,
        reference: String,
    ) -> Result<Option<OrderRecord>, StoreError> {
        let mut client = self.client().await?;
        let client = snapshot(&mut client).await?;
        let found = client
            .row_opt(
                "SELECT captures.order_id FROM captures JOIN orders ON orders.id = captures.order_id
                 WHERE orders.merchant_id = $1 AND captures.reference = $2 LIMIT 1",
                &[&merchant_id, &reference],
            )
            .await
            .map_err(Failure::from)?;
        match found {
            Some(row) => {
                let locator = OrderLocator::Id(row.get(0));
                Ok(load_order(&client, &merchant_id, &locator, false).await?)
            }
            None => Ok(None),
        }
    }

    pub async fn orders(
        &self,
        merchant_id: String,
        query: ListQuery,
        now: Timestamp,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let mut client = self.client().await?;
        let client = snapshot(&mut client).await?;
        let Some(before) = cursor(
            &client,
            "SELECT number FROM orders WHERE merchant_id = $1 AND id = $2",
            &merchant_id,
            query.starting_after.as_deref(),
        )
        .await?
        else {
            return Ok(Vec::new());
        };
        let mut records = Vec::new();
        // The status is derived from the clock, so it is filtered here, a page at a time.
        let page: i64 = 200;
        let mut cursor = before;
        'pages: loop {
            let rows = client
                .rows(
                    &format!(
                        "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND number < $2
                         AND ($3::TEXT IS NULL OR reference = $3) ORDER BY number DESC LIMIT $4"
                    ),
                    &[&merchant_id, &cursor, &query.reference, &page],
                )
                .await
                .map_err(Failure::from)?;
            let exhausted = (rows.len() as i64) < page;
            for row in rows {
                let (number, order) = order_from_row(&row).map_err(Failure::from)?;
                cursor = number;
                if query
                    .status
                    .is_some_and(|status| order.status(now) != status)
                {
                    continue;
                }
                records.push(OrderRecord {
                    number,
                    order,
                    captures: Vec::new(),
                    refunds: Vec::new(),
                });
                if records.len() >= query.limit as usize {
                    break 'pages;
                }
            }
            if exhausted {
                break;
            }
        }
        for record in &mut records {
            load_details(&client, record).await?;
        }
        Ok(records)
    }

    pub async fn create_merchant(&self, merchant: NewMerchant) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(unavailable)?;
        tx.exec(
            "INSERT INTO merchants (id, name, created_at) VALUES ($1, $2, $3)",
            &[&merchant.id, &merchant.name, &self.clock.now().millis()],
        )
        .await
        .map_err(Failure::from)?;
        for (kind, hash) in &merchant.credential_hashes {
            tx.exec(
                "INSERT INTO merchant_credentials (lookup_hash, kind, merchant_id) VALUES ($1, $2, $3)",
                &[hash, &kind.as_str(), &merchant.id],
            )
            .await
            .map_err(Failure::from)?;
        }
        tx.commit().await.map_err(Failure::from)?;
        Ok(())
    }

    /// Whether a write can be committed right now: commits a heartbeat.
    pub async fn probe(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                "INSERT INTO settings (name, value) VALUES ('write_probe', $1)
                 ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                &[&self.clock.now().millis().to_string()],
            )
            .await
            .map_err(Failure::from)?;
        Ok(())
    }

    pub async fn merchant_count(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .row("SELECT count(*) FROM merchants", &[])
            .await
            .map_err(Failure::from)?;
        Ok(row.get(0))
    }

    pub async fn credential(
        &self,
        kind: CredentialKind,
        hash: String,
        now: Timestamp,
    ) -> Result<Option<Credential>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT merchant_id, generation FROM merchant_credentials
                 WHERE lookup_hash = $1 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)",
            )
            .await
            .map_err(Failure::from)?;
        let row = client
            .query_opt(&statement, &[&hash, &kind.as_str(), &now.millis()])
            .await
            .map_err(Failure::from)?;
        Ok(row.map(|r| Credential {
            merchant_id: r.get(0),
            generation: r.get(1),
        }))
    }

    pub async fn generation_works(
        &self,
        merchant_id: String,
        kind: CredentialKind,
        generation: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(
                "SELECT 1 FROM merchant_credentials WHERE merchant_id = $1 AND kind = $2
                 AND generation = $3 AND (expires_at IS NULL OR expires_at > $4)",
                &[&merchant_id, &kind.as_str(), &generation, &now.millis()],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row.is_some())
    }

    pub async fn newest_generation(
        &self,
        merchant_id: String,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let client = self.client().await?;
        let row = client
            .row(
                "SELECT max(generation) FROM merchant_credentials WHERE merchant_id = $1
                 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)",
                &[&merchant_id, &kind.as_str(), &now.millis()],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row.get(0))
    }

    pub async fn rotate_credentials(
        &self,
        merchant_id: String,
        new: Vec<(CredentialKind, HashFor)>,
        retire_at: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Failure::from)?;
        // The merchant's row, locked: rotations of one merchant take turns.
        let exists = tx
            .row_opt(
                "SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE",
                &[&merchant_id],
            )
            .await
            .map_err(Failure::from)?;
        if exists.is_none() {
            return Ok(None);
        }
        let generation: i64 = tx
            .row(
                "SELECT coalesce(max(generation), 0) + 1 FROM merchant_credentials
                 WHERE merchant_id = $1",
                &[&merchant_id],
            )
            .await
            .map_err(Failure::from)?
            .get(0);
        for (kind, hash_for) in &new {
            let hash = hash_for(generation);
            tx.exec(
                "UPDATE merchant_credentials SET expires_at = $3 WHERE merchant_id = $1
                 AND kind = $2 AND (expires_at IS NULL OR expires_at > $3)",
                &[&merchant_id, &kind.as_str(), &retire_at.millis()],
            )
            .await
            .map_err(Failure::from)?;
            tx.exec(
                "INSERT INTO merchant_credentials (lookup_hash, kind, merchant_id, generation)
                 VALUES ($1, $2, $3, $4)",
                &[&hash, &kind.as_str(), &merchant_id, &generation],
            )
            .await
            .map_err(Failure::from)?;
        }
        tx.commit().await.map_err(Failure::from)?;
        Ok(Some(generation))
    }

    pub async fn merchants(&self) -> Result<Vec<MerchantSummary>, StoreError> {
        let mut client = self.client().await?;
        let client = snapshot(&mut client).await?;
        let rows = client
            .rows(
                "SELECT id, name, created_at FROM merchants ORDER BY created_at, id",
                &[],
            )
            .await
            .map_err(Failure::from)?;
        let mut merchants = Vec::new();
        for row in rows {
            let id: String = row.get(0);
            let credentials = client
                .rows(
                    "SELECT kind, generation, expires_at FROM merchant_credentials
                     WHERE merchant_id = $1 ORDER BY kind, generation",
                    &[&id],
                )
                .await
                .map_err(Failure::from)?
                .iter()
                .map(|r| {
                    (
                        r.get(0),
                        r.get(1),
                        r.get::<_, Option<i64>>(2).map(Timestamp),
                    )
                })
                .collect();
            merchants.push(MerchantSummary {
                id,
                name: row.get(1),
                created_at: Timestamp(row.get(2)),
                credentials,
            });
        }
        Ok(merchants)
    }

    pub async fn stored_setting(&self, name: String) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(Failure::from)?;
        Ok(row.map(|r| r.get(0)))
    }

    pub async fn forget_setting(&self, name: String) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec("DELETE FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(Failure::from)?;
        Ok(())
    }

    pub async fn setting(
        &self,
        name: String,
        generate: Box<dyn FnOnce() -> String + Send>,
    ) -> Result<String, StoreError> {
        let client = self.client().await?;
        // Nodes starting together may both generate; the first insert wins and all read it.
        client
            .exec(
                "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&name, &generate()],
            )
            .await
            .map_err(Failure::from)?;
        let row = client
            .row("SELECT value FROM settings WHERE name = $1", &[&name])
            .await
            .map_err(Failure::from)?;
        Ok(row.get(0))
    }

    pub async fn check(&self) -> Result<Vec<Discrepancy>, StoreError> {
        // One snapshot: totals and ledger read at the same moment, even under load.
        let mut client = self.client().await?;
        let client = snapshot(&mut client).await?;
        let mut totals = std::collections::HashMap::<String, LedgerTotals>::new();
        let rows = client
            .rows(
                "SELECT order_id, kind, sum(amount)::BIGINT FROM ledger GROUP BY 1, 2",
                &[],
            )
            .await
            .map_err(Failure::from)?;
        for row in rows {
            let kind: String = row.get(1);
            let kind = LedgerKind::parse(&kind)
                .ok_or_else(|| unavailable(CorruptData(format!("ledger kind {kind}"))))?;
            totals.entry(row.get(0)).or_default().add(kind, row.get(2));
        }
        let rows = client
            .rows(&format!("SELECT {ORDER_COLUMNS} FROM orders"), &[])
            .await
            .map_err(Failure::from)?;
        let orders = rows
            .iter()
            .map(|row| order_from_row(row).map(|(_, order)| order))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(rows::discrepancies_against(orders, totals))
    }

    pub async fn prune_idempotency(&self, before_millis: i64) -> Result<usize, StoreError> {
        let client = self.client().await?;
        let deleted = client
            .exec(
                "DELETE FROM idempotency WHERE status IS NOT NULL AND created_at < $1
                 + coalesce((SELECT clock_offset_ms FROM merchants
                 WHERE merchants.id = idempotency.merchant_id), 0)",
                &[&before_millis],
            )
            .await
            .map_err(Failure::from)?;
        Ok(deleted as usize)
    }

    pub async fn due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, String, Command)>, StoreError> {
        let client = self.client().await?;
        let mut due = Vec::new();
        let rows = client
            .rows(
                "SELECT orders.merchant_id, orders.id FROM orders
                 JOIN merchants ON merchants.id = orders.merchant_id
                 WHERE orders.closure IS NULL AND orders.processor_reference IS NOT NULL
                 AND orders.expires_at <= $1 + (SELECT max(clock_offset_ms) FROM merchants)
                 AND orders.expires_at <= $1 + merchants.clock_offset_ms LIMIT $2",
                &[&now.millis(), &limit],
            )
            .await
            .map_err(Failure::from)?;
        for row in rows {
            due.push((row.get(0), row.get(1), Command::Expire));
        }
        let rows = client
            .rows(
                "SELECT orders.merchant_id, captures.order_id, captures.id FROM captures
                 JOIN orders ON orders.id = captures.order_id
                 JOIN merchants ON merchants.id = orders.merchant_id
                 WHERE captures.settles_at IS NOT NULL AND captures.settled_at IS NULL
                 AND captures.settles_at <= $1 + (SELECT max(clock_offset_ms) FROM merchants)
                 AND captures.settles_at <= $1 + merchants.clock_offset_ms LIMIT $2",
                &[&now.millis(), &limit],
            )
            .await
            .map_err(Failure::from)?;
        for row in rows {
            let capture_id = row.get(2);
            due.push((row.get(0), row.get(1), Command::Settle { capture_id }));
        }
        Ok(due)
    }

    pub async fn clock_offset(&self, merchant_id: String) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(
                "SELECT clock_offset_ms FROM merchants WHERE id = $1",
                &[&merchant_id],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn advance_clock(&self, merchant_id: String, by: i64) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(
                "UPDATE merchants SET clock_offset_ms = clock_offset_ms + $1 WHERE id = $2
                 RETURNING clock_offset_ms",
                &[&by, &merchant_id],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row.map_or(0, |r| r.get(0)))
    }

    pub async fn due_deliveries(
        &self,
        merchant_id: String,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .row(
                "SELECT count(*) FROM deliveries JOIN merchants ON merchants.id = deliveries.merchant_id
                 WHERE deliveries.merchant_id = $1 AND deliveries.state = 'pending'
                 AND deliveries.next_attempt_at <= $2 + merchants.clock_offset_ms",
                &[&merchant_id, &now.millis()],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row.get(0))
    }

    pub async fn events_since(
        &self,
        after_seq: i64,
        merchant_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1
                     AND ($2::TEXT IS NULL OR merchant_id = $2) ORDER BY seq LIMIT $3"
                ),
                &[&after_seq, &merchant_id, &limit],
            )
            .await
            .map_err(Failure::from)?;
        let events = rows
            .iter()
            .map(EventRow::event_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(events)
    }

    pub async fn event_page(
        &self,
        merchant_id: String,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let mut client = self.client().await?;
        let client = snapshot(&mut client).await?;
        let Some(before) = cursor(
            &client,
            "SELECT seq FROM events WHERE merchant_id = $1 AND id = $2",
            &merchant_id,
            query.starting_after.as_deref(),
        )
        .await?
        else {
            return Ok(Vec::new());
        };
        let rows = client
            .rows(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND seq < $2
                     AND ($3::TEXT IS NULL OR type = $3) ORDER BY seq DESC LIMIT $4"
                ),
                &[&merchant_id, &before, &query.kind, &i64::from(query.limit)],
            )
            .await
            .map_err(Failure::from)?;
        let events = rows
            .iter()
            .map(EventRow::event_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(events)
    }

    pub async fn event(
        &self,
        merchant_id: String,
        event_id: String,
    ) -> Result<Option<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(
                &format!("SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND id = $2"),
                &[&merchant_id, &event_id],
            )
            .await
            .map_err(Failure::from)?;
        Ok(row
            .map(|row| EventRow::event_of(&row))
            .transpose()
            .map_err(Failure::from)?)
    }

    pub async fn create_endpoint(&self, endpoint: WebhookEndpoint) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .exec(
                outbox::INSERT_ENDPOINT,
                &[
                    &endpoint.id,
                    &endpoint.merchant_id,
                    &endpoint.url,
                    &endpoint.format,
                    &outbox::join_events(&endpoint.enabled_events),
                    &endpoint.enabled,
                    &endpoint.created_at.millis(),
                ],
            )
            .await
            .map_err(Failure::from)?;
        Ok(())
    }

    pub async fn endpoints(&self, merchant_id: String) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(outbox::LIVE_ENDPOINTS, &[&merchant_id])
            .await
            .map_err(Failure::from)?;
        let endpoints = rows
            .iter()
            .map(|row| rows::endpoint_at(row, 0))
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(endpoints)
    }

    pub async fn endpoint(
        &self,
        merchant_id: String,
        endpoint_id: String,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        let client = self.client().await?;
        let row = client
            .row_opt(outbox::ONE_ENDPOINT, &[&merchant_id, &endpoint_id])
            .await
            .map_err(Failure::from)?;
        Ok(row
            .map(|row| rows::endpoint_at(&row, 0))
            .transpose()
            .map_err(Failure::from)?)
    }

    pub async fn delete_endpoint(
        &self,
        merchant_id: String,
        endpoint_id: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Failure::from)?;
        let deleted = tx
            .exec(
                outbox::DELETE_ENDPOINT,
                &[&now.millis(), &merchant_id, &endpoint_id],
            )
            .await
            .map_err(Failure::from)?;
        if deleted > 0 {
            tx.exec(outbox::STOP_DELIVERIES, &[&endpoint_id])
                .await
                .map_err(Failure::from)?;
        }
        tx.commit().await.map_err(Failure::from)?;
        Ok(deleted > 0)
    }

    pub async fn redeliver(
        &self,
        merchant_id: String,
        event_id: String,
        now: Timestamp,
    ) -> Result<Option<usize>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Failure::from)?;
        let event: Option<(String, String)> = tx
            .row_opt(
                "SELECT type, order_id FROM events WHERE merchant_id = $1 AND id = $2",
                &[&merchant_id, &event_id],
            )
            .await
            .map_err(Failure::from)?
            .map(|r| (r.get(0), r.get(1)));
        let Some((kind, order_id)) = event else {
            return Ok(None);
        };
        let receivers = tx
            .rows(outbox::RECEIVING_ENDPOINTS, &[&merchant_id, &order_id])
            .await
            .map_err(Failure::from)?;
        let mut planned = 0;
        for row in receivers {
            let (endpoint_id, wanted): (String, String) = (row.get(0), row.get(1));
            if outbox::split_events(&wanted)
                .iter()
                .any(|e| e == "*" || *e == kind)
            {
                tx.exec(
                    outbox::INSERT_DELIVERY,
                    &[
                        &new_id("del_"),
                        &merchant_id,
                        &endpoint_id,
                        &event_id,
                        &now.millis(),
                    ],
                )
                .await
                .map_err(Failure::from)?;
                planned += 1;
            }
        }
        tx.commit().await.map_err(Failure::from)?;
        Ok(Some(planned))
    }

    pub async fn delivery_attempts(
        &self,
        merchant_id: String,
        endpoint_id: String,
        limit: i64,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                outbox::ATTEMPTS_OF_ENDPOINT,
                &[&merchant_id, &endpoint_id, &limit],
            )
            .await
            .map_err(Failure::from)?;
        let attempts = rows
            .iter()
            .map(rows::attempt_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(attempts)
    }

    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        let row = client
            .row(outbox::PENDING_DELIVERIES, &[])
            .await
            .map_err(Failure::from)?;
        Ok(row.get(0))
    }

    pub async fn claim_deliveries(
        &self,
        now: Timestamp,
        real_now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Failure::from)?;
        // SKIP LOCKED: nodes claiming together each take other deliveries.
        let ids: Vec<String> = tx
            .rows(
                "UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT deliveries.id FROM deliveries
                     JOIN merchants ON merchants.id = deliveries.merchant_id
                     WHERE deliveries.state = 'pending'
                     AND deliveries.next_attempt_at <= $2 + merchants.clock_offset_ms
                     AND (deliveries.lease_until IS NULL OR deliveries.lease_until <= $3)
                     ORDER BY deliveries.next_attempt_at LIMIT $4
                 FOR UPDATE OF deliveries SKIP LOCKED) RETURNING id",
                &[&until.millis(), &now.millis(), &real_now.millis(), &limit],
            )
            .await
            .map_err(Failure::from)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Their details in one round trip.
        let claimed_statement = tx
            .prepare_cached(outbox::CLAIMED)
            .await
            .map_err(Failure::from)?;
        let params: Vec<[&(dyn ToSql + Sync); 1]> = ids.iter().map(|id| [id as _]).collect();
        let details = futures_util::future::try_join_all(
            params.iter().map(|id| tx.query_one(&claimed_statement, id)),
        )
        .await
        .map_err(Failure::from)?;
        let claimed = details
            .iter()
            .map(rows::due_delivery_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        tx.commit().await.map_err(Failure::from)?;
        Ok(claimed)
    }

    pub async fn finish_deliveries(
        &self,
        finished: Vec<(DeliveryAttempt, DeliveryOutcome)>,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(Failure::from)?;
        // Every attempt's statements in one round trip.
        let mut pipeline = Pipeline::default();
        for (attempt, outcome) in finished {
            let id = attempt.delivery_id;
            pipeline.push(
                outbox::INSERT_ATTEMPT,
                vec![
                    param(id.clone()),
                    param(attempt.attempted_at.millis()),
                    param(attempt.status_code.map(i64::from)),
                    param(attempt.error),
                    param(attempt.duration_ms),
                ],
            );
            match outcome {
                DeliveryOutcome::Delivered => pipeline.push(outbox::DELIVERED, vec![param(id)]),
                DeliveryOutcome::RetryAt(at) => {
                    pipeline.push(outbox::RETRY, vec![param(at.millis()), param(id)]);
                }
                DeliveryOutcome::Failed => pipeline.push(outbox::FAILED, vec![param(id)]),
                DeliveryOutcome::EndpointGone => {
                    pipeline.push(outbox::FAILED, vec![param(id.clone())]);
                    pipeline.push(outbox::GONE, vec![param(id.clone())]);
                    pipeline.push(outbox::STOP_ENDPOINT_OF_DELIVERY, vec![param(id)]);
                }
            }
        }
        pipeline.run(&tx).await.map_err(Failure::from)?;
        tx.commit().await.map_err(Failure::from)?;
        Ok(())
    }

    pub async fn events(
        &self,
        merchant_id: String,
        order_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .rows(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1
                     AND ($2::TEXT IS NULL OR order_id = $2) ORDER BY seq LIMIT $3"
                ),
                &[&merchant_id, &order_id, &limit],
            )
            .await
            .map_err(Failure::from)?;
        let events = rows
            .iter()
            .map(EventRow::event_of)
            .collect::<Result<Vec<_>, _>>()
            .map_err(Failure::from)?;
        Ok(events)
    }
}

/// A read-only transaction that sees one snapshot: an order, its captures and its refunds
/// agree with each other.
async fn snapshot(
    client: &mut deadpool_postgres::Client,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(unavailable)
}

async fn load(
    tx: &deadpool_postgres::Transaction<'_>,
    merchant_id: &str,
    new_reference: Option<String>,
    target: Option<OrderLocator>,
    exclusive_reference: Option<String>,
) -> Result<Loaded, Failure> {
    if let Some(reference) = new_reference {
        let reference_taken = tx
            .row_opt(
                "SELECT 1 FROM orders WHERE merchant_id = $1 AND reference = $2",
                &[&merchant_id, &reference],
            )
            .await?
            .is_some();
        return Ok(Loaded::NewOrder { reference_taken });
    }
    let record = match target {
        Some(locator) => load_order(tx, merchant_id, &locator, true)
            .await?
            .map(Box::new),
        None => None,
    };
    let reference_taken_elsewhere = match (exclusive_reference, &record) {
        (Some(reference), Some(record)) => tx
            .row(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE merchant_id = $1 AND reference = $2
                 AND id <> $3) OR EXISTS (SELECT 1 FROM captures JOIN orders
                 ON orders.id = captures.order_id WHERE orders.merchant_id = $1
                 AND captures.reference = $2 AND captures.order_id <> $3)",
                &[&merchant_id, &reference, &record.order.id],
            )
            .await?
            .get(0),
        _ => false,
    };
    Ok(Loaded::Existing {
        record,
        reference_taken_elsewhere,
    })
}

/// Inserts the order and returns its number.
async fn insert_order(tx: &impl GenericClient, order: &Order) -> Result<i64, Failure> {
    let support = order.authorization.as_ref().map(|a| a.capture_support);
    let row = tx
        .row(
            "INSERT INTO orders (id, merchant_id, reference, currency, amount, surcharge,
         capture_mode, card_brand, card_last4, processor_reference, capture_partial,
         capture_multiple, failure, captured_amount, released_amount, refunded_amount, closure,
         capture_count, expires_at, created_at, updated_at, metadata)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18, $19, $20, $21, $22) RETURNING number",
            &[
                &order.id,
                &order.merchant_id,
                &order.reference,
                &order.currency.code(),
                &order.amount.minor_units(),
                &order.surcharge.minor_units(),
                &order.capture_mode.as_str(),
                &order.card_brand,
                &order.card_last4,
                &order
                    .authorization
                    .as_ref()
                    .map(|a| a.processor_reference.as_str()),
                &support.is_some_and(|s| s.partial),
                &support.is_some_and(|s| s.multiple),
                &order.failure.map(|f| f.code()),
                &order.captured_amount.minor_units(),
                &order.released_amount.minor_units(),
                &order.refunded_amount.minor_units(),
                &order.closure.map(Closure::as_str),
                &i64::from(order.capture_count),
                &order.expires_at.millis(),
                &order.created_at.millis(),
                &order.updated_at.millis(),
                &order.metadata,
            ],
        )
        .await?;
    Ok(row.get(0))
}

/// A value bound to a pipelined statement, owned so that the statements can wait together.
type Param = Box<dyn ToSql + Sync + Send>;

fn param(value: impl ToSql + Sync + Send + 'static) -> Param {
    Box::new(value)
}

/// Statements nothing waits on the answers of, sent together: one round trip for all of them
/// instead of one each. They run in the order they were added; the first failure is returned
/// (PostgreSQL refuses the rest of the transaction after it).
#[derive(Default)]
struct Pipeline {
    statements: Vec<(String, Vec<Param>)>,
}

impl Pipeline {
    fn push(&mut self, sql: impl Into<String>, params: Vec<Param>) {
        self.statements.push((sql.into(), params));
    }

    async fn run(self, tx: &impl GenericClient) -> Result<(), PgError> {
        let mut prepared = Vec::with_capacity(self.statements.len());
        for (sql, _) in &self.statements {
            prepared.push(tx.prepare_cached(sql).await?);
        }
        // Each execution is sent when first polled, and `try_join_all` polls them in order.
        let executions = prepared
            .iter()
            .zip(&self.statements)
            .map(|(statement, (_, params))| {
                let params: Vec<&(dyn ToSql + Sync)> = params
                    .iter()
                    .map(|p| p.as_ref() as &(dyn ToSql + Sync))
                    .collect();
                async move { tx.execute(statement, &params).await }
            });
        futures_util::future::try_join_all(executions).await?;
        Ok(())
    }
}

/// Plans everything a decision produced into one pipeline (the new order's row, whose number
/// the events' snapshots show, is inserted first); returns the new order's number on a create.
async fn persist(
    tx: &impl GenericClient,
    effects: &Effects,
    number: Option<i64>,
    snapshot: Option<&EventSnapshot>,
) -> Result<(Option<i64>, Pipeline), Failure> {
    let mut pipeline = Pipeline::default();
    let order_id = effects.events.first().map(|e| e.order_id.clone());
    let receivers = async {
        if effects.events.is_empty() {
            return Ok(Vec::new());
        }
        tx.rows(
            outbox::RECEIVING_ENDPOINTS,
            &[&effects.merchant_id, &order_id],
        )
        .await
    };
    let (created, receivers) = match &effects.order {
        Some(order) if effects.created => {
            let (created, receivers) = tokio::try_join!(insert_order(tx, order), async {
                receivers.await.map_err(Failure::from)
            })?;
            (Some(created), receivers)
        }
        other => {
            if let Some(order) = other {
                pipeline.push(
                    "UPDATE orders SET captured_amount = $2, released_amount = $3,
                     refunded_amount = $4, closure = $5, capture_count = $6, updated_at = $7
                     WHERE id = $1",
                    vec![
                        param(order.id.clone()),
                        param(order.captured_amount.minor_units()),
                        param(order.released_amount.minor_units()),
                        param(order.refunded_amount.minor_units()),
                        param(order.closure.map(Closure::as_str)),
                        param(i64::from(order.capture_count)),
                        param(order.updated_at.millis()),
                    ],
                );
            }
            (None, receivers.await?)
        }
    };
    if let Some(capture) = &effects.new_capture {
        let row = CaptureRow::of(capture);
        pipeline.push(
            format!(
                "INSERT INTO captures ({CAPTURE_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
            ),
            vec![
                param(row.id),
                param(row.order_id),
                param(row.amount),
                param(row.reference),
                param(row.is_final),
                param(row.invoice_id),
                param(row.description),
                param(row.reason),
                param(row.has_shipping),
                param(row.carrier),
                param(row.shipping_method),
                param(row.tracking_code),
                param(row.metadata),
                param(row.created_at),
                param(row.settles_at),
                param(row.settled_at),
            ],
        );
    }
    if let Some((capture_id, at)) = &effects.settled_capture {
        pipeline.push(
            "UPDATE captures SET settled_at = $2 WHERE id = $1",
            vec![param(capture_id.clone()), param(at.millis())],
        );
    }
    if let Some(refund) = &effects.new_refund {
        pipeline.push(
            format!("INSERT INTO refunds ({REFUND_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"),
            vec![
                param(refund.id.clone()),
                param(refund.order_id.clone()),
                param(refund.amount.minor_units()),
                param(refund.reference.clone()),
                param(refund.reason.clone()),
                param(refund.metadata.clone()),
                param(refund.created_at.millis()),
            ],
        );
    }
    for entry in &effects.ledger {
        pipeline.push(
            "INSERT INTO ledger (order_id, kind, amount, source_id, at) VALUES ($1, $2, $3, $4, $5)",
            vec![
                param(entry.order_id.clone()),
                param(entry.kind.as_str()),
                param(entry.amount.minor_units()),
                param(entry.source_id.clone()),
                param(entry.at.millis()),
            ],
        );
    }
    let (Some(currency), false) = (effects.currency, effects.events.is_empty()) else {
        return Ok((created, pipeline));
    };
    let record = effects.after.as_ref().map(|after| OrderRecord {
        number: created.or(number).unwrap_or_default(),
        order: after.order.clone(),
        captures: after.captures.clone(),
        refunds: after.refunds.clone(),
    });
    let mut receivers: Vec<(String, String)> =
        receivers.iter().map(|r| (r.get(0), r.get(1))).collect();
    if let (Some(notify), Some(order_id), Some(event)) =
        (&effects.notify, &order_id, effects.events.first())
    {
        // The order's own endpoint, created with the order, receives its first event too.
        let endpoint_id = new_id("we_");
        pipeline.push(
            outbox::INSERT_ORDER_ENDPOINT,
            vec![
                param(endpoint_id.clone()),
                param(effects.merchant_id.clone()),
                param(notify.url.clone()),
                param(notify.format.clone()),
                param(outbox::join_events(&notify.events)),
                param(true),
                param(event.at.millis()),
                param(order_id.clone()),
            ],
        );
        receivers.push((endpoint_id, outbox::join_events(&notify.events)));
    }
    for event in &effects.events {
        let id = new_id("evt_");
        let payload = match (snapshot, &record) {
            (Some(render), Some(record)) => Some(render(record, event.at)),
            _ => None,
        };
        pipeline.push(
            "INSERT INTO events (id, merchant_id, order_id, type, amount, currency,
             subject_id, created_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            vec![
                param(id.clone()),
                param(effects.merchant_id.clone()),
                param(event.order_id.clone()),
                param(event.kind.as_str()),
                param(event.amount.minor_units()),
                param(currency.code()),
                param(event.subject_id.clone()),
                param(event.at.millis()),
                param(payload),
            ],
        );
        for (endpoint_id, wanted) in &receivers {
            if outbox::split_events(wanted)
                .iter()
                .any(|e| e == "*" || e == event.kind.as_str())
            {
                pipeline.push(
                    outbox::INSERT_DELIVERY,
                    vec![
                        param(new_id("del_")),
                        param(effects.merchant_id.clone()),
                        param(endpoint_id.clone()),
                        param(id.clone()),
                        param(event.at.millis()),
                    ],
                );
            }
        }
    }
    Ok((created, pipeline))
}

/// Where a page starts: before the row `starting_after` names (its position from `sql`), or
/// from the newest; `None` when it names nothing of the merchant's.
async fn cursor(
    client: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    merchant_id: &str,
    starting_after: Option<&str>,
) -> Result<Option<i64>, StoreError> {
    let Some(id) = starting_after else {
        return Ok(Some(i64::MAX));
    };
    let row = client
        .query_opt(sql, &[&merchant_id, &id])
        .await
        .map_err(Failure::from)?;
    Ok(row.map(|row| row.get(0)))
}

impl RowSource for Row {
    fn optional_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, CorruptData> {
        self.try_get(index).map_err(column)
    }

    fn text(&self, index: usize) -> Result<String, CorruptData> {
        self.try_get(index).map_err(column)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, CorruptData> {
        self.try_get(index).map_err(column)
    }

    fn integer(&self, index: usize) -> Result<i64, CorruptData> {
        self.try_get(index).map_err(column)
    }

    fn optional_integer(&self, index: usize) -> Result<Option<i64>, CorruptData> {
        self.try_get(index).map_err(column)
    }

    fn flag(&self, index: usize) -> Result<bool, CorruptData> {
        self.try_get(index).map_err(column)
    }
}

fn column(error: PgError) -> CorruptData {
    CorruptData(error.to_string())
}

fn order_from_row(row: &Row) -> Result<(i64, Order), CorruptData> {
    OrderRow::order_of(row)
}

/// Loads an order, locking its row for the rest of the transaction when `for_update`.
async fn load_order(
    client: &impl GenericClient,
    merchant_id: &str,
    locator: &OrderLocator,
    for_update: bool,
) -> Result<Option<OrderRecord>, Failure> {
    let (column, value) = match locator {
        OrderLocator::Id(id) => ("id", id),
        OrderLocator::Reference(reference) => ("reference", reference),
    };
    let lock = if for_update { "FOR UPDATE" } else { "" };
    let statement = client
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = $1 AND {column} = $2 {lock}"
        ))
        .await?;
    let Some(row) = client.query_opt(&statement, &[&merchant_id, value]).await? else {
        return Ok(None);
    };
    let (number, order) = order_from_row(&row)?;
    let mut record = OrderRecord {
        number,
        order,
        captures: Vec::new(),
        refunds: Vec::new(),
    };
    load_details(client, &mut record).await?;
    Ok(Some(record))
}

async fn load_details(
    client: &impl GenericClient,
    record: &mut OrderRecord,
) -> Result<(), Failure> {
    let captures = client
        .prepare_cached(&format!(
            "SELECT {CAPTURE_COLUMNS} FROM captures WHERE order_id = $1 ORDER BY seq"
        ))
        .await?;
    let refunds = client
        .prepare_cached(&format!(
            "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = $1 ORDER BY seq"
        ))
        .await?;
    // Both in one round trip.
    let order_id: [&(dyn ToSql + Sync); 1] = [&record.order.id];
    let (capture_rows, refund_rows) = tokio::try_join!(
        client.query(&captures, &order_id),
        client.query(&refunds, &order_id),
    )?;
    record.captures = capture_rows
        .iter()
        .map(CaptureRow::capture_of)
        .collect::<Result<_, _>>()?;
    record.refunds = refund_rows
        .iter()
        .map(RefundRow::refund_of)
        .collect::<Result<_, _>>()?;
    Ok(())
}
