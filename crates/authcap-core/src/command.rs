//! Commands and the decision: one pure function per command, and [`apply`] over all of them.
//!
//! Each takes the order as loaded ([`OrderState`]), the command and `now`, and answers with the
//! [`Transition`] to persist — the order after it, what it created, its ledger entries and the
//! events it produced — or a [`Refusal`] that changes nothing (but may still name an event, as
//! a capture the processor declined does).

use crate::event::{Event, EventKind};
use crate::ledger::{LedgerEntry, LedgerKind};
use crate::money::{Amount, Currency};
use crate::order::{
    AuthorizationFailure, Capture, CaptureMode, Closure, CoreError, Order, Refund, Shipping,
};
use crate::processor::{AuthorizationOutcome, CaptureOutcome, Card, Processor};
use crate::time::Timestamp;

/// An order with everything hanging off it, as loaded before a decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderState {
    pub order: Order,
    pub captures: Vec<Capture>,
    pub refunds: Vec<Refund>,
}

/// An amount as the request gave it: minor units already, or decimal text in the order's
/// currency (resolved only once the order is loaded, inside the write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestedAmount {
    MinorUnits(Amount),
    Decimal(String),
}

impl RequestedAmount {
    pub fn resolve(&self, currency: Currency) -> Result<Amount, CoreError> {
        match self {
            RequestedAmount::MinorUnits(amount) => Ok(*amount),
            RequestedAmount::Decimal(text) => currency
                .parse_decimal(text)
                .map_err(|error| CoreError::InvalidAmount { error, currency }),
        }
    }
}

impl From<Amount> for RequestedAmount {
    fn from(amount: Amount) -> RequestedAmount {
        RequestedAmount::MinorUnits(amount)
    }
}

/// Everything needed to open an order; ids and `now` come from the caller.
#[derive(Clone, Debug)]
pub struct NewOrder {
    pub id: String,
    pub merchant_id: String,
    pub reference: String,
    pub amount: Amount,
    pub surcharge: Amount,
    pub currency: Currency,
    pub capture_mode: CaptureMode,
    pub card: Card,
    pub authorization_ttl_ms: i64,
    /// Opaque text a dialect keeps with the order (its own wire fields); the core never reads it.
    pub metadata: String,
    /// The id the automatic capture gets, when `capture_mode` is automatic.
    pub automatic_capture_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct CaptureRequest {
    pub id: String,
    /// `None` captures everything capturable.
    pub amount: Option<RequestedAmount>,
    /// Release whatever remains capturable after this capture.
    pub is_final: bool,
    /// Unique among the order's captures.
    pub reference: Option<String>,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub shipping: Option<Shipping>,
    pub metadata: String,
    /// Where the payment method allows no partial capture, capture everything capturable
    /// instead of refusing a smaller amount.
    pub full_capture_fallback: bool,
    /// Refuse orders authorized for automatic capture: they were captured when created.
    pub manual_orders_only: bool,
}

#[derive(Clone, Debug, Default)]
pub struct RefundRequest {
    pub id: String,
    /// `None` refunds everything captured and not yet refunded.
    pub amount: Option<RequestedAmount>,
    /// The currency the request names, if it names one: it must be the order's.
    pub currency: Option<Currency>,
    /// Unique among the order's refunds.
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub metadata: String,
}

/// Everything that can happen to an existing order. Opening one is [`authorize`]: before it
/// there is no state to apply a command to.
#[derive(Clone, Debug)]
pub enum Command {
    Capture(CaptureRequest),
    /// Release `amount` of the uncaptured authorization, or all of it.
    Release {
        amount: Option<RequestedAmount>,
    },
    Refund(RefundRequest),
    /// Write down an expiry that `now` has made visible.
    Expire,
    /// Write down the settlement of a pending capture whose time has come.
    Settle {
        capture_id: String,
    },
}

/// What a decision writes: the order after it, the capture or refund it created, the capture
/// it settled, the ledger entries and the events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition<T> {
    /// The order after the transition, with its captures and refunds.
    pub state: OrderState,
    /// What the command produced, typed per command.
    pub result: T,
    pub new_capture: Option<Capture>,
    pub new_refund: Option<Refund>,
    pub settled_capture: Option<String>,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
    pub now: Timestamp,
}

/// What each command's transition carries besides the state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Captured(Transition<Capture>),
    Released(Transition<Amount>),
    Refunded(Transition<Refund>),
    Expired(Transition<Amount>),
    Settled(Transition<Capture>),
    /// A housekeeping command with nothing (left) to do: not expired yet, already settled.
    Unchanged,
}

/// A command the core refused: nothing changes, but a refusal may still be an event worth
/// keeping (the processor declined a capture).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub error: CoreError,
    pub events: Vec<Event>,
}

impl From<CoreError> for Refusal {
    fn from(error: CoreError) -> Refusal {
        Refusal {
            error,
            events: Vec::new(),
        }
    }
}

/// The one decision over every command on an existing order.
pub fn apply(
    state: &OrderState,
    command: Command,
    now: Timestamp,
    processor: &dyn Processor,
) -> Result<Outcome, Refusal> {
    Ok(match command {
        Command::Capture(request) => Outcome::Captured(capture(state, request, now, processor)?),
        Command::Release { amount } => Outcome::Released(release(state, amount, now)?),
        Command::Refund(request) => Outcome::Refunded(refund(state, request, now)?),
        Command::Expire => expire(state, now).map_or(Outcome::Unchanged, Outcome::Expired),
        Command::Settle { capture_id } => {
            settle(state, &capture_id, now).map_or(Outcome::Unchanged, Outcome::Settled)
        }
    })
}

struct Draft {
    order: Order,
    ledger: Vec<LedgerEntry>,
    events: Vec<Event>,
}

impl Draft {
    fn of(order: &Order) -> Draft {
        Draft {
            order: order.clone(),
            ledger: Vec::new(),
            events: Vec::new(),
        }
    }

    fn entry(&mut self, kind: LedgerKind, amount: Amount, source_id: Option<&str>, at: Timestamp) {
        self.ledger.push(LedgerEntry {
            order_id: self.order.id.clone(),
            kind,
            amount,
            source_id: source_id.map(str::to_owned),
            at,
        });
    }

    /// The transition this draft makes of `state`: its order, the state's captures and refunds
    /// with the one it created, its ledger entries and events.
    fn finish<T>(
        self,
        state: &OrderState,
        result: T,
        new_capture: Option<Capture>,
        new_refund: Option<Refund>,
        now: Timestamp,
    ) -> Transition<T> {
        let mut after = OrderState {
            order: self.order,
            captures: state.captures.clone(),
            refunds: state.refunds.clone(),
        };
        after.captures.extend(new_capture.iter().cloned());
        after.refunds.extend(new_refund.iter().cloned());
        Transition {
            state: after,
            result,
            new_capture,
            new_refund,
            settled_capture: None,
            ledger: self.ledger,
            events: self.events,
            now,
        }
    }

    fn event(&mut self, kind: EventKind, amount: Amount, subject_id: Option<&str>, at: Timestamp) {
        self.events.push(Event {
            kind,
            order_id: self.order.id.clone(),
            amount,
            subject_id: subject_id.map(str::to_owned),
            at,
        });
    }
}

/// Opens an order and asks the processor to authorize it. A decline is not a refusal: the
/// order exists, with status `declined`, and the caller reports it.
pub fn authorize(
    new: NewOrder,
    now: Timestamp,
    processor: &dyn Processor,
) -> Result<Transition<()>, Refusal> {
    if new.amount.is_zero() {
        return Err(CoreError::ZeroAmount.into());
    }
    let hold = new
        .amount
        .checked_add(new.surcharge)
        .ok_or(CoreError::AmountTooLarge)?;
    let (authorization, failure) = match processor.authorize(&new.card, hold, &new.id) {
        AuthorizationOutcome::Approved(authorization) => (Some(authorization), None),
        AuthorizationOutcome::Declined(code) => (None, Some(AuthorizationFailure::Declined(code))),
        AuthorizationOutcome::Failed => (None, Some(AuthorizationFailure::ProcessorError)),
    };
    let order = Order {
        id: new.id,
        merchant_id: new.merchant_id,
        reference: new.reference,
        currency: new.currency,
        amount: new.amount,
        surcharge: new.surcharge,
        capture_mode: new.capture_mode,
        card_brand: new.card.brand().to_owned(),
        card_last4: new.card.last4().to_owned(),
        authorization,
        failure,
        captured_amount: Amount::ZERO,
        released_amount: Amount::ZERO,
        refunded_amount: Amount::ZERO,
        closure: None,
        capture_count: 0,
        expires_at: now.plus_millis(new.authorization_ttl_ms),
        created_at: now,
        updated_at: now,
        metadata: new.metadata,
    };
    let mut draft = Draft::of(&order);
    match order.failure {
        None => {
            draft.entry(LedgerKind::Authorize, hold, None, now);
            draft.event(EventKind::OrderAuthorized, hold, None, now);
        }
        Some(AuthorizationFailure::Declined(_)) => {
            draft.event(EventKind::OrderDeclined, hold, None, now);
        }
        Some(AuthorizationFailure::ProcessorError) => {
            draft.event(EventKind::OrderFailed, hold, None, now);
        }
    }
    let created = Transition {
        state: OrderState {
            order,
            captures: Vec::new(),
            refunds: Vec::new(),
        },
        result: (),
        new_capture: None,
        new_refund: None,
        settled_capture: None,
        ledger: draft.ledger,
        events: draft.events,
        now,
    };
    if created.state.order.capture_mode != CaptureMode::Automatic
        || !created.state.order.is_authorized()
    {
        return Ok(created);
    }
    let request = CaptureRequest {
        id: new.automatic_capture_id,
        ..CaptureRequest::default()
    };
    match capture(&created.state, request, now, processor) {
        Ok(captured) => Ok(Transition {
            state: captured.state,
            result: (),
            new_capture: captured.new_capture,
            new_refund: None,
            settled_capture: None,
            ledger: [created.ledger, captured.ledger].concat(),
            events: [created.events, captured.events].concat(),
            now,
        }),
        // The authorization stands; the merchant may capture it by hand.
        Err(refusal) => Ok(Transition {
            events: [created.events, refusal.events].concat(),
            ..created
        }),
    }
}

pub fn capture(
    state: &OrderState,
    request: CaptureRequest,
    now: Timestamp,
    processor: &dyn Processor,
) -> Result<Transition<Capture>, Refusal> {
    let order = &state.order;
    if request.manual_orders_only && order.capture_mode == CaptureMode::Automatic {
        return Err(CoreError::CaptureModeAutomatic.into());
    }
    let authorization = order
        .authorization
        .as_ref()
        .ok_or(CoreError::OrderNotCapturable)?;
    if let Some(reference) = &request.reference
        && state
            .captures
            .iter()
            .any(|c| c.reference.as_ref() == Some(reference))
    {
        return Err(CoreError::OperationReferenceTaken.into());
    }
    let requested = request
        .amount
        .as_ref()
        .map(|amount| amount.resolve(order.currency))
        .transpose()?;
    if order.is_expired(now) {
        return Err(CoreError::AuthorizationExpired.into());
    }
    let capturable = order.capturable_amount(now);
    if capturable.is_zero() {
        return Err(CoreError::OrderNotCapturable.into());
    }
    let support = authorization.capture_support;
    let mut amount = requested.unwrap_or(capturable);
    if amount.is_zero() {
        return Err(CoreError::ZeroAmount.into());
    }
    if amount > capturable {
        return Err(CoreError::AmountExceedsCapturable {
            capturable,
            currency: order.currency,
        }
        .into());
    }
    if !support.partial && amount != capturable && request.full_capture_fallback {
        amount = capturable;
    }
    if (!support.partial && amount != capturable) || (!support.multiple && order.capture_count > 0)
    {
        return Err(CoreError::PartialCaptureUnsupported {
            capturable,
            currency: order.currency,
        }
        .into());
    }
    let settles_at = match processor.capture(authorization, amount, now) {
        CaptureOutcome::Settled => None,
        CaptureOutcome::SettlesAt(at) => Some(at),
        CaptureOutcome::Declined => {
            let mut draft = Draft::of(order);
            draft.event(EventKind::CaptureDeclined, amount, Some(&request.id), now);
            return Err(Refusal {
                error: CoreError::CaptureDeclined,
                events: draft.events,
            });
        }
    };

    let mut draft = Draft::of(order);
    draft.order.captured_amount = add(order.captured_amount, amount);
    draft.order.capture_count += 1;
    draft.order.updated_at = now;
    draft.entry(LedgerKind::Capture, amount, Some(&request.id), now);
    let captured = match settles_at {
        None => EventKind::CaptureSucceeded,
        Some(_) => EventKind::CapturePending,
    };
    draft.event(captured, amount, Some(&request.id), now);
    let remainder = draft.order.uncaptured_remainder();
    if request.is_final && !remainder.is_zero() {
        draft.order.released_amount = add(draft.order.released_amount, remainder);
        draft.entry(LedgerKind::Release, remainder, Some(&request.id), now);
        draft.event(EventKind::OrderVoided, remainder, Some(&request.id), now);
    }
    let closes = request.is_final || draft.order.uncaptured_remainder().is_zero();
    if closes {
        draft.order.closure = Some(Closure::FinalCapture);
    }
    let capture = Capture {
        id: request.id,
        order_id: order.id.clone(),
        amount,
        reference: request.reference,
        is_final: closes,
        invoice_id: request.invoice_id,
        description: request.description,
        reason: request.reason,
        shipping: request.shipping,
        metadata: request.metadata,
        created_at: now,
        settles_at,
        settled_at: None,
    };
    Ok(draft.finish(state, capture.clone(), Some(capture), None, now))
}

/// Releases `amount` of the uncaptured remainder, or all of it when `None`. With no captures a
/// full release leaves the order `voided`; with some it stays captured with nothing left to
/// capture. A partial release needs a payment method that allows partial captures.
pub fn release(
    state: &OrderState,
    amount: Option<RequestedAmount>,
    now: Timestamp,
) -> Result<Transition<Amount>, Refusal> {
    let order = &state.order;
    let Some(authorization) = &order.authorization else {
        return Err(CoreError::OrderNotVoidable.into());
    };
    let requested = amount
        .map(|amount| amount.resolve(order.currency))
        .transpose()?;
    if order.is_expired(now) {
        return Err(CoreError::AuthorizationExpired.into());
    }
    let remainder = order.uncaptured_remainder();
    if remainder.is_zero() {
        return Err(CoreError::OrderNotVoidable.into());
    }
    let amount = requested.unwrap_or(remainder);
    if amount.is_zero() {
        return Err(CoreError::ZeroAmount.into());
    }
    if amount > remainder {
        return Err(CoreError::AmountExceedsCapturable {
            capturable: remainder,
            currency: order.currency,
        }
        .into());
    }
    if amount != remainder && !authorization.capture_support.partial {
        return Err(CoreError::PartialCaptureUnsupported {
            capturable: remainder,
            currency: order.currency,
        }
        .into());
    }
    let mut draft = Draft::of(order);
    draft.order.released_amount = add(order.released_amount, amount);
    if draft.order.uncaptured_remainder().is_zero() {
        draft.order.closure = Some(Closure::Void);
    }
    draft.order.updated_at = now;
    draft.entry(LedgerKind::Release, amount, None, now);
    draft.event(EventKind::OrderVoided, amount, None, now);
    Ok(draft.finish(state, amount, None, None, now))
}

/// Writes down an expiry that `now` has already made visible: releases the remainder.
/// `None` when there is nothing to expire.
pub fn expire(state: &OrderState, now: Timestamp) -> Option<Transition<Amount>> {
    let order = &state.order;
    if !order.is_authorized() || order.closure.is_some() || now < order.expires_at {
        return None;
    }
    let remainder = order.uncaptured_remainder();
    let mut draft = Draft::of(order);
    draft.order.closure = Some(Closure::Expiry);
    draft.order.released_amount = add(order.released_amount, remainder);
    draft.order.updated_at = now;
    if !remainder.is_zero() {
        draft.entry(LedgerKind::Release, remainder, None, now);
    }
    draft.event(EventKind::OrderExpired, remainder, None, now);
    Some(draft.finish(state, remainder, None, None, now))
}

/// Writes down that a pending capture settled: its time has come and it was not written down
/// yet. Money moved when the capture was made; this only names the settlement. `None` when
/// there is nothing to settle.
pub fn settle(state: &OrderState, capture_id: &str, now: Timestamp) -> Option<Transition<Capture>> {
    let index = state.captures.iter().position(|c| c.id == capture_id)?;
    let pending = &state.captures[index];
    let due = pending.settles_at.is_some_and(|at| now >= at);
    if !due || pending.settled_at.is_some() {
        return None;
    }
    let mut after = state.clone();
    after.captures[index].settled_at = Some(now);
    let settled = after.captures[index].clone();
    let mut draft = Draft::of(&state.order);
    draft.event(
        EventKind::CaptureSettled,
        settled.amount,
        Some(capture_id),
        now,
    );
    Some(Transition {
        state: after,
        result: settled,
        new_capture: None,
        new_refund: None,
        settled_capture: Some(capture_id.to_owned()),
        ledger: Vec::new(),
        events: draft.events,
        now,
    })
}

pub fn refund(
    state: &OrderState,
    request: RefundRequest,
    now: Timestamp,
) -> Result<Transition<Refund>, Refusal> {
    let order = &state.order;
    if let Some(reference) = &request.reference
        && state
            .refunds
            .iter()
            .any(|r| r.reference.as_ref() == Some(reference))
    {
        return Err(CoreError::OperationReferenceTaken.into());
    }
    if let Some(currency) = request.currency
        && currency != order.currency
    {
        return Err(CoreError::CurrencyMismatch {
            currency: order.currency,
        }
        .into());
    }
    let requested = request
        .amount
        .as_ref()
        .map(|amount| amount.resolve(order.currency))
        .transpose()?;
    let refundable = order.refundable_amount();
    if order.captured_amount.is_zero() {
        return Err(CoreError::NothingCaptured.into());
    }
    if refundable.is_zero() {
        return Err(CoreError::OrderNotRefundable.into());
    }
    let amount = requested.unwrap_or(refundable);
    if amount.is_zero() {
        return Err(CoreError::ZeroAmount.into());
    }
    if amount > refundable {
        return Err(CoreError::AmountExceedsRefundable {
            refundable,
            currency: order.currency,
        }
        .into());
    }
    let mut draft = Draft::of(order);
    draft.order.refunded_amount = add(order.refunded_amount, amount);
    draft.order.updated_at = now;
    draft.entry(LedgerKind::Refund, amount, Some(&request.id), now);
    draft.event(EventKind::RefundSucceeded, amount, Some(&request.id), now);
    let refund = Refund {
        id: request.id,
        order_id: order.id.clone(),
        amount,
        reference: request.reference,
        reason: request.reason,
        metadata: request.metadata,
        created_at: now,
    };
    Ok(draft.finish(state, refund.clone(), None, Some(refund), now))
}

/// Adds two amounts whose sum the caller has already bounded by the held amount.
fn add(a: Amount, b: Amount) -> Amount {
    a.checked_add(b)
        .expect("sum is bounded by the held amount, itself a valid amount")
}
