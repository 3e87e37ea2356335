//! A reference SSH certificate authority: it stands in for a real CA (an
//! epithet CA, a Vault SSH engine, step-ca) in the SSH certificate tests and
//! in `scripts/demo --ssh`, and is not one.
//!
//! `POST /certificate` with `Authorization: Bearer <token>` and
//! `{"public_key": "ssh-ed25519 AAAA…"}`: the token is checked as the demo
//! API checks it ([`ResourceServer::check`]: signature against the issuer's
//! JWKS, `iss`, `aud`, `exp`, not revoked), one claim of it becomes the one
//! principal, and the answer is `{"certificate": "ssh-ed25519-cert-v01@…"}`,
//! a user certificate valid for a short while. A refused token gets 401 with
//! `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3.1), so a
//! client knows a new token may help; a token without the claim gets 403.
//! `GET /ca.pub` is the CA's public key, for sshd's `TrustedUserCAKeys`.
//! `POST /revoke` (bearer = the token) makes the CA refuse that token from
//! now on, as a real CA does after a logout event.
//!
//! What it is not: its signing key is made at start and lives in memory
//! only, it keeps the tokens it accepted (in memory, for the tests' leak
//! checks) instead of an audit log, it grants whatever principal the claim
//! names, and it checks nothing about the key it signs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State as AxumState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use ssh_key::certificate::{Builder, CertType};
use ssh_key::rand_core::OsRng;
use ssh_key::{Algorithm, PrivateKey, PublicKey};

use crate::resource_server::{bearer, unauthorized, ResourceServer};

/// What the CA signs, and for how long.
pub struct CertAuthority {
    verifier: Arc<ResourceServer>,
    signing_key: PrivateKey,
    principal_claim: String,
    validity: Duration,
    issued: AtomicU64,
    refused: AtomicU64,
    /// The tokens certificates were issued for, in order: so a test can make
    /// the CA refuse the last one, and look for them in logs.
    accepted: Mutex<Vec<String>>,
}

#[derive(serde::Deserialize)]
struct CertificateRequest {
    public_key: String,
}

impl CertAuthority {
    /// A CA trusting tokens from `issuer` for `audience`, whose certificates
    /// name the value of `principal_claim` and live `validity`.
    pub async fn new(
        issuer: &str,
        audience: &str,
        principal_claim: &str,
        validity: Duration,
    ) -> Result<Arc<Self>, String> {
        let verifier = ResourceServer::new(issuer, audience).await?;
        let signing_key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
            .map_err(|e| format!("cannot make the CA key: {e}"))?;
        Ok(Arc::new(CertAuthority {
            verifier,
            signing_key,
            principal_claim: principal_claim.to_owned(),
            validity,
            issued: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            accepted: Mutex::new(Vec::new()),
        }))
    }

    /// The CA's public key as an OpenSSH line, for `TrustedUserCAKeys`.
    pub fn public_key_line(&self) -> String {
        self.signing_key
            .public_key()
            .to_openssh()
            .unwrap_or_default()
    }

    /// Certificates issued so far.
    pub fn issued(&self) -> u64 {
        self.issued.load(Ordering::SeqCst)
    }

    /// Requests refused with 401 so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// The tokens certificates were issued for, oldest first.
    pub fn accepted_tokens(&self) -> Vec<String> {
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Refuses, from now on, the last token a certificate was issued for
    /// (as a logout at the provider would make a real CA do). False if no
    /// certificate was issued yet.
    pub fn refuse_last_token(&self) -> bool {
        let last = self.accepted_tokens().pop();
        match last {
            Some(token) => {
                self.verifier.revoke(&token);
                true
            }
            None => false,
        }
    }

    /// A certificate for `public_key`, or why not.
    fn sign(&self, token: &str, public_key: &str) -> Result<String, Refusal> {
        let claims = match self.verifier.check(token) {
            Ok(claims) => claims,
            Err(why) => {
                self.refused.fetch_add(1, Ordering::SeqCst);
                eprintln!("ca: refused a token: {why}");
                return Err(Refusal::Token(why));
            }
        };
        let Some(principal) = claims[&self.principal_claim].as_str() else {
            return Err(Refusal::NoPrincipal(format!(
                "the token has no {} claim to make a principal of",
                self.principal_claim
            )));
        };
        let subject = PublicKey::from_openssh(public_key).map_err(|e| {
            Refusal::BadKey(format!("public_key is not an OpenSSH public key: {e}"))
        })?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        // Valid from a little before now: the client's clock may be behind.
        let valid_after = now.saturating_sub(30);
        let valid_before = now + self.validity.as_secs();
        let serial = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let certificate = self
            .build(&subject, principal, serial, valid_after, valid_before)
            .map_err(|e| Refusal::Signing(e.to_string()))?;
        self.accepted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(token.to_owned());
        eprintln!(
            "ca: issued certificate {serial} for principal {principal}, valid for {} s",
            valid_before - now
        );
        Ok(certificate)
    }

    fn build(
        &self,
        subject: &PublicKey,
        principal: &str,
        serial: u64,
        valid_after: u64,
        valid_before: u64,
    ) -> Result<String, ssh_key::Error> {
        let mut builder = Builder::new_with_random_nonce(
            &mut OsRng,
            subject.key_data().clone(),
            valid_after,
            valid_before,
        )?;
        builder
            .serial(serial)?
            .key_id(format!("authplug-reference-ca:{principal}:{serial}"))?
            .cert_type(CertType::User)?
            .valid_principal(principal)?
            .extension("permit-pty", "")?;
        builder.sign(&self.signing_key)?.to_openssh()
    }

    /// The CA's routes (see the module documentation).
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/certificate", post(certificate))
            .route("/ca.pub", get(ca_pub))
            .route("/revoke", post(revoke))
            .with_state(Arc::clone(self))
    }

    /// Serves [`Self::router`] on 127.0.0.1 and a free port; returns the
    /// base URL. The server runs until the runtime stops.
    pub async fn serve(self: &Arc<Self>) -> Result<String, String> {
        crate::resource_server::serve_on_loopback(self.router()).await
    }
}

/// Why the CA did not sign.
enum Refusal {
    /// 401: a new token may do (RFC 6750 `invalid_token`).
    Token(String),
    /// 403: the token is fine, but grants no principal.
    NoPrincipal(String),
    /// 400: the request's key.
    BadKey(String),
    /// 500.
    Signing(String),
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, why) = match self {
            Refusal::Token(why) => return unauthorized(&why),
            Refusal::NoPrincipal(why) => (StatusCode::FORBIDDEN, why),
            Refusal::BadKey(why) => (StatusCode::BAD_REQUEST, why),
            Refusal::Signing(why) => (StatusCode::INTERNAL_SERVER_ERROR, why),
        };
        (status, format!("{why}\n")).into_response()
    }
}

async fn certificate(
    AxumState(ca): AxumState<Arc<CertAuthority>>,
    headers: HeaderMap,
    Json(request): Json<CertificateRequest>,
) -> Response {
    let Some(token) = bearer(&headers) else {
        ca.refused.fetch_add(1, Ordering::SeqCst);
        return unauthorized("no bearer token");
    };
    match ca.sign(token, &request.public_key) {
        Ok(certificate) => Json(serde_json::json!({ "certificate": certificate })).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn ca_pub(AxumState(ca): AxumState<Arc<CertAuthority>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain")],
        format!("{}\n", ca.public_key_line()),
    )
        .into_response()
}

async fn revoke(AxumState(ca): AxumState<Arc<CertAuthority>>, headers: HeaderMap) -> Response {
    let Some(token) = bearer(&headers) else {
        return unauthorized("no bearer token");
    };
    ca.verifier.revoke(token);
    StatusCode::NO_CONTENT.into_response()
}
