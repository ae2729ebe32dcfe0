//! The seam to whoever moves the money: a real acquirer tomorrow, the built-in simulator today.

use crate::money::Amount;
use crate::time::Timestamp;

/// What the merchant's customer pays with, as the core sees it. Dialects map their own test
/// triggers onto a card number of the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    pub number: String,
    pub expiry: Option<String>,
    pub cvc: Option<String>,
}

impl Card {
    /// True for 12..=19 digits that pass the Luhn check.
    pub fn is_plausible_number(number: &str) -> bool {
        let len_ok = (12..=19).contains(&number.len());
        len_ok && number.bytes().all(|b| b.is_ascii_digit()) && luhn_valid(number)
    }

    pub fn last4(&self) -> &str {
        &self.number[self.number.len().saturating_sub(4)..]
    }

    pub fn brand(&self) -> &'static str {
        match self.number.as_bytes().first() {
            Some(b'4') => "visa",
            Some(b'5') | Some(b'2') => "mastercard",
            Some(b'3') => "amex",
            _ => "card",
        }
    }
}

fn luhn_valid(number: &str) -> bool {
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if !i.is_multiple_of(2) {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// What the processor says about capturing against one authorization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CaptureSupport {
    /// Less than the full capturable amount may be captured.
    pub partial: bool,
    /// More than one capture may be made against the authorization.
    pub multiple: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorization {
    /// The processor's own handle on the authorization; opaque to the core.
    pub processor_reference: String,
    pub capture_support: CaptureSupport,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeclineCode {
    CardDeclined,
    InsufficientFunds,
}

impl DeclineCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineCode::CardDeclined => "card_declined",
            DeclineCode::InsufficientFunds => "insufficient_funds",
        }
    }

    pub fn parse(text: &str) -> Option<DeclineCode> {
        match text {
            "card_declined" => Some(DeclineCode::CardDeclined),
            "insufficient_funds" => Some(DeclineCode::InsufficientFunds),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizationOutcome {
    Approved(Authorization),
    Declined(DeclineCode),
    /// The processor could not decide (an error on its side); nothing was authorized.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureOutcome {
    /// The funds are captured now.
    Settled,
    /// The processor accepted the capture and settles it at the given time.
    SettlesAt(Timestamp),
    Declined,
}

/// A processor answers synchronously and without side effects visible to Authcap's storage;
/// the store calls it inside the order's serialized section.
pub trait Processor: Send + Sync {
    fn authorize(&self, card: &Card, amount: Amount, order_id: &str) -> AuthorizationOutcome;
    fn capture(
        &self,
        authorization: &Authorization,
        amount: Amount,
        now: Timestamp,
    ) -> CaptureOutcome;
}

/// The built-in sandbox processor: every outcome is chosen by the card number.
#[derive(Clone, Copy, Debug, Default)]
pub struct Simulator;

/// A test card of the simulator and what it does.
pub struct TestCard {
    pub number: &'static str,
    pub behaviour: &'static str,
}

pub const TEST_CARDS: &[TestCard] = &[
    TestCard {
        number: "4242424242424242",
        behaviour: "approves; partial and multiple captures",
    },
    TestCard {
        number: "4000000000000002",
        behaviour: "declines with card_declined",
    },
    TestCard {
        number: "4000000000009995",
        behaviour: "declines with insufficient_funds",
    },
    TestCard {
        number: "4000000000000119",
        behaviour: "fails with a processor error",
    },
    TestCard {
        number: "4000000000000077",
        behaviour: "approves; one full capture only (no partial)",
    },
    TestCard {
        number: "4000000000000341",
        behaviour: "approves; every capture is declined by the processor",
    },
    TestCard {
        number: "4000000000000259",
        behaviour: "approves; captures settle 2 seconds after they are made",
    },
];

/// How long a capture on the settle-later card stays pending.
pub const SIMULATOR_SETTLEMENT_DELAY_MS: i64 = 2_000;

const FULL_CAPTURE_ONLY: &str = "4000000000000077";
const CAPTURE_DECLINED: &str = "4000000000000341";
const SETTLES_LATER: &str = "4000000000000259";

impl Processor for Simulator {
    fn authorize(&self, card: &Card, _amount: Amount, order_id: &str) -> AuthorizationOutcome {
        let (scenario, partial) = match card.number.as_str() {
            "4000000000000002" => return AuthorizationOutcome::Declined(DeclineCode::CardDeclined),
            "4000000000009995" => {
                return AuthorizationOutcome::Declined(DeclineCode::InsufficientFunds);
            }
            "4000000000000119" => return AuthorizationOutcome::Failed,
            FULL_CAPTURE_ONLY => ("full_only", false),
            CAPTURE_DECLINED => ("capture_declined", true),
            SETTLES_LATER => ("settles_later", true),
            _ => ("approve", true),
        };
        // The scenario rides in the processor reference, as a real acquirer keeps its own state.
        AuthorizationOutcome::Approved(Authorization {
            processor_reference: format!("sim_{scenario}_{order_id}"),
            capture_support: CaptureSupport {
                partial,
                multiple: partial,
            },
        })
    }

    fn capture(
        &self,
        authorization: &Authorization,
        _amount: Amount,
        now: Timestamp,
    ) -> CaptureOutcome {
        let reference = authorization.processor_reference.as_str();
        if reference.starts_with("sim_capture_declined_") {
            CaptureOutcome::Declined
        } else if reference.starts_with("sim_settles_later_") {
            CaptureOutcome::SettlesAt(now.plus_millis(SIMULATOR_SETTLEMENT_DELAY_MS))
        } else {
            CaptureOutcome::Settled
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_card_is_a_plausible_number() {
        for card in TEST_CARDS {
            assert!(Card::is_plausible_number(card.number), "{}", card.number);
        }
        assert!(!Card::is_plausible_number("4242424242424241"));
        assert!(!Card::is_plausible_number("42424242424242a2"));
    }
}
