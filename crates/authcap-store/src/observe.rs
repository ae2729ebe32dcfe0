//! What the store tells whoever watches it (the server's metrics), without naming any metrics
//! library: calls on the write path are a few atomic operations.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub trait StoreObserver: Send + Sync {
    /// SQLite: a group of `writes` was committed, and its `COMMIT` (the fsync) took `commit`.
    fn group_committed(&self, writes: usize, commit: Duration);
    /// PostgreSQL: a request waited `wait` for a pooled connection.
    fn connection_waited(&self, wait: Duration);
}

/// The observer, set once the server starts (none for the command line's own uses).
pub(crate) type Observer = Arc<OnceLock<Arc<dyn StoreObserver>>>;

/// A PostgreSQL node's connection pool right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolStatus {
    /// Connections open.
    pub size: usize,
    /// Open connections not in use.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
    /// The most connections this node opens.
    pub max: usize,
}
