//! ID-token validation: openidconnect's verifier, configured for the
//! asymmetric algorithms the provider advertises, plus the checks it lacks
//! (`iat` not in the future, `azp`).

use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJwsSigningAlgorithm};
use openidconnect::{
    ClaimsVerificationError, ClientId, Nonce, NonceVerifier, SignatureVerificationError,
};

use crate::provider::Provider;

/// The algorithms we accept, if the provider advertises them. Never `none`,
/// never HS* (a shared secret signs nothing a public client can trust).
const ACCEPTED: &[CoreJwsSigningAlgorithm] = &[
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

const ISSUED_IN_THE_FUTURE: &str = "its iat says it was issued in the future";

/// What we keep from a verified ID token.
#[derive(Debug, Clone)]
pub struct VerifiedIdToken {
    pub subject: String,
    pub expires_at: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Signed with a key the cached JWKS lacks: worth one refetch.
    #[error("the ID token is signed with a key the provider's JWKS does not hold")]
    UnknownKey,
    #[error("the ID token is invalid: {0}")]
    Invalid(String),
}

/// Which nonce the token must carry.
#[derive(Clone, Copy)]
pub enum ExpectNonce<'a> {
    /// After a login: exactly the one we sent.
    Login(&'a Nonce),
    /// After a refresh (or a grant that sends no nonce): none is
    /// required, but one that is there must be the login's, when known
    /// (OIDC Core §12.2).
    Refresh(Option<&'a str>),
}

pub fn verify_id_token(
    token: &CoreIdToken,
    provider: &Provider,
    client_id: &str,
    skew: u64,
    nonce: ExpectNonce<'_>,
    expected_subject: Option<&str>,
) -> Result<VerifiedIdToken, VerifyError> {
    let advertised = provider.metadata.id_token_signing_alg_values_supported();
    let allowed: Vec<CoreJwsSigningAlgorithm> = ACCEPTED
        .iter()
        .filter(|alg| advertised.contains(alg))
        .cloned()
        .collect();
    if allowed.is_empty() {
        return Err(VerifyError::Invalid(format!(
            "the provider advertises no ID-token signing algorithm this plugin accepts ({advertised:?}); \
             it accepts RS256/384/512, PS256/384/512, ES256/384 and EdDSA"
        )));
    }
    let skew_delta = chrono::Duration::seconds(skew.min(i64::MAX as u64) as i64);
    // A public-client verifier: no client secret, so HS* cannot verify.
    let verifier = CoreIdTokenVerifier::new_public_client(
        ClientId::new(client_id.to_owned()),
        provider.metadata.issuer().clone(),
        provider.metadata.jwks().clone(),
    )
    .set_allowed_algs(allowed)
    // openidconnect refuses every audience besides ours; OIDC Core 3.1.3.7
    // allows more when `azp` names this client, which is checked below.
    .set_other_audience_verifier_fn(|_| true)
    .set_issue_time_verifier_fn(move |iat| {
        if iat > chrono::Utc::now() + skew_delta {
            Err(format!("{ISSUED_IN_THE_FUTURE} ({iat})"))
        } else {
            Ok(())
        }
    });
    let claims = match nonce {
        ExpectNonce::Login(expected) => token.claims(&verifier, expected),
        ExpectNonce::Refresh(login) => token.claims(&verifier, LoginNonce(login)),
    }
    .map_err(|e| match e {
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => VerifyError::UnknownKey,
        // openidconnect files a failed `iat` check under "Expired": say
        // what it really is.
        ClaimsVerificationError::Expired(why) if why.starts_with(ISSUED_IN_THE_FUTURE) => {
            VerifyError::Invalid(why)
        }
        other => VerifyError::Invalid(crate::messages::error_chain(&other)),
    })?;

    // OIDC Core 3.1.3.7 steps 4 and 5, which openidconnect leaves out.
    match claims.authorized_party() {
        Some(azp) if azp.as_str() != client_id => {
            return Err(VerifyError::Invalid(format!(
                "its azp is {:?}, not this client {client_id:?}",
                azp.as_str()
            )))
        }
        None if claims.audiences().len() > 1 => {
            return Err(VerifyError::Invalid(
                "it has several audiences but no azp claim".into(),
            ))
        }
        _ => {}
    }
    let subject = claims.subject().as_str();
    if subject.is_empty() {
        return Err(VerifyError::Invalid("its sub claim is empty".into()));
    }
    if let Some(expected) = expected_subject {
        if subject != expected {
            return Err(VerifyError::Invalid(format!(
                "it names the user {subject:?}, but the session belongs to {expected:?}"
            )));
        }
    }
    Ok(VerifiedIdToken {
        subject: subject.to_owned(),
        expires_at: claims.expiration().timestamp().max(0) as u64,
    })
}

/// After a refresh: no nonce was sent, so none is required; a nonce that is
/// there must be the login's (when the state knows it: a device login sent
/// none, and a state written by an older version did not keep it).
struct LoginNonce<'a>(Option<&'a str>);

impl NonceVerifier for LoginNonce<'_> {
    fn verify(self, nonce: Option<&Nonce>) -> Result<(), String> {
        match (nonce, self.0) {
            (Some(nonce), Some(login)) if nonce.secret() != login => Err(
                "its nonce is not the one of the login it refreshes (OIDC Core 12.2)".to_owned(),
            ),
            _ => Ok(()),
        }
    }
}
