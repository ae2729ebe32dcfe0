//! Authcap's domain: money, orders and the authorization/capture state machine.
//!
//! Everything here is pure: no clock, no randomness, no storage, no wire format. Callers hand in
//! `now`, fresh ids and a [`Processor`]; the core answers with the next state, the ledger
//! entries that explain it and the events that name it (see [`command`]).

pub mod command;
pub mod event;
pub mod ledger;
pub mod money;
pub mod order;
pub mod processor;
pub mod time;

pub use command::{
    CaptureRequest, Command, NewOrder, OrderState, Outcome, RefundRequest, Refusal,
    RequestedAmount, Transition, apply,
};
pub use event::{Event, EventKind};
pub use ledger::{LedgerEntry, LedgerKind};
pub use money::{Amount, AmountError, Currency, CurrencyError};
pub use order::{Capture, CaptureMode, CoreError, Order, OrderStatus, Refund, Shipping};
pub use processor::{
    Authorization, AuthorizationOutcome, CaptureOutcome, CaptureSupport, Card, DeclineCode,
    Processor, Simulator,
};
pub use time::{Clock, Timestamp};
