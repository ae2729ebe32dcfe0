//! Time as the core sees it: milliseconds since the UNIX epoch, always handed in by the caller.

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, millis: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(millis))
    }
}

/// Where `now` comes from. One clock is chosen at start (the system's in production, a
/// controllable one in tests) and every decision and rendered time of a write reads it once.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}
