//! The append-only ledger: every movement of money on an order, so totals can be re-derived.

use crate::money::Amount;
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LedgerKind {
    /// Funds held on the customer's card (amount + surcharge).
    Authorize,
    /// Held funds moved to the merchant.
    Capture,
    /// Held funds given back to the card without being captured (void, final capture, expiry).
    Release,
    /// Captured funds returned to the customer.
    Refund,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Authorize => "authorize",
            LedgerKind::Capture => "capture",
            LedgerKind::Release => "release",
            LedgerKind::Refund => "refund",
        }
    }

    pub fn parse(text: &str) -> Option<LedgerKind> {
        [
            LedgerKind::Authorize,
            LedgerKind::Capture,
            LedgerKind::Release,
            LedgerKind::Refund,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub order_id: String,
    pub kind: LedgerKind,
    pub amount: Amount,
    /// The capture or refund that caused the entry, if any.
    pub source_id: Option<String>,
    pub at: Timestamp,
}

/// Sums of an order's ledger entries per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub authorized: i64,
    pub captured: i64,
    pub released: i64,
    pub refunded: i64,
}

impl LedgerTotals {
    pub fn add(&mut self, kind: LedgerKind, amount: i64) {
        let total = match kind {
            LedgerKind::Authorize => &mut self.authorized,
            LedgerKind::Capture => &mut self.captured,
            LedgerKind::Release => &mut self.released,
            LedgerKind::Refund => &mut self.refunded,
        };
        *total += amount;
    }

    pub fn of(entries: &[LedgerEntry]) -> LedgerTotals {
        let mut totals = LedgerTotals::default();
        for entry in entries {
            totals.add(entry.kind, entry.amount.minor_units());
        }
        totals
    }
}
