//! Tests the dev IdP infrastructure itself: discovery, client credentials with a
//! right and a wrong secret, and a browserless login through login-http.mjs
//! up to a real authorization code exchange.

use authplug_tests::idp::{dev_idp_dir, DevIdp};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[tokio::test]
async fn discovery_and_client_credentials() {
    let idp = DevIdp::start("{}").expect("dev IdP starts");
    let http = reqwest::Client::new();
    let disc = http
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .expect("discovery request");
    assert!(disc.status().is_success());
    let disc = json(&disc.text().await.expect("body"));
    assert_eq!(disc["issuer"], idp.issuer.as_str());
    assert_eq!(disc["authorization_response_iss_parameter_supported"], true);
    let token_endpoint = disc["token_endpoint"].as_str().expect("token_endpoint");

    let ok = http
        .post(token_endpoint)
        .basic_auth("machine", Some("machine-secret"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&resource=http%3A%2F%2F127.0.0.1%2Fapi")
        .send()
        .await
        .expect("token request");
    assert_eq!(ok.status(), 200);
    let body = json(&ok.text().await.expect("body"));
    let at = body["access_token"].as_str().expect("access_token");
    assert_eq!(at.split('.').count(), 3, "resource indicator gives a JWT");

    let bad = http
        .post(token_endpoint)
        .basic_auth("machine", Some("wrong"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request");
    assert_eq!(bad.status(), 401);
    assert_eq!(
        json(&bad.text().await.expect("body"))["error"],
        "invalid_client"
    );
}

#[tokio::test]
async fn login_http_driver_yields_a_code_that_exchanges() {
    let idp = DevIdp::start(r#"{"ttl":{"idToken":60}}"#).expect("dev IdP starts");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let redirect = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr().expect("addr").port()
    );
    // PKCE "plain" is not allowed; use a fixed verifier with its S256 challenge.
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let auth = format!(
        "{}/auth?client_id=demo&response_type=code&scope=openid&state=s1&nonce=n1&code_challenge={challenge}&code_challenge_method=S256&redirect_uri={}",
        idp.issuer,
        url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
    );
    let mut driver = Command::new("node")
        .arg(dev_idp_dir().join("login-http.mjs"))
        .arg(&auth)
        .spawn()
        .expect("driver starts");
    let (mut stream, _) = listener.accept().expect("callback arrives");
    let mut request_line = String::new();
    BufReader::new(&stream)
        .read_line(&mut request_line)
        .expect("request line");
    stream
        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
        .expect("answer");
    drop(stream);
    assert!(driver.wait().expect("driver exits").success());
    let target = request_line.split(' ').nth(1).expect("target");
    let cb = url::Url::parse(&format!("http://127.0.0.1{target}")).expect("callback URL");
    let params: std::collections::HashMap<_, _> = cb.query_pairs().into_owned().collect();
    assert_eq!(params.get("state").map(String::as_str), Some("s1"));
    assert_eq!(params.get("iss"), Some(&idp.issuer));
    let code = params.get("code").expect("code in callback");

    let form: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "authorization_code")
        .append_pair("code", code)
        .append_pair("redirect_uri", &redirect)
        .append_pair("client_id", "demo")
        .append_pair("code_verifier", verifier)
        .finish();
    let resp = reqwest::Client::new()
        .post(format!("{}/token", idp.issuer))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    let body = json(&resp.text().await.expect("body"));
    assert!(
        body["refresh_token"].is_string(),
        "refresh token always issued"
    );
    let id = body["id_token"].as_str().expect("id_token");
    let payload = id.split('.').nth(1).expect("payload");
    use base64::Engine;
    let claims = json(
        &String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .expect("base64"),
        )
        .expect("utf8"),
    );
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["nonce"], "n1");
    assert_eq!(claims["azp"], "demo");
    assert!(claims["iat"].is_number());
}
