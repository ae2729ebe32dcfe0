//! Property tests over `apply`: no sequence of commands breaks the money invariants, the
//! ledger, or the story the events tell.

use authcap_core::command::{authorize, capture, expire, refund, release, settle};
use authcap_core::ledger::LedgerTotals;
use authcap_core::order::Closure;
use authcap_core::processor::TEST_CARDS;
use authcap_core::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Capture { amount: Option<i64>, is_final: bool },
    CaptureDecimal { text: String },
    Release { amount: Option<i64> },
    Refund { amount: Option<i64> },
    Wait { millis: i64 },
    Expire,
    SettleAll,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::option::of(0i64..1_500), any::<bool>())
            .prop_map(|(amount, is_final)| Op::Capture { amount, is_final }),
        1 => "[0-9]{1,2}(\\.[0-9]{0,3})?".prop_map(|text| Op::CaptureDecimal { text }),
        2 => prop::option::of(0i64..1_500).prop_map(|amount| Op::Release { amount }),
        3 => prop::option::of(0i64..1_500).prop_map(|amount| Op::Refund { amount }),
        1 => (0i64..400_000).prop_map(|millis| Op::Wait { millis }),
        1 => Just(Op::Expire),
        1 => Just(Op::SettleAll),
    ]
}

fn new_order(amount: i64, surcharge: i64, card: &str, mode: CaptureMode) -> NewOrder {
    NewOrder {
        id: "ord_1".into(),
        merchant_id: "mer_1".into(),
        reference: "r".into(),
        amount: Amount::new(amount).unwrap(),
        surcharge: Amount::new(surcharge).unwrap(),
        currency: Currency::parse("EUR").unwrap(),
        capture_mode: mode,
        card: Card {
            number: card.into(),
            expiry: None,
            cvc: None,
        },
        authorization_ttl_ms: 1_000_000,
        metadata: String::new(),
        automatic_capture_id: "cap_auto".into(),
    }
}

fn minor(amount: i64) -> RequestedAmount {
    RequestedAmount::MinorUnits(Amount::new(amount).unwrap())
}

/// The totals the events add up to, per kind of movement.
fn event_totals(events: &[Event]) -> LedgerTotals {
    let mut totals = LedgerTotals::default();
    for event in events {
        let amount = event.amount.minor_units();
        match event.kind {
            EventKind::OrderAuthorized => totals.authorized += amount,
            EventKind::CaptureSucceeded | EventKind::CapturePending => totals.captured += amount,
            EventKind::OrderVoided | EventKind::OrderExpired => totals.released += amount,
            EventKind::RefundSucceeded => totals.refunded += amount,
            EventKind::OrderDeclined
            | EventKind::OrderFailed
            | EventKind::CaptureSettled
            | EventKind::CaptureDeclined => {}
        }
    }
    totals
}

fn check_invariants(state: &OrderState, ledger: &[LedgerEntry], events: &[Event], now: Timestamp) {
    let order = &state.order;
    let held = order.held_amount();
    assert!(order.captured_amount <= held);
    assert!(
        order.captured_amount.minor_units() + order.released_amount.minor_units()
            <= held.minor_units()
    );
    assert!(order.refunded_amount <= order.captured_amount);
    assert!(
        order.capturable_amount(now).minor_units()
            <= held.minor_units() - order.captured_amount.minor_units()
    );
    let ledger = LedgerTotals::of(ledger);
    let problems = order.discrepancies(ledger);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        event_totals(events),
        ledger,
        "the events tell the ledger's story"
    );
    let captured: i64 = state.captures.iter().map(|c| c.amount.minor_units()).sum();
    let refunded: i64 = state.refunds.iter().map(|r| r.amount.minor_units()).sum();
    assert_eq!(captured, order.captured_amount.minor_units());
    assert_eq!(refunded, order.refunded_amount.minor_units());
    assert_eq!(state.captures.len(), order.capture_count as usize);
    let settled_events = events
        .iter()
        .filter(|e| e.kind == EventKind::CaptureSettled)
        .count();
    let settled = state
        .captures
        .iter()
        .filter(|c| c.settled_at.is_some())
        .count();
    assert_eq!(settled_events, settled, "each capture settles once");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn commands_never_break_the_invariants(
        amount in 1i64..1_000,
        surcharge in 0i64..200,
        card in prop::sample::select(TEST_CARDS.iter().map(|c| c.number).collect::<Vec<_>>()),
        automatic in any::<bool>(),
        ops in prop::collection::vec(op(), 0..25),
    ) {
        let mode = if automatic { CaptureMode::Automatic } else { CaptureMode::Manual };
        let mut now = Timestamp(1_700_000_000_000);
        let created = authorize(new_order(amount, surcharge, card, mode), now, &Simulator).unwrap();
        let mut state = created.state;
        let mut ledger = created.ledger;
        let mut events = created.events;
        check_invariants(&state, &ledger, &events, now);
        for (n, op) in ops.into_iter().enumerate() {
            let before = state.clone();
            let command = match op {
                Op::Capture { amount, is_final } => Command::Capture(CaptureRequest {
                    id: format!("cap_{n}"),
                    amount: amount.map(minor),
                    is_final,
                    ..CaptureRequest::default()
                }),
                Op::CaptureDecimal { text } => Command::Capture(CaptureRequest {
                    id: format!("cap_{n}"),
                    amount: Some(RequestedAmount::Decimal(text)),
                    ..CaptureRequest::default()
                }),
                Op::Release { amount } => Command::Release { amount: amount.map(minor) },
                Op::Refund { amount } => Command::Refund(RefundRequest {
                    id: format!("ref_{n}"),
                    amount: amount.map(minor),
                    ..RefundRequest::default()
                }),
                Op::Wait { millis } => {
                    now = now.plus_millis(millis);
                    continue;
                }
                Op::Expire => Command::Expire,
                Op::SettleAll => {
                    for id in before.captures.iter().map(|c| c.id.clone()).collect::<Vec<_>>() {
                        if let Ok(Outcome::Settled(t)) =
                            apply(&state, Command::Settle { capture_id: id }, now, &Simulator)
                        {
                            prop_assert!(t.ledger.is_empty());
                            prop_assert_eq!(&t.state.order, &state.order);
                            events.extend(t.events);
                            state = t.state;
                        }
                    }
                    check_invariants(&state, &ledger, &events, now);
                    continue;
                }
            };
            let (next, new_ledger, new_events) = match apply(&state, command, now, &Simulator) {
                Ok(Outcome::Captured(t)) => {
                    let capture = t.new_capture.as_ref().unwrap();
                    prop_assert!(capture.amount.minor_units() > 0);
                    prop_assert!(capture.amount <= before.order.capturable_amount(now));
                    prop_assert_eq!(capture, &t.result);
                    (t.state, t.ledger, t.events)
                }
                Ok(Outcome::Released(t)) => {
                    prop_assert!(t.result.minor_units() > 0);
                    (t.state, t.ledger, t.events)
                }
                Ok(Outcome::Refunded(t)) => (t.state, t.ledger, t.events),
                Ok(Outcome::Expired(t)) => {
                    prop_assert_eq!(t.state.order.closure, Some(Closure::Expiry));
                    (t.state, t.ledger, t.events)
                }
                Ok(Outcome::Settled(t)) => (t.state, t.ledger, t.events),
                Ok(Outcome::Unchanged) => (state.clone(), Vec::new(), Vec::new()),
                Err(refusal) => {
                    // A refusal changes nothing; only a processor's decline is an event.
                    for event in &refusal.events {
                        prop_assert_eq!(event.kind, EventKind::CaptureDeclined);
                    }
                    prop_assert_eq!(refusal.error == CoreError::CaptureDeclined, !refusal.events.is_empty());
                    (state.clone(), Vec::new(), refusal.events)
                }
            };
            state = next;
            ledger.extend(new_ledger);
            events.extend(new_events);
            check_invariants(&state, &ledger, &events, now);
            if state.order.is_expired(now) {
                prop_assert!(state.order.capturable_amount(now).is_zero());
            }
        }
    }
}

fn capture_of(amount: i64, id: &str) -> CaptureRequest {
    CaptureRequest {
        id: id.into(),
        amount: Some(minor(amount)),
        ..Default::default()
    }
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

#[test]
fn partial_captures_then_void_then_refund() {
    let now = Timestamp(0);
    let created = authorize(
        new_order(1000, 50, "4242424242424242", CaptureMode::Manual),
        now,
        &Simulator,
    )
    .unwrap();
    assert_eq!(kinds(&created.events), ["order.authorized"]);
    assert_eq!(created.events[0].amount.minor_units(), 1050);
    let state = created.state;
    assert_eq!(state.order.status(now), OrderStatus::Authorized);
    assert_eq!(state.order.capturable_amount(now).minor_units(), 1050);
    let captured = capture(&state, capture_of(300, "c1"), now, &Simulator).unwrap();
    assert_eq!(kinds(&captured.events), ["capture.succeeded"]);
    assert_eq!(captured.events[0].subject_id.as_deref(), Some("c1"));
    let state = captured.state;
    assert_eq!(state.order.status(now), OrderStatus::PartiallyCaptured);
    assert_eq!(
        capture(&state, capture_of(751, "c2"), now, &Simulator)
            .unwrap_err()
            .error,
        CoreError::AmountExceedsCapturable {
            capturable: Amount::new(750).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        }
    );
    assert_eq!(
        capture(
            &state,
            CaptureRequest {
                reference: Some("x".into()),
                ..capture_of(1, "c2")
            },
            now,
            &Simulator
        )
        .map(|t| t.state.captures.len())
        .unwrap(),
        2
    );
    let released = release(&state, None, now).unwrap();
    assert_eq!(kinds(&released.events), ["order.voided"]);
    assert_eq!(released.result.minor_units(), 750);
    let state = released.state;
    assert_eq!(state.order.status(now), OrderStatus::Captured);
    assert_eq!(
        capture(&state, capture_of(1, "c3"), now, &Simulator)
            .unwrap_err()
            .error,
        CoreError::OrderNotCapturable
    );
    let refunded = refund(
        &state,
        RefundRequest {
            id: "r1".into(),
            ..Default::default()
        },
        now,
    )
    .unwrap();
    assert_eq!(kinds(&refunded.events), ["refund.succeeded"]);
    let state = refunded.state;
    assert_eq!(state.order.status(now), OrderStatus::Refunded);
    assert_eq!(
        refund(
            &state,
            RefundRequest {
                id: "r2".into(),
                ..Default::default()
            },
            now
        )
        .unwrap_err()
        .error,
        CoreError::OrderNotRefundable
    );
}

#[test]
fn references_are_unique_per_order() {
    let now = Timestamp(0);
    let state = authorize(
        new_order(1000, 0, "4242424242424242", CaptureMode::Manual),
        now,
        &Simulator,
    )
    .unwrap()
    .state;
    let with_reference = |id: &str| CaptureRequest {
        reference: Some("box-1".into()),
        ..capture_of(100, id)
    };
    let state = capture(&state, with_reference("c1"), now, &Simulator)
        .unwrap()
        .state;
    assert_eq!(
        capture(&state, with_reference("c2"), now, &Simulator)
            .unwrap_err()
            .error,
        CoreError::OperationReferenceTaken
    );
}

#[test]
fn decimal_amounts_resolve_against_the_order_currency() {
    let now = Timestamp(0);
    let mut new = new_order(1000, 0, "4242424242424242", CaptureMode::Manual);
    new.currency = Currency::parse("JPY").unwrap();
    let state = authorize(new, now, &Simulator).unwrap().state;
    let decimal = |text: &str| CaptureRequest {
        id: "c".into(),
        amount: Some(RequestedAmount::Decimal(text.into())),
        ..Default::default()
    };
    let refused = capture(&state, decimal("400.00"), now, &Simulator).unwrap_err();
    assert!(matches!(refused.error, CoreError::InvalidAmount { .. }));
    let captured = capture(&state, decimal("400"), now, &Simulator).unwrap();
    assert_eq!(captured.result.amount.minor_units(), 400);
}

#[test]
fn expiry_is_visible_before_any_sweep() {
    let now = Timestamp(0);
    let state = authorize(
        new_order(1000, 0, "4242424242424242", CaptureMode::Manual),
        now,
        &Simulator,
    )
    .unwrap()
    .state;
    let later = now.plus_millis(1_000_000);
    assert!(expire(&state, now).is_none());
    assert_eq!(state.order.status(later), OrderStatus::Expired);
    assert_eq!(
        capture(&state, capture_of(1, "c"), later, &Simulator)
            .unwrap_err()
            .error,
        CoreError::AuthorizationExpired
    );
    let swept = expire(&state, later).unwrap();
    assert_eq!(kinds(&swept.events), ["order.expired"]);
    assert_eq!(swept.state.order.closure, Some(Closure::Expiry));
    assert_eq!(swept.state.order.status(later), OrderStatus::Expired);
    assert_eq!(swept.state.order.released_amount.minor_units(), 1000);
    assert!(
        expire(&swept.state, later).is_none(),
        "an expiry is written down once"
    );
}

#[test]
fn test_cards_behave_as_documented() {
    let now = Timestamp(0);
    let create = |card| {
        authorize(
            new_order(1000, 0, card, CaptureMode::Manual),
            now,
            &Simulator,
        )
        .unwrap()
    };
    let declined = create("4000000000000002");
    assert_eq!(declined.state.order.status(now), OrderStatus::Declined);
    assert_eq!(kinds(&declined.events), ["order.declined"]);
    assert!(declined.ledger.is_empty());
    assert_eq!(
        create("4000000000009995")
            .state
            .order
            .failure
            .unwrap()
            .code(),
        "insufficient_funds"
    );
    let failed = create("4000000000000119");
    assert_eq!(failed.state.order.status(now), OrderStatus::Failed);
    assert_eq!(kinds(&failed.events), ["order.failed"]);

    let full_only = create("4000000000000077").state;
    assert_eq!(
        capture(&full_only, capture_of(10, "c"), now, &Simulator)
            .unwrap_err()
            .error,
        CoreError::PartialCaptureUnsupported {
            capturable: Amount::new(1000).unwrap(),
            currency: Currency::parse("EUR").unwrap(),
        }
    );
    let fallback = CaptureRequest {
        full_capture_fallback: true,
        ..capture_of(10, "c")
    };
    assert_eq!(
        capture(&full_only, fallback, now, &Simulator)
            .unwrap()
            .result
            .amount
            .minor_units(),
        1000
    );

    let declines = create("4000000000000341").state;
    let refused = capture(&declines, capture_of(10, "c"), now, &Simulator).unwrap_err();
    assert_eq!(refused.error, CoreError::CaptureDeclined);
    assert_eq!(kinds(&refused.events), ["capture.declined"]);

    let pending = capture(
        &create("4000000000000259").state,
        CaptureRequest::default(),
        now,
        &Simulator,
    )
    .unwrap();
    assert_eq!(kinds(&pending.events), ["capture.pending"]);
    let id = pending.result.id.clone();
    assert!(!pending.result.is_settled(now));
    assert!(settle(&pending.state, &id, now).is_none(), "not due yet");
    let due = now.plus_millis(2_000);
    assert!(pending.result.is_settled(due));
    let settled = settle(&pending.state, &id, due).unwrap();
    assert_eq!(kinds(&settled.events), ["capture.settled"]);
    assert!(settle(&settled.state, &id, due).is_none(), "settles once");

    let automatic = authorize(
        new_order(1000, 0, "4242424242424242", CaptureMode::Automatic),
        now,
        &Simulator,
    )
    .unwrap();
    assert_eq!(automatic.state.order.status(now), OrderStatus::Captured);
    assert_eq!(automatic.ledger.len(), 2);
    assert_eq!(
        kinds(&automatic.events),
        ["order.authorized", "capture.succeeded"]
    );
    let manual_only = CaptureRequest {
        manual_orders_only: true,
        ..CaptureRequest::default()
    };
    let automatic_open = authorize(
        new_order(1000, 0, "4000000000000341", CaptureMode::Automatic),
        now,
        &Simulator,
    )
    .unwrap();
    assert_eq!(
        kinds(&automatic_open.events),
        ["order.authorized", "capture.declined"]
    );
    assert_eq!(
        capture(&automatic_open.state, manual_only, now, &Simulator)
            .unwrap_err()
            .error,
        CoreError::CaptureModeAutomatic
    );
}
