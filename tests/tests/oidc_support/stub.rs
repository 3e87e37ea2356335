//! A small, deliberately hostile OpenID provider for the tests: real HTTP on
//! 127.0.0.1, real signed ID tokens (EdDSA; PS256 and ES256 with keys made
//! by `openssl`), and one switch per way a provider can lie. Its authorize
//! endpoint redirects straight back (no login page), so `curl -L` serves as
//! the browser.
//!
//! Only for what the real dev IdP (scripts/dev-idp) cannot be made to do:
//! forged or broken tokens and responses, odd device-flow answers, refresh
//! responses that lie. Honest flows are tested against the dev IdP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use axum::extract::{Form, State as AxState};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

/// What the provider gets wrong at login (discovery, callback, the code
/// exchange, the device flow).
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
    /// Two audiences, azp = this client: fine.
    ExtraAudWithAzp,
    /// Two audiences, azp = the other one.
    ExtraAudWrongAzp,
    WrongAzp,
    WrongNonce,
    Expired,
    IatInFuture,
    MissingSub,
    /// Signed with this algorithm, which discovery advertises.
    SignedWith(Alg),
    /// Signed with this algorithm (its key in the JWKS), which discovery
    /// does not advertise.
    NotAdvertised(Alg),
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
    /// Discovery gives this endpoint (a discovery field name) as plain http
    /// on a second port of the stub, which answers it
    /// ([`Stub::plain_http_hits`] counts connections there).
    PlainHttpEndpoint(&'static str),
    /// Discovery gives the token endpoint as `http://stub.invalid:PORT`.
    NonLoopbackHttpTokenEndpoint,
    /// Discovery gives the revocation endpoint as `http://stub.invalid:PORT`.
    NonLoopbackHttpRevocationEndpoint,
    /// The device flow's first poll is answered `slow_down`.
    DeviceSlowDown,
    /// The device authorization response says to poll every this many
    /// seconds; every poll is answered `authorization_pending`.
    DevicePending {
        interval: u64,
    },
    /// The device poll is answered `access_denied` with terminal escape
    /// sequences in its description.
    DeviceDeniedWithEscapes,
    /// Discovery gives a token endpoint on a port where nothing listens: the
    /// device authorization works, every poll is a network error.
    DeviceTokenEndpointDown,
    /// The device flow's `verification_uri` (and `_complete`) is plain
    /// http on a non-loopback host.
    DeviceHttpVerificationUri,
    /// A documented deviation of a real provider, which must be tolerated.
    Quirk(Quirk),
    /// No `kid`, signed with a key the (one-key) JWKS does not hold.
    NoKidUnknownKey,
}

/// Deviations real providers are documented to make, each of which a
/// client that only needs a token must tolerate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quirk {
    /// `email_verified` and `phone_number_verified` as strings (AWS
    /// Cognito, Microsoft Entra ID), `updated_at` as an RFC 3339 string.
    StringClaims,
    /// Cognito's nested `identities`, `cognito:groups`, and a `groups`
    /// claim of 2,000 entries.
    BigAndNestedClaims,
    /// `exp`, `iat` and `auth_time` with fractions (RFC 7519 §2 allows
    /// non-integer NumericDates).
    FractionalTimes,
    /// An ID token without `kid`; the JWKS holds one key.
    NoKid,
    /// JWKS keys without `alg` and `use`.
    BareJwks,
    /// An ID token header without `typ`.
    NoTyp,
    /// The access token is a JWT whose `exp` is a numeric string, and the
    /// token response has no `expires_in` (RFC 6749 §5.1 only recommends
    /// it): the token's lifetime is in the token alone.
    StringExpAccessToken,
}

/// A signing algorithm besides the stub's usual EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    Ps256,
    Es256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
        }
    }
}

/// What became of the refresh tokens the stub gave out.
#[derive(Default)]
struct RefreshLedger {
    issued: Vec<String>,
    spent: Vec<String>,
    revoked: Vec<String>,
}

/// How the stub answers a refresh grant (set with [`Stub::set_refresh`];
/// logins follow [`Case`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// New tokens, a rotated refresh token, an ID token for the same user
    /// carrying the login's nonce (as oidc-provider does).
    Honest,
    /// As honest, but the ID token has no nonce.
    WithoutNonce,
    /// The ID token names another user.
    ChangedSub,
    BadSignature,
    WrongIss,
    /// New access and refresh tokens, no ID token.
    NoIdToken,
    /// The ID token is signed with a new key; the JWKS rotates to it.
    RotatedKey,
    /// The ID token carries a nonce, but not the login's.
    WrongNonce,
    /// The ID token has no `sub`: the answer cannot even be parsed, but
    /// its refresh token is the rotated one.
    MissingSub,
}

pub struct Stub {
    pub case: Case,
    pub issuer: String,
    pub addr: SocketAddr,
    /// Where [`Case::PlainHttpEndpoint`] points its endpoint.
    pub plain_addr: SocketAddr,
    /// Where [`Case::DeviceTokenEndpointDown`] points the token endpoint.
    dead_addr: SocketAddr,
    refresh: Mutex<Refresh>,
    old_key: SigningKey,
    new_key: SigningKey,
    /// Set once the JWKS serves the new key instead of the old.
    rotated: AtomicBool,
    pub token_hits: AtomicUsize,
    pub jwks_hits: AtomicUsize,
    discovery_hits: AtomicUsize,
    refresh_hits: AtomicUsize,
    authorize_hits: AtomicUsize,
    plain_http_hits: Arc<AtomicUsize>,
    nonce: Mutex<Option<String>>,
    /// The query of the last authorization request.
    last_authorize: Mutex<HashMap<String, String>>,
    /// The form of the last token request.
    last_token_form: Mutex<HashMap<String, String>>,
    /// When each device-code poll arrived.
    device_polls: Mutex<Vec<std::time::Instant>>,
    /// Whether discovery lists `/revoke` ([`Stub::offer_revocation`]).
    revocation: AtomicBool,
    /// Refresh tokens as the grant holder sees them: issued in a token
    /// answer a client can read, spent by a refresh grant (the stub
    /// rotates), revoked at `/revoke`.
    refresh_tokens: Mutex<RefreshLedger>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
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
            .route("/revoke", post(revoke))
            .with_state(Arc::clone(&shared));
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })];
        // The plain-http side door: counts connections, forwards them.
        let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let plain_addr = plain.local_addr().unwrap();
        let plain_http_hits = Arc::new(AtomicUsize::new(0));
        let hits = Arc::clone(&plain_http_hits);
        tasks.push(tokio::spawn(async move {
            while let Ok((mut client, _)) = plain.accept().await {
                hits.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    if let Ok(mut backend) = tokio::net::TcpStream::connect(addr).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
                    }
                });
            }
        }));
        // A port nothing listens on (bound, then closed at once).
        let dead_addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        if matches!(case, Case::SignedWith(_) | Case::NotAdvertised(_)) {
            // openssl takes a moment: before the first request, not in it.
            tokio::task::spawn_blocking(extra_keys).await.unwrap();
        }
        let stub = Arc::new(Stub {
            case,
            issuer,
            addr,
            plain_addr,
            dead_addr,
            refresh: Mutex::new(Refresh::Honest),
            old_key: SigningKey::from_bytes(&[7u8; 32]),
            new_key: SigningKey::from_bytes(&[9u8; 32]),
            rotated: AtomicBool::new(false),
            token_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
            discovery_hits: AtomicUsize::new(0),
            refresh_hits: AtomicUsize::new(0),
            authorize_hits: AtomicUsize::new(0),
            plain_http_hits,
            nonce: Mutex::new(None),
            last_authorize: Mutex::new(HashMap::new()),
            last_token_form: Mutex::new(HashMap::new()),
            device_polls: Mutex::new(Vec::new()),
            revocation: AtomicBool::new(false),
            refresh_tokens: Mutex::new(RefreshLedger::default()),
            tasks,
        });
        *shared.lock().unwrap() = Arc::downgrade(&stub);
        stub
    }

    /// From now on discovery lists a revocation endpoint (RFC 7009).
    pub fn offer_revocation(&self) {
        self.revocation.store(true, Ordering::SeqCst);
    }

    /// The refresh tokens issued so far that are still live: neither spent
    /// by a refresh grant nor revoked.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        let ledger = self.refresh_tokens.lock().unwrap();
        ledger
            .issued
            .iter()
            .filter(|t| !ledger.spent.contains(*t) && !ledger.revoked.contains(*t))
            .cloned()
            .collect()
    }

    /// How many refresh tokens the stub has given out.
    pub fn issued_refresh_tokens(&self) -> usize {
        self.refresh_tokens.lock().unwrap().issued.len()
    }

    /// How the next refresh grants are answered.
    pub fn set_refresh(&self, refresh: Refresh) {
        *self.refresh.lock().unwrap() = refresh;
    }

    /// When each device-code poll arrived.
    pub fn device_polls(&self) -> Vec<std::time::Instant> {
        self.device_polls.lock().unwrap().clone()
    }

    /// Requests to the token endpoint, any grant.
    pub fn token_hits(&self) -> usize {
        self.token_hits.load(Ordering::SeqCst)
    }

    /// Refresh grants answered.
    pub fn refresh_hits(&self) -> usize {
        self.refresh_hits.load(Ordering::SeqCst)
    }

    pub fn discovery_hits(&self) -> usize {
        self.discovery_hits.load(Ordering::SeqCst)
    }

    /// Logins: requests to the authorize endpoint.
    pub fn authorize_hits(&self) -> usize {
        self.authorize_hits.load(Ordering::SeqCst)
    }

    /// The parameters of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.last_authorize.lock().unwrap().clone()
    }

    /// The form of the last token request.
    pub fn last_token_form(&self) -> HashMap<String, String> {
        self.last_token_form.lock().unwrap().clone()
    }

    /// Connections to the plain-http port ([`Case::PlainHttpEndpoint`]).
    pub fn plain_http_hits(&self) -> usize {
        self.plain_http_hits.load(Ordering::SeqCst)
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

    /// An ID token for a login (`refresh` None) or a refresh grant.
    fn id_token(&self, client_id: &str, refresh: Option<Refresh>) -> String {
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
        if self.rotated.load(Ordering::SeqCst) {
            header["kid"] = json!("new");
        }
        let mut broken_signature = false;
        match refresh {
            None | Some(Refresh::Honest | Refresh::NoIdToken) => {}
            Some(Refresh::WithoutNonce) => {
                claims.as_object_mut().unwrap().remove("nonce");
            }
            Some(Refresh::ChangedSub) => claims["sub"] = json!("mallory"),
            Some(Refresh::BadSignature) => broken_signature = true,
            Some(Refresh::WrongIss) => claims["iss"] = json!("http://127.0.0.1:1"),
            Some(Refresh::RotatedKey) => {
                self.rotated.store(true, Ordering::SeqCst);
                header["kid"] = json!("new");
            }
            Some(Refresh::WrongNonce) => claims["nonce"] = json!("not-the-logins-nonce"),
            Some(Refresh::MissingSub) => {
                claims.as_object_mut().unwrap().remove("sub");
            }
        }
        let case = if refresh.is_some() {
            Case::Honest
        } else {
            self.case
        };
        match case {
            Case::WrongIss => claims["iss"] = json!("http://127.0.0.1:1"),
            Case::WrongAud => claims["aud"] = json!("someone-else"),
            Case::ExtraAudNoAzp => claims["aud"] = json!([client_id, "someone-else"]),
            Case::ExtraAudWithAzp => {
                claims["aud"] = json!([client_id, "someone-else"]);
                claims["azp"] = json!(client_id);
            }
            Case::ExtraAudWrongAzp => {
                claims["aud"] = json!([client_id, "someone-else"]);
                claims["azp"] = json!("someone-else");
            }
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
            Case::RotatedKey => header["kid"] = json!("new"),
            Case::BadSignature => broken_signature = true,
            Case::Quirk(Quirk::StringClaims) => {
                claims["email"] = json!("alice@example.test");
                claims["email_verified"] = json!("true");
                claims["phone_number_verified"] = json!("false");
                claims["updated_at"] = json!("2024-05-01T10:00:00Z");
            }
            Case::Quirk(Quirk::BigAndNestedClaims) => {
                claims["identities"] = json!([{"userId": "123", "providerName": "Google",
                    "providerType": "Google", "primary": "true", "dateCreated": "1700000000000"}]);
                claims["cognito:groups"] = json!(["admins", "devs"]);
                claims["cognito:username"] = json!("alice");
                let groups: Vec<String> = (0..2000).map(|i| format!("group-{i:04}")).collect();
                claims["groups"] = json!(groups);
            }
            Case::Quirk(Quirk::FractionalTimes) => {
                claims["exp"] = json!(now as f64 + 300.25);
                claims["iat"] = json!(now as f64 - 0.5);
                claims["auth_time"] = json!(now as f64 - 1.75);
            }
            Case::Quirk(Quirk::NoKid) => {
                header.as_object_mut().unwrap().remove("kid");
            }
            Case::Quirk(Quirk::NoTyp) => {
                header.as_object_mut().unwrap().remove("typ");
            }
            Case::NoKidUnknownKey => {
                header.as_object_mut().unwrap().remove("kid");
            }
            _ => {}
        }
        let key = if header["kid"] == "new" || case == Case::NoKidUnknownKey {
            &self.new_key
        } else {
            &self.old_key
        };
        let token = match case {
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
            Case::SignedWith(alg) | Case::NotAdvertised(alg) => extra_keys().sign(alg, &claims),
            _ => self.sign(header, claims, key),
        };
        if broken_signature {
            let (head, signature) = token.rsplit_once('.').unwrap();
            let mut bytes = B64.decode(signature).unwrap();
            bytes[0] ^= 1;
            format!("{head}.{}", B64.encode(bytes))
        } else {
            token
        }
    }
}

/// RSA (PS256) and P-256 (ES256) signing keys, made once per test process
/// by `openssl` (fast, where the pure-Rust RSA key generation is slow in
/// debug builds); signing and the JWKs are jsonwebtoken's.
struct ExtraKeys {
    rsa: jsonwebtoken::EncodingKey,
    ec: jsonwebtoken::EncodingKey,
}

fn extra_keys() -> &'static ExtraKeys {
    static KEYS: OnceLock<ExtraKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let der = |pipeline: &str| {
            let output = std::process::Command::new("sh")
                .args(["-c", pipeline])
                .stderr(std::process::Stdio::null())
                .output()
                .expect("openssl runs");
            assert!(
                output.status.success() && !output.stdout.is_empty(),
                "{pipeline} failed"
            );
            output.stdout
        };
        ExtraKeys {
            // PKCS#1 DER, as jsonwebtoken's RSA keys are.
            rsa: jsonwebtoken::EncodingKey::from_rsa_der(&der(
                "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform DER",
            )),
            // PKCS#8 DER.
            ec: jsonwebtoken::EncodingKey::from_ec_der(&der(
                "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
                 | openssl pkcs8 -topk8 -nocrypt -outform DER",
            )),
        }
    })
}

impl ExtraKeys {
    fn key(&self, alg: Alg) -> (&jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm) {
        match alg {
            Alg::Ps256 => (&self.rsa, jsonwebtoken::Algorithm::PS256),
            Alg::Es256 => (&self.ec, jsonwebtoken::Algorithm::ES256),
        }
    }

    fn sign(&self, alg: Alg, claims: &Value) -> String {
        let (key, algorithm) = self.key(alg);
        let mut header = jsonwebtoken::Header::new(algorithm);
        header.kid = Some(alg.name().to_lowercase());
        jsonwebtoken::encode(&header, claims, key).expect("a signed token")
    }

    fn jwk(&self, alg: Alg) -> Value {
        let (key, algorithm) = self.key(alg);
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(key, algorithm).expect("a JWK");
        jwk.common.key_id = Some(alg.name().to_lowercase());
        let mut jwk = serde_json::to_value(jwk).unwrap();
        jwk["use"] = json!("sig");
        jwk
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
    stub.discovery_hits.fetch_add(1, Ordering::SeqCst);
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
    let mut algs = vec!["EdDSA", "HS256", "none"];
    if let Case::SignedWith(alg) = stub.case {
        algs.push(alg.name());
    }
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "jwks_uri": format!("{base}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": algs,
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "device_authorization_endpoint": format!("{base}/device"),
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
                                  "urn:ietf:params:oauth:grant-type:device_code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    });
    match stub.case {
        Case::PlainHttpEndpoint(field) => {
            let path = match field {
                "authorization_endpoint" => "authorize",
                "token_endpoint" => "token",
                "jwks_uri" => "jwks",
                "device_authorization_endpoint" => "device",
                other => panic!("no endpoint {other}"),
            };
            document[field] = json!(format!("http://{}/{path}", stub.plain_addr));
        }
        Case::NonLoopbackHttpTokenEndpoint => {
            document["token_endpoint"] =
                json!(format!("http://stub.invalid:{}/token", stub.addr.port()));
        }
        Case::DeviceTokenEndpointDown => {
            document["token_endpoint"] = json!(format!("http://{}/token", stub.dead_addr));
        }
        Case::NonLoopbackHttpRevocationEndpoint => {
            document["revocation_endpoint"] =
                json!(format!("http://stub.invalid:{}/revoke", stub.addr.port()));
        }
        _ => {}
    }
    if stub.revocation.load(Ordering::SeqCst) && document.get("revocation_endpoint").is_none() {
        document["revocation_endpoint"] = json!(format!("{}/revoke", stub.issuer));
    }
    json_body(StatusCode::OK, document)
}

/// RFC 7009 §2.1: 200 whatever the token (§2.2).
async fn revoke(shared: Shared, Form(form): Form<HashMap<String, String>>) -> Response {
    let stub = stub(&shared);
    if let Some(token) = form.get("token") {
        stub.refresh_tokens
            .lock()
            .unwrap()
            .revoked
            .push(token.clone());
    }
    StatusCode::OK.into_response()
}

async fn jwks(shared: Shared) -> Response {
    let stub = stub(&shared);
    let hits = stub.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if stub.case == Case::RotatedKey && hits > 0 {
        stub.rotated.store(true, Ordering::SeqCst);
    }
    let mut keys = if stub.rotated.load(Ordering::SeqCst) {
        vec![jwk("new", &stub.new_key)]
    } else {
        vec![jwk("old", &stub.old_key)]
    };
    if stub.case == Case::Quirk(Quirk::BareJwks) {
        for key in &mut keys {
            let key = key.as_object_mut().unwrap();
            key.remove("alg");
            key.remove("use");
        }
    }
    if let Case::SignedWith(alg) | Case::NotAdvertised(alg) = stub.case {
        keys.push(extra_keys().jwk(alg));
    }
    json_body(StatusCode::OK, json!({ "keys": keys }))
}

async fn authorize(shared: Shared, uri: Uri) -> Response {
    let stub = stub(&shared);
    stub.authorize_hits.fetch_add(1, Ordering::SeqCst);
    let params: HashMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    *stub.nonce.lock().unwrap() = params.get("nonce").cloned();
    *stub.last_authorize.lock().unwrap() = params.clone();
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
    let base = stub.issuer.as_str();
    let interval = match stub.case {
        Case::DevicePending { interval } => interval,
        _ => 1,
    };
    let base = if stub.case == Case::DeviceHttpVerificationUri {
        "http://login.stub.invalid"
    } else {
        base
    };
    json_body(
        StatusCode::OK,
        json!({
            "device_code": "the-device-code",
            "user_code": "ABCD-EFGH",
            "verification_uri": format!("{base}/device-login"),
            "verification_uri_complete": format!("{base}/device-login?user_code=ABCD-EFGH"),
            "expires_in": 600,
            "interval": interval,
        }),
    )
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    oauth_error_described(status, error, &format!("stub says {error}"))
}

fn oauth_error_described(status: StatusCode, error: &str, description: &str) -> Response {
    json_body(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

async fn token(
    shared: Shared,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let stub = stub(&shared);
    let hit = stub.token_hits.fetch_add(1, Ordering::SeqCst);
    *stub.last_token_form.lock().unwrap() = form.clone();
    // A confidential client names itself in HTTP Basic authentication.
    let basic_client = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| {
            value
                .to_str()
                .ok()?
                .strip_prefix("Basic ")
                .map(str::to_owned)
        })
        .and_then(|encoded| {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            Some(text.split_once(':')?.0.to_owned())
        });
    let client_id = form
        .get("client_id")
        .cloned()
        .or(basic_client)
        .unwrap_or_default();
    let mut refresh = None;
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code" | "client_credentials") => {}
        Some("refresh_token") => {
            stub.refresh_hits.fetch_add(1, Ordering::SeqCst);
            if let Some(spent) = form.get("refresh_token") {
                stub.refresh_tokens
                    .lock()
                    .unwrap()
                    .spent
                    .push(spent.clone());
            }
            refresh = Some(*stub.refresh.lock().unwrap());
        }
        Some("urn:ietf:params:oauth:grant-type:device_code") => {
            let mut polls = stub.device_polls.lock().unwrap();
            polls.push(std::time::Instant::now());
            match stub.case {
                Case::DeviceSlowDown if polls.len() == 1 => {
                    return oauth_error(StatusCode::BAD_REQUEST, "slow_down")
                }
                Case::DevicePending { .. } => {
                    return oauth_error(StatusCode::BAD_REQUEST, "authorization_pending")
                }
                Case::DeviceDeniedWithEscapes => {
                    return oauth_error_described(
                        StatusCode::BAD_REQUEST,
                        "access_denied",
                        "no\u{1b}]0;pwned\u{7}\u{1b}[2J\u{1b}[31mred",
                    )
                }
                _ => {}
            }
        }
        _ => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    // Each answer's tokens differ, so a test sees which one it got.
    let mut body = json!({
        "access_token": format!("stub-access-token-{hit}"),
        "token_type": "Bearer",
        "expires_in": 300,
        "refresh_token": format!("stub-refresh-token-{hit}"),
    });
    let machine = form.get("grant_type").map(String::as_str) == Some("client_credentials");
    if machine
        && form
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|s| s == "bogus"))
    {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope");
    }
    if refresh != Some(Refresh::NoIdToken) && !machine {
        body["id_token"] = json!(stub.id_token(&client_id, refresh));
    }
    if stub.case == Case::Quirk(Quirk::StringExpAccessToken) {
        let exp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            + STRING_EXP_LIFETIME;
        let payload = json!({"sub": "alice", "exp": exp.to_string(), "n": hit});
        body["access_token"] = json!(format!(
            "{}.{}.c2ln",
            B64.encode(r#"{"alg":"none"}"#),
            B64.encode(payload.to_string())
        ));
        if let Some(fields) = body.as_object_mut() {
            fields.remove("expires_in");
        }
    }
    if !matches!(stub.case, Case::TokenServerError | Case::TokenNotJson) {
        if let Some(issued) = body["refresh_token"].as_str() {
            stub.refresh_tokens
                .lock()
                .unwrap()
                .issued
                .push(issued.to_owned());
        }
    }
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

/// How long [`Quirk::StringExpAccessToken`]'s access tokens live.
pub const STRING_EXP_LIFETIME: u64 = 900;

fn json_body(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
