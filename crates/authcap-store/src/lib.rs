//! Authcap's storage.
//!
//! Every write is one call to [`Store::execute`], which runs one transaction: claim the
//! idempotency key, load the order, let the core decide, persist the order, its new capture or
//! refund and its ledger entries, store the rendered response, commit. Nothing of a dialect's
//! wire format is known here: responses are opaque bytes rendered by the caller's closure.

pub mod clock;
mod idempotency;
mod ids;
mod observe;
mod outbox;
mod postgres;
mod rows;
mod sqlite;
mod write;

use std::sync::Arc;

use authcap_core::{
    Amount, Capture, CaptureRequest, Clock, CoreError, Event, NewOrder, Order, OrderStatus,
    Processor, Refund, RefundRequest, RequestedAmount, Timestamp,
};

pub use clock::{ManualClock, SystemClock};
pub use idempotency::InFlight;
pub use ids::new_id;
pub use observe::{PoolStatus, StoreObserver};
pub use outbox::{DeliveryAttempt, DeliveryOutcome, DueDelivery, WebhookEndpoint};
pub use postgres::PoolSettings;

/// How a write finds its order: by Authcap id or by the merchant's own reference.
#[derive(Clone, Debug)]
pub enum OrderLocator {
    Id(String),
    Reference(String),
}

impl OrderLocator {
    pub fn key(&self) -> &str {
        match self {
            OrderLocator::Id(key) | OrderLocator::Reference(key) => key,
        }
    }
}

fn has_nul(text: &str) -> bool {
    text.contains('\0')
}

/// The text of an amount still to be resolved against its order's currency.
fn decimal(amount: Option<&RequestedAmount>) -> Option<&String> {
    match amount {
        Some(RequestedAmount::Decimal(text)) => Some(text),
        _ => None,
    }
}

/// The reason a write cannot be stored because of a NUL character, if any: a lookup key with
/// one names no order; any other text with one is invalid.
fn nul_in(write: &Write) -> Option<WriteError> {
    if write
        .request
        .target()
        .is_some_and(|order| has_nul(order.key()))
    {
        return Some(WriteError::OrderNotFound);
    }
    let any = |texts: &[Option<&String>]| texts.iter().flatten().any(|text| has_nul(text));
    let in_request = match &write.request {
        Request::Create { new, notify, .. } => any(&[
            Some(&new.reference),
            Some(&new.metadata),
            Some(&new.card.number),
            notify.as_ref().map(|n| &n.url),
        ]),
        Request::Capture { request, .. } => {
            let shipping = request.shipping.as_ref();
            any(&[
                request.reference.as_ref(),
                request.invoice_id.as_ref(),
                request.description.as_ref(),
                request.reason.as_ref(),
                shipping.and_then(|s| s.carrier.as_ref()),
                shipping.and_then(|s| s.method.as_ref()),
                shipping.and_then(|s| s.tracking_code.as_ref()),
                Some(&request.metadata),
                decimal(request.amount.as_ref()),
            ])
        }
        Request::Release { amount, .. } => any(&[decimal(amount.as_ref())]),
        Request::Refund { request, .. } => any(&[
            request.reference.as_ref(),
            request.reason.as_ref(),
            Some(&request.metadata),
            decimal(request.amount.as_ref()),
        ]),
    };
    let in_claim = write
        .idempotency
        .as_ref()
        .is_some_and(|claim| any(&[Some(&claim.scope), Some(&claim.key)]));
    (in_request || in_claim).then_some(WriteError::TextContainsNul)
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

/// A renderer of one kind of write's outcome: it runs inside the transaction, so that the
/// very bytes sent are the ones a retry receives.
pub type Render<T> = Box<dyn FnOnce(&Result<Written<T>, WriteError>) -> StoredResponse + Send>;

/// An order's own notification target, made with the order (an endpoint only its events reach).
#[derive(Clone, Debug)]
pub struct OrderNotifications {
    pub url: String,
    /// A format of the delivery worker's (e.g. `multisafepay`, or `multisafepay_get`).
    pub format: String,
    /// The event types it receives (`*`: every one).
    pub events: Vec<String>,
}

/// What a client asks to be written, each with the renderer of its own typed outcome.
pub enum Request {
    Create {
        new: NewOrder,
        /// Where this order's own notifications go, if it names a place.
        notify: Option<OrderNotifications>,
        render: Render<()>,
    },
    Capture {
        order: OrderLocator,
        request: CaptureRequest,
        /// Where the capture's reference must be unique.
        reference_scope: ReferenceScope,
        render: Render<Capture>,
    },
    /// Release `amount` of the uncaptured authorization, or all of it (a void).
    Release {
        order: OrderLocator,
        amount: Option<RequestedAmount>,
        render: Render<Amount>,
    },
    Refund {
        order: OrderLocator,
        request: RefundRequest,
        render: Render<Refund>,
    },
}

impl Request {
    /// What is asked: `create`, `capture`, `release` or `refund`.
    pub fn operation(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Capture { .. } => "capture",
            Request::Release { .. } => "release",
            Request::Refund { .. } => "refund",
        }
    }
}

/// Where a capture's reference must be unique.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReferenceScope {
    /// Among the order's captures (the core's rule).
    Order,
    /// Also among the merchant's other orders and their captures, so that the reference names
    /// one thing (MultiSafepay reads a capture back by its `new_order_id`).
    Merchant,
}

impl Request {
    /// The existing order the request targets; `None` for a create.
    pub fn target(&self) -> Option<&OrderLocator> {
        match self {
            Request::Create { .. } => None,
            Request::Capture { order, .. }
            | Request::Release { order, .. }
            | Request::Refund { order, .. } => Some(order),
        }
    }
}

/// An accepted write as its renderer sees it: the order after it, what the command produced,
/// and the `now` it was decided with (every time the response shows is this one).
#[derive(Clone, Debug)]
pub struct Written<T> {
    pub record: OrderRecord,
    pub result: T,
    pub now: Timestamp,
}

/// The idempotency key a write claims. `scope` separates operations that must not share keys
/// (a dialect's "capture" from its "refund"); `fingerprint` identifies the request so that a
/// different request under the same key is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
    /// What the key stands for, and so which outcomes it keeps.
    pub kind: ClaimKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClaimKind {
    /// A key the client sent to make retries safe (`Idempotency-Key`): the first result,
    /// success or refusal, is kept and replayed.
    Key,
    /// A resource id the client chose (a capture's `new_order_id`): taken only by a request
    /// that succeeded, so a refused request leaves it free for a corrected retry. An identical
    /// request after a success replays the success.
    ResourceId,
    /// A request signature that can be used once, whatever came of it (Pipwave's, which is its
    /// only idempotency key and can be re-partitioned): every answer is kept and replayed.
    SingleUse,
}

/// An order with everything hanging off it, as read back from storage.
#[derive(Clone, Debug)]
pub struct OrderRecord {
    /// A per-database sequence number: the newest order has the highest.
    pub number: i64,
    pub order: Order,
    pub captures: Vec<Capture>,
    pub refunds: Vec<Refund>,
}

/// Why a write did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    OrderNotFound,
    /// The merchant already has an order with this reference.
    ReferenceTaken,
    /// The core refused the command.
    Refused(CoreError),
    /// A text field holds U+0000, which PostgreSQL cannot store; refused on every backend alike.
    TextContainsNul,
}

impl WriteError {
    /// Refusals remembered under an idempotency key; the others are checks of the request
    /// itself (no such order, malformed amount), so a retry may legitimately succeed.
    fn is_recorded(&self) -> bool {
        match self {
            WriteError::Refused(CoreError::InvalidAmount { .. }) => false,
            WriteError::Refused(_) | WriteError::ReferenceTaken => true,
            WriteError::OrderNotFound | WriteError::TextContainsNul => false,
        }
    }
}

/// A rendered HTTP response, stored with the idempotency key and replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub struct Write {
    pub merchant_id: String,
    pub idempotency: Option<IdempotencyClaim>,
    pub request: Request,
}

#[derive(Clone, Debug)]
pub struct Executed {
    pub response: StoredResponse,
    pub replayed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The key was used before for a different request.
    IdempotencyKeyReused,
    /// The first request with this key is still running.
    IdempotencyRequestInProgress,
    /// The database could not be used; the write did not happen.
    Unavailable(String),
    /// The server is at capacity (every database connection busy past the wait, the write
    /// queue full); nothing was written and a retry shortly will likely succeed.
    Overloaded(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::IdempotencyKeyReused => f.write_str("idempotency key reused"),
            StoreError::IdempotencyRequestInProgress => {
                f.write_str("idempotency request in progress")
            }
            StoreError::Unavailable(why) => write!(f, "storage unavailable: {why}"),
            StoreError::Overloaded(why) => write!(f, "at capacity: {why}"),
        }
    }
}

impl std::error::Error for StoreError {}

#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    pub limit: u32,
    /// Only orders older than the order with this id.
    pub starting_after: Option<String>,
    pub status: Option<OrderStatus>,
    pub reference: Option<String>,
}

/// What a credential is for. Each dialect names its own kinds; the store only keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CredentialKind(pub &'static str);

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// An event as stored: what the core named, with the id and order it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub id: String,
    pub merchant_id: String,
    pub currency: authcap_core::Currency,
    pub event: Event,
    /// The order as the server rendered it right after the event (opaque bytes).
    pub payload: Option<Vec<u8>>,
}

/// Renders the order as it stands right after an event, to be kept with the event: the store
/// keeps the bytes without reading them.
pub type EventSnapshot = Arc<dyn Fn(&OrderRecord, Timestamp) -> Vec<u8> + Send + Sync>;

/// Which events a page of `GET /v1/events` shows.
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub limit: u32,
    /// Only events older than the event with this id.
    pub starting_after: Option<String>,
    /// Only events of this type.
    pub kind: Option<String>,
}

/// A merchant's credential as resolved: whose it is, and the generation it was issued in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub merchant_id: String,
    pub generation: i64,
}

/// A merchant as `authcap merchant list` shows it.
#[derive(Clone, Debug)]
pub struct MerchantSummary {
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    /// Each credential kind, its generation, and when it stops working (`None`: until
    /// rotated).
    pub credentials: Vec<(String, i64, Option<Timestamp>)>,
}

/// A new credential's lookup hash, given the generation it is issued in.
pub type HashFor = Box<dyn Fn(i64) -> String + Send + Sync>;

/// A merchant to create; credentials arrive hashed, never in clear.
pub struct NewMerchant {
    pub id: String,
    pub name: String,
    pub credential_hashes: Vec<(CredentialKind, String)>,
}

/// One order whose stored totals disagree with its ledger.
#[derive(Clone, Debug)]
pub struct Discrepancy {
    pub order_id: String,
    pub problems: Vec<String>,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<sqlite::SqliteStore>),
    Postgres(Arc<postgres::PostgresStore>),
}

/// Calls the same method on whichever backend the store has.
macro_rules! dispatch {
    ($store:expr, $method:ident($($arg:expr),*)) => {
        match &$store.backend {
            Backend::Sqlite(backend) => backend.$method($($arg),*).await,
            Backend::Postgres(backend) => backend.$method($($arg),*).await,
        }
    };
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    in_flight: InFlight,
    clock: Arc<dyn Clock>,
    snapshot: Arc<std::sync::OnceLock<EventSnapshot>>,
    observer: observe::Observer,
    /// Merchants' sandbox clock offsets, as last read: believed for a second.
    offsets: Arc<std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, i64)>>>,
}

/// How long a merchant's clock offset, once read, is believed by reads on this node (writes
/// always read it in their transaction).
const OFFSET_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(1);

/// How many due orders one sweep writes down at most; the next sweep takes the rest.
const SWEEP_ORDERS_MAX: i64 = 500;

impl Store {
    /// Opens the database named by `url`, creating and migrating it as needed:
    /// `postgres://…` / `postgresql://…` for PostgreSQL; `sqlite://PATH` or a bare path for SQLite.
    pub async fn open(url: &str, processor: Arc<dyn Processor>) -> Result<Store, StoreError> {
        Store::open_with(
            url,
            processor,
            PoolSettings::default(),
            Arc::new(SystemClock),
        )
        .await
    }

    /// Opens the store with the clock every write will read its `now` from.
    pub async fn open_with(
        url: &str,
        processor: Arc<dyn Processor>,
        pool: PoolSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Store, StoreError> {
        let snapshot: Arc<std::sync::OnceLock<EventSnapshot>> = Arc::default();
        let observer = observe::Observer::default();
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(Arc::new(
                postgres::PostgresStore::open(
                    url,
                    processor,
                    pool,
                    clock.clone(),
                    snapshot.clone(),
                    observer.clone(),
                )
                .await?,
            ))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Backend::Sqlite(Arc::new(sqlite::SqliteStore::open(
                path,
                processor,
                clock.clone(),
                snapshot.clone(),
                observer.clone(),
            )?))
        };
        Ok(Store {
            backend,
            in_flight: InFlight::default(),
            clock,
            snapshot,
            observer,
            offsets: Arc::default(),
        })
    }

    /// Who is told of group commits and connection waits (the server's metrics); set once.
    pub fn set_observer(&self, observer: Arc<dyn StoreObserver>) {
        let _ = self.observer.set(observer);
    }

    /// SQLite: how many writes wait for the writer thread right now.
    pub fn writer_queue_depth(&self) -> Option<usize> {
        match &self.backend {
            Backend::Sqlite(backend) => Some(backend.queue_depth()),
            Backend::Postgres(_) => None,
        }
    }

    /// PostgreSQL: this node's connection pool right now.
    pub fn pool_status(&self) -> Option<PoolStatus> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(backend) => Some(backend.pool_status()),
        }
    }

    /// The merchant's sandbox clock: the server's, moved ahead by the merchant's own advances.
    /// Every decision about the merchant's orders, and every time shown of them, uses it.
    pub async fn merchant_now(&self, merchant_id: &str) -> Result<Timestamp, StoreError> {
        let remembered = self
            .offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(merchant_id)
            .filter(|(at, _)| at.elapsed() < OFFSET_REMEMBERED)
            .map(|(_, offset)| *offset);
        let offset = match remembered {
            Some(offset) => offset,
            None => {
                let offset = dispatch!(self, clock_offset(merchant_id.to_owned()))?;
                let mut offsets = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
                if offsets.len() >= 10_000 {
                    offsets.clear();
                }
                offsets.insert(merchant_id.to_owned(), (std::time::Instant::now(), offset));
                offset
            }
        };
        Ok(self.now().plus_millis(offset))
    }

    /// Moves the merchant's sandbox clock forward by `by_millis` (never back); its new time.
    pub async fn advance_merchant_clock(
        &self,
        merchant_id: &str,
        by_millis: i64,
    ) -> Result<Timestamp, StoreError> {
        let offset = dispatch!(
            self,
            advance_clock(merchant_id.to_owned(), by_millis.max(0))
        )?;
        self.offsets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(merchant_id.to_owned(), (std::time::Instant::now(), offset));
        Ok(self.now().plus_millis(offset))
    }

    /// How many of the merchant's deliveries are due by its clock and not yet attempted.
    pub async fn due_deliveries(&self, merchant_id: &str) -> Result<i64, StoreError> {
        dispatch!(self, due_deliveries(merchant_id.to_owned(), self.now()))
    }

    /// How events keep the order as it stood right after them; set once, before serving.
    pub fn set_event_snapshot(&self, snapshot: EventSnapshot) {
        let _ = self.snapshot.set(snapshot);
    }

    /// The clock the store decides with; readers render with the same one.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn execute(&self, write: Write) -> Result<Executed, StoreError> {
        if let Some(error) = nul_in(&write) {
            return Ok(Executed {
                response: write::render_refusal(write.request, error),
                replayed: false,
            });
        }
        let _guard = match &write.idempotency {
            Some(claim) => Some(self.in_flight.enter(&write.merchant_id, claim)?),
            None => None,
        };
        let job = write::Job {
            merchant_id: write.merchant_id,
            idempotency: write.idempotency,
            action: write::Action::Request(write.request),
        };
        // A request's job always renders a response; only housekeeping has none.
        dispatch!(self, execute(job))?.ok_or_else(|| unavailable("the write produced no response"))
    }

    /// Keeps `response` as the answer under `claim`, unless the claim already has one: either
    /// way the first answer comes back (a replay says so). For answers made outside a write (a
    /// read, a refusal of the request) under a claim that must not be used twice.
    pub async fn remember(
        &self,
        merchant_id: &str,
        claim: IdempotencyClaim,
        response: StoredResponse,
    ) -> Result<Executed, StoreError> {
        if has_nul(&claim.scope) || has_nul(&claim.key) {
            return Ok(Executed {
                response,
                replayed: false,
            });
        }
        let _guard = self.in_flight.enter(merchant_id, &claim)?;
        let job = write::Job {
            merchant_id: merchant_id.to_owned(),
            idempotency: Some(claim),
            action: write::Action::Record(response),
        };
        dispatch!(self, execute(job))?.ok_or_else(|| unavailable("the write produced no response"))
    }

    pub async fn order(
        &self,
        merchant_id: &str,
        locator: OrderLocator,
    ) -> Result<Option<OrderRecord>, StoreError> {
        if has_nul(locator.key()) {
            return Ok(None);
        }
        dispatch!(self, order(merchant_id.to_owned(), locator))
    }

    pub async fn orders(
        &self,
        merchant_id: &str,
        query: ListQuery,
    ) -> Result<Vec<OrderRecord>, StoreError> {
        let keys = [&query.starting_after, &query.reference];
        if keys.into_iter().flatten().any(|key| has_nul(key)) {
            return Ok(Vec::new());
        }
        let now = self.merchant_now(merchant_id).await?;
        dispatch!(self, orders(merchant_id.to_owned(), query, now))
    }

    pub async fn create_merchant(&self, merchant: NewMerchant) -> Result<(), StoreError> {
        dispatch!(self, create_merchant(merchant))
    }

    /// The order holding the capture with this reference, among all the merchant's orders.
    pub async fn order_by_capture_reference(
        &self,
        merchant_id: &str,
        reference: &str,
    ) -> Result<Option<OrderRecord>, StoreError> {
        if has_nul(reference) {
            return Ok(None);
        }
        dispatch!(
            self,
            order_by_capture_reference(merchant_id.to_owned(), reference.to_owned())
        )
    }

    pub async fn merchant_count(&self) -> Result<i64, StoreError> {
        dispatch!(self, merchant_count())
    }

    /// Whether a write can be committed right now (a heartbeat is committed): what readiness
    /// checks answer.
    pub async fn probe(&self) -> Result<(), StoreError> {
        dispatch!(self, probe())
    }

    /// How many webhook deliveries are pending (due now or waiting for a retry), all merchants.
    pub async fn pending_deliveries(&self) -> Result<i64, StoreError> {
        dispatch!(self, pending_deliveries())
    }

    /// The merchant owning a credential with this kind and hash, while it works.
    pub async fn credential(
        &self,
        kind: CredentialKind,
        hash: String,
    ) -> Result<Option<Credential>, StoreError> {
        dispatch!(self, credential(kind, hash, self.now()))
    }

    /// Whether the merchant still has a working credential of this kind and generation.
    pub async fn generation_works(
        &self,
        merchant_id: &str,
        kind: CredentialKind,
        generation: i64,
    ) -> Result<bool, StoreError> {
        if has_nul(merchant_id) {
            return Ok(false);
        }
        dispatch!(
            self,
            generation_works(merchant_id.to_owned(), kind, generation, self.now())
        )
    }

    /// The newest generation of the merchant's working credentials of this kind.
    pub async fn newest_generation(
        &self,
        merchant_id: &str,
        kind: CredentialKind,
    ) -> Result<Option<i64>, StoreError> {
        if has_nul(merchant_id) {
            return Ok(None);
        }
        dispatch!(
            self,
            newest_generation(merchant_id.to_owned(), kind, self.now())
        )
    }

    /// Replaces the merchant's credentials of the given kinds with `new` ones (a new
    /// generation, which each new credential's hash may depend on: some are derived from
    /// it); the old ones stop working at `retire_at` (now, or after a grace period).
    /// Returns the new generation, or `None` when there is no such merchant.
    pub async fn rotate_credentials(
        &self,
        merchant_id: &str,
        new: Vec<(CredentialKind, HashFor)>,
        retire_at: Timestamp,
    ) -> Result<Option<i64>, StoreError> {
        if has_nul(merchant_id) {
            return Ok(None);
        }
        dispatch!(
            self,
            rotate_credentials(merchant_id.to_owned(), new, retire_at)
        )
    }

    /// Every merchant, oldest first, with its credentials' generations.
    pub async fn merchants(&self) -> Result<Vec<MerchantSummary>, StoreError> {
        dispatch!(self, merchants())
    }

    /// Forgets a setting (a server secret moved out of the database).
    pub async fn forget_setting(&self, name: &str) -> Result<(), StoreError> {
        dispatch!(self, forget_setting(name.to_owned()))
    }

    /// A server-wide setting, created with `generate` the first time it is asked for.
    pub async fn setting(
        &self,
        name: &str,
        generate: impl FnOnce() -> String + Send + 'static,
    ) -> Result<String, StoreError> {
        dispatch!(self, setting(name.to_owned(), Box::new(generate)))
    }

    /// A server-wide setting, if it was ever made.
    pub async fn stored_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, stored_setting(name.to_owned()))
    }

    /// Every order whose totals disagree with its ledger or break an invariant.
    pub async fn check(&self) -> Result<Vec<Discrepancy>, StoreError> {
        dispatch!(self, check())
    }

    /// Deletes idempotency records created before `before_millis`.
    pub async fn prune_idempotency(&self, before_millis: i64) -> Result<usize, StoreError> {
        dispatch!(self, prune_idempotency(before_millis))
    }

    /// Writes down what the clock has made true: authorizations past their expiry (the
    /// remainder is released in the ledger) and pending captures past their settlement, each
    /// through the same write path as a request, so each produces its event. Reads already
    /// show both; this keeps the ledger and the events telling the same story. Returns how
    /// many orders changed.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let due = dispatch!(self, due(self.now(), SWEEP_ORDERS_MAX))?;
        let mut swept = 0;
        for (merchant_id, order_id, command) in due {
            let job = write::Job {
                merchant_id,
                idempotency: None,
                action: write::Action::Housekeeping {
                    order: OrderLocator::Id(order_id),
                    command,
                },
            };
            dispatch!(self, execute(job))?;
            swept += 1;
        }
        Ok(swept)
    }

    /// The merchant's events, newest first, a page at a time.
    pub async fn event_page(
        &self,
        merchant_id: &str,
        query: EventQuery,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let keys = [&query.starting_after, &query.kind];
        if keys.into_iter().flatten().any(|key| has_nul(key)) {
            return Ok(Vec::new());
        }
        dispatch!(self, event_page(merchant_id.to_owned(), query))
    }

    /// One of the merchant's events.
    pub async fn event(
        &self,
        merchant_id: &str,
        event_id: &str,
    ) -> Result<Option<StoredEvent>, StoreError> {
        if has_nul(event_id) {
            return Ok(None);
        }
        dispatch!(self, event(merchant_id.to_owned(), event_id.to_owned()))
    }

    pub async fn create_endpoint(&self, endpoint: WebhookEndpoint) -> Result<(), StoreError> {
        if has_nul(&endpoint.url) {
            return Err(StoreError::Unavailable("NUL in a URL".into()));
        }
        dispatch!(self, create_endpoint(endpoint))
    }

    /// The merchant's endpoints, newest first.
    pub async fn endpoints(&self, merchant_id: &str) -> Result<Vec<WebhookEndpoint>, StoreError> {
        dispatch!(self, endpoints(merchant_id.to_owned()))
    }

    pub async fn endpoint(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
    ) -> Result<Option<WebhookEndpoint>, StoreError> {
        if has_nul(endpoint_id) {
            return Ok(None);
        }
        dispatch!(
            self,
            endpoint(merchant_id.to_owned(), endpoint_id.to_owned())
        )
    }

    /// Deletes the endpoint (its pending deliveries stop); `false` when there is none.
    pub async fn delete_endpoint(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
    ) -> Result<bool, StoreError> {
        if has_nul(endpoint_id) {
            return Ok(false);
        }
        dispatch!(
            self,
            delete_endpoint(merchant_id.to_owned(), endpoint_id.to_owned(), self.now())
        )
    }

    /// Plans the event again to every endpoint that wants it; `None` when there is no such
    /// event, else how many deliveries were planned.
    pub async fn redeliver(
        &self,
        merchant_id: &str,
        event_id: &str,
    ) -> Result<Option<usize>, StoreError> {
        if has_nul(event_id) {
            return Ok(None);
        }
        dispatch!(
            self,
            redeliver(merchant_id.to_owned(), event_id.to_owned(), self.now())
        )
    }

    /// The latest attempts of deliveries to the endpoint, newest first.
    pub async fn delivery_attempts(
        &self,
        merchant_id: &str,
        endpoint_id: &str,
        limit: u32,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        if has_nul(endpoint_id) {
            return Ok(Vec::new());
        }
        dispatch!(
            self,
            delivery_attempts(
                merchant_id.to_owned(),
                endpoint_id.to_owned(),
                i64::from(limit)
            )
        )
    }

    /// Claims up to `limit` deliveries that are due, for `lease` (another worker, on this node
    /// or another, takes them only once the lease runs out).
    pub async fn claim_deliveries(
        &self,
        lease: std::time::Duration,
        limit: u32,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        // Due-ness follows the (injectable, per-merchant) clock; a lease is about a worker's
        // liveness, so it runs on real time whatever the clock says.
        let now = self.now();
        let real_now = SystemClock.now();
        let until = real_now.plus_millis(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
        dispatch!(
            self,
            claim_deliveries(now, real_now, until, i64::from(limit))
        )
    }

    /// Records attempts and what becomes of their deliveries, in one transaction.
    pub async fn finish_deliveries(
        &self,
        finished: Vec<(DeliveryAttempt, DeliveryOutcome)>,
    ) -> Result<(), StoreError> {
        if finished.is_empty() {
            return Ok(());
        }
        dispatch!(self, finish_deliveries(finished))
    }

    /// Events after the one numbered `after_seq`, oldest first, of every merchant or one: what
    /// `authcap events tail` follows.
    pub async fn events_since(
        &self,
        after_seq: i64,
        merchant_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        dispatch!(
            self,
            events_since(after_seq, merchant_id.map(str::to_owned), i64::from(limit))
        )
    }

    /// The merchant's events in the order they happened, optionally of one order only.
    pub async fn events(
        &self,
        merchant_id: &str,
        order_id: Option<&str>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        if order_id.is_some_and(has_nul) {
            return Ok(Vec::new());
        }
        dispatch!(
            self,
            events(
                merchant_id.to_owned(),
                order_id.map(str::to_owned),
                i64::from(limit)
            )
        )
    }
}
