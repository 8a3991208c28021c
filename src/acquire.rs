//! Getting a session: from the cache when it holds a good one, else with an
//! MFA code from STS; a role session on top of the MFA session; and finding
//! the MFA device when none is configured.
//!
//! Cached runs never build the async runtime or the SDK client: `Sts` is
//! made on first need.

use std::time::{Duration, SystemTime};

use crate::cache::{self, Cache, Miss};
use crate::config::{Environ, LongTermKeys, Role, Settings};
use crate::duration;
use crate::error::Error;
use crate::mfa;
use crate::secret::Secret;
use crate::session::Session;
use crate::sts::{self, Failure, Sts};

/// What a run asked for that shapes how the session is obtained.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    pub lifetime: Duration,
    pub timeout: Duration,
    pub min_remaining: Duration,
    pub refresh: bool,
    pub use_cache: bool,
    pub verbose: bool,
}

/// One run's state: settings, the cache, and the STS client once needed.
pub struct Acquirer<'a> {
    settings: &'a Settings,
    env: &'a Environ,
    options: Options,
    flag_code: Option<Secret>,
    cache: Option<Cache>,
    sts: Option<Sts>,
    keys: Option<LongTermKeys>,
    /// The MFA session made or read in this run: `--server` renewals of a
    /// role session reuse it even when there is no cache.
    mfa: Option<Session>,
}

impl<'a> Acquirer<'a> {
    #[must_use]
    pub fn new(
        settings: &'a Settings,
        env: &'a Environ,
        options: Options,
        flag_code: Option<Secret>,
    ) -> Self {
        let cache = if options.use_cache {
            open_cache(env, true)
        } else {
            None
        };
        Acquirer {
            settings,
            env,
            options,
            flag_code,
            cache,
            sts: None,
            keys: None,
            mfa: None,
        }
    }

    /// Later sessions of this run (`--server` renewals) use the cache
    /// normally: `--refresh` was about the first one.
    pub fn stop_forcing_refresh(&mut self) {
        self.options.refresh = false;
    }

    /// Whether sessions are cached in this run.
    #[must_use]
    pub fn caches(&self) -> bool {
        self.cache.is_some()
    }

    fn sts(&mut self) -> Result<&Sts, Error> {
        if self.sts.is_none() {
            mfa::guard_terminal_against_signals();
            self.sts = Some(Sts::connect(
                self.settings,
                self.options.timeout,
                self.options.verbose,
            )?);
        }
        Ok(self.sts.as_ref().expect("just set"))
    }

    fn keys(&mut self) -> Result<LongTermKeys, Error> {
        if self.keys.is_none() {
            let settings = self.settings;
            let keys = self.sts()?.source_keys(&settings.source)?;
            self.keys = Some(keys);
        }
        Ok(self.keys.clone().expect("just set"))
    }

    /// The MFA device: configured, remembered from an earlier lookup, or
    /// looked up with IAM `ListMFADevices` (then remembered).
    pub fn serial(&mut self) -> Result<String, Error> {
        if let Some(serial) = &self.settings.serial {
            return Ok(serial.clone());
        }
        let profile = self.settings.source_profile.clone();
        let device_key = cache::DeviceKey {
            profile: profile.clone(),
            source: self.settings.source.cache_id(),
        };
        if let Some(serial) = self.cache.as_ref().and_then(|c| c.load_device(&device_key)) {
            if self.options.verbose {
                eprintln!("mfa-exec: MFA device `{serial}` (remembered from an earlier lookup)");
            }
            return Ok(serial);
        }
        let keys = self.keys()?;
        let devices = self.sts()?.list_mfa_devices(&keys)?;
        let serial = choose_device(&profile, devices)?;
        eprintln!(
            "mfa-exec: using MFA device `{serial}`\nhint: add `mfa_serial = {serial}` to profile \
             `{profile}` to skip this lookup"
        );
        if let Some(c) = &self.cache
            && let Err(e) = c.store_device(&device_key, &serial)
        {
            warn(&format!("cannot remember the MFA device: {e}"));
        }
        Ok(serial)
    }

    /// The session the command gets: the role's when a role is configured,
    /// else the MFA session itself.
    pub fn session(&mut self, serial: &str) -> Result<Session, Error> {
        match self.settings.role.clone() {
            Some(role) => self.role_session(serial, &role),
            None => self.mfa_session(serial),
        }
    }

    fn key(&self, serial: &str, role: Option<&Role>) -> cache::Key {
        cache::Key {
            profile: role
                .map_or(&self.settings.source_profile, |r| &r.profile)
                .clone(),
            serial: serial.to_owned(),
            source: self.settings.source.cache_id(),
            role: role.map(|r| r.arn.clone()),
        }
    }

    /// Locks `key`'s entry and returns a usable cached session, if any. The
    /// lock (held until dropped) spans the check, the code and the STS call,
    /// so parallel runs ask for one code; it is released before exec.
    fn locked_lookup(&self, key: &cache::Key) -> (Option<std::fs::File>, Option<Session>) {
        let Some(cache) = &self.cache else {
            return (None, None);
        };
        let wait = || {
            // One write, so parallel runs' lines do not interleave.
            let line = format!(
                "mfa-exec: waiting for another mfa-exec to get the session of profile `{}`\n",
                key.profile
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        };
        let lock = match cache.lock(key, wait) {
            Ok(lock) => lock,
            Err(e) => {
                warn(&format!("cannot lock the session cache: {e}"));
                return (None, None);
            }
        };
        let cached = if self.options.refresh {
            None
        } else {
            load_cached(cache, key, self.options.min_remaining, self.options.verbose)
        };
        (Some(lock), cached)
    }

    fn store(&self, key: &cache::Key, session: &Session, locked: bool) {
        if let (Some(cache), true) = (&self.cache, locked)
            && let Err(e) = cache.store(key, session)
        {
            warn(&format!(
                "cannot cache the session in `{}`: {e}",
                cache.dir().display()
            ));
        }
    }

    /// The MFA session of the source profile (`GetSessionToken`).
    fn mfa_session(&mut self, serial: &str) -> Result<Session, Error> {
        if let Some(session) = self.mfa.as_ref().filter(|s| {
            !self.options.refresh && s.remaining(SystemTime::now()) > self.options.min_remaining
        }) {
            return Ok(session.clone());
        }
        let key = self.key(serial, None);
        let (lock, cached) = self.locked_lookup(&key);
        let session = if let Some(session) = cached {
            session
        } else {
            let session = self.new_mfa_session(serial)?;
            self.store(&key, &session, lock.is_some());
            session
        };
        drop(lock);
        self.mfa = Some(session.clone());
        Ok(session)
    }

    /// A role session, made from the (cached) MFA session: one code covers
    /// every role profile that shares the source.
    fn role_session(&mut self, serial: &str, role: &Role) -> Result<Session, Error> {
        let key = self.key(serial, Some(role));
        let (lock, cached) = self.locked_lookup(&key);
        if let Some(session) = cached {
            return Ok(session);
        }
        let base = self.mfa_session(serial)?;
        let name = sts::role_session_name(
            role.session_name.as_deref(),
            serial,
            self.env.get("USER").or_else(|| self.env.get("LOGNAME")),
        );
        let session = self.sts()?.assume_role(&base, role, &name)?;
        self.store(&key, &session, lock.is_some());
        drop(lock);
        Ok(session)
    }

    /// Gets a new MFA session, with a code from: the flag, `mfa_process`, the terminal.
    fn new_mfa_session(&mut self, serial: &str) -> Result<Session, Error> {
        let keys = self.keys()?;
        let lifetime = self.options.lifetime;
        let verbose = self.options.verbose;
        let say = |what: &str| {
            if verbose {
                eprintln!("mfa-exec: MFA device `{serial}`; code from {what}");
            }
        };
        let given = if let Some(code) = self.flag_code.take() {
            say("`--token-code`");
            Some(code)
        } else if let Some(command) = &self.settings.mfa_process {
            say("`mfa_process`");
            Some(mfa::from_process(&self.settings.source_profile, command)?)
        } else {
            None
        };
        if let Some(code) = given {
            return Ok(self
                .sts()?
                .get_session_token(&keys, serial, &code, lifetime)?);
        }
        say("the terminal");
        let sts = self.sts()?;
        let mut tty = mfa::Terminal::open()?;
        let prompt = format!("MFA code for {serial}: ");
        let mut rejected = Vec::new();
        let mut tries_left = mfa::MAX_TRIES;
        loop {
            let code = tty.ask_code(&prompt, &rejected, &mut tries_left)?;
            match sts.get_session_token(&keys, serial, &code, lifetime) {
                Ok(session) => return Ok(session),
                Err(e) if e.failure == Failure::WrongCode => {
                    tty.say("mfa-exec: STS refused the code (wrong, or already used)");
                    if tries_left == 0 {
                        return Err(Error::TooManyTries {
                            tries: mfa::MAX_TRIES,
                        });
                    }
                    rejected.push(code);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Picks the one usable device from `ListMFADevices`, or says why not.
///
/// FIDO security keys (`…:u2f/…`) cannot answer `GetSessionToken`: only
/// virtual and hardware TOTP devices give the 6-digit codes it takes.
pub fn choose_device(profile: &str, devices: Vec<String>) -> Result<String, Error> {
    let (usable, fido): (Vec<String>, Vec<String>) =
        devices.into_iter().partition(|d| !d.contains(":u2f/"));
    match (usable.len(), fido.is_empty()) {
        (1, _) => Ok(usable.concat()),
        (0, true) => Err(Error::NoMfaDevice {
            profile: profile.to_owned(),
        }),
        (0, false) => Err(Error::OnlyFidoDevices { devices: fido }),
        _ => Err(Error::SeveralMfaDevices { devices: usable }),
    }
}

pub fn warn(message: &str) {
    eprintln!("mfa-exec: warning: {message}");
}

/// The cache, or `None` (with a warning) when its directory is not safe to use.
#[must_use]
pub fn open_cache(env: &Environ, create: bool) -> Option<Cache> {
    let Some(dir) = cache::default_dir(env) else {
        warn("no cache directory: neither `XDG_CACHE_HOME` nor `HOME` is set");
        return None;
    };
    match Cache::open(dir, create) {
        Ok(cache) => Some(cache),
        Err(reason) if !create && reason.ends_with("does not exist") => None,
        Err(reason) => {
            warn(&format!("not using the session cache: {reason}"));
            None
        }
    }
}

/// A usable cached session; says why not otherwise (a warning when the
/// entry is suspicious, a note with `-v` when it is merely old).
fn load_cached(
    cache: &Cache,
    key: &cache::Key,
    min_remaining: Duration,
    verbose: bool,
) -> Option<Session> {
    let what = key.role.as_ref().map_or_else(
        || format!("session of profile `{}`", key.profile),
        |r| format!("session of profile `{}` (role `{r}`)", key.profile),
    );
    match cache.load(key, min_remaining) {
        Ok(session) => {
            if verbose {
                eprintln!(
                    "mfa-exec: using the cached {what} ({} left)",
                    duration::format(session.remaining(SystemTime::now()))
                );
            }
            Some(session)
        }
        Err(Miss::Unusable(reason)) => {
            warn(&format!(
                "ignoring the cached session `{}`: {reason}",
                cache.entry_path(key).display()
            ));
            None
        }
        Err(miss) => {
            if verbose {
                let why = match miss {
                    Miss::TooShort(left) => format!("only {} left", duration::format(left)),
                    Miss::Expired => "expired".into(),
                    _ => "none cached".into(),
                };
                eprintln!("mfa-exec: no usable cached {what} ({why}); getting a new one");
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn devices(list: &[&str]) -> Vec<String> {
        list.iter().map(|d| (*d).to_owned()).collect()
    }

    #[test]
    fn one_totp_device_is_chosen_even_beside_fido_keys() {
        let chosen = choose_device(
            "p",
            devices(&[
                "arn:aws:iam::1:u2f/user/alice/key-ABC",
                "arn:aws:iam::1:mfa/alice",
            ]),
        )
        .unwrap();
        assert_eq!(chosen, "arn:aws:iam::1:mfa/alice");
        assert_eq!(
            choose_device("p", devices(&["GAHT12345678"])).unwrap(),
            "GAHT12345678"
        );
    }

    #[test]
    fn none_several_or_only_fido_are_explained() {
        assert!(matches!(
            choose_device("p", vec![]),
            Err(Error::NoMfaDevice { .. })
        ));
        assert!(matches!(
            choose_device("p", devices(&["arn:aws:iam::1:u2f/user/a/k"])),
            Err(Error::OnlyFidoDevices { .. })
        ));
        let err = choose_device(
            "p",
            devices(&["arn:aws:iam::1:mfa/a", "arn:aws:iam::1:mfa/b"]),
        )
        .unwrap_err();
        assert!(matches!(&err, Error::SeveralMfaDevices { devices } if devices.len() == 2));
        assert!(err.to_string().contains("arn:aws:iam::1:mfa/b"), "{err}");
    }
}
