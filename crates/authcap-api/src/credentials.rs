//! Merchant credentials: issued once in clear, stored as SHA-256 hashes, resolved per request.
//!
//! Credentials are 128+ random bits, so a fast hash is the right tool (a slow password hash
//! protects low-entropy secrets). Lookups go by hash, which leaks nothing useful about the
//! clear value through timing; secrets that must be known in clear to verify a signature
//! (Pipwave's `api_secret`) are derived from the server secret instead of being stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use authcap_store::{CredentialKind, NewMerchant, Store, StoreError};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::wire::{new_id, random_text, sha256_hex};

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const HEX: &[u8] = b"0123456789abcdef";
const DIGITS: &[u8] = b"0123456789";

/// Signing keys and Pipwave secrets derive from the server secret; a short one is guessable.
pub const SERVER_SECRET_BYTES_MIN: usize = 32;

/// The server-wide secret from which signing keys and derived merchant secrets come.
#[derive(Clone)]
pub struct ServerSecret(Arc<Vec<u8>>);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(redacted)")
    }
}

impl ServerSecret {
    pub fn new(bytes: Vec<u8>) -> ServerSecret {
        ServerSecret(Arc::new(bytes))
    }

    /// The secret configured in the environment, or the one generated and kept in the database
    /// on first start.
    pub async fn load(
        store: &Store,
        configured: Option<String>,
    ) -> Result<ServerSecret, StoreError> {
        let text = match configured {
            Some(text) if text.len() < SERVER_SECRET_BYTES_MIN => {
                return Err(StoreError::Unavailable(format!(
                    "AUTHCAP_SERVER_SECRET must be at least {SERVER_SECRET_BYTES_MIN} bytes"
                )));
            }
            Some(text) => text,
            None => {
                store
                    .setting("server_secret", || random_text(HEX, 64))
                    .await?
            }
        };
        Ok(ServerSecret::new(text.into_bytes()))
    }

    /// A key for one purpose, so that no two uses share key material.
    pub fn derive(&self, purpose: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    pub fn pipwave_api_secret(&self, merchant_id: &str) -> String {
        hex::encode(&self.derive(&format!("pipwave-api-secret:{merchant_id}"))[..16])
    }
}

pub fn hash(secret: &str) -> String {
    sha256_hex(&[secret.as_bytes()])
}

/// Everything a new merchant receives, shown once.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedCredentials {
    pub merchant_id: String,
    pub name: String,
    pub secret_key: String,
    pub multisafepay_api_key: String,
    pub mercadopago_access_token: String,
    pub optty_client_id: String,
    pub optty_client_secret: String,
    pub pipwave_api_key: String,
    pub pipwave_api_secret: String,
}

pub async fn create_merchant(
    store: &Store,
    server_secret: &ServerSecret,
    name: &str,
) -> Result<IssuedCredentials, StoreError> {
    let merchant_id = new_id("mer_");
    let issued = IssuedCredentials {
        name: name.to_owned(),
        secret_key: format!("sk_{}", random_text(ALNUM, 40)),
        multisafepay_api_key: random_text(HEX, 40),
        mercadopago_access_token: format!(
            "APP_USR-{}-{}-{}-{}",
            random_text(DIGITS, 16),
            random_text(DIGITS, 6),
            random_text(HEX, 32),
            random_text(DIGITS, 9)
        ),
        optty_client_id: random_text(ALNUM, 26),
        optty_client_secret: random_text(ALNUM, 48),
        pipwave_api_key: random_text(ALNUM, 32),
        pipwave_api_secret: server_secret.pipwave_api_secret(&merchant_id),
        merchant_id,
    };
    let credential_hashes = vec![
        (crate::native::SECRET_KEY, hash(&issued.secret_key)),
        (
            crate::multisafepay::API_KEY,
            hash(&issued.multisafepay_api_key),
        ),
        (
            crate::mercadopago::ACCESS_TOKEN,
            hash(&issued.mercadopago_access_token),
        ),
        (crate::optty::CLIENT_ID, hash(&issued.optty_client_id)),
        (
            crate::optty::CLIENT_SECRET,
            hash(&issued.optty_client_secret),
        ),
        (crate::pipwave::API_KEY, hash(&issued.pipwave_api_key)),
    ];
    store
        .create_merchant(NewMerchant {
            id: issued.merchant_id.clone(),
            name: name.to_owned(),
            credential_hashes,
        })
        .await?;
    Ok(issued)
}

/// How many resolved credentials are remembered; past it the memory starts over.
const CREDENTIAL_CACHE_MAX: usize = 10_000;

/// How long a credential found in no merchant's hands is remembered as unknown: long enough
/// that guessing costs no database read per guess, short enough that a merchant created
/// meanwhile (by another process) is soon recognized.
const UNKNOWN_REMEMBERED: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves credentials to merchants, remembering hits (credentials never change once issued)
/// and, briefly, misses.
#[derive(Clone)]
pub struct Resolver {
    store: Store,
    known: Arc<RwLock<HashMap<(CredentialKind, String), String>>>,
    unknown: Arc<RwLock<HashMap<(CredentialKind, String), std::time::Instant>>>,
    merchants: Arc<RwLock<std::collections::HashSet<String>>>,
}

impl Resolver {
    pub fn new(store: Store) -> Resolver {
        Resolver {
            store,
            known: Arc::default(),
            unknown: Arc::default(),
            merchants: Arc::default(),
        }
    }

    /// Whether a merchant with this id exists (merchants are never deleted, so a yes is kept).
    pub async fn merchant_exists(&self, merchant_id: &str) -> Result<bool, StoreError> {
        if self
            .merchants
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(merchant_id)
        {
            return Ok(true);
        }
        let exists = self.store.merchant_exists(merchant_id).await?;
        if exists {
            let mut merchants = self.merchants.write().unwrap_or_else(|p| p.into_inner());
            if merchants.len() >= CREDENTIAL_CACHE_MAX {
                merchants.clear();
            }
            merchants.insert(merchant_id.to_owned());
        }
        Ok(exists)
    }

    /// The merchant that owns `secret` as a credential of `kind`.
    pub async fn merchant(
        &self,
        kind: CredentialKind,
        secret: &str,
    ) -> Result<Option<String>, StoreError> {
        let slot = (kind, hash(secret));
        if let Some(merchant) = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&slot)
        {
            return Ok(Some(merchant.clone()));
        }
        let missed_lately = self
            .unknown
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&slot)
            .is_some_and(|at| at.elapsed() < UNKNOWN_REMEMBERED);
        if missed_lately {
            return Ok(None);
        }
        let found = self
            .store
            .merchant_by_credential(kind, slot.1.clone())
            .await?;
        if found.is_none() {
            let mut unknown = self.unknown.write().unwrap_or_else(|p| p.into_inner());
            if unknown.len() >= CREDENTIAL_CACHE_MAX {
                unknown.retain(|_, at| at.elapsed() < UNKNOWN_REMEMBERED);
                if unknown.len() >= CREDENTIAL_CACHE_MAX {
                    unknown.clear();
                }
            }
            unknown.insert(slot, std::time::Instant::now());
            return Ok(None);
        }
        if let Some(merchant) = &found {
            let mut known = self.known.write().unwrap_or_else(|p| p.into_inner());
            if known.len() >= CREDENTIAL_CACHE_MAX {
                known.clear();
            }
            known.insert(slot, merchant.clone());
        }
        Ok(found)
    }
}
