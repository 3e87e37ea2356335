//! A small, deliberately hostile OpenID provider for the tests: real HTTP on
//! 127.0.0.1, real EdDSA-signed ID tokens, and one switch per way a
//! provider can lie. Its authorize endpoint redirects straight back (no
//! login page), so `curl -L` serves as the browser.
//!
//! Only for what the real dev IdP (scripts/dev-idp) cannot be made to do:
//! forged or broken tokens and responses, and the device flow's `slow_down`.
//! Honest flows are tested against the dev IdP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use axum::extract::{Form, State as AxState};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

/// What the provider gets wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Nothing: the control case.
    Honest,
    BadSignature,
    AlgNone,
    /// HS256 with the client id as the key.
    Hs256,
    WrongIss,
    WrongAud,
    /// Two audiences and no azp.
    ExtraAudNoAzp,
    WrongAzp,
    WrongNonce,
    Expired,
    IatInFuture,
    MissingSub,
    DiscoveryIssuerMismatch,
    CallbackIssMismatch,
    /// Advertises RFC 9207 but leaves `iss` out of the callback.
    CallbackIssMissing,
    /// error=access_denied on the callback, with markup in the description.
    AccessDenied,
    /// Token signed with a key the first JWKS lacks; the JWKS then rotates.
    RotatedKey,
    /// The token endpoint answers 500 with a token-shaped body.
    TokenServerError,
    /// The token endpoint answers 200 with HTML.
    TokenNotJson,
    /// Discovery redirects elsewhere (must not be followed).
    DiscoveryRedirect,
    /// The device flow's first poll is answered `slow_down`.
    DeviceSlowDown,
}

pub struct Stub {
    pub case: Case,
    pub issuer: String,
    pub addr: SocketAddr,
    old_key: SigningKey,
    new_key: SigningKey,
    pub token_hits: AtomicUsize,
    pub jwks_hits: AtomicUsize,
    nonce: Mutex<Option<String>>,
    /// When each device-code poll arrived.
    device_polls: Mutex<Vec<std::time::Instant>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stub {
    pub async fn start(case: Case) -> Arc<Stub> {
        Stub::start_as(case, None).await
    }

    /// Serves plain HTTP but names `issuer` in its documents and tokens
    /// (for a TLS front that forwards to it).
    pub async fn start_as(case: Case, issuer: Option<String>) -> Arc<Stub> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = issuer.unwrap_or_else(|| format!("http://{addr}"));
        let shared: Arc<Mutex<Weak<Stub>>> = Arc::new(Mutex::new(Weak::new()));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/device", post(device))
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let stub = Arc::new(Stub {
            case,
            issuer,
            addr,
            old_key: SigningKey::from_bytes(&[7u8; 32]),
            new_key: SigningKey::from_bytes(&[9u8; 32]),
            token_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
            nonce: Mutex::new(None),
            device_polls: Mutex::new(Vec::new()),
            task,
        });
        *shared.lock().unwrap() = Arc::downgrade(&stub);
        stub
    }

    /// When each device-code poll arrived.
    pub fn device_polls(&self) -> Vec<std::time::Instant> {
        self.device_polls.lock().unwrap().clone()
    }

    pub fn token_hits(&self) -> usize {
        self.token_hits.load(Ordering::SeqCst)
    }

    fn sign(&self, header: Value, claims: Value, key: &SigningKey) -> String {
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = key.sign(input.as_bytes()).to_bytes();
        format!("{input}.{}", B64.encode(signature))
    }

    fn id_token(&self, client_id: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let nonce = self.nonce.lock().unwrap().clone().unwrap_or_default();
        let mut claims = json!({
            "iss": self.issuer, "sub": "alice", "aud": client_id,
            "exp": now + 300, "iat": now, "nonce": nonce,
        });
        let mut header = json!({"alg": "EdDSA", "typ": "JWT", "kid": "old"});
        let mut key = &self.old_key;
        match self.case {
            Case::WrongIss => claims["iss"] = json!("http://127.0.0.1:1"),
            Case::WrongAud => claims["aud"] = json!("someone-else"),
            Case::ExtraAudNoAzp => claims["aud"] = json!([client_id, "someone-else"]),
            Case::WrongAzp => claims["azp"] = json!("someone-else"),
            Case::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
            Case::Expired => {
                claims["exp"] = json!(now - 600);
                claims["iat"] = json!(now - 900);
            }
            Case::IatInFuture => claims["iat"] = json!(now + 3600),
            Case::MissingSub => {
                claims.as_object_mut().unwrap().remove("sub");
            }
            Case::RotatedKey => {
                header["kid"] = json!("new");
                key = &self.new_key;
            }
            _ => {}
        }
        match self.case {
            Case::AlgNone => format!(
                "{}.{}.",
                B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
                B64.encode(claims.to_string())
            ),
            Case::Hs256 => {
                // Any public client id is known to attackers; HS256 with it
                // as the key proves nothing.
                use hmac::{Hmac, Mac};
                let input = format!(
                    "{}.{}",
                    B64.encode(json!({"alg": "HS256", "typ": "JWT"}).to_string()),
                    B64.encode(claims.to_string())
                );
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(client_id.as_bytes()).unwrap();
                mac.update(input.as_bytes());
                format!("{input}.{}", B64.encode(mac.finalize().into_bytes()))
            }
            Case::BadSignature => {
                let good = self.sign(header, claims, key);
                let (head, signature) = good.rsplit_once('.').unwrap();
                let mut bytes = B64.decode(signature).unwrap();
                bytes[0] ^= 1;
                format!("{head}.{}", B64.encode(bytes))
            }
            _ => self.sign(header, claims, key),
        }
    }
}

type Shared = AxState<Arc<Mutex<Weak<Stub>>>>;

fn stub(shared: &Shared) -> Arc<Stub> {
    shared.0.lock().unwrap().upgrade().expect("stub running")
}

fn jwk(kid: &str, key: &SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "use": "sig", "alg": "EdDSA", "kid": kid,
           "x": B64.encode(key.verifying_key().to_bytes())})
}

async fn discovery(shared: Shared) -> Response {
    let stub = stub(&shared);
    if stub.case == Case::DiscoveryRedirect {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "http://127.0.0.1:9/elsewhere")],
        )
            .into_response();
    }
    let issuer = if stub.case == Case::DiscoveryIssuerMismatch {
        format!("{}/impostor", stub.issuer)
    } else {
        stub.issuer.clone()
    };
    let base = &stub.issuer;
    json_body(
        StatusCode::OK,
        json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{base}/authorize"),
            "token_endpoint": format!("{base}/token"),
            "jwks_uri": format!("{base}/jwks"),
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["EdDSA", "HS256", "none"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "device_authorization_endpoint": format!("{base}/device"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        }),
    )
}

async fn jwks(shared: Shared) -> Response {
    let stub = stub(&shared);
    let hits = stub.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let keys = if stub.case == Case::RotatedKey && hits > 0 {
        vec![jwk("new", &stub.new_key)]
    } else {
        vec![jwk("old", &stub.old_key)]
    };
    json_body(StatusCode::OK, json!({ "keys": keys }))
}

async fn authorize(shared: Shared, uri: Uri) -> Response {
    let stub = stub(&shared);
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    *stub.nonce.lock().unwrap() = params.get("nonce").cloned();
    let mut back = url::Url::parse(&params["redirect_uri"]).unwrap();
    {
        let mut query = back.query_pairs_mut();
        query.append_pair("state", &params["state"]);
        match stub.case {
            Case::AccessDenied => {
                query.append_pair("error", "access_denied");
                query.append_pair("error_description", "<b>no</b> & never");
            }
            _ => {
                query.append_pair("code", "the-code");
            }
        }
        match stub.case {
            Case::CallbackIssMismatch => {
                query.append_pair("iss", "http://127.0.0.1:1");
            }
            Case::CallbackIssMissing => {}
            _ => {
                query.append_pair("iss", &stub.issuer);
            }
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, back.to_string())]).into_response()
}

async fn device(shared: Shared) -> Response {
    let stub = stub(&shared);
    let base = &stub.issuer;
    json_body(
        StatusCode::OK,
        json!({
            "device_code": "the-device-code",
            "user_code": "ABCD-EFGH",
            "verification_uri": format!("{base}/device-login"),
            "verification_uri_complete": format!("{base}/device-login?user_code=ABCD-EFGH"),
            "expires_in": 60,
            "interval": 1,
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    json_body(
        status,
        json!({ "error": error, "error_description": format!("stub says {error}") }),
    )
}

async fn token(shared: Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let stub = stub(&shared);
    stub.token_hits.fetch_add(1, Ordering::SeqCst);
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {}
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let mut polls = stub.device_polls.lock().unwrap();
            polls.push(std::time::Instant::now());
            if polls.len() == 1 && stub.case == Case::DeviceSlowDown {
                return oauth_error(StatusCode::BAD_REQUEST, "slow_down");
            }
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    let body = json!({
        "access_token": "stub-access-token",
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": "stub-refresh-token",
        "id_token": stub.id_token(&client_id),
    });
    match stub.case {
        Case::TokenServerError => json_body(StatusCode::INTERNAL_SERVER_ERROR, body),
        Case::TokenNotJson => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/html")],
            format!("<html>{body}</html>"),
        )
            .into_response(),
        _ => json_body(StatusCode::OK, body),
    }
}

fn json_body(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
