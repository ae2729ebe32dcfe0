//! `POST /optty/token` (OAuth 2 client credentials) and the verification of its JWTs.
//!
//! Tokens are HS256 JWTs signed with a key derived from the server secret
//! (`derive("optty-jwt")`), so they survive restarts and are never stored. Verification is
//! strict: HS256 only (so `alg: none` and any other algorithm fail), signature, `exp` (no
//! leeway), issuer and audience checked, and the scope must include `api-user`.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::error::OpttyError;
use crate::AppState;
use crate::wire::read_body;

pub const SCOPE: &str = "api-user";
pub const ISSUER: &str = "authcap-optty";
pub const AUDIENCE: &str = "optty-merchant-api";
/// 24 hours, as Optty's token endpoint answers.
pub const TOKEN_TTL_SECS: i64 = 86_400;
const KEY_PURPOSE: &str = "optty-jwt";

#[derive(Serialize, Deserialize)]
pub struct Claims {
    /// The merchant id.
    pub sub: String,
    pub scope: String,
    pub iat: i64,
    pub exp: i64,
    /// Not valid before (optional): honoured when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The generation of the client credentials the token was issued for: rotating them out
    /// voids the token. Tokens issued before rotation existed carry none (generation 0).
    #[serde(default, rename = "gen")]
    pub generation: i64,
    pub iss: String,
    pub aud: String,
}

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
    token_type: &'static str,
    scope: &'static str,
}

#[derive(Deserialize, Default)]
struct TokenForm {
    client_id: Option<String>,
    client_secret: Option<String>,
    grant_type: Option<String>,
    scope: Option<String>,
}

fn signing_key(app: &AppState) -> Vec<u8> {
    app.server_secret.derive(KEY_PURPOSE)
}

pub fn issue(app: &AppState, merchant_id: &str, generation: i64) -> Result<String, OpttyError> {
    let iat = app.store.now().millis() / 1000;
    let claims = Claims {
        sub: merchant_id.to_owned(),
        scope: SCOPE.to_owned(),
        iat,
        exp: iat + TOKEN_TTL_SECS,
        nbf: None,
        generation,
        iss: ISSUER.to_owned(),
        aud: AUDIENCE.to_owned(),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&signing_key(app)),
    )
    .map_err(|error| {
        tracing::error!(%error, "signing an Optty token failed");
        OpttyError::Unavailable
    })
}

/// The merchant of a valid `Authorization: Bearer <JWT>` with scope `api-user`.
pub async fn authenticate(app: &AppState, headers: &HeaderMap) -> Result<String, OpttyError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(OpttyError::Unauthorized(
            "Unauthorized: send `Authorization: Bearer <access_token>` from POST /token",
        ))?
        .to_str()
        .map_err(|_| OpttyError::Unauthorized("Unauthorized: malformed Authorization header"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or(OpttyError::Unauthorized(
            "Unauthorized: the Authorization header must be `Bearer <access_token>`",
        ))?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(OpttyError::Unauthorized(
            "Unauthorized: the Authorization header must be `Bearer <access_token>`",
        ));
    }
    let mut validation = Validation::new(Algorithm::HS256);
    // Times are judged below by the server's one clock, not the library's own.
    validation.leeway = 0;
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
    let data = jsonwebtoken::decode::<Claims>(
        token,
        &DecodingKey::from_secret(&signing_key(app)),
        &validation,
    )
    .map_err(|error| {
        use jsonwebtoken::errors::ErrorKind;
        OpttyError::Unauthorized(match error.kind() {
            ErrorKind::ExpiredSignature => "Unauthorized: the access token has expired",
            ErrorKind::InvalidSignature => "Unauthorized: the access token signature is invalid",
            ErrorKind::InvalidAlgorithm => {
                "Unauthorized: the access token must be signed with HS256"
            }
            _ => "Unauthorized: the access token is invalid",
        })
    })?;
    let now = app.store.now().millis().div_euclid(1000);
    if now >= data.claims.exp {
        return Err(OpttyError::Unauthorized(
            "Unauthorized: the access token has expired",
        ));
    }
    if data.claims.nbf.is_some_and(|nbf| now < nbf) {
        return Err(OpttyError::Unauthorized(
            "Unauthorized: the access token is not valid yet (`nbf`)",
        ));
    }
    if !data.claims.scope.split(' ').any(|s| s == SCOPE) {
        return Err(OpttyError::Unauthorized(
            "Unauthorized: the access token lacks the scope `api-user`",
        ));
    }
    // A well-signed token can outlive its client credentials (rotated out) or its merchant
    // (a database started anew under the same server secret): it then stands for no one.
    let works = app
        .credentials
        .generation_works(&data.claims.sub, super::CLIENT_ID, data.claims.generation)
        .await?;
    if !works {
        return Err(OpttyError::Unauthorized(
            "Unauthorized: the access token's merchant or client credentials no longer exist",
        ));
    }
    Ok(data.claims.sub)
}

fn invalid(why: &str) -> OpttyError {
    OpttyError::Invalid(why.to_owned())
}

/// `POST /token`: form-urlencoded (or JSON) `client_id`, `client_secret`,
/// `grant_type=client_credentials`, `scope=api-user`. Query parameters such as
/// `?expires_in=1` are accepted and ignored: tokens live 24 hours.
pub async fn token(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, OpttyError> {
    let bytes = read_body(body).await?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let form: TokenForm = if is_json {
        super::parse_object(&bytes)?
    } else {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes)
            .map_err(|_| invalid("the body must be application/x-www-form-urlencoded"))?;
        let mut form = TokenForm::default();
        for (name, value) in pairs {
            let slot = match name.as_str() {
                "client_id" => &mut form.client_id,
                "client_secret" => &mut form.client_secret,
                "grant_type" => &mut form.grant_type,
                "scope" => &mut form.scope,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(OpttyError::Invalid(format!(
                    "`{name}` is given more than once"
                )));
            }
        }
        form
    };
    match form.grant_type.as_deref() {
        Some("client_credentials") => {}
        Some(_) => return Err(invalid("`grant_type` must be `client_credentials`")),
        None => return Err(invalid("`grant_type` is required")),
    }
    if let Some(scope) = form.scope.as_deref()
        && scope != SCOPE
    {
        return Err(invalid("`scope` must be `api-user`"));
    }
    let client_id = form
        .client_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("`client_id` is required"))?;
    let client_secret = form
        .client_secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("`client_secret` is required"))?;
    let by_secret = app
        .credentials
        .merchant(super::CLIENT_SECRET, &client_secret)
        .await?;
    let by_id = app
        .credentials
        .credential(super::CLIENT_ID, &client_id)
        .await?;
    let same_merchant = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
    let (merchant_id, generation) = match (by_id, by_secret) {
        (Some(id), Some(secret)) if same_merchant(&id.merchant_id, &secret) => {
            (id.merchant_id, id.generation)
        }
        _ => return Err(OpttyError::InvalidClient),
    };
    let body = TokenResponse {
        access_token: issue(&app, &merchant_id, generation)?,
        expires_in: TOKEN_TTL_SECS,
        token_type: "Bearer",
        scope: SCOPE,
    };
    let mut response = (StatusCode::OK, axum::Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
