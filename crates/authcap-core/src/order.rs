//! The order state machine: authorize, capture (full, partial, several), void, refund, expire.
//!
//! Every function takes the current order and `now` and returns the next order plus the ledger
//! entries that explain the change, or a [`CoreError`] and no change at all.

use crate::ledger::{LedgerEntry, LedgerKind};
use crate::money::{Amount, Currency};
use crate::processor::{
    Authorization, AuthorizationOutcome, CaptureOutcome, Card, DeclineCode, Processor,
};
use crate::time::Timestamp;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CaptureMode {
    /// Authorize now, capture later by an explicit call.
    Manual,
    /// Capture everything right after the authorization.
    Automatic,
}

impl CaptureMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureMode::Manual => "manual",
            CaptureMode::Automatic => "automatic",
        }
    }

    pub fn parse(text: &str) -> Option<CaptureMode> {
        match text {
            "manual" => Some(CaptureMode::Manual),
            "automatic" => Some(CaptureMode::Automatic),
            _ => None,
        }
    }
}

/// Why an order holds no authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizationFailure {
    Declined(DeclineCode),
    ProcessorError,
}

impl AuthorizationFailure {
    pub fn code(self) -> &'static str {
        match self {
            AuthorizationFailure::Declined(code) => code.as_str(),
            AuthorizationFailure::ProcessorError => "processor_error",
        }
    }

    pub fn parse(code: &str) -> Option<AuthorizationFailure> {
        match code {
            "processor_error" => Some(AuthorizationFailure::ProcessorError),
            other => DeclineCode::parse(other).map(AuthorizationFailure::Declined),
        }
    }
}

/// Why the uncaptured remainder was released.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closure {
    Void,
    FinalCapture,
    Expiry,
}

impl Closure {
    pub fn as_str(self) -> &'static str {
        match self {
            Closure::Void => "void",
            Closure::FinalCapture => "final_capture",
            Closure::Expiry => "expiry",
        }
    }

    pub fn parse(text: &str) -> Option<Closure> {
        match text {
            "void" => Some(Closure::Void),
            "final_capture" => Some(Closure::FinalCapture),
            "expiry" => Some(Closure::Expiry),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    Authorized,
    PartiallyCaptured,
    Captured,
    Refunded,
    Voided,
    Expired,
    Declined,
    Failed,
}

impl OrderStatus {
    pub const ALL: [OrderStatus; 8] = [
        OrderStatus::Authorized,
        OrderStatus::PartiallyCaptured,
        OrderStatus::Captured,
        OrderStatus::Refunded,
        OrderStatus::Voided,
        OrderStatus::Expired,
        OrderStatus::Declined,
        OrderStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Authorized => "authorized",
            OrderStatus::PartiallyCaptured => "partially_captured",
            OrderStatus::Captured => "captured",
            OrderStatus::Refunded => "refunded",
            OrderStatus::Voided => "voided",
            OrderStatus::Expired => "expired",
            OrderStatus::Declined => "declined",
            OrderStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<OrderStatus> {
        OrderStatus::ALL.into_iter().find(|s| s.as_str() == text)
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: String,
    pub merchant_id: String,
    pub reference: String,
    pub currency: Currency,
    pub amount: Amount,
    pub surcharge: Amount,
    pub capture_mode: CaptureMode,
    pub card_brand: String,
    pub card_last4: String,
    pub authorization: Option<Authorization>,
    pub failure: Option<AuthorizationFailure>,
    pub captured_amount: Amount,
    pub released_amount: Amount,
    pub refunded_amount: Amount,
    pub closure: Option<Closure>,
    pub capture_count: u32,
    pub expires_at: Timestamp,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub metadata: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Shipping {
    pub carrier: Option<String>,
    pub method: Option<String>,
    pub tracking_code: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capture {
    pub id: String,
    pub order_id: String,
    pub amount: Amount,
    pub reference: Option<String>,
    pub is_final: bool,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub shipping: Option<Shipping>,
    pub metadata: String,
    pub created_at: Timestamp,
    /// When a capture the processor accepted for later settlement settles; `None` = at once.
    pub settles_at: Option<Timestamp>,
}

impl Capture {
    pub fn is_settled(&self, now: Timestamp) -> bool {
        self.settles_at.is_none_or(|at| now >= at)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: String,
    pub order_id: String,
    pub amount: Amount,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub metadata: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, Default)]
pub struct CaptureRequest {
    pub id: String,
    /// `None` captures everything capturable.
    pub amount: Option<Amount>,
    /// Release whatever remains capturable after this capture.
    pub is_final: bool,
    pub reference: Option<String>,
    pub invoice_id: Option<String>,
    pub description: Option<String>,
    pub reason: Option<String>,
    pub shipping: Option<Shipping>,
    pub metadata: String,
}

#[derive(Clone, Debug, Default)]
pub struct RefundRequest {
    pub id: String,
    /// `None` refunds everything captured and not yet refunded.
    pub amount: Option<Amount>,
    pub reference: Option<String>,
    pub reason: Option<String>,
    pub metadata: String,
}

/// The result of one accepted operation: the order after it, what it created, and the ledger
/// entries to append.
#[derive(Clone, Debug)]
pub struct Transition {
    pub order: Order,
    pub capture: Option<Capture>,
    pub refund: Option<Refund>,
    pub ledger: Vec<LedgerEntry>,
}

/// Why an operation was refused. Nothing changes when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// Amount plus surcharge is larger than an amount may be.
    AmountTooLarge,
    ZeroAmount,
    /// The order holds no authorization that could be captured (declined, voided, fully
    /// captured).
    OrderNotCapturable,
    AuthorizationExpired,
    AmountExceedsCapturable {
        capturable: Amount,
    },
    /// The payment method allows only one capture of everything capturable.
    PartialCaptureUnsupported {
        capturable: Amount,
    },
    /// The processor refused the capture.
    CaptureDeclined,
    OrderNotVoidable,
    OrderNotRefundable,
    AmountExceedsRefundable {
        refundable: Amount,
    },
}

impl CoreError {
    /// A stable machine code, shared by the native API and the README.
    pub fn code(self) -> &'static str {
        match self {
            CoreError::AmountTooLarge => "amount_too_large",
            CoreError::ZeroAmount => "amount_must_be_positive",
            CoreError::OrderNotCapturable => "order_not_capturable",
            CoreError::AuthorizationExpired => "authorization_expired",
            CoreError::AmountExceedsCapturable { .. } => "amount_exceeds_capturable",
            CoreError::PartialCaptureUnsupported { .. } => "partial_capture_unsupported",
            CoreError::CaptureDeclined => "capture_declined",
            CoreError::OrderNotVoidable => "order_not_voidable",
            CoreError::OrderNotRefundable => "order_not_refundable",
            CoreError::AmountExceedsRefundable { .. } => "amount_exceeds_refundable",
        }
    }
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreError::AmountTooLarge => f.write_str("amount plus surcharge is too large"),
            CoreError::ZeroAmount => f.write_str("amount must be greater than zero"),
            CoreError::OrderNotCapturable => {
                f.write_str("the order has no authorized amount left to capture")
            }
            CoreError::AuthorizationExpired => f.write_str("the authorization has expired"),
            CoreError::AmountExceedsCapturable { capturable } => write!(
                f,
                "amount exceeds the capturable amount of {capturable} minor units"
            ),
            CoreError::PartialCaptureUnsupported { capturable } => write!(
                f,
                "this payment method supports only one capture of the full {capturable} minor units"
            ),
            CoreError::CaptureDeclined => f.write_str("the processor declined the capture"),
            CoreError::OrderNotVoidable => {
                f.write_str("the order has no uncaptured authorization to void")
            }
            CoreError::OrderNotRefundable => f.write_str("the order has nothing left to refund"),
            CoreError::AmountExceedsRefundable { refundable } => write!(
                f,
                "amount exceeds the refundable amount of {refundable} minor units"
            ),
        }
    }
}

impl std::error::Error for CoreError {}

impl Order {
    /// Opens an order and asks the processor to authorize it. A decline is not an error: the
    /// order exists, with status `declined`, and the caller reports it.
    pub fn create(
        new: NewOrder,
        now: Timestamp,
        processor: &dyn Processor,
    ) -> Result<Transition, CoreError> {
        if new.amount.is_zero() {
            return Err(CoreError::ZeroAmount);
        }
        let hold = new
            .amount
            .checked_add(new.surcharge)
            .ok_or(CoreError::AmountTooLarge)?;
        let outcome = processor.authorize(&new.card, hold, &new.id);
        let (authorization, failure) = match outcome {
            AuthorizationOutcome::Approved(authorization) => (Some(authorization), None),
            AuthorizationOutcome::Declined(code) => {
                (None, Some(AuthorizationFailure::Declined(code)))
            }
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
        let mut ledger = Vec::new();
        if order.authorization.is_some() {
            ledger.push(order.entry(LedgerKind::Authorize, hold, None, now));
        }
        let created = Transition {
            order,
            capture: None,
            refund: None,
            ledger,
        };
        if created.order.capture_mode == CaptureMode::Automatic && created.order.is_authorized() {
            let request = CaptureRequest {
                id: new.automatic_capture_id,
                ..CaptureRequest::default()
            };
            return match created.order.capture(request, now, processor) {
                Ok(mut captured) => {
                    let mut ledger = created.ledger;
                    ledger.append(&mut captured.ledger);
                    captured.ledger = ledger;
                    Ok(captured)
                }
                // The authorization stands; the merchant may capture it by hand.
                Err(_) => Ok(created),
            };
        }
        Ok(created)
    }

    pub fn is_authorized(&self) -> bool {
        self.authorization.is_some()
    }

    /// What the card holds for this order: amount + surcharge once authorized, else nothing.
    pub fn held_amount(&self) -> Amount {
        if self.is_authorized() {
            // Checked at creation.
            self.amount
                .checked_add(self.surcharge)
                .unwrap_or(Amount::ZERO)
        } else {
            Amount::ZERO
        }
    }

    /// The authorized amount, excluding the surcharge (zero when not authorized).
    pub fn authorized_amount(&self) -> Amount {
        if self.is_authorized() {
            self.amount
        } else {
            Amount::ZERO
        }
    }

    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.closure == Some(Closure::Expiry)
            || (self.is_authorized() && self.closure.is_none() && now >= self.expires_at)
    }

    /// Uncaptured, unreleased, unexpired held funds.
    pub fn capturable_amount(&self, now: Timestamp) -> Amount {
        if self.is_expired(now) {
            return Amount::ZERO;
        }
        self.uncaptured_remainder()
    }

    fn uncaptured_remainder(&self) -> Amount {
        self.held_amount()
            .saturating_sub(self.captured_amount)
            .saturating_sub(self.released_amount)
    }

    pub fn refundable_amount(&self) -> Amount {
        self.captured_amount.saturating_sub(self.refunded_amount)
    }

    pub fn status(&self, now: Timestamp) -> OrderStatus {
        match self.failure {
            Some(AuthorizationFailure::Declined(_)) => return OrderStatus::Declined,
            Some(AuthorizationFailure::ProcessorError) => return OrderStatus::Failed,
            None => {}
        }
        let capturable = !self.capturable_amount(now).is_zero();
        if !self.captured_amount.is_zero() {
            if self.refunded_amount == self.captured_amount && !capturable {
                OrderStatus::Refunded
            } else if capturable {
                OrderStatus::PartiallyCaptured
            } else {
                OrderStatus::Captured
            }
        } else if capturable {
            OrderStatus::Authorized
        } else if self.is_expired(now) {
            OrderStatus::Expired
        } else {
            OrderStatus::Voided
        }
    }

    pub fn capture(
        &self,
        request: CaptureRequest,
        now: Timestamp,
        processor: &dyn Processor,
    ) -> Result<Transition, CoreError> {
        let authorization = self
            .authorization
            .as_ref()
            .ok_or(CoreError::OrderNotCapturable)?;
        if self.is_expired(now) {
            return Err(CoreError::AuthorizationExpired);
        }
        let capturable = self.capturable_amount(now);
        if capturable.is_zero() {
            return Err(CoreError::OrderNotCapturable);
        }
        let amount = request.amount.unwrap_or(capturable);
        if amount.is_zero() {
            return Err(CoreError::ZeroAmount);
        }
        if amount > capturable {
            return Err(CoreError::AmountExceedsCapturable { capturable });
        }
        let support = authorization.capture_support;
        if (!support.partial && amount != capturable)
            || (!support.multiple && self.capture_count > 0)
        {
            return Err(CoreError::PartialCaptureUnsupported { capturable });
        }
        let settles_at = match processor.capture(authorization, amount, now) {
            CaptureOutcome::Settled => None,
            CaptureOutcome::SettlesAt(at) => Some(at),
            CaptureOutcome::Declined => return Err(CoreError::CaptureDeclined),
        };

        let mut order = self.clone();
        order.captured_amount = add(order.captured_amount, amount);
        order.capture_count += 1;
        order.updated_at = now;
        let mut ledger = vec![self.entry(LedgerKind::Capture, amount, Some(&request.id), now)];
        let remainder = order.uncaptured_remainder();
        if request.is_final && !remainder.is_zero() {
            order.released_amount = add(order.released_amount, remainder);
            ledger.push(self.entry(LedgerKind::Release, remainder, Some(&request.id), now));
        }
        if request.is_final || order.uncaptured_remainder().is_zero() {
            order.closure = Some(Closure::FinalCapture);
        }
        let capture = Capture {
            id: request.id,
            order_id: self.id.clone(),
            amount,
            reference: request.reference,
            is_final: request.is_final || order.uncaptured_remainder().is_zero(),
            invoice_id: request.invoice_id,
            description: request.description,
            reason: request.reason,
            shipping: request.shipping,
            metadata: request.metadata,
            created_at: now,
            settles_at,
        };
        Ok(Transition {
            order,
            capture: Some(capture),
            refund: None,
            ledger,
        })
    }

    /// Releases `amount` of the uncaptured remainder, or all of it when `None`. With no
    /// captures a full void leaves the order `voided`; with some it stays captured with nothing
    /// left to capture. A partial void needs a payment method that allows partial captures.
    pub fn void(&self, amount: Option<Amount>, now: Timestamp) -> Result<Transition, CoreError> {
        let Some(authorization) = &self.authorization else {
            return Err(CoreError::OrderNotVoidable);
        };
        if self.is_expired(now) {
            return Err(CoreError::AuthorizationExpired);
        }
        let remainder = self.uncaptured_remainder();
        if remainder.is_zero() {
            return Err(CoreError::OrderNotVoidable);
        }
        let amount = amount.unwrap_or(remainder);
        if amount.is_zero() {
            return Err(CoreError::ZeroAmount);
        }
        if amount > remainder {
            return Err(CoreError::AmountExceedsCapturable {
                capturable: remainder,
            });
        }
        if amount != remainder && !authorization.capture_support.partial {
            return Err(CoreError::PartialCaptureUnsupported {
                capturable: remainder,
            });
        }
        let mut order = self.clone();
        order.released_amount = add(order.released_amount, amount);
        if order.uncaptured_remainder().is_zero() {
            order.closure = Some(Closure::Void);
        }
        order.updated_at = now;
        let ledger = vec![self.entry(LedgerKind::Release, amount, None, now)];
        Ok(Transition {
            order,
            capture: None,
            refund: None,
            ledger,
        })
    }

    /// Writes down an expiry that `now` has already made visible: releases the remainder.
    /// Returns `None` when there is nothing to expire.
    pub fn expire(&self, now: Timestamp) -> Option<Transition> {
        if !self.is_authorized() || self.closure.is_some() || now < self.expires_at {
            return None;
        }
        let remainder = self.uncaptured_remainder();
        let mut order = self.clone();
        order.closure = Some(Closure::Expiry);
        order.released_amount = add(order.released_amount, remainder);
        order.updated_at = now;
        let ledger = if remainder.is_zero() {
            Vec::new()
        } else {
            vec![self.entry(LedgerKind::Release, remainder, None, now)]
        };
        Some(Transition {
            order,
            capture: None,
            refund: None,
            ledger,
        })
    }

    pub fn refund(&self, request: RefundRequest, now: Timestamp) -> Result<Transition, CoreError> {
        let refundable = self.refundable_amount();
        if refundable.is_zero() {
            return Err(CoreError::OrderNotRefundable);
        }
        let amount = request.amount.unwrap_or(refundable);
        if amount.is_zero() {
            return Err(CoreError::ZeroAmount);
        }
        if amount > refundable {
            return Err(CoreError::AmountExceedsRefundable { refundable });
        }
        let mut order = self.clone();
        order.refunded_amount = add(order.refunded_amount, amount);
        order.updated_at = now;
        let ledger = vec![self.entry(LedgerKind::Refund, amount, Some(&request.id), now)];
        let refund = Refund {
            id: request.id,
            order_id: self.id.clone(),
            amount,
            reference: request.reference,
            reason: request.reason,
            metadata: request.metadata,
            created_at: now,
        };
        Ok(Transition {
            order,
            capture: None,
            refund: Some(refund),
            ledger,
        })
    }

    fn entry(
        &self,
        kind: LedgerKind,
        amount: Amount,
        source_id: Option<&str>,
        at: Timestamp,
    ) -> LedgerEntry {
        LedgerEntry {
            order_id: self.id.clone(),
            kind,
            amount,
            source_id: source_id.map(str::to_owned),
            at,
        }
    }
}

/// Adds two amounts whose sum the caller has already bounded by the held amount.
fn add(a: Amount, b: Amount) -> Amount {
    a.checked_add(b)
        .expect("sum is bounded by the held amount, itself a valid amount")
}
