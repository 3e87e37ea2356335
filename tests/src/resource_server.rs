//! A resource server that checks bearer JWTs as an API would: the signature
//! against the issuer's JWKS (found through its discovery document), `iss`,
//! `aud`, `exp` with no leeway, `sub` present. Used by the broker tests
//! against the dev IdP and, as the `authplug-demo-api` binary, by
//! `scripts/demo`.
//!
//! Revocation: a JWT, once issued, stays valid at any server that checks it
//! locally, whatever the IdP learns later. Servers that must honour a
//! logout keep a deny list fed by revocation events; `POST /revoke` (with
//! the token as its bearer) is that event here.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

/// The issuer's signing keys, as a relying party finds them: discovery
/// document, then its `jwks_uri`.
pub async fn fetch_jwks(issuer: &str) -> Result<JwkSet, String> {
    let http = reqwest::Client::new();
    let discovery_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let discovery: serde_json::Value = get_json(&http, &discovery_url).await?;
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .ok_or_else(|| format!("{discovery_url} names no jwks_uri"))?;
    get_json(&http, jwks_uri).await
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
) -> Result<T, String> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: {}", response.status()));
    }
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    serde_json::from_slice(&body).map_err(|e| format!("GET {url}: not the JSON expected: {e}"))
}

/// Verifies a JWT as a relying party or resource server would: signature
/// against `jwks` with the key its `kid` names (asymmetric algorithms
/// only), `iss`, `aud`, `exp` (no leeway), `sub` present. Returns its header
/// and claims.
pub fn verify_jwt(
    token: &str,
    jwks: &JwkSet,
    issuer: &str,
    audience: &str,
) -> Result<(Header, serde_json::Value), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let asymmetric = matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512
            | Algorithm::ES256
            | Algorithm::ES384
            | Algorithm::EdDSA
    );
    if !asymmetric {
        return Err(format!("algorithm {:?} is not accepted", header.alg));
    }
    let kid = header
        .kid
        .as_deref()
        .ok_or("the token names no key (kid)")?;
    let jwk = jwks.find(kid).ok_or_else(|| format!("unknown key {kid}"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {kid}: {e}"))?;
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(token, &key, &validation)
        .map_err(|e| e.to_string())?;
    Ok((header, data.claims))
}

/// The API's side of things: who it trusts and what it refuses.
pub struct ResourceServer {
    issuer: String,
    audience: String,
    jwks: JwkSet,
    /// Signatures of revoked tokens (unique per token, and not the token).
    revoked: Mutex<HashSet<String>>,
}

impl ResourceServer {
    /// Trusts tokens from `issuer` for `audience`, with the issuer's keys
    /// as of now.
    pub async fn new(issuer: &str, audience: &str) -> Result<Arc<Self>, String> {
        Ok(Arc::new(ResourceServer {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            jwks: fetch_jwks(issuer).await?,
            revoked: Mutex::new(HashSet::new()),
        }))
    }

    /// The claims of a token this server accepts, or why it refuses it.
    pub fn check(&self, token: &str) -> Result<serde_json::Value, String> {
        let (_, claims) = verify_jwt(token, &self.jwks, &self.issuer, &self.audience)?;
        if lock(&self.revoked).contains(signature(token)) {
            return Err("the token was revoked".into());
        }
        Ok(claims)
    }

    pub fn revoke(&self, token: &str) {
        lock(&self.revoked).insert(signature(token).to_owned());
    }

    /// `GET /whoami`: the verified claims, or 401. `POST /revoke`: refuse
    /// the bearer token from now on.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/whoami", get(whoami))
            .route("/revoke", post(revoke))
            .with_state(Arc::clone(self))
    }

    /// Serves [`Self::router`] on 127.0.0.1 and a free port; returns the
    /// base URL. The server runs until the runtime stops.
    pub async fn serve(self: &Arc<Self>) -> Result<String, String> {
        serve_on_loopback(self.router()).await
    }
}

/// Serves `app` on 127.0.0.1 and a free port; returns the base URL. The
/// server runs until the runtime stops.
pub async fn serve_on_loopback(app: Router) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    let address = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on 127.0.0.1: {e}"))?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}"))
}

fn signature(token: &str) -> &str {
    token.rsplit('.').next().unwrap_or(token)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The token of an `Authorization: Bearer` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// RFC 6750's answer to a missing or bad token (§3.1: `invalid_token`).
pub fn unauthorized(why: &str) -> Response {
    let description: String = why
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect();
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
        )],
        format!("401 Unauthorized: {why}\n"),
    )
        .into_response()
}

async fn whoami(AxumState(server): AxumState<Arc<ResourceServer>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized("no bearer token");
    };
    match server.check(token) {
        Ok(claims) => {
            let mut body = serde_json::to_string_pretty(&claims).unwrap_or_default();
            body.push('\n');
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
        Err(why) => unauthorized(&why),
    }
}

async fn revoke(AxumState(server): AxumState<Arc<ResourceServer>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized("no bearer token");
    };
    if let Err(why) = server.check(token) {
        return unauthorized(&why);
    }
    server.revoke(token);
    StatusCode::NO_CONTENT.into_response()
}
