//! How the example tests run a plugin through the host: short limits, not
//! interactive, and as an epithet host would (offering none of what
//! authplug added to its protocol).

use std::time::{Duration, SystemTime};

use authplug_protocol::host::RunOptions;

/// Short limits, not interactive, `env` added.
pub fn options(env: &[(&str, &str)]) -> RunOptions {
    let mut options = RunOptions::default();
    options.timeout = Duration::from_secs(30);
    options.kill_grace = Duration::from_millis(300);
    options.drain_window = Duration::from_millis(300);
    options.interactive = false;
    options.env = env
        .iter()
        .map(|(key, value)| ((*key).into(), (*value).into()))
        .collect();
    options
}

/// [`options`] for a host that offers nothing authplug added to epithet's
/// protocol: no info channel (rule 10), no keep-state exit (rule 4), no
/// login-needed exit (rule 6).
pub fn epithet_options(env: &[(&str, &str)]) -> RunOptions {
    let mut options = options(env);
    options.offer_info = false;
    options.keep_state_on_failure = false;
    options.offer_login_needed = false;
    options
}

/// Whether `at` is about `lifetime` from now (whole seconds).
pub fn expires_in(at: Option<SystemTime>, lifetime: u64) -> bool {
    let now = SystemTime::now();
    at.and_then(|at| at.duration_since(now).ok())
        .is_some_and(|left| left.as_secs() + 2 >= lifetime && left.as_secs() <= lifetime)
}
