//! Settings: the profile, its long-term keys, MFA device, region and CA bundle.
//!
//! The AWS config files are read with `aws_config::profile::load`, so
//! `AWS_CONFIG_FILE` and `AWS_SHARED_CREDENTIALS_FILE` work as in every SDK.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use aws_config::profile::{Profile, ProfileSet};
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};

use crate::error::Error;
use crate::secret::Secret;

/// The parent's environment, captured once; tests build their own.
#[derive(Debug, Clone, Default)]
pub struct Environ(pub BTreeMap<OsString, OsString>);

impl Environ {
    #[must_use]
    pub fn current() -> Self {
        Environ(std::env::vars_os().collect())
    }

    /// A variable that is set, valid UTF-8 and not empty.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(std::ffi::OsStr::new(name))
            .and_then(|v| v.to_str())
            .filter(|v| !v.is_empty())
    }
}

/// Where the long-term keys come from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Profile(String),
    CredentialProcess(String),
    Environment,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Profile(p) => write!(f, "profile `{p}`"),
            Origin::CredentialProcess(p) => write!(f, "the `credential_process` of profile `{p}`"),
            Origin::Environment => f.write_str("`AWS_ACCESS_KEY_ID` in the environment"),
        }
    }
}

/// How to obtain the long-term keys.
#[derive(Debug, Clone)]
pub enum Source {
    Keys(LongTermKeys),
    /// Run the profile's `credential_process` (inside the async runtime).
    Process {
        profile: String,
        command: String,
    },
}

impl Source {
    /// What identifies the long-term key in the cache key: its id, or the
    /// command for a `credential_process`, whose key is only known by running it.
    #[must_use]
    pub fn cache_id(&self) -> String {
        match self {
            Source::Keys(keys) => keys.access_key_id.clone(),
            Source::Process { command, .. } => format!("process:{command}"),
        }
    }
}

/// An IAM user's access key pair.
#[derive(Debug, Clone)]
pub struct LongTermKeys {
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub origin: Origin,
}

/// A role to assume with the MFA session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// The profile that names the role (or the one `--role-arn` was given with).
    pub profile: String,
    pub arn: String,
    pub session_name: Option<String>,
    pub external_id: Option<String>,
    /// `duration_seconds`; STS's default (1 h) when unset.
    pub duration: Option<Duration>,
}

/// Everything resolved from flags, environment and the config files.
#[derive(Debug)]
pub struct Settings {
    /// The selected profile.
    pub profile: String,
    /// The profile whose long-term keys make the MFA session: the selected
    /// one, or a role profile's `source_profile`.
    pub source_profile: String,
    pub source: Source,
    pub role: Option<Role>,
    pub serial: Option<String>,
    pub mfa_process: Option<String>,
    /// The region when one is configured; STS itself falls back to us-east-1.
    pub region: Option<String>,
    pub ca_bundle: Option<PathBuf>,
    /// The config files in force, for messages.
    pub files: String,
}

/// What the command line contributes to the settings.
#[derive(Debug, Default)]
pub struct Overrides<'a> {
    pub profile: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub region: Option<&'a str>,
    pub role_arn: Option<&'a str>,
}

/// The profile name: flag, `AWS_PROFILE`, the enclosing mfa-exec's profile, `default`.
///
/// Inside an mfa-exec child `AWS_PROFILE` is removed and `MFA_EXEC_PROFILE`
/// set, so a nested mfa-exec keeps using the same profile.
#[must_use]
pub fn profile_name(flag: Option<&str>, env: &Environ) -> String {
    flag.filter(|p| !p.is_empty())
        .or_else(|| env.get("AWS_PROFILE"))
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"))
        .or_else(|| env.get("MFA_EXEC_PROFILE"))
        .unwrap_or("default")
        .to_owned()
}

/// Reads the AWS config files with the SDK's own loader.
pub fn load_profiles(profile: &str, env: &Environ) -> Result<ProfileSet, Error> {
    let sdk_env = Env::from(
        env.0
            .iter()
            .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v.to_str()?.to_owned())))
            .collect::<std::collections::HashMap<_, _>>(),
    );
    let (fs, files) = (Fs::real(), EnvConfigFiles::default());
    let future =
        aws_config::profile::load(&fs, &sdk_env, &files, Some(Cow::Owned(profile.to_owned())));
    block_on(future).map_err(|e| Error::ProfileLoad(Box::new(e)))
}

/// The config and credentials files in force, for messages.
#[must_use]
pub fn files_in_force(env: &Environ) -> String {
    let config = env.get("AWS_CONFIG_FILE").unwrap_or("~/.aws/config");
    let credentials = env
        .get("AWS_SHARED_CREDENTIALS_FILE")
        .unwrap_or("~/.aws/credentials");
    format!("`{credentials}` or `{config}`")
}

/// Resolves all settings for `overrides.profile` (or the default profile).
pub fn resolve(overrides: &Overrides<'_>, env: &Environ) -> Result<Settings, Error> {
    let profile = profile_name(overrides.profile, env);
    let explicit = overrides.profile.is_some()
        || env.get("AWS_PROFILE").is_some()
        || env.get("AWS_DEFAULT_PROFILE").is_some()
        || env.get("MFA_EXEC_PROFILE").is_some();
    let set = load_profiles(&profile, env)?;
    let files = files_in_force(env);
    let selected = set.get_profile(&profile);

    // A role profile names the role; its `source_profile` holds the keys.
    let (role, source_profile) = match (overrides.role_arn, selected) {
        (Some(arn), _) => (Some(role_of(&profile, arn, selected)?), profile.clone()),
        (None, Some(p)) if p.get("role_arn").is_some() => {
            let arn = p.get("role_arn").unwrap_or_default();
            let source = p
                .get("source_profile")
                .filter(|s| set.get_profile(s).is_some() && *s != profile)
                .ok_or_else(|| Error::RoleWithoutSource {
                    profile: profile.clone(),
                    role: arn.to_owned(),
                    named: p.get("source_profile").map(str::to_owned),
                    credential_source: p.get("credential_source").is_some(),
                })?;
            (Some(role_of(&profile, arn, Some(p))?), source.to_owned())
        }
        _ => (None, profile.clone()),
    };
    let source_chain = profile_chain(&set, &source_profile)?;
    // Settings are looked up in the role profile first, then along the source chain.
    let mut chain = source_chain.clone();
    if source_profile != profile
        && let Some(p) = selected
    {
        chain.insert(0, p);
    }

    let source = if let Some(source) = source_from_profiles(&source_chain)? {
        source
    } else {
        if chain.is_empty() && explicit && profile != "default" {
            return Err(Error::ProfileNotFound { profile, files });
        }
        source_from_env(env)?.ok_or_else(|| Error::NoSourceCredentials {
            profile: source_profile.clone(),
        })?
    };

    let from_chain = |key: &str| chain.iter().find_map(|p| p.get(key)).map(str::to_owned);
    let serial = overrides
        .serial
        .map(str::to_owned)
        .or_else(|| env.get("AWS_MFA_SERIAL").map(str::to_owned))
        .or_else(|| from_chain("mfa_serial"));
    let region = overrides
        .region
        .map(str::to_owned)
        .or_else(|| env.get("AWS_REGION").map(str::to_owned))
        .or_else(|| env.get("AWS_DEFAULT_REGION").map(str::to_owned))
        .or_else(|| from_chain("region"));
    let ca_bundle = env
        .get("AWS_CA_BUNDLE")
        .map(PathBuf::from)
        .or_else(|| from_chain("ca_bundle").map(|p| expand_home(&p, env)));

    Ok(Settings {
        mfa_process: from_chain("mfa_process"),
        profile,
        source_profile,
        source,
        role,
        serial: serial.filter(|s| !s.is_empty()),
        region: region.filter(|r| !r.is_empty()),
        ca_bundle,
        files,
    })
}

/// The role to assume, with the profile's `role_session_name`, `external_id`
/// and `duration_seconds`.
fn role_of(profile: &str, arn: &str, p: Option<&Profile>) -> Result<Role, Error> {
    let get = |key: &str| p.and_then(|p| p.get(key)).map(str::to_owned);
    let duration = match get("duration_seconds") {
        Some(secs) => Some(Duration::from_secs(secs.trim().parse::<u64>().map_err(
            |e| Error::InvalidDuration {
                what: "`duration_seconds`",
                value: secs.clone(),
                reason: e.to_string(),
            },
        )?)),
        None => None,
    };
    Ok(Role {
        profile: profile.to_owned(),
        arn: arn.to_owned(),
        session_name: get("role_session_name"),
        external_id: get("external_id"),
        duration,
    })
}

/// Every profile in the config files with its MFA device, for `--status`.
pub fn overview(env: &Environ) -> Result<Vec<(String, Option<String>)>, Error> {
    let set = load_profiles("default", env)?;
    let mut names: Vec<&str> = set.profiles().collect();
    names.sort_unstable();
    Ok(names
        .into_iter()
        .map(|name| {
            let mut serial = None;
            let mut next = Some(name.to_owned());
            let mut seen = Vec::new();
            while let Some(n) = next.take() {
                if seen.contains(&n) {
                    break;
                }
                let Some(profile) = set.get_profile(&n) else {
                    break;
                };
                if let Some(s) = profile.get("mfa_serial") {
                    serial = Some(s.to_owned());
                    break;
                }
                next = profile.get("source_profile").map(str::to_owned);
                seen.push(n);
            }
            (name.to_owned(), serial)
        })
        .collect())
}

/// The profile followed by its `source_profile`s, nearest first.
fn profile_chain<'a>(set: &'a ProfileSet, name: &str) -> Result<Vec<&'a Profile>, Error> {
    let mut chain: Vec<&Profile> = Vec::new();
    let mut next = Some(name.to_owned());
    while let Some(name) = next.take() {
        let Some(profile) = set.get_profile(&name) else {
            break;
        };
        if chain.iter().any(|p| p.name() == name) {
            return Err(Error::SourceProfileLoop {
                profile: chain[0].name().to_owned(),
                at: name,
            });
        }
        if let Some(role) = profile.get("role_arn") {
            return Err(Error::ChainedRole {
                profile: chain
                    .first()
                    .map_or_else(|| name.clone(), |p| p.name().to_owned()),
                via: name,
                role: role.to_owned(),
            });
        }
        let has_keys = profile.get("aws_access_key_id").is_some()
            || profile.get("credential_process").is_some();
        next = (!has_keys)
            .then(|| profile.get("source_profile").map(str::to_owned))
            .flatten();
        chain.push(profile);
    }
    Ok(chain)
}

/// The first profile in the chain that has keys or a `credential_process`.
fn source_from_profiles(chain: &[&Profile]) -> Result<Option<Source>, Error> {
    for profile in chain {
        let name = profile.name().to_owned();
        if let Some(id) = profile.get("aws_access_key_id") {
            if profile.get("aws_session_token").is_some() {
                return Err(Error::TemporarySourceCredentials {
                    origin: format!("profile `{name}`, which has `aws_session_token`"),
                });
            }
            let secret = profile.get("aws_secret_access_key").unwrap_or_default();
            return Ok(Some(Source::Keys(LongTermKeys {
                access_key_id: id.to_owned(),
                secret_access_key: Secret::new(secret.to_owned()),
                origin: Origin::Profile(name),
            })));
        }
        if let Some(command) = profile.get("credential_process") {
            return Ok(Some(Source::Process {
                profile: name,
                command: command.to_owned(),
            }));
        }
    }
    Ok(None)
}

/// Long-term keys exported in the environment, refusing session credentials.
fn source_from_env(env: &Environ) -> Result<Option<Source>, Error> {
    let Some(id) = env.get("AWS_ACCESS_KEY_ID") else {
        return Ok(None);
    };
    for token in ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"] {
        if env.get(token).is_some() {
            let nested = if env.get("MFA_EXEC_PROFILE").is_some() {
                ", set by an enclosing mfa-exec"
            } else {
                ""
            };
            return Err(Error::TemporarySourceCredentials {
                origin: format!("the environment: `{token}` is set{nested}"),
            });
        }
    }
    let secret = env.get("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    Ok(Some(Source::Keys(LongTermKeys {
        access_key_id: id.to_owned(),
        secret_access_key: Secret::new(secret.to_owned()),
        origin: Origin::Environment,
    })))
}

fn expand_home(path: &str, env: &Environ) -> PathBuf {
    match (path.strip_prefix("~/"), env.get("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// Drives a future that never waits on I/O (the profile loader reads files
/// synchronously), so the common path needs no async runtime.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Environ {
        Environ(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    #[test]
    fn profile_name_precedence() {
        type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str);
        let table: [Case; 5] = [
            (Some("flag"), &[("AWS_PROFILE", "env")], "flag"),
            (
                None,
                &[("AWS_PROFILE", "env"), ("MFA_EXEC_PROFILE", "outer")],
                "env",
            ),
            (None, &[("MFA_EXEC_PROFILE", "outer")], "outer"),
            (None, &[("AWS_PROFILE", "")], "default"),
            (None, &[], "default"),
        ];
        for (flag, vars, want) in table {
            assert_eq!(profile_name(flag, &env(vars)), want, "{flag:?} {vars:?}");
        }
    }

    #[test]
    fn environment_keys_are_long_term_only() {
        let ok = source_from_env(&env(&[
            ("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "s"),
        ]))
        .unwrap();
        assert!(matches!(ok, Some(Source::Keys(k)) if k.origin == Origin::Environment));

        for token in ["AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"] {
            let err = source_from_env(&env(&[
                ("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE"),
                ("AWS_SECRET_ACCESS_KEY", "s"),
                (token, "t"),
            ]))
            .unwrap_err();
            assert!(err.to_string().contains("temporary"), "{err}");
            assert!(err.to_string().contains(token), "{err}");
        }
        assert!(source_from_env(&env(&[])).unwrap().is_none());
    }

    #[test]
    fn home_is_expanded_in_ca_bundle() {
        let e = env(&[("HOME", "/home/a")]);
        assert_eq!(expand_home("~/ca.pem", &e), PathBuf::from("/home/a/ca.pem"));
        assert_eq!(expand_home("/etc/ca.pem", &e), PathBuf::from("/etc/ca.pem"));
    }
}
