//! Authcap's storage.
//!
//! Every write is one call to [`Store::execute`], which runs one transaction: claim the
//! idempotency key, load the order, let the core decide, persist the order, its new capture or
//! refund and its ledger entries, store the rendered response, commit. Nothing of a dialect's
//! wire format is known here: responses are opaque bytes rendered by the caller's closure.

mod idempotency;
mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;

use authcap_core::{
    Capture, CaptureRequest, CoreError, NewOrder, Order, OrderStatus, Processor, Refund,
    RefundRequest,
};

pub use idempotency::InFlight;
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

/// The reason a write cannot be stored because of a NUL character, if any: a lookup key with
/// one names no order; any other text with one is invalid.
fn nul_in(write: &Write) -> Option<WriteError> {
    if rows::target(&write.operation).is_some_and(|order| has_nul(order.key())) {
        return Some(WriteError::OrderNotFound);
    }
    let any = |texts: &[Option<&String>]| texts.iter().flatten().any(|text| has_nul(text));
    let in_operation = match &write.operation {
        Operation::Create(new) => any(&[
            Some(&new.reference),
            Some(&new.metadata),
            Some(&new.card.number),
        ]),
        Operation::Capture { request, .. } => {
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
            ])
        }
        Operation::Void { .. } => false,
        Operation::Refund { request, .. } => any(&[
            request.reference.as_ref(),
            request.reason.as_ref(),
            Some(&request.metadata),
        ]),
    };
    let in_claim = write
        .idempotency
        .as_ref()
        .is_some_and(|claim| any(&[Some(&claim.scope), Some(&claim.key)]));
    (in_operation || in_claim).then_some(WriteError::TextContainsNul)
}

/// Milliseconds since the epoch by this node's clock: the `now` the core is handed.
pub(crate) fn now() -> authcap_core::Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    authcap_core::Timestamp(millis)
}

pub(crate) fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(error.to_string())
}

#[derive(Clone, Debug)]
pub enum Operation {
    Create(NewOrder),
    Capture {
        order: OrderLocator,
        request: CaptureRequest,
    },
    /// `amount` of the uncaptured remainder, or all of it.
    Void {
        order: OrderLocator,
        amount: Option<authcap_core::Amount>,
    },
    Refund {
        order: OrderLocator,
        request: RefundRequest,
    },
}

/// The idempotency key a write claims. `scope` separates operations that must not share keys
/// (a dialect's "capture" from its "refund"); `fingerprint` identifies the request so that a
/// different request under the same key is refused.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyClaim {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
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

/// What an accepted write produced.
#[derive(Clone, Debug)]
pub struct Applied {
    pub record: OrderRecord,
    pub capture: Option<Capture>,
    pub refund: Option<Refund>,
}

/// Why a write did not apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteError {
    OrderNotFound,
    /// The merchant already has an order with this reference.
    ReferenceTaken,
    /// The order already has a capture or refund with this reference.
    OperationReferenceTaken,
    /// The core refused the operation.
    Refused(CoreError),
    /// A text field holds U+0000, which PostgreSQL cannot store; refused on every backend alike.
    TextContainsNul,
}

impl WriteError {
    /// Outcomes that are remembered under the idempotency key; the others are checks that
    /// ran before anything was decided, so a retry may legitimately succeed.
    fn is_recorded(&self) -> bool {
        matches!(self, WriteError::Refused(_))
    }
}

/// A rendered HTTP response, stored with the idempotency key and replayed byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

pub type Renderer = Box<dyn FnOnce(&Result<Applied, WriteError>) -> StoredResponse + Send>;

pub struct Write {
    pub merchant_id: String,
    pub idempotency: Option<IdempotencyClaim>,
    pub operation: Operation,
    /// Turns the outcome into the response, inside the transaction, so that the very bytes
    /// sent are the ones a retry receives.
    pub render: Renderer,
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
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::IdempotencyKeyReused => f.write_str("idempotency key reused"),
            StoreError::IdempotencyRequestInProgress => {
                f.write_str("idempotency request in progress")
            }
            StoreError::Unavailable(why) => write!(f, "storage unavailable: {why}"),
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    SecretKey,
    MultisafepayApiKey,
    MercadopagoAccessToken,
    OpttyClientId,
    OpttyClientSecret,
    PipwaveApiKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::SecretKey => "secret_key",
            CredentialKind::MultisafepayApiKey => "multisafepay_api_key",
            CredentialKind::MercadopagoAccessToken => "mercadopago_access_token",
            CredentialKind::OpttyClientId => "optty_client_id",
            CredentialKind::OpttyClientSecret => "optty_client_secret",
            CredentialKind::PipwaveApiKey => "pipwave_api_key",
        }
    }
}

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
}

impl Store {
    /// Opens the database named by `url`, creating and migrating it as needed:
    /// `postgres://…` / `postgresql://…` for PostgreSQL; `sqlite://PATH` or a bare path for SQLite.
    pub async fn open(url: &str, processor: Arc<dyn Processor>) -> Result<Store, StoreError> {
        Store::open_with(url, processor, PoolSettings::default()).await
    }

    pub async fn open_with(
        url: &str,
        processor: Arc<dyn Processor>,
        pool: PoolSettings,
    ) -> Result<Store, StoreError> {
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(Arc::new(
                postgres::PostgresStore::open(url, processor, pool).await?,
            ))
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            Backend::Sqlite(Arc::new(sqlite::SqliteStore::open(path, processor)?))
        };
        Ok(Store {
            backend,
            in_flight: InFlight::default(),
        })
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    pub async fn execute(&self, write: Write) -> Result<Executed, StoreError> {
        if let Some(error) = nul_in(&write) {
            let response = (write.render)(&Err(error));
            return Ok(Executed {
                response,
                replayed: false,
            });
        }
        let _guard = match &write.idempotency {
            Some(claim) => Some(self.in_flight.enter(&write.merchant_id, claim)?),
            None => None,
        };
        dispatch!(self, execute(write))
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
        dispatch!(self, orders(merchant_id.to_owned(), query))
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

    /// The merchant owning a credential with this kind and hash.
    pub async fn merchant_by_credential(
        &self,
        kind: CredentialKind,
        hash: String,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, merchant_by_credential(kind, hash))
    }

    /// A server-wide setting, created with `generate` the first time it is asked for.
    pub async fn setting(
        &self,
        name: &str,
        generate: impl FnOnce() -> String + Send + 'static,
    ) -> Result<String, StoreError> {
        dispatch!(self, setting(name.to_owned(), Box::new(generate)))
    }

    /// Every order whose totals disagree with its ledger or break an invariant.
    pub async fn check(&self) -> Result<Vec<Discrepancy>, StoreError> {
        dispatch!(self, check())
    }

    /// Deletes idempotency records created before `before_millis`.
    pub async fn prune_idempotency(&self, before_millis: i64) -> Result<usize, StoreError> {
        dispatch!(self, prune_idempotency(before_millis))
    }

    /// Writes down the expiry of authorizations whose time has passed (releases the
    /// remainder in the ledger). Reads already show them as expired; this keeps the ledger
    /// telling the same story.
    pub async fn sweep_expired(&self) -> Result<usize, StoreError> {
        dispatch!(self, sweep_expired())
    }
}
