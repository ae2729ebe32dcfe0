//! One test binary: every test speaks HTTP to a real Authcap on an ephemeral port.

mod native;
mod pipwave;
mod support;
