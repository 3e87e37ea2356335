//! Profiles built on another's login (`subject_profile`): the chains, and
//! that none loops.

use std::collections::BTreeMap;

use super::file::ConfigError;
use super::login::LoginConfig;

/// The profiles `name`'s login is built on, nearest first (the chains are
/// known to end: [`check_chains`]).
pub(super) fn chain<'a>(
    settings: &'a BTreeMap<String, LoginConfig>,
    name: &str,
) -> impl Iterator<Item = &'a str> {
    let mut next = settings
        .get(name)
        .and_then(|config| config.subject_profile.as_deref());
    std::iter::from_fn(move || {
        let link = next?;
        next = settings
            .get(link)
            .and_then(|config| config.subject_profile.as_deref());
        Some(link)
    })
    .take(settings.len())
}

/// Every `subject_profile` names another profile, and no chain comes back
/// to where it started (that login would wait for itself).
pub(super) fn check_chains(settings: &BTreeMap<String, LoginConfig>) -> Result<(), ConfigError> {
    for (name, config) in settings {
        let mut chain = vec![name.as_str()];
        let mut next = config.subject_profile.as_deref();
        while let Some(subject) = next {
            let Some(subject_config) = settings.get(subject) else {
                return Err(ConfigError::Profile {
                    name: chain[chain.len() - 1].to_owned(),
                    message: format!("subject_profile `{subject}` is not one of the profiles"),
                });
            };
            chain.push(subject);
            if subject == name {
                return Err(ConfigError::Profile {
                    name: name.clone(),
                    message: format!(
                        "subject_profile makes a loop ({}): each login would wait for the next; end the chain at a profile that logs in by itself",
                        chain.join(" → ")
                    ),
                });
            }
            if chain.len() > settings.len() + 1 {
                // A loop further up the chain: reported from its own start.
                break;
            }
            next = subject_config.subject_profile.as_deref();
        }
    }
    Ok(())
}
