//! Property tests: no sequence of operations breaks the money invariants or the ledger.

use authcap_core::ledger::{LedgerTotals, discrepancies};
use authcap_core::order::Closure;
use authcap_core::processor::TEST_CARDS;
use authcap_core::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Capture { amount: Option<i64>, is_final: bool },
    Void { amount: Option<i64> },
    Refund { amount: Option<i64> },
    Wait { millis: i64 },
    Expire,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::option::of(0i64..1_500), any::<bool>())
            .prop_map(|(amount, is_final)| Op::Capture { amount, is_final }),
        2 => prop::option::of(0i64..1_500).prop_map(|amount| Op::Void { amount }),
        3 => prop::option::of(0i64..1_500).prop_map(|amount| Op::Refund { amount }),
        1 => (0i64..400_000).prop_map(|millis| Op::Wait { millis }),
        1 => Just(Op::Expire),
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

fn check_invariants(order: &Order, ledger: &[LedgerEntry], now: Timestamp) {
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
    let problems = discrepancies(order, LedgerTotals::of(ledger));
    assert!(problems.is_empty(), "{problems:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn operations_never_break_the_invariants(
        amount in 1i64..1_000,
        surcharge in 0i64..200,
        card in prop::sample::select(TEST_CARDS.iter().map(|c| c.number).collect::<Vec<_>>()),
        automatic in any::<bool>(),
        ops in prop::collection::vec(op(), 0..25),
    ) {
        let mode = if automatic { CaptureMode::Automatic } else { CaptureMode::Manual };
        let mut now = Timestamp(1_700_000_000_000);
        let created = Order::create(new_order(amount, surcharge, card, mode), now, &Simulator).unwrap();
        let mut order = created.order;
        let mut ledger = created.ledger;
        check_invariants(&order, &ledger, now);
        for (n, op) in ops.into_iter().enumerate() {
            let before = order.clone();
            let result = match op {
                Op::Capture { amount, is_final } => order.capture(
                    CaptureRequest {
                        id: format!("cap_{n}"),
                        amount: amount.map(|a| Amount::new(a).unwrap()),
                        is_final,
                        ..CaptureRequest::default()
                    },
                    now,
                    &Simulator,
                ).map(Some),
                Op::Void { amount } => order.void(amount.map(|a| Amount::new(a).unwrap()), now).map(Some),
                Op::Refund { amount } => order.refund(
                    RefundRequest { id: format!("ref_{n}"), amount: amount.map(|a| Amount::new(a).unwrap()), ..RefundRequest::default() },
                    now,
                ).map(Some),
                Op::Wait { millis } => { now = now.plus_millis(millis); Ok(None) }
                Op::Expire => Ok(order.expire(now)),
            };
            match result {
                Ok(Some(mut transition)) => {
                    if let Some(capture) = &transition.capture {
                        prop_assert!(capture.amount.minor_units() > 0);
                        prop_assert!(capture.amount <= before.capturable_amount(now));
                    }
                    order = transition.order;
                    ledger.append(&mut transition.ledger);
                }
                Ok(None) => {}
                Err(_) => prop_assert_eq!(&order, &before),
            }
            check_invariants(&order, &ledger, now);
            if order.is_expired(now) {
                prop_assert!(order.capturable_amount(now).is_zero());
            }
        }
    }
}

#[test]
fn partial_captures_then_void_then_refund() {
    let now = Timestamp(0);
    let order = Order::create(
        new_order(1000, 50, "4242424242424242", CaptureMode::Manual),
        now,
        &Simulator,
    )
    .unwrap()
    .order;
    assert_eq!(order.status(now), OrderStatus::Authorized);
    assert_eq!(order.capturable_amount(now).minor_units(), 1050);
    let capture = |order: &Order, amount: i64, id: &str| {
        order.capture(
            CaptureRequest {
                id: id.into(),
                amount: Some(Amount::new(amount).unwrap()),
                ..Default::default()
            },
            now,
            &Simulator,
        )
    };
    let order = capture(&order, 300, "c1").unwrap().order;
    assert_eq!(order.status(now), OrderStatus::PartiallyCaptured);
    assert_eq!(
        capture(&order, 751, "c2").unwrap_err(),
        CoreError::AmountExceedsCapturable {
            capturable: Amount::new(750).unwrap()
        }
    );
    let order = order.void(None, now).unwrap().order;
    assert_eq!(order.status(now), OrderStatus::Captured);
    assert_eq!(order.capturable_amount(now), Amount::ZERO);
    assert_eq!(
        capture(&order, 1, "c3").unwrap_err(),
        CoreError::OrderNotCapturable
    );
    let order = order
        .refund(
            RefundRequest {
                id: "r1".into(),
                ..Default::default()
            },
            now,
        )
        .unwrap()
        .order;
    assert_eq!(order.status(now), OrderStatus::Refunded);
    assert_eq!(
        order
            .refund(
                RefundRequest {
                    id: "r2".into(),
                    ..Default::default()
                },
                now
            )
            .unwrap_err(),
        CoreError::OrderNotRefundable
    );
}

#[test]
fn expiry_is_visible_before_any_sweep() {
    let now = Timestamp(0);
    let order = Order::create(
        new_order(1000, 0, "4242424242424242", CaptureMode::Manual),
        now,
        &Simulator,
    )
    .unwrap()
    .order;
    let later = now.plus_millis(1_000_000);
    assert_eq!(order.status(later), OrderStatus::Expired);
    let request = CaptureRequest {
        id: "c".into(),
        ..Default::default()
    };
    assert_eq!(
        order.capture(request, later, &Simulator).unwrap_err(),
        CoreError::AuthorizationExpired
    );
    let swept = order.expire(later).unwrap().order;
    assert_eq!(swept.closure, Some(Closure::Expiry));
    assert_eq!(swept.status(later), OrderStatus::Expired);
    assert_eq!(swept.released_amount.minor_units(), 1000);
}

#[test]
fn test_cards_behave_as_documented() {
    let now = Timestamp(0);
    let create = |card| {
        Order::create(
            new_order(1000, 0, card, CaptureMode::Manual),
            now,
            &Simulator,
        )
        .unwrap()
        .order
    };
    assert_eq!(
        create("4000000000000002").status(now),
        OrderStatus::Declined
    );
    assert_eq!(
        create("4000000000009995").failure.unwrap().code(),
        "insufficient_funds"
    );
    assert_eq!(create("4000000000000119").status(now), OrderStatus::Failed);
    let full_only = create("4000000000000077");
    let partial = CaptureRequest {
        id: "c".into(),
        amount: Some(Amount::new(10).unwrap()),
        ..Default::default()
    };
    assert_eq!(
        full_only.capture(partial, now, &Simulator).unwrap_err(),
        CoreError::PartialCaptureUnsupported {
            capturable: Amount::new(1000).unwrap()
        }
    );
    assert!(
        full_only
            .capture(CaptureRequest::default(), now, &Simulator)
            .is_ok()
    );
    let declines = create("4000000000000341");
    assert_eq!(
        declines
            .capture(CaptureRequest::default(), now, &Simulator)
            .unwrap_err(),
        CoreError::CaptureDeclined
    );
    let later = create("4000000000000259")
        .capture(CaptureRequest::default(), now, &Simulator)
        .unwrap();
    let capture = later.capture.unwrap();
    assert!(!capture.is_settled(now));
    assert!(capture.is_settled(now.plus_millis(2_000)));
    let automatic = Order::create(
        new_order(1000, 0, "4242424242424242", CaptureMode::Automatic),
        now,
        &Simulator,
    )
    .unwrap();
    assert_eq!(automatic.order.status(now), OrderStatus::Captured);
    assert_eq!(automatic.ledger.len(), 2);
}
