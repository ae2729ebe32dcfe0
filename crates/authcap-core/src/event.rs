//! What happened: every transition names its events, with the amounts and ids involved, so
//! that nothing has to be re-derived from before/after rows to be announced later.

use crate::money::Amount;
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The processor approved the authorization; `amount` is what the card holds.
    OrderAuthorized,
    /// The processor declined the authorization; `amount` is what was asked.
    OrderDeclined,
    /// The processor failed to answer the authorization.
    OrderFailed,
    /// A capture moved `amount` to the merchant at once.
    CaptureSucceeded,
    /// The processor accepted a capture of `amount` that settles later.
    CapturePending,
    /// A pending capture settled.
    CaptureSettled,
    /// The processor declined a capture of `amount`; nothing moved.
    CaptureDeclined,
    /// `amount` of the uncaptured authorization was released (a void, or the rest after a
    /// final capture).
    OrderVoided,
    /// The authorization expired; `amount` is the uncaptured rest it released.
    OrderExpired,
    /// `amount` of the captured funds went back to the customer.
    RefundSucceeded,
}

impl EventKind {
    pub const ALL: [EventKind; 10] = [
        EventKind::OrderAuthorized,
        EventKind::OrderDeclined,
        EventKind::OrderFailed,
        EventKind::CaptureSucceeded,
        EventKind::CapturePending,
        EventKind::CaptureSettled,
        EventKind::CaptureDeclined,
        EventKind::OrderVoided,
        EventKind::OrderExpired,
        EventKind::RefundSucceeded,
    ];

    /// The event's type as announced (`capture.succeeded`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::OrderAuthorized => "order.authorized",
            EventKind::OrderDeclined => "order.declined",
            EventKind::OrderFailed => "order.failed",
            EventKind::CaptureSucceeded => "capture.succeeded",
            EventKind::CapturePending => "capture.pending",
            EventKind::CaptureSettled => "capture.settled",
            EventKind::CaptureDeclined => "capture.declined",
            EventKind::OrderVoided => "order.voided",
            EventKind::OrderExpired => "order.expired",
            EventKind::RefundSucceeded => "refund.succeeded",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub order_id: String,
    pub amount: Amount,
    /// The capture or refund the event is about, if any.
    pub subject_id: Option<String>,
    pub at: Timestamp,
}
