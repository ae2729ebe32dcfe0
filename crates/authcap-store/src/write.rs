//! The write path both backends share: a job, and the step between loading its order and
//! persisting what the core decided. The backends only claim, load, persist and commit.

use authcap_core::command::{authorize, capture, refund, release};
use authcap_core::{
    Capture, Command, Currency, Event, LedgerEntry, Order, OrderState, Outcome, Processor, Refund,
    Refusal, Timestamp, Transition, apply,
};

use crate::{
    ClaimKind, IdempotencyClaim, OrderLocator, OrderRecord, ReferenceScope, Render, Request,
    StoredResponse, WriteError, Written,
};

/// One write as a backend runs it.
pub(crate) struct Job {
    pub merchant_id: String,
    pub idempotency: Option<IdempotencyClaim>,
    pub action: Action,
}

pub(crate) enum Action {
    /// A client's request, answered with a rendered response.
    Request(Request),
    /// Upkeep the clock calls for (expire, settle); nobody waits for an answer.
    Housekeeping {
        order: OrderLocator,
        command: Command,
    },
    /// An answer made outside the write, kept under the job's claim.
    Record(StoredResponse),
}

impl Action {
    /// The existing order the action targets; `None` for a create.
    pub fn target(&self) -> Option<&OrderLocator> {
        match self {
            Action::Request(request) => request.target(),
            Action::Housekeeping { order, .. } => Some(order),
            Action::Record(_) => None,
        }
    }

    /// The reference a create claims among the merchant's orders.
    pub fn new_reference(&self) -> Option<&str> {
        match self {
            Action::Request(Request::Create { new, .. }) => Some(&new.reference),
            _ => None,
        }
    }

    /// A capture reference that must name nothing else among the merchant's orders.
    pub fn exclusive_reference(&self) -> Option<&str> {
        match self {
            Action::Request(Request::Capture {
                request,
                reference_scope: ReferenceScope::Merchant,
                ..
            }) => request.reference.as_deref(),
            _ => None,
        }
    }
}

/// What a backend loaded before the core decides.
pub(crate) enum Loaded {
    /// For a create: whether the merchant's reference is already taken.
    NewOrder { reference_taken: bool },
    /// For anything else: the order (locked by the backend), if the merchant has it, and
    /// whether an exclusive capture reference already names another order or its capture.
    Existing {
        record: Option<Box<OrderRecord>>,
        reference_taken_elsewhere: bool,
    },
}

/// Everything a decision writes, in one transaction.
pub(crate) struct Effects {
    pub merchant_id: String,
    /// The order after the decision: inserted when `created`, else updated. `None`: unchanged.
    pub order: Option<Order>,
    pub created: bool,
    pub new_capture: Option<Capture>,
    pub new_refund: Option<Refund>,
    /// A pending capture whose settlement is written down, and when.
    pub settled_capture: Option<(String, Timestamp)>,
    pub ledger: Vec<LedgerEntry>,
    pub events: Vec<Event>,
    /// The currency of the order the events are about.
    pub currency: Option<Currency>,
    /// The order as it stands after the decision, for the events' snapshots.
    pub after: Option<OrderState>,
    /// A new order's own notification target, made with it.
    pub notify: Option<crate::OrderNotifications>,
}

impl Effects {
    fn none(merchant_id: String) -> Effects {
        Effects {
            merchant_id,
            order: None,
            created: false,
            new_capture: None,
            new_refund: None,
            settled_capture: None,
            ledger: Vec::new(),
            events: Vec::new(),
            currency: None,
            after: None,
            notify: None,
        }
    }
}

/// Renders the response once the order's number is known (a create learns it on insert), or
/// a refusal found only then (a reference taken by a racing create).
pub(crate) type Respond = Box<dyn FnOnce(Result<i64, WriteError>) -> StoredResponse + Send>;

/// Which outcomes an idempotency claim keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Keep {
    /// A success: kept under any claim.
    Always,
    /// A refusal worth replaying: kept under an explicit key, never under a resource id.
    UnderKeyOnly,
    /// A check of the request itself: a retry may succeed.
    Never,
}

pub(crate) struct Decision {
    pub effects: Effects,
    /// The loaded order's number; `None` when the write creates the order.
    pub number: Option<i64>,
    pub respond: Option<Respond>,
    keep: Keep,
}

impl Decision {
    /// Whether the response is stored under a claim of this kind.
    pub fn kept_under(&self, kind: ClaimKind) -> bool {
        match (self.keep, kind) {
            (Keep::Always, _) | (_, ClaimKind::SingleUse) => true,
            (Keep::UnderKeyOnly, ClaimKind::Key) => true,
            (Keep::UnderKeyOnly, ClaimKind::ResourceId) | (Keep::Never, _) => false,
        }
    }
}

fn state_of(record: OrderRecord) -> (i64, OrderState) {
    let state = OrderState {
        order: record.order,
        captures: record.captures,
        refunds: record.refunds,
    };
    (record.number, state)
}

/// The effects of an accepted transition, and its state and result for the renderer.
fn split<T>(
    merchant_id: String,
    transition: Transition<T>,
    created: bool,
) -> (Effects, OrderState, T, Timestamp) {
    let effects = Effects {
        merchant_id,
        order: Some(transition.state.order.clone()),
        created,
        new_capture: transition.new_capture,
        new_refund: transition.new_refund,
        settled_capture: transition.settled_capture.map(|id| (id, transition.now)),
        ledger: transition.ledger,
        events: transition.events,
        currency: Some(transition.state.order.currency),
        after: Some(transition.state.clone()),
        notify: None,
    };
    (effects, transition.state, transition.result, transition.now)
}

fn accepted<T: Send + 'static>(
    merchant_id: String,
    decided: Result<Transition<T>, Refusal>,
    before: Option<&OrderState>,
    loaded: Option<(i64, Currency)>,
    render: Render<T>,
) -> Decision {
    let transition = match decided {
        Ok(transition) => transition,
        Err(refusal) => {
            let mut effects = Effects::none(merchant_id);
            if !refusal.events.is_empty() {
                effects.after = before.cloned();
            }
            effects.events = refusal.events;
            effects.currency = loaded.map(|(_, currency)| currency);
            return refused(effects, loaded, WriteError::Refused(refusal.error), render);
        }
    };
    let number = loaded.map(|(number, _)| number);
    let (effects, state, result, now) = split(merchant_id, transition, number.is_none());
    let respond: Respond = Box::new(move |number| match number {
        Ok(number) => {
            let record = OrderRecord {
                number,
                order: state.order,
                captures: state.captures,
                refunds: state.refunds,
            };
            render(&Ok(Written {
                record,
                result,
                now,
            }))
        }
        Err(error) => render(&Err(error)),
    });
    Decision {
        effects,
        number,
        respond: Some(respond),
        keep: Keep::Always,
    }
}

fn refused<T: 'static>(
    effects: Effects,
    loaded: Option<(i64, Currency)>,
    error: WriteError,
    render: Render<T>,
) -> Decision {
    let keep = if error.is_recorded() {
        Keep::UnderKeyOnly
    } else {
        Keep::Never
    };
    Decision {
        effects,
        number: loaded.map(|(number, _)| number),
        respond: Some(Box::new(move |_| render(&Err(error)))),
        keep,
    }
}

/// Renders a refusal found before anything was loaded.
pub(crate) fn render_refusal(request: Request, error: WriteError) -> StoredResponse {
    match request {
        Request::Create { render, .. } => render(&Err(error)),
        Request::Capture { render, .. } => render(&Err(error)),
        Request::Release { render, .. } => render(&Err(error)),
        Request::Refund { render, .. } => render(&Err(error)),
    }
}

/// The core's decision on a job, given what was loaded. Pure apart from the processor.
pub(crate) fn decide(
    merchant_id: String,
    action: Action,
    loaded: Loaded,
    now: Timestamp,
    processor: &dyn Processor,
) -> Decision {
    match action {
        Action::Request(request) => decide_request(merchant_id, request, loaded, now, processor),
        Action::Housekeeping { command, .. } => match loaded {
            Loaded::Existing {
                record: Some(record),
                ..
            } => {
                let (number, state) = state_of(*record);
                housekeeping(merchant_id, number, &state, command, now, processor)
            }
            Loaded::Existing { record: None, .. } | Loaded::NewOrder { .. } => Decision {
                effects: Effects::none(merchant_id),
                number: None,
                respond: None,
                keep: Keep::Never,
            },
        },
        Action::Record(response) => Decision {
            effects: Effects::none(merchant_id),
            number: None,
            respond: Some(Box::new(move |_| response)),
            keep: Keep::Always,
        },
    }
}

fn decide_request(
    merchant_id: String,
    request: Request,
    loaded: Loaded,
    now: Timestamp,
    processor: &dyn Processor,
) -> Decision {
    let (record, reference_taken_elsewhere, request) = match (loaded, request) {
        (
            Loaded::NewOrder { reference_taken },
            Request::Create {
                new,
                notify,
                render,
            },
        ) => {
            if reference_taken {
                let effects = Effects::none(merchant_id);
                return refused(effects, None, WriteError::ReferenceTaken, render);
            }
            let mut decision = accepted(
                merchant_id,
                authorize(new, now, processor),
                None,
                None,
                render,
            );
            if decision.effects.created {
                decision.effects.notify = notify;
            }
            return decision;
        }
        (
            Loaded::Existing {
                record: Some(record),
                reference_taken_elsewhere,
            },
            request,
        ) => (*record, reference_taken_elsewhere, request),
        (_, request) => {
            return Decision {
                effects: Effects::none(merchant_id),
                number: None,
                respond: Some(Box::new(move |_| {
                    render_refusal(request, WriteError::OrderNotFound)
                })),
                keep: Keep::Never,
            };
        }
    };
    let (number, state) = state_of(record);
    let loaded = Some((number, state.order.currency));
    match request {
        Request::Create { render, .. } => {
            let effects = Effects::none(merchant_id);
            refused(effects, loaded, WriteError::ReferenceTaken, render)
        }
        Request::Capture { render, .. } if reference_taken_elsewhere => {
            let effects = Effects::none(merchant_id);
            refused(effects, loaded, WriteError::ReferenceTaken, render)
        }
        Request::Capture {
            request, render, ..
        } => {
            let decided = capture(&state, request, now, processor);
            accepted(merchant_id, decided, Some(&state), loaded, render)
        }
        Request::Release { amount, render, .. } => {
            let decided = release(&state, amount, now);
            accepted(merchant_id, decided, Some(&state), loaded, render)
        }
        Request::Refund {
            request, render, ..
        } => {
            let decided = refund(&state, request, now);
            accepted(merchant_id, decided, Some(&state), loaded, render)
        }
    }
}

fn housekeeping(
    merchant_id: String,
    number: i64,
    state: &OrderState,
    command: Command,
    now: Timestamp,
    processor: &dyn Processor,
) -> Decision {
    let effects = match apply(state, command, now, processor) {
        Ok(Outcome::Captured(t)) => split(merchant_id, t, false).0,
        Ok(Outcome::Released(t)) | Ok(Outcome::Expired(t)) => split(merchant_id, t, false).0,
        Ok(Outcome::Refunded(t)) => split(merchant_id, t, false).0,
        Ok(Outcome::Settled(t)) => split(merchant_id, t, false).0,
        Ok(Outcome::Unchanged) => Effects::none(merchant_id),
        Err(refusal) => {
            let mut effects = Effects::none(merchant_id);
            effects.events = refusal.events;
            effects.currency = Some(state.order.currency);
            effects.after = Some(state.clone());
            effects
        }
    };
    Decision {
        effects,
        number: Some(number),
        respond: None,
        keep: Keep::Never,
    }
}
