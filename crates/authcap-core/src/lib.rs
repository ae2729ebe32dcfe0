//! Authcap's domain: money, orders and the authorization/capture state machine.
//!
//! Everything here is pure: no clock, no randomness, no storage, no wire format. Callers hand in
//! `now`, fresh ids and a [`Processor`]; the core answers with the next state and the ledger
//! entries that explain it.

pub mod ledger;
pub mod money;
pub mod order;
pub mod processor;
pub mod time;

pub use ledger::{LedgerEntry, LedgerKind};
pub use money::{Amount, AmountError, Currency, CurrencyError};
pub use order::{
    Capture, CaptureMode, CaptureRequest, CoreError, NewOrder, Order, OrderStatus, Refund,
    RefundRequest, Shipping, Transition,
};
pub use processor::{
    Authorization, AuthorizationOutcome, CaptureOutcome, CaptureSupport, Card, DeclineCode,
    Processor, Simulator,
};
pub use time::Timestamp;
