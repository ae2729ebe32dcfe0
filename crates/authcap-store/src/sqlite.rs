//! The embedded SQLite backend.
//!
//! One writer thread owns the only write connection: SQLite takes one writer at a time anyway,
//! and a single owner needs no lock retries. It drains whatever writes are queued and runs them
//! as savepoints inside one transaction, so one fsync commits the whole group (group commit);
//! a write's answer is sent only after that commit. Reads use their own connections (WAL lets
//! them run beside the writer).

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};

use authcap_core::ledger::LedgerTotals;
use authcap_core::order::Closure;
use authcap_core::{Clock, Command, LedgerKind, Order, Processor, Timestamp};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use crate::observe::Observer;
use crate::outbox;
use crate::rows::{
    self, CAPTURE_COLUMNS, CaptureRow, CorruptData, EVENT_COLUMNS, EventRow, ORDER_COLUMNS,
    OrderRow, REFUND_COLUMNS, RefundRow, RowSource,
};
use crate::write::{self, Effects, Job, Loaded};
use crate::{
    Credential, CredentialKind, DeliveryAttempt, DeliveryOutcome, Discrepancy, DueDelivery,
    EventQuery, EventSnapshot, Executed, HashFor, ListQuery, MerchantSummary, NewMerchant,
    OrderLocator, OrderRecord, StoreError, StoredEvent, StoredResponse, WebhookEndpoint, new_id,
    unavailable,
};

/// How many queued writes share one commit at most.
const GROUP_COMMIT_WRITES_MAX: usize = 128;

/// How many writes may wait for the writer; beyond it a write is refused at once (503)
/// rather than queued without bound.
pub const WRITER_QUEUE_MAX: usize = 4096;

/// How many reads run at once, each on its own connection; more wait their turn.
const READERS_MAX: usize = 16;

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_initial.sql"),
    include_str!("../migrations/sqlite/0002_events.sql"),
    include_str!("../migrations/sqlite/0003_credential_lifecycle.sql"),
    include_str!("../migrations/sqlite/0004_webhooks.sql"),
    include_str!("../migrations/sqlite/0005_sandbox_clock.sql"),
    include_str!("../migrations/sqlite/0006_order_notifications.sql"),
];

type Reply = oneshot::Sender<Result<Option<Executed>, StoreError>>;

/// What the writer thread is asked to do.
enum Work {
    Job(Box<Job>),
    /// Commit a heartbeat, to learn whether writes succeed right now.
    Probe,
    /// An administrative write (deliveries claimed and recorded, credentials rotated, …):
    /// a member of a group like any request's write, so it shares its commit.
    Direct(Box<dyn DirectWrite>),
}

/// A closure to run on the writer's connection, whose value is sent only once it is
/// committed (a failed one is dropped: its caller learns the error from the group's reply).
trait DirectWrite: Send {
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()>;
    fn deliver(self: Box<Self>);
}

struct DirectWriteOf<F, T> {
    write: Option<F>,
    value: Option<T>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<F, T> DirectWrite for DirectWriteOf<F, T>
where
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
    T: Send,
{
    fn run(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let write = self.write.take().expect("a direct write runs once");
        self.value = Some(write(conn)?);
        Ok(())
    }

    fn deliver(self: Box<Self>) {
        if let Some(value) = self.value {
            let _ = self.reply.send(Ok(value));
        }
    }
}

struct Queued {
    work: Work,
    reply: Reply,
}

/// The heartbeat a probe commits: the one row it touches, with the time.
const PROBE: &str = "INSERT INTO settings (name, value) VALUES ('write_probe', ?1)
    ON CONFLICT (name) DO UPDATE SET value = excluded.value";

pub struct SqliteStore {
    path: String,
    writer: mpsc::SyncSender<Queued>,
    /// The checkpointer thread runs while this is held.
    _checkpointer_alive: Arc<()>,
    /// Writes sent to the writer and not yet taken up by it.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    readers: Mutex<Vec<Connection>>,
    reader_slots: tokio::sync::Semaphore,
    clock: Arc<dyn Clock>,
}

fn connect(path: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )?;
    Ok(conn)
}

/// The writer's connection: its commits never checkpoint (the checkpointer thread does, beside
/// it), unless the log has grown past `WAL_CHECKPOINT_ON_WRITER_BYTES`.
fn connect_writer(path: &str) -> rusqlite::Result<Connection> {
    let conn = connect(path)?;
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864;")?;
    Ok(conn)
}

/// How often the checkpointer copies committed pages from the log into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// The log only starts over once every frame in it has been copied back, which a checkpointer
/// running beside a busy writer never quite sees; past this size the writer checkpoints the
/// (by then short) remainder itself, between two groups, and the log starts over.
const WAL_CHECKPOINT_ON_WRITER_BYTES: u64 = 32 * 1024 * 1024;

/// Copies the log into the database file off the writer thread, so commits do not wait for
/// checkpoints (their page copies and the database file's fsync). Stops when the store is
/// dropped.
fn run_checkpointer(path: String, store: std::sync::Weak<()>) {
    let mut conn = None;
    while store.strong_count() > 0 {
        std::thread::sleep(CHECKPOINT_INTERVAL);
        if conn.is_none() {
            // SQLite opens a file it may not write read-only; such a connection must not
            // linger once the file is writable again.
            conn = connect(&path)
                .ok()
                .filter(|open| open.is_readonly(rusqlite::MAIN_DB) == Ok(false));
        }
        if let Some(open) = &conn
            && let Err(error) = open.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(%error, "SQLite checkpoint failed");
            conn = None;
        }
    }
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)?;
    let applied: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
        tx.execute_batch(migration)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
    }
    tx.commit()
}

impl SqliteStore {
    pub fn open(
        path: &str,
        processor: Arc<dyn Processor>,
        clock: Arc<dyn Clock>,
        snapshot: Arc<OnceLock<EventSnapshot>>,
        observer: Observer,
    ) -> Result<SqliteStore, StoreError> {
        let mut conn = connect_writer(path).map_err(unavailable)?;
        migrate(&mut conn).map_err(unavailable)?;
        // A database that cannot be written (read-only, on a full or read-only disk) is
        // refused now rather than served with every write failing.
        conn.execute(PROBE, [clock.now().millis().to_string()])
            .map_err(|error| unavailable(format!("the database cannot be written: {error}")))?;
        let (sender, receiver) = mpsc::sync_channel::<Queued>(WRITER_QUEUE_MAX);
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let writer = Writer {
            queued: queued.clone(),
            observer,
            conn,
            path: path.to_owned(),
            broken: false,
            processor,
            clock: clock.clone(),
            snapshot,
            committed_directs: Vec::new(),
        };
        std::thread::Builder::new()
            .name("authcap-sqlite-writer".into())
            .spawn(move || writer.run(receiver))
            .map_err(unavailable)?;
        let checkpointer_alive = Arc::new(());
        let (checkpointed, alive) = (path.to_owned(), Arc::downgrade(&checkpointer_alive));
        std::thread::Builder::new()
            .name("authcap-sqlite-checkpointer".into())
            .spawn(move || run_checkpointer(checkpointed, alive))
            .map_err(unavailable)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: sender,
            _checkpointer_alive: checkpointer_alive,
            queued,
            readers: Mutex::new(Vec::new()),
            reader_slots: tokio::sync::Semaphore::new(READERS_MAX),
            clock,
        })
    }

    pub async fn execute(&self, job: Job) -> Result<Option<Executed>, StoreError> {
        self.send(Work::Job(Box::new(job))).await
    }

    /// Whether a write can be committed right now: commits a heartbeat through the writer.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.send(Work::Probe).await.map(|_| ())
    }

    pub fn queue_depth(&self) -> usize {
        self.queued.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn send(&self, work: Work) -> Result<Option<Executed>, StoreError> {
        let (reply, answer) = oneshot::channel();
        // Counted before it is sent, so that the writer never takes it up first.
        self.queued
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.writer
            .try_send(Queued { work, reply })
            .inspect_err(|_| {
                self.queued
                    .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            })
            .map_err(|error| match error {
                mpsc::TrySendError::Full(_) => {
                    StoreError::Overloaded("the write queue is full".into())
                }
                mpsc::TrySendError::Disconnected(_) => unavailable("the writer has stopped"),
            })?;
        answer
            .await
            .map_err(|_| unavailable("the writer dropped the request"))?
    }

    /// Runs `read` on a reader connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let _slot = self.reader_slots.acquire().await.map_err(unavailable)?;
        let pooled = self.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path).map_err(unavailable)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            // One read transaction: the order, its captures and refunds from one snapshot.
            let result = conn.execute_batch("BEGIN").and_then(|()| read(&conn));
            let _ = conn.execute_batch("COMMIT");
            (conn, result)
        })
        .await
        .map_err(unavailable)?;
        self.readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result.map_err(unavailable)
    }

    /// Runs `write` on the writer thread, in its own savepoint of the next group; its value
    /// is answered once the group is committed.
    async fn write_direct<T: Send + 'static>(
        &self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        let direct = DirectWriteOf {
            write: Some(write),
            value: None,
            reply,
        };
        self.send(Work::Direct(Box::new(direct))).await?;
        answer
            .await
            .map_err(|_| unavailable("the writer dropped the request"))?
    }

    pub async fn order(
        &self,
        merchant_id: String,
        locator: OrderLocator,
    ) -> Result<Option<OrderRecord>, StoreError> {
        self.read(move |conn| load_order(conn, &merchant_id, &locator))
            .await
    }

    pub async fn orders(
        &self,
        merchant_id: String,
        query: ListQuery,
        now: Timestamp,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        self.read(move |conn| list_orders(conn, &merchant_id, &query, now))
            .await
    }

    pub async fn clock_offset(&self, merchant_id: String) -> Result<i64, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached("SELECT clock_offset_ms FROM merchants WHERE id = $1")?
                .query_row([merchant_id], |r| r.get(0))
                .optional()
                .map(|offset| offset.unwrap_or(0))
        })
        .await
    }

    pub async fn advance_clock(&self, merchant_id: String, by: i64) -> Result<i64, StoreError> {
        self.write_direct(move |tx| {
            tx.query_row(
                "UPDATE merchants SET clock_offset_ms = clock_offset_ms + $1 WHERE id = $2
                 RETURNING clock_offset_ms",
                params![by, merchant_id],
                |r| r.get(0),
            )
            .optional()
            .map(|offset| offset.unwrap_or(0))
        })
        .await
    }

    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        self.read(|conn| {
            conn.prepare_cached(outbox::PENDING_DELIVERIES)?
                .query_row([], |r| r.get(0))
        })
        .await
    }

    pub async fn due_deliveries(
        &self,
        merchant_id: String,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT count(*) FROM deliveries JOIN merchants ON merchants.id = deliveries.merchant_id
                 WHERE deliveries.merchant_id = $1 AND deliveries.state = 'pending'
                 AND deliveries.next_attempt_at <= $2 + merchants.clock_offset_ms",
            )?
            .query_row(params![merchant_id, now.millis()], |r| r.get(0))
        })
        .await
    }

    pub async fn events_since(
        &self,
        after_seq: i64,
        merchant_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE seq > $1
                 AND ($2 IS NULL OR merchant_id = $2) ORDER BY seq LIMIT $3"
            ))?
            .query_map(params![after_seq, merchant_id, limit], event_from_row)?
            .collect()
        })
        .await
    }

    pub async fn event_page(
        &self,
        merchant_id: String,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let before: i64 = match &query.starting_after {
                Some(id) => match conn
                    .prepare_cached("SELECT seq FROM events WHERE merchant_id = $1 AND id = $2")?
                    .query_row(params![merchant_id, id], |r| r.get(0))
                    .optional()?
                {
                    Some(seq) => seq,
                    None => return Ok(Vec::new()),
                },
                None => i64::MAX,
            };
            conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND seq < $2
                 AND ($3 IS NULL OR type = $3) ORDER BY seq DESC LIMIT $4"
            ))?
            .query_map(
                params![merchant_id, before, query.kind, i64::from(query.limit)],
                event_from_row,
            )?
            .collect()
        })
        .await
    }

    pub async fn event(
        &self,
        merchant_id: String,
        event_id: String,
    ) -> Result<Option<StoredEvent>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = $1 AND id = $2"
            ))?
            .query_row(params![merchant_id, event_id], event_from_row)
            .optional()
        })
        .await
    }

    pub async fn create_endpoint(&self, endpoint: WebhookEndpoint) -> Result<(), StoreError> {
        self.write_direct(move |tx| {
            tx.execute(
                outbox::INSERT_ENDPOINT,
                params![
                    endpoint.id,
                    endpoint.merchant_id,
                    endpoint.url,
                    endpoint.format,
                    outbox::join_events(&endpoint.enabled_events),
                    endpoint.enabled,
                    endpoint.created_at.millis(),
                ],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn endpoints(&self, merchant_id: String) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(outbox::LIVE_ENDPOINTS)?
                .query_map([merchant_id], |row| {
                    rows::endpoint_at(row, 0).map_err(from_corrupt)
                })?
                .collect()
        })
        .await
    }

    pub async fn endpoint(
        &self,
        merchant_id: String,
        endpoint_id: String,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(outbox::ONE_ENDPOINT)?
                .query_row(params![merchant_id, endpoint_id], |row| {
                    rows::endpoint_at(row, 0).map_err(from_corrupt)
                })
                .optional()
        })
        .await
    }

    pub async fn delete_endpoint(
        &self,
        merchant_id: String,
        endpoint_id: String,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.write_direct(move |tx| {
            let deleted = tx.execute(
                outbox::DELETE_ENDPOINT,
                params![now.millis(), merchant_id, endpoint_id],
            )?;
            if deleted > 0 {
                tx.execute(outbox::STOP_DELIVERIES, [&endpoint_id])?;
            }
            Ok(deleted > 0)
        })
        .await
    }

    pub async fn redeliver(
        &self,
        merchant_id: String,
        event_id: String,
        now: Timestamp,
    ) -> Result<Option<usize>, StoreError> {
        self.write_direct(move |tx| {
            let event: Option<(String, String)> = tx
                .query_row(
                    "SELECT type, order_id FROM events WHERE merchant_id = $1 AND id = $2",
                    params![merchant_id, event_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((kind, order_id)) = event else {
                return Ok(None);
            };
            let receivers: Vec<(String, String)> = tx
                .prepare_cached(outbox::RECEIVING_ENDPOINTS)?
                .query_map([&merchant_id, &order_id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            let mut planned = 0;
            for (endpoint_id, wanted) in receivers {
                if outbox::split_events(&wanted)
                    .iter()
                    .any(|e| e == "*" || *e == kind)
                {
                    tx.execute(
                        outbox::INSERT_DELIVERY,
                        params![
                            new_id("del_"),
                            merchant_id,
                            endpoint_id,
                            event_id,
                            now.millis()
                        ],
                    )?;
                    planned += 1;
                }
            }
            Ok(Some(planned))
        })
        .await
    }

    pub async fn delivery_attempts(
        &self,
        merchant_id: String,
        endpoint_id: String,
        limit: i64,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(outbox::ATTEMPTS_OF_ENDPOINT)?
                .query_map(params![merchant_id, endpoint_id, limit], |row| {
                    rows::attempt_of(row).map_err(from_corrupt)
                })?
                .collect()
        })
        .await
    }

    pub async fn claim_deliveries(
        &self,
        now: Timestamp,
        real_now: Timestamp,
        until: Timestamp,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // Most ticks find nothing due: a read says so without taking the write lock.
        let due = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT 1 FROM deliveries JOIN merchants ON merchants.id = deliveries.merchant_id
                     WHERE deliveries.state = 'pending'
                     AND deliveries.next_attempt_at <= $1 + merchants.clock_offset_ms
                     AND (deliveries.lease_until IS NULL OR deliveries.lease_until <= $2) LIMIT 1",
                )?
                .exists([now.millis(), real_now.millis()])
            })
            .await?;
        if !due {
            return Ok(Vec::new());
        }
        self.write_direct(move |tx| {
            let ids: Vec<String> = tx
                .prepare_cached(
                    "UPDATE deliveries SET lease_until = $1 WHERE id IN (SELECT deliveries.id FROM deliveries
                     JOIN merchants ON merchants.id = deliveries.merchant_id
                     WHERE deliveries.state = 'pending'
                     AND deliveries.next_attempt_at <= $2 + merchants.clock_offset_ms
                     AND (deliveries.lease_until IS NULL OR deliveries.lease_until <= $3)
                     ORDER BY deliveries.next_attempt_at LIMIT $4)
                     RETURNING id",
                )?
                .query_map(
                    params![until.millis(), now.millis(), real_now.millis(), limit],
                    |r| r.get(0),
                )?
                .collect::<rusqlite::Result<_>>()?;
            let mut claimed = Vec::with_capacity(ids.len());
            for id in ids {
                let delivery = tx
                    .prepare_cached(outbox::CLAIMED)?
                    .query_row([id], |row| rows::due_delivery_of(row).map_err(from_corrupt))?;
                claimed.push(delivery);
            }
            Ok(claimed)
        })
        .await
    }

    pub async fn finish_deliveries(
        &self,
        finished: Vec<(DeliveryAttempt, DeliveryOutcome)>,
    ) -> Result<(), StoreError> {
        self.write_direct(move |tx| {
            for (attempt, outcome) in &finished {
                let id = &attempt.delivery_id;
                tx.prepare_cached(outbox::INSERT_ATTEMPT)?.execute(params![
                    id,
                    attempt.attempted_at.millis(),
                    attempt.status_code,
                    attempt.error,
                    attempt.duration_ms
                ])?;
                match outcome {
                    DeliveryOutcome::Delivered => {
                        tx.prepare_cached(outbox::DELIVERED)?.execute([id])?
                    }
                    DeliveryOutcome::RetryAt(at) => tx
                        .prepare_cached(outbox::RETRY)?
                        .execute(params![at.millis(), id])?,
                    DeliveryOutcome::Failed => tx.prepare_cached(outbox::FAILED)?.execute([id])?,
                    DeliveryOutcome::EndpointGone => {
                        tx.execute(outbox::FAILED, [id])?;
                        tx.execute(outbox::GONE, [id])?;
                        tx.execute(outbox::STOP_ENDPOINT_OF_DELIVERY, [id])?
                    }
                };
            }
            Ok(())
        })
        .await
    }

    pub async fn events(
        &self,
        merchant_id: String,
        order_id: Option<String>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events WHERE merchant_id = ?1
                 AND (?2 IS NULL OR order_id = ?2) ORDER BY seq LIMIT ?3"
            ))?;
            statement
                .query_map(params![merchant_id, order_id, limit], event_from_row)?
                .collect()
        })
        .await
    }

    pub async fn create_merchant(&self, merchant: NewMerchant) -> Result<(), StoreError> {
        let created_at = self.clock.now().millis();
        self.write_direct(move |tx| {
            tx.execute(
                "INSERT INTO merchants (id, name, created_at) VALUES (?1, ?2, ?3)",
                params![merchant.id, merchant.name, created_at],
            )?;
            for (kind, hash) in &merchant.credential_hashes {
                tx.execute(
                    "INSERT INTO merchant_credentials (lookup_hash, kind, merchant_id)
                     VALUES (?1, ?2, ?3)",
                    params![hash, kind.as_str(), merchant.id],
                )?;
            }
            Ok(())
        })
        .await
    }

    pub async fn order_by_capture_reference(
        &self,
        merchant_id: String,
        reference: String,
    ) -> Result<Option<OrderRecord>, StoreError> {
        self.read(move |conn| {
            let order_id: Option<String> = conn
                .prepare_cached(
                    "SELECT captures.order_id FROM captures JOIN orders ON orders.id = captures.order_id
                     WHERE orders.merchant_id = ?1 AND captures.reference = ?2 LIMIT 1",
                )?
                .query_row(params![merchant_id, reference], |r| r.get(0))
                .optional()?;
            match order_id {
                Some(id) => load_order(conn, &merchant_id, &OrderLocator::Id(id)),
                None => Ok(None),
            }
        })
        .await
    }

    pub async fn merchant_count(&self) -> Result<i64, StoreError> {
        self.read(|conn| conn.query_row("SELECT count(*) FROM merchants", [], |r| r.get(0)))
            .await
    }

    pub async fn credential(
        &self,
        kind: CredentialKind,
        hash: String,
        now: Timestamp,
    ) -> Result<Option<Credential>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT merchant_id, generation FROM merchant_credentials
                 WHERE lookup_hash = ?1 AND kind = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![hash, kind.as_str(), now.millis()], |r| {
                Ok(Credential {
                    merchant_id: r.get(0)?,
                    generation: r.get(1)?,
                })
            })
            .optional()
        })
        .await
    }

    pub async fn generation_works(
        &self,
        merchant_id: String,
        kind: CredentialKind,
        generation: i64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT 1 FROM merchant_credentials WHERE merchant_id = ?1 AND kind = ?2
                 AND generation = ?3 AND (expires_at IS NULL OR expires_at > ?4)",
            )?
            .exists(params![
                merchant_id,
                kind.as_str(),
                generation,
                now.millis()
            ])
        })
        .await
    }

    pub async fn newest_generation(
        &self,
        merchant_id: String,
        kind: CredentialKind,
        now: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        self.read(move |conn| {
            conn.prepare_cached(
                "SELECT max(generation) FROM merchant_credentials WHERE merchant_id = ?1
                 AND kind = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
            )?
            .query_row(params![merchant_id, kind.as_str(), now.millis()], |r| {
                r.get(0)
            })
        })
        .await
    }

    pub async fn rotate_credentials(
        &self,
        merchant_id: String,
        new: Vec<(CredentialKind, HashFor)>,
        retire_at: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        self.write_direct(move |tx| {
            let exists = tx
                .prepare_cached("SELECT 1 FROM merchants WHERE id = ?1")?
                .exists([&merchant_id])?;
            if !exists {
                return Ok(None);
            }
            let generation: i64 = tx.query_row(
                "SELECT coalesce(max(generation), 0) + 1 FROM merchant_credentials
                 WHERE merchant_id = ?1",
                [&merchant_id],
                |r| r.get(0),
            )?;
            for (kind, hash_for) in &new {
                let hash = hash_for(generation);
                tx.execute(
                    "UPDATE merchant_credentials SET expires_at = ?3 WHERE merchant_id = ?1
                     AND kind = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
                    params![merchant_id, kind.as_str(), retire_at.millis()],
                )?;
                tx.execute(
                    "INSERT INTO merchant_credentials (lookup_hash, kind, merchant_id, generation)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![hash, kind.as_str(), merchant_id, generation],
                )?;
            }
            Ok(Some(generation))
        })
        .await
    }

    pub async fn merchants(&self) -> Result<Vec<MerchantSummary>, StoreError> {
        self.read(|conn| {
            let mut merchants = Vec::new();
            let mut statement =
                conn.prepare("SELECT id, name, created_at FROM merchants ORDER BY created_at, id")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                merchants.push(MerchantSummary {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    created_at: Timestamp(row.get(2)?),
                    credentials: Vec::new(),
                });
            }
            let mut statement = conn.prepare(
                "SELECT kind, generation, expires_at FROM merchant_credentials
                 WHERE merchant_id = ?1 ORDER BY kind, generation",
            )?;
            for merchant in &mut merchants {
                merchant.credentials = statement
                    .query_map([&merchant.id], |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get::<_, Option<i64>>(2)?.map(Timestamp),
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(merchants)
        })
        .await
    }

    pub async fn stored_setting(&self, name: String) -> Result<Option<String>, StoreError> {
        self.read(move |conn| {
            conn.query_row("SELECT value FROM settings WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    pub async fn forget_setting(&self, name: String) -> Result<(), StoreError> {
        self.write_direct(move |tx| {
            tx.execute("DELETE FROM settings WHERE name = ?1", [name])?;
            Ok(())
        })
        .await
    }

    pub async fn setting(
        &self,
        name: String,
        generate: Box<dyn FnOnce() -> String + Send>,
    ) -> Result<String, StoreError> {
        self.write_direct(move |tx| {
            let existing: Option<String> = tx
                .query_row("SELECT value FROM settings WHERE name = ?1", [&name], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(value) = existing {
                return Ok(value);
            }
            let value = generate();
            tx.execute(
                "INSERT INTO settings (name, value) VALUES (?1, ?2)",
                params![name, value],
            )?;
            Ok(value)
        })
        .await
    }

    pub async fn check(&self) -> Result<Vec<Discrepancy>, StoreError> {
        self.read(|conn| {
            let mut totals = std::collections::HashMap::<String, LedgerTotals>::new();
            let mut entries =
                conn.prepare("SELECT order_id, kind, sum(amount) FROM ledger GROUP BY 1, 2")?;
            let mut rows = entries.query([])?;
            while let Some(row) = rows.next()? {
                let kind: String = row.get(1)?;
                let kind = LedgerKind::parse(&kind).ok_or_else(|| corrupt("ledger kind"))?;
                totals
                    .entry(row.get(0)?)
                    .or_default()
                    .add(kind, row.get(2)?);
            }
            let mut statement = conn.prepare(&format!("SELECT {ORDER_COLUMNS} FROM orders"))?;
            let orders = statement
                .query_map([], |row| order_from_row(row).map(|(_, o)| o))?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows::discrepancies_against(orders, totals))
        })
        .await
    }

    pub async fn prune_idempotency(&self, before_millis: i64) -> Result<usize, StoreError> {
        self.write_direct(move |tx| {
            tx.execute(
                "DELETE FROM idempotency WHERE created_at < $1 + coalesce((SELECT clock_offset_ms
                 FROM merchants WHERE merchants.id = idempotency.merchant_id), 0)",
                [before_millis],
            )
        })
        .await
    }

    pub async fn due(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<(String, String, Command)>, StoreError> {
        self.read(move |conn| {
            let mut due = Vec::new();
            let mut expiring = conn.prepare_cached(
                "SELECT orders.merchant_id, orders.id FROM orders
                 JOIN merchants ON merchants.id = orders.merchant_id
                 WHERE orders.closure IS NULL AND orders.processor_reference IS NOT NULL
                 AND orders.expires_at <= $1 + (SELECT max(clock_offset_ms) FROM merchants)
                 AND orders.expires_at <= $1 + merchants.clock_offset_ms LIMIT $2",
            )?;
            let mut rows = expiring.query(params![now.millis(), limit])?;
            while let Some(row) = rows.next()? {
                due.push((row.get(0)?, row.get(1)?, Command::Expire));
            }
            let mut settling = conn.prepare_cached(
                "SELECT orders.merchant_id, captures.order_id, captures.id FROM captures
                 JOIN orders ON orders.id = captures.order_id
                 JOIN merchants ON merchants.id = orders.merchant_id
                 WHERE captures.settles_at IS NOT NULL AND captures.settled_at IS NULL
                 AND captures.settles_at <= $1 + (SELECT max(clock_offset_ms) FROM merchants)
                 AND captures.settles_at <= $1 + merchants.clock_offset_ms LIMIT $2",
            )?;
            let mut rows = settling.query(params![now.millis(), limit])?;
            while let Some(row) = rows.next()? {
                let capture_id = row.get(2)?;
                due.push((row.get(0)?, row.get(1)?, Command::Settle { capture_id }));
            }
            Ok(due)
        })
        .await
    }
}

struct Writer {
    conn: Connection,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    observer: Observer,
    path: String,
    /// The last group failed on the database itself: the connection is opened anew before
    /// the next one, so the writer recovers by itself once the database is writable again
    /// (a connection that met a read-only file stays read-only).
    broken: bool,
    processor: Arc<dyn Processor>,
    clock: Arc<dyn Clock>,
    snapshot: Arc<OnceLock<EventSnapshot>>,
    /// This group's administrative writes, whose values are delivered once it commits.
    committed_directs: Vec<Box<dyn DirectWrite>>,
}

impl Writer {
    fn run(mut self, jobs: mpsc::Receiver<Queued>) {
        while let Ok(first) = jobs.recv() {
            let mut group = vec![first];
            while group.len() < GROUP_COMMIT_WRITES_MAX {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            self.queued
                .fetch_sub(group.len(), std::sync::atomic::Ordering::Relaxed);
            if self.broken && !self.reopen() {
                for queued in group {
                    let _ = queued
                        .reply
                        .send(Err(unavailable("the database cannot be written")));
                }
                continue;
            }
            self.commit_group(group);
        }
    }

    fn reopen(&mut self) -> bool {
        match connect_writer(&self.path) {
            Ok(conn) => {
                tracing::info!("SQLite writer connection opened anew");
                self.conn = conn;
                self.broken = false;
                true
            }
            Err(error) => {
                tracing::error!(%error, "SQLite writer cannot open the database");
                false
            }
        }
    }

    fn commit_group(&mut self, group: Vec<Queued>) {
        let mut answers = Vec::with_capacity(group.len());
        if let Err(error) = self.conn.execute_batch("BEGIN IMMEDIATE") {
            self.broken = true;
            for job in group {
                let _ = job.reply.send(Err(unavailable(&error)));
            }
            return;
        }
        let mut jobs = group.into_iter();
        self.committed_directs.clear();
        for queued in jobs.by_ref() {
            let answer = self.execute_one(queued.work);
            answers.push((queued.reply, answer));
            // Some errors (disk full, I/O) make SQLite roll back the whole transaction by
            // itself; nothing of this group was written, and later writes must not run
            // outside it.
            if self.conn.is_autocommit() {
                break;
            }
        }
        if self.conn.is_autocommit() {
            self.broken = true;
            tracing::error!("SQLite rolled back the group");
            let rolled_back = answers.into_iter().map(|(reply, _)| reply);
            for reply in rolled_back.chain(jobs.map(|queued| queued.reply)) {
                let _ = reply.send(Err(unavailable("the transaction was rolled back")));
            }
            return;
        }
        let started = std::time::Instant::now();
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_ok()
            && let Some(observer) = self.observer.get()
        {
            observer.group_committed(answers.len(), started.elapsed());
        }
        if let Err(error) = committed {
            self.broken = true;
            tracing::error!(%error, "group commit failed");
            let _ = self.conn.execute_batch("ROLLBACK");
            for (reply, _) in answers {
                let _ = reply.send(Err(unavailable(&error)));
            }
            return;
        }
        for direct in self.committed_directs.drain(..) {
            direct.deliver();
        }
        for (reply, answer) in answers {
            let _ = reply.send(answer);
        }
        self.bound_the_log();
    }

    fn bound_the_log(&mut self) {
        let log = std::fs::metadata(format!("{}-wal", self.path)).map_or(0, |m| m.len());
        if log > WAL_CHECKPOINT_ON_WRITER_BYTES
            && let Err(error) =
                self.conn
                    .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::warn!(%error, "SQLite checkpoint on the writer failed");
        }
    }

    /// A write that is not a request's, in its own savepoint.
    fn execute_plain(
        &mut self,
        write: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    ) -> Result<Option<Executed>, StoreError> {
        let written = self.conn.savepoint().and_then(|sp| {
            write(&sp)?;
            sp.commit()
        });
        written.map(|()| None).map_err(|error| {
            // A connection opened while the file could not be written stays read-only: the
            // next group opens a new one.
            self.broken = true;
            unavailable(error)
        })
    }

    /// One write inside its own savepoint: on any database error only this write is undone.
    fn execute_one(&mut self, work: Work) -> Result<Option<Executed>, StoreError> {
        let job = match work {
            Work::Job(job) => *job,
            Work::Probe => {
                let now = self.clock.now().millis().to_string();
                return self.execute_plain(|conn| conn.execute(PROBE, [now]).map(drop));
            }
            Work::Direct(mut direct) => {
                let written = self.execute_plain(|conn| direct.run(conn));
                if written.is_ok() {
                    self.committed_directs.push(direct);
                }
                return written;
            }
        };
        let sp = self.conn.savepoint().map_err(unavailable)?;
        // A bug in one write must not take the writer thread, and every later write, with it.
        let processor = self.processor.as_ref();
        let now = self.clock.now();
        let executed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            execute_job(&sp, processor, self.snapshot.get(), job, now)
        }))
        .unwrap_or_else(|_| Err(unavailable("the write panicked; it was rolled back")));
        match executed {
            Ok(executed) => {
                sp.commit().map_err(unavailable)?;
                Ok(executed)
            }
            Err(error) => {
                if let StoreError::Unavailable(_) = error {
                    self.broken = true;
                    tracing::error!(%error, "write failed and was rolled back");
                }
                // Dropping the savepoint rolls it back.
                Err(error)
            }
        }
    }
}

fn execute_job(
    conn: &Connection,
    processor: &dyn Processor,
    snapshot: Option<&EventSnapshot>,
    job: Job,
    now: Timestamp,
) -> Result<Option<Executed>, StoreError> {
    let Job {
        merchant_id,
        idempotency,
        action,
    } = job;
    if let Some(claim) = &idempotency {
        let stored: Option<(String, u16, String, Vec<u8>)> = conn
            .prepare_cached(
                "SELECT fingerprint, status, content_type, body FROM idempotency
                 WHERE merchant_id = ?1 AND scope = ?2 AND key = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![merchant_id, claim.scope, claim.key], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .optional()
            })
            .map_err(unavailable)?;
        if let Some((fingerprint, status, content_type, body)) = stored {
            if fingerprint != claim.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            return Ok(Some(Executed {
                response: StoredResponse {
                    status,
                    content_type,
                    body,
                },
                replayed: true,
            }));
        }
    }
    // The merchant's sandbox clock: the server's, moved ahead as the merchant asked.
    let offset: i64 = conn
        .prepare_cached("SELECT clock_offset_ms FROM merchants WHERE id = $1")
        .and_then(|mut s| s.query_row([&merchant_id], |r| r.get(0)).optional())
        .map_err(unavailable)?
        .unwrap_or(0);
    let now = now.plus_millis(offset);
    let loaded = load(conn, &merchant_id, &action).map_err(unavailable)?;
    let decision = write::decide(merchant_id.clone(), action, loaded, now, processor);
    let created =
        persist(conn, &decision.effects, decision.number, snapshot).map_err(unavailable)?;
    let number = created.or(decision.number).unwrap_or_default();
    let kept = idempotency
        .as_ref()
        .filter(|claim| decision.kept_under(claim.kind));
    let Some(respond) = decision.respond else {
        return Ok(None);
    };
    let response = respond(Ok(number));
    if let Some(claim) = kept {
        conn.prepare_cached(
            "INSERT INTO idempotency
             (merchant_id, scope, key, fingerprint, status, content_type, body, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .and_then(|mut s| {
            s.execute(params![
                merchant_id,
                claim.scope,
                claim.key,
                claim.fingerprint,
                response.status,
                response.content_type,
                response.body,
                now.millis()
            ])
        })
        .map_err(unavailable)?;
    }
    Ok(Some(Executed {
        response,
        replayed: false,
    }))
}

fn load(conn: &Connection, merchant_id: &str, action: &write::Action) -> rusqlite::Result<Loaded> {
    if let Some(reference) = action.new_reference() {
        let reference_taken = conn
            .prepare_cached("SELECT 1 FROM orders WHERE merchant_id = ?1 AND reference = ?2")?
            .exists(params![merchant_id, reference])?;
        return Ok(Loaded::NewOrder { reference_taken });
    }
    let record = match action.target() {
        Some(locator) => load_order(conn, merchant_id, locator)?.map(Box::new),
        None => None,
    };
    let reference_taken_elsewhere = match (action.exclusive_reference(), &record) {
        (Some(reference), Some(record)) => conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM orders WHERE merchant_id = ?1 AND reference = ?2
                 AND id <> ?3) OR EXISTS (SELECT 1 FROM captures JOIN orders
                 ON orders.id = captures.order_id WHERE orders.merchant_id = ?1
                 AND captures.reference = ?2 AND captures.order_id <> ?3)",
            )?
            .query_row(params![merchant_id, reference, record.order.id], |r| {
                r.get(0)
            })?,
        _ => false,
    };
    Ok(Loaded::Existing {
        record,
        reference_taken_elsewhere,
    })
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnName(format!("corrupt or unexpected data: {what}"))
}

fn insert_order(conn: &Connection, order: &Order) -> rusqlite::Result<i64> {
    let support = order.authorization.as_ref().map(|a| a.capture_support);
    conn.prepare_cached(
        "INSERT INTO orders (id, merchant_id, reference, currency, amount, surcharge,
         capture_mode, card_brand, card_last4, processor_reference, capture_partial,
         capture_multiple, failure, captured_amount, released_amount, refunded_amount, closure,
         capture_count, expires_at, created_at, updated_at, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                 ?18, ?19, ?20, ?21, ?22)",
    )?
    .execute(params![
        order.id,
        order.merchant_id,
        order.reference,
        order.currency.code(),
        order.amount.minor_units(),
        order.surcharge.minor_units(),
        order.capture_mode.as_str(),
        order.card_brand,
        order.card_last4,
        order.authorization.as_ref().map(|a| &a.processor_reference),
        support.is_some_and(|s| s.partial),
        support.is_some_and(|s| s.multiple),
        order.failure.map(|f| f.code()),
        order.captured_amount.minor_units(),
        order.released_amount.minor_units(),
        order.refunded_amount.minor_units(),
        order.closure.map(Closure::as_str),
        order.capture_count,
        order.expires_at.millis(),
        order.created_at.millis(),
        order.updated_at.millis(),
        order.metadata,
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Writes everything a decision produced; returns the new order's number on a create.
fn persist(
    conn: &Connection,
    effects: &Effects,
    number: Option<i64>,
    snapshot: Option<&EventSnapshot>,
) -> rusqlite::Result<Option<i64>> {
    let mut created = None;
    match &effects.order {
        Some(order) if effects.created => created = Some(insert_order(conn, order)?),
        Some(order) => {
            conn.prepare_cached(
                "UPDATE orders SET captured_amount = ?2, released_amount = ?3,
                 refunded_amount = ?4, closure = ?5, capture_count = ?6, updated_at = ?7
                 WHERE id = ?1",
            )?
            .execute(params![
                order.id,
                order.captured_amount.minor_units(),
                order.released_amount.minor_units(),
                order.refunded_amount.minor_units(),
                order.closure.map(Closure::as_str),
                order.capture_count,
                order.updated_at.millis(),
            ])?;
        }
        None => {}
    }
    if let Some(capture) = &effects.new_capture {
        let row = CaptureRow::of(capture);
        conn.prepare_cached(&format!(
            "INSERT INTO captures ({CAPTURE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
        ))?
        .execute(params![
            row.id,
            row.order_id,
            row.amount,
            row.reference,
            row.is_final,
            row.invoice_id,
            row.description,
            row.reason,
            row.has_shipping,
            row.carrier,
            row.shipping_method,
            row.tracking_code,
            row.metadata,
            row.created_at,
            row.settles_at,
            row.settled_at,
        ])?;
    }
    if let Some((capture_id, at)) = &effects.settled_capture {
        conn.prepare_cached("UPDATE captures SET settled_at = ?2 WHERE id = ?1")?
            .execute(params![capture_id, at.millis()])?;
    }
    if let Some(refund) = &effects.new_refund {
        conn.prepare_cached(&format!(
            "INSERT INTO refunds ({REFUND_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
        ))?
        .execute(params![
            refund.id,
            refund.order_id,
            refund.amount.minor_units(),
            refund.reference,
            refund.reason,
            refund.metadata,
            refund.created_at.millis(),
        ])?;
    }
    for entry in &effects.ledger {
        conn.prepare_cached(
            "INSERT INTO ledger (order_id, kind, amount, source_id, at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            entry.order_id,
            entry.kind.as_str(),
            entry.amount.minor_units(),
            entry.source_id,
            entry.at.millis(),
        ])?;
    }
    let (Some(currency), false) = (effects.currency, effects.events.is_empty()) else {
        return Ok(created);
    };
    let record = effects.after.as_ref().map(|after| OrderRecord {
        number: created.or(number).unwrap_or_default(),
        order: after.order.clone(),
        captures: after.captures.clone(),
        refunds: after.refunds.clone(),
    });
    let order_id = effects.events.first().map(|e| e.order_id.clone());
    if let (Some(notify), Some(order_id), Some(event)) =
        (&effects.notify, &order_id, effects.events.first())
    {
        conn.prepare_cached(outbox::INSERT_ORDER_ENDPOINT)?
            .execute(params![
                new_id("we_"),
                effects.merchant_id,
                notify.url,
                notify.format,
                outbox::join_events(&notify.events),
                true,
                event.at.millis(),
                order_id,
            ])?;
    }
    let receivers: Vec<(String, String)> = conn
        .prepare_cached(outbox::RECEIVING_ENDPOINTS)?
        .query_map(params![effects.merchant_id, order_id], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for event in &effects.events {
        let id = new_id("evt_");
        let payload = match (snapshot, &record) {
            (Some(render), Some(record)) => Some(render(record, event.at)),
            _ => None,
        };
        conn.prepare_cached(
            "INSERT INTO events (id, merchant_id, order_id, type, amount, currency,
             subject_id, created_at, payload) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )?
        .execute(params![
            id,
            effects.merchant_id,
            event.order_id,
            event.kind.as_str(),
            event.amount.minor_units(),
            currency.code(),
            event.subject_id,
            event.at.millis(),
            payload,
        ])?;
        for (endpoint_id, wanted) in &receivers {
            if outbox::split_events(wanted)
                .iter()
                .any(|e| e == "*" || e == event.kind.as_str())
            {
                conn.prepare_cached(outbox::INSERT_DELIVERY)?
                    .execute(params![
                        new_id("del_"),
                        effects.merchant_id,
                        endpoint_id,
                        id,
                        event.at.millis(),
                    ])?;
            }
        }
    }
    Ok(created)
}

impl RowSource for Row<'_> {
    fn text(&self, index: usize) -> Result<String, CorruptData> {
        self.get(index).map_err(column)
    }

    fn optional_text(&self, index: usize) -> Result<Option<String>, CorruptData> {
        self.get(index).map_err(column)
    }

    fn integer(&self, index: usize) -> Result<i64, CorruptData> {
        self.get(index).map_err(column)
    }

    fn optional_integer(&self, index: usize) -> Result<Option<i64>, CorruptData> {
        self.get(index).map_err(column)
    }

    fn flag(&self, index: usize) -> Result<bool, CorruptData> {
        self.get(index).map_err(column)
    }

    fn optional_bytes(&self, index: usize) -> Result<Option<Vec<u8>>, CorruptData> {
        self.get(index).map_err(column)
    }
}

fn column(error: rusqlite::Error) -> CorruptData {
    CorruptData(error.to_string())
}

fn event_from_row(row: &Row) -> rusqlite::Result<StoredEvent> {
    EventRow::event_of(row).map_err(from_corrupt)
}

fn order_from_row(row: &Row) -> rusqlite::Result<(i64, Order)> {
    OrderRow::order_of(row).map_err(from_corrupt)
}

fn from_corrupt(error: CorruptData) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(error))
}

fn load_order(
    conn: &Connection,
    merchant_id: &str,
    locator: &OrderLocator,
) -> rusqlite::Result<Option<OrderRecord>> {
    let (column, value) = match locator {
        OrderLocator::Id(id) => ("id", id),
        OrderLocator::Reference(reference) => ("reference", reference),
    };
    let found = conn
        .prepare_cached(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND {column} = ?2"
        ))?
        .query_row(params![merchant_id, value], order_from_row)
        .optional()?;
    let Some((number, order)) = found else {
        return Ok(None);
    };
    let mut record = OrderRecord {
        number,
        order,
        captures: Vec::new(),
        refunds: Vec::new(),
    };
    load_details(conn, &mut record)?;
    Ok(Some(record))
}

fn load_details(conn: &Connection, record: &mut OrderRecord) -> rusqlite::Result<()> {
    let mut captures = conn.prepare_cached(&format!(
        "SELECT {CAPTURE_COLUMNS} FROM captures WHERE order_id = ?1 ORDER BY created_at, rowid"
    ))?;
    record.captures = captures
        .query_map([&record.order.id], |row| {
            CaptureRow::capture_of(row).map_err(from_corrupt)
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut refunds = conn.prepare_cached(&format!(
        "SELECT {REFUND_COLUMNS} FROM refunds WHERE order_id = ?1 ORDER BY created_at, rowid"
    ))?;
    record.refunds = refunds
        .query_map([&record.order.id], |row| {
            RefundRow::refund_of(row).map_err(from_corrupt)
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(())
}

fn list_orders(
    conn: &Connection,
    merchant_id: &str,
    query: &ListQuery,
    now: Timestamp,
) -> rusqlite::Result<Vec<OrderRecord>> {
    let before: i64 = match &query.starting_after {
        Some(id) => match conn
            .prepare_cached("SELECT number FROM orders WHERE merchant_id = ?1 AND id = ?2")?
            .query_row(params![merchant_id, id], |r| r.get(0))
            .optional()?
        {
            Some(number) => number,
            None => return Ok(Vec::new()),
        },
        None => i64::MAX,
    };
    let mut statement = conn.prepare_cached(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE merchant_id = ?1 AND number < ?2
         AND (?3 IS NULL OR reference = ?3) ORDER BY number DESC"
    ))?;
    let mut rows = statement.query(params![merchant_id, before, query.reference])?;
    let mut records = Vec::new();
    // The status is derived from the clock, so it is filtered here rather than in SQL.
    while let Some(row) = rows.next()? {
        let (number, order) = order_from_row(row)?;
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
            break;
        }
    }
    for record in &mut records {
        load_details(conn, record)?;
    }
    Ok(records)
}
