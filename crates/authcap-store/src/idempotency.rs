//! Requests that hold an idempotency key right now, on this node.
//!
//! The database makes a key's first result durable; this set answers a duplicate that arrives
//! while the first request is still queued or running, instead of making it wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::{IdempotencyClaim, StoreError};

type Slot = (String, String, String);

#[derive(Clone, Default)]
pub struct InFlight {
    running: Arc<Mutex<HashMap<Slot, String>>>,
}

pub struct InFlightGuard {
    running: Arc<Mutex<HashMap<Slot, String>>>,
    slot: Slot,
}

impl InFlight {
    pub fn enter(
        &self,
        merchant_id: &str,
        claim: &IdempotencyClaim,
    ) -> Result<InFlightGuard, StoreError> {
        let slot = (
            merchant_id.to_owned(),
            claim.scope.clone(),
            claim.key.clone(),
        );
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(fingerprint) = running.get(&slot) {
            return Err(if *fingerprint == claim.fingerprint {
                StoreError::IdempotencyRequestInProgress
            } else {
                StoreError::IdempotencyKeyReused
            });
        }
        running.insert(slot.clone(), claim.fingerprint.clone());
        Ok(InFlightGuard {
            running: self.running.clone(),
            slot,
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.remove(&self.slot);
    }
}
