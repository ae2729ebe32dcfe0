//! One test binary: every test speaks HTTP to a real Authcap on an ephemeral port, and the
//! whole story runs once per storage backend. SQLite always runs; PostgreSQL runs when
//! `AUTHCAP_TEST_POSTGRES_URL` is set and otherwise says that it was skipped.

// Loading each test module once per backend is the point.
#![allow(clippy::duplicate_mod)]

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[path = "."]
mod sqlite {
    const BACKEND: crate::Backend = crate::Backend::Sqlite;
    mod conformance;
    mod crash;
    mod credentials;
    mod dashboard;
    mod events;
    mod hardening;
    mod ledger;
    mod mercadopago;
    mod multisafepay;
    mod native;
    mod observability;
    mod optty;
    mod pipwave;
    mod support;
    mod webhooks;
}

#[path = "."]
mod postgres {
    const BACKEND: crate::Backend = crate::Backend::Postgres;
    mod conformance;
    mod crash;
    mod credentials;
    mod dashboard;
    mod events;
    mod hardening;
    mod ledger;
    mod mercadopago;
    mod multinode;
    mod multisafepay;
    mod native;
    mod observability;
    mod optty;
    mod outage;
    mod pipwave;
    mod support;
    mod webhooks;
}
