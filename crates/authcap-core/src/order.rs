//! The order and what hangs off it (captures, refunds), its derived amounts and status, and
//! why a command can be refused ([`CoreError`]). The transitions live in [`crate::command`].

use crate::ledger::LedgerTotals;
use crate::money::{Amount, AmountError, Currency};
use crate::processor::{Authorization, DeclineCode};
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
    /// When the settlement was written down (by [`crate::command::settle`]).
    pub settled_at: Option<Timestamp>,
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

/// Why a command was refused. Nothing changes when one is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// A decimal amount that is not an amount of the order's currency.
    InvalidAmount {
        error: AmountError,
        currency: Currency,
    },
    /// The order already has a capture (or refund) with this reference.
    OperationReferenceTaken,
    /// The order was authorized for automatic capture; it cannot be captured by hand.
    CaptureModeAutomatic,
    /// Amount plus surcharge is larger than an amount may be.
    AmountTooLarge,
    ZeroAmount,
    /// The order holds no authorization that could be captured (declined, voided, fully
    /// captured).
    OrderNotCapturable,
    AuthorizationExpired,
    AmountExceedsCapturable {
        capturable: Amount,
        currency: Currency,
    },
    /// The payment method allows only one capture of everything capturable.
    PartialCaptureUnsupported {
        capturable: Amount,
        currency: Currency,
    },
    /// The processor refused the capture.
    CaptureDeclined,
    OrderNotVoidable,
    /// Nothing was ever captured, so there is nothing to refund.
    NothingCaptured,
    /// Everything captured has been refunded.
    OrderNotRefundable,
    AmountExceedsRefundable {
        refundable: Amount,
        currency: Currency,
    },
    /// The request names a currency other than the order's.
    CurrencyMismatch {
        currency: Currency,
    },
}

impl CoreError {
    /// A stable machine code, shared by the native API and the README.
    pub fn code(self) -> &'static str {
        match self {
            CoreError::InvalidAmount { .. } => "invalid_amount",
            CoreError::OperationReferenceTaken => "reference_already_exists",
            CoreError::CaptureModeAutomatic => "capture_mode_automatic",
            CoreError::AmountTooLarge => "amount_too_large",
            CoreError::ZeroAmount => "amount_must_be_positive",
            CoreError::OrderNotCapturable => "order_not_capturable",
            CoreError::AuthorizationExpired => "authorization_expired",
            CoreError::AmountExceedsCapturable { .. } => "amount_exceeds_capturable",
            CoreError::PartialCaptureUnsupported { .. } => "partial_capture_unsupported",
            CoreError::CaptureDeclined => "capture_declined",
            CoreError::OrderNotVoidable => "order_not_voidable",
            CoreError::NothingCaptured | CoreError::OrderNotRefundable => "order_not_refundable",
            CoreError::AmountExceedsRefundable { .. } => "amount_exceeds_refundable",
            CoreError::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreError::InvalidAmount { error, currency } => {
                write!(f, "is not an amount of {currency}: {error}")
            }
            CoreError::OperationReferenceTaken => {
                f.write_str("the order already has an operation with this reference")
            }
            CoreError::CaptureModeAutomatic => {
                f.write_str("orders with automatic capture are captured when created")
            }
            CoreError::AmountTooLarge => f.write_str("amount plus surcharge is too large"),
            CoreError::ZeroAmount => f.write_str("amount must be greater than zero"),
            CoreError::OrderNotCapturable => {
                f.write_str("the order has no authorized amount left to capture")
            }
            CoreError::AuthorizationExpired => f.write_str("the authorization has expired"),
            CoreError::AmountExceedsCapturable { capturable, .. } => write!(
                f,
                "amount exceeds the capturable amount of {capturable} minor units"
            ),
            CoreError::PartialCaptureUnsupported { capturable, .. } => write!(
                f,
                "this payment method supports only one capture of the full {capturable} minor units"
            ),
            CoreError::CaptureDeclined => f.write_str("the processor declined the capture"),
            CoreError::OrderNotVoidable => {
                f.write_str("the order has no uncaptured authorization to void")
            }
            CoreError::NothingCaptured => f.write_str("nothing has been captured to refund"),
            CoreError::OrderNotRefundable => f.write_str("the order has nothing left to refund"),
            CoreError::CurrencyMismatch { currency } => {
                write!(f, "the currency must be the order's currency, {currency}")
            }
            CoreError::AmountExceedsRefundable { refundable, .. } => write!(
                f,
                "amount exceeds the refundable amount of {refundable} minor units"
            ),
        }
    }
}

impl std::error::Error for CoreError {}

impl Order {
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

    pub(crate) fn uncaptured_remainder(&self) -> Amount {
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

    /// Every way the order's stored totals can disagree with its ledger or break an invariant.
    pub fn discrepancies(&self, ledger: LedgerTotals) -> Vec<String> {
        let mut found = Vec::new();
        let held = self.held_amount().minor_units();
        let captured = self.captured_amount.minor_units();
        let released = self.released_amount.minor_units();
        let refunded = self.refunded_amount.minor_units();
        let mut expect = |what: &str, stored: i64, in_ledger: i64| {
            if stored != in_ledger {
                found.push(format!(
                    "{what}: order says {stored}, ledger sums to {in_ledger}"
                ));
            }
        };
        expect("held", held, ledger.authorized);
        expect("captured", captured, ledger.captured);
        expect("released", released, ledger.released);
        expect("refunded", refunded, ledger.refunded);
        if captured + released > held {
            found.push(format!(
                "captured {captured} + released {released} exceeds the {held} held"
            ));
        }
        if refunded > captured {
            found.push(format!("refunded {refunded} exceeds captured {captured}"));
        }
        found
    }
}
