//! Merchant credentials: issued once in clear, stored as SHA-256 hashes, resolved per request.
//!
//! Credentials are 128+ random bits, so a fast hash is the right tool (a slow password hash
//! protects low-entropy secrets). Lookups go by hash, which leaks nothing useful about the
//! clear value through timing; secrets that must be known in clear to verify or make a
//! signature (Pipwave's `api_key` and `api_secret`, MultiSafepay's API key, which signs its
//! notifications) are derived from the server secret and the generation instead of being
//! stored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use authcap_store::{Credential, CredentialKind, HashFor, NewMerchant, Store, StoreError};
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

    /// The secret configured (environment or file), or the one generated and kept in the
    /// database on first start. A configured secret is never stored: one the database kept
    /// from before is removed when it is the same, and refused when it differs (every derived
    /// secret and signing key would change).
    pub async fn load(
        store: &Store,
        configured: Option<String>,
    ) -> Result<ServerSecret, StoreError> {
        let text = match configured {
            Some(text) if text.len() < SERVER_SECRET_BYTES_MIN => {
                return Err(StoreError::Unavailable(format!(
                    "the server secret must be at least {SERVER_SECRET_BYTES_MIN} bytes"
                )));
            }
            Some(text) => {
                if let Some(stored) = store.stored_setting(SERVER_SECRET_SETTING).await? {
                    if !bool::from(subtle::ConstantTimeEq::ct_eq(
                        stored.as_bytes(),
                        text.as_bytes(),
                    )) {
                        return Err(StoreError::Unavailable(
                            "the database keeps a different server secret: configure that one \
                             (or remove it from the database to start anew: every derived \
                             secret changes)"
                                .into(),
                        ));
                    }
                    store.forget_setting(SERVER_SECRET_SETTING).await?;
                }
                text
            }
            None => {
                store
                    .setting(SERVER_SECRET_SETTING, || random_text(HEX, 64))
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

    /// The Pipwave `api_secret` of a merchant's API key of `generation` (0: as first issued).
    pub fn pipwave_api_secret(&self, merchant_id: &str, generation: i64) -> String {
        hex::encode(&self.derive(&purpose("pipwave-api-secret", merchant_id, generation))[..16])
    }

    /// The Pipwave `api_key` of a merchant's `generation` (it is in every notification).
    pub fn pipwave_api_key(&self, merchant_id: &str, generation: i64) -> String {
        hex::encode(&self.derive(&purpose("pipwave-api-key", merchant_id, generation))[..16])
    }

    /// The key of the merchant's Optty callback signatures for its Optty credentials of
    /// `generation`: 24 bytes, shown as `whsec_` and their base64.
    pub fn optty_webhook_key(&self, merchant_id: &str, generation: i64) -> Vec<u8> {
        self.derive(&purpose("optty-webhook-secret", merchant_id, generation))[..24].to_vec()
    }

    /// [`ServerSecret::optty_webhook_key`] as the merchant is shown it.
    pub fn optty_webhook_secret(&self, merchant_id: &str, generation: i64) -> String {
        use base64::Engine;
        let key = self.optty_webhook_key(merchant_id, generation);
        format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode(key)
        )
    }

    /// The MultiSafepay API key of a merchant's `generation` (it signs the notifications).
    pub fn multisafepay_api_key(&self, merchant_id: &str, generation: i64) -> String {
        hex::encode(&self.derive(&purpose("multisafepay-api-key", merchant_id, generation))[..20])
    }
}

fn purpose(what: &str, merchant_id: &str, generation: i64) -> String {
    match generation {
        0 => format!("{what}:{merchant_id}"),
        n => format!("{what}:{merchant_id}:{n}"),
    }
}

/// Where the generated server secret is kept when none is configured.
const SERVER_SECRET_SETTING: &str = "server_secret";

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
    /// Signs the `dynamicCallbackUrl` notifications of the merchant's Optty orders.
    pub optty_webhook_secret: String,
    pub pipwave_api_key: String,
    pub pipwave_api_secret: String,
}

/// Fresh random credentials of every kind that is drawn, not derived.
struct Fresh {
    secret_key: String,
    mercadopago_access_token: String,
    optty_client_id: String,
    optty_client_secret: String,
}

fn fresh_credentials() -> Fresh {
    Fresh {
        secret_key: format!("sk_{}", random_text(ALNUM, 40)),
        mercadopago_access_token: format!(
            "APP_USR-{}-{}-{}-{}",
            random_text(DIGITS, 16),
            random_text(DIGITS, 6),
            random_text(HEX, 32),
            random_text(DIGITS, 9)
        ),
        optty_client_id: random_text(ALNUM, 26),
        optty_client_secret: random_text(ALNUM, 48),
    }
}

pub async fn create_merchant(
    store: &Store,
    server_secret: &ServerSecret,
    name: &str,
) -> Result<IssuedCredentials, StoreError> {
    let merchant_id = new_id("mer_");
    let fresh = fresh_credentials();
    let issued = IssuedCredentials {
        name: name.to_owned(),
        secret_key: fresh.secret_key,
        multisafepay_api_key: server_secret.multisafepay_api_key(&merchant_id, 0),
        mercadopago_access_token: fresh.mercadopago_access_token,
        optty_client_id: fresh.optty_client_id,
        optty_client_secret: fresh.optty_client_secret,
        optty_webhook_secret: server_secret.optty_webhook_secret(&merchant_id, 0),
        pipwave_api_key: server_secret.pipwave_api_key(&merchant_id, 0),
        pipwave_api_secret: server_secret.pipwave_api_secret(&merchant_id, 0),
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

/// How long what was learnt about a credential is believed: long enough that requests (and
/// guesses) cost no database read each, short enough that a rotation or a revocation made by
/// another process is seen within it.
const REMEMBERED: Duration = Duration::from_secs(2);

/// A bounded memory of recent answers, each believed for [`REMEMBERED`].
struct Recent<K, V>(RwLock<HashMap<K, (Instant, V)>>);

impl<K: std::hash::Hash + Eq, V: Clone> Recent<K, V> {
    fn new() -> Recent<K, V> {
        Recent(RwLock::new(HashMap::new()))
    }

    fn get(&self, key: &K) -> Option<V> {
        let entries = self.0.read().unwrap_or_else(|p| p.into_inner());
        let (at, value) = entries.get(key)?;
        (at.elapsed() < REMEMBERED).then(|| value.clone())
    }

    fn put(&self, key: K, value: V) {
        let mut entries = self.0.write().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CREDENTIAL_CACHE_MAX {
            entries.retain(|_, (at, _)| at.elapsed() < REMEMBERED);
            if entries.len() >= CREDENTIAL_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value));
    }
}

/// Resolves credentials to merchants, remembering recent answers, found or not.
#[derive(Clone)]
pub struct Resolver {
    store: Store,
    credentials: Arc<Recent<(CredentialKind, String), Option<Credential>>>,
    generations: Arc<Recent<(String, CredentialKind, i64), bool>>,
}

impl Resolver {
    pub fn new(store: Store) -> Resolver {
        Resolver {
            store,
            credentials: Arc::new(Recent::new()),
            generations: Arc::new(Recent::new()),
        }
    }

    /// The working credential `secret` is, as a credential of `kind`.
    pub async fn credential(
        &self,
        kind: CredentialKind,
        secret: &str,
    ) -> Result<Option<Credential>, StoreError> {
        let slot = (kind, hash(secret));
        if let Some(known) = self.credentials.get(&slot) {
            return Ok(known);
        }
        let found = self.store.credential(kind, slot.1.clone()).await?;
        self.credentials.put(slot, found.clone());
        Ok(found)
    }

    /// The merchant that owns `secret` as a working credential of `kind`.
    pub async fn merchant(
        &self,
        kind: CredentialKind,
        secret: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .credential(kind, secret)
            .await?
            .map(|credential| credential.merchant_id))
    }

    /// Whether the merchant still has working credentials of `kind` from `generation` (a
    /// token issued for them is void once they are rotated out).
    pub async fn generation_works(
        &self,
        merchant_id: &str,
        kind: CredentialKind,
        generation: i64,
    ) -> Result<bool, StoreError> {
        let slot = (merchant_id.to_owned(), kind, generation);
        if let Some(known) = self.generations.get(&slot) {
            return Ok(known);
        }
        let works = self
            .store
            .generation_works(merchant_id, kind, generation)
            .await?;
        self.generations.put(slot, works);
        Ok(works)
    }
}

/// The dialects whose credentials can be rotated one at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialSet {
    Native,
    Multisafepay,
    Mercadopago,
    Optty,
    Pipwave,
}

impl CredentialSet {
    pub const ALL: [CredentialSet; 5] = [
        CredentialSet::Native,
        CredentialSet::Multisafepay,
        CredentialSet::Mercadopago,
        CredentialSet::Optty,
        CredentialSet::Pipwave,
    ];

    pub fn parse(name: &str) -> Option<CredentialSet> {
        match name {
            "native" => Some(CredentialSet::Native),
            "multisafepay" => Some(CredentialSet::Multisafepay),
            "mercadopago" => Some(CredentialSet::Mercadopago),
            "optty" => Some(CredentialSet::Optty),
            "pipwave" => Some(CredentialSet::Pipwave),
            _ => None,
        }
    }
}

/// New credentials, shown once; only the rotated ones are present.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RotatedCredentials {
    pub merchant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multisafepay_api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mercadopago_access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optty_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optty_client_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub optty_webhook_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipwave_api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipwave_api_secret: Option<String>,
}

/// Issues new credentials for `sets` (every dialect when empty); the old ones stop working
/// after `grace` (at once when zero). `None` when there is no such merchant.
pub async fn rotate(
    store: &Store,
    server_secret: &ServerSecret,
    merchant_id: &str,
    sets: &[CredentialSet],
    grace: Duration,
) -> Result<Option<RotatedCredentials>, StoreError> {
    let sets = if sets.is_empty() {
        &CredentialSet::ALL[..]
    } else {
        sets
    };
    let fresh = fresh_credentials();
    let mut rotated = RotatedCredentials {
        merchant_id: merchant_id.to_owned(),
        ..RotatedCredentials::default()
    };
    let mut hashes = Vec::new();
    for set in sets {
        match set {
            CredentialSet::Native => {
                hashes.push((crate::native::SECRET_KEY, fixed(&fresh.secret_key)));
                rotated.secret_key = Some(fresh.secret_key.clone());
            }
            CredentialSet::Multisafepay => {
                let (secret, merchant) = (server_secret.clone(), merchant_id.to_owned());
                hashes.push((
                    crate::multisafepay::API_KEY,
                    Box::new(move |g| hash(&secret.multisafepay_api_key(&merchant, g))),
                ));
            }
            CredentialSet::Mercadopago => {
                let token = &fresh.mercadopago_access_token;
                hashes.push((crate::mercadopago::ACCESS_TOKEN, fixed(token)));
                rotated.mercadopago_access_token = Some(token.clone());
            }
            CredentialSet::Optty => {
                hashes.push((crate::optty::CLIENT_ID, fixed(&fresh.optty_client_id)));
                hashes.push((
                    crate::optty::CLIENT_SECRET,
                    fixed(&fresh.optty_client_secret),
                ));
                rotated.optty_client_id = Some(fresh.optty_client_id.clone());
                rotated.optty_client_secret = Some(fresh.optty_client_secret.clone());
            }
            CredentialSet::Pipwave => {
                let (secret, merchant) = (server_secret.clone(), merchant_id.to_owned());
                hashes.push((
                    crate::pipwave::API_KEY,
                    Box::new(move |g| hash(&secret.pipwave_api_key(&merchant, g))),
                ));
            }
        }
    }
    let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX);
    let retire_at = store.now().plus_millis(grace_ms);
    let Some(generation) = store
        .rotate_credentials(merchant_id, hashes, retire_at)
        .await?
    else {
        return Ok(None);
    };
    if sets.contains(&CredentialSet::Optty) {
        rotated.optty_webhook_secret =
            Some(server_secret.optty_webhook_secret(merchant_id, generation));
    }
    if sets.contains(&CredentialSet::Multisafepay) {
        rotated.multisafepay_api_key =
            Some(server_secret.multisafepay_api_key(merchant_id, generation));
    }
    if sets.contains(&CredentialSet::Pipwave) {
        rotated.pipwave_api_key = Some(server_secret.pipwave_api_key(merchant_id, generation));
        rotated.pipwave_api_secret =
            Some(server_secret.pipwave_api_secret(merchant_id, generation));
    }
    Ok(Some(rotated))
}

/// The hash of a credential drawn before its generation is known.
fn fixed(clear: &str) -> HashFor {
    let hashed = hash(clear);
    Box::new(move |_| hashed.clone())
}

/// The merchant's newest working credential of a derived `kind` in clear, when it was derived
/// (merchants made before these were derived keep random ones until they rotate them).
pub async fn derived_credential(
    resolver: &Resolver,
    store: &Store,
    server_secret: &ServerSecret,
    merchant_id: &str,
    kind: CredentialKind,
) -> Result<Option<String>, StoreError> {
    let Some(generation) = store.newest_generation(merchant_id, kind).await? else {
        return Ok(None);
    };
    let clear = if kind == crate::multisafepay::API_KEY {
        server_secret.multisafepay_api_key(merchant_id, generation)
    } else if kind == crate::pipwave::API_KEY {
        server_secret.pipwave_api_key(merchant_id, generation)
    } else {
        return Ok(None);
    };
    let owner = resolver.credential(kind, &clear).await?;
    Ok(owner
        .filter(|c| c.merchant_id == merchant_id && c.generation == generation)
        .map(|_| clear))
}
