//! The command's environment, as data: the parent's, minus every variable
//! that could point an SDK at other credentials, plus the session.

use std::collections::BTreeMap;
use std::ffi::OsString;

use crate::config::Environ;
use crate::session::Session;

/// Variables that would make an SDK pick other credentials, or a stale token.
///
/// botocore reads `AWS_SECURITY_TOKEN` before `AWS_SESSION_TOKEN`, so a stale
/// one would silently win; `AWS_PROFILE` would make some tools prefer the
/// profile's long-term keys over the session.
pub const REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    "AWS_SESSION_EXPIRATION",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CREDENTIAL_FILE",
    "AWS_SDK_LOAD_CONFIG",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_ACCOUNT_ID",
];

/// Marks the child's environment with the profile it was made from.
pub const MARKER: &str = "MFA_EXEC_PROFILE";

/// `Some(value)` sets a variable, `None` removes it; the rest is inherited.
pub type EnvPlan = BTreeMap<OsString, Option<OsString>>;

/// What every child gets: each variable of [`REMOVED`] that the parent has
/// removed, the region when one is known, and the marker.
fn common_plan(parent: &Environ, profile: &str, region: Option<&str>) -> EnvPlan {
    let mut plan: EnvPlan = REMOVED
        .iter()
        .filter(|name| parent.0.contains_key(std::ffi::OsStr::new(name)))
        .map(|name| ((*name).into(), None))
        .collect();
    if let Some(region) = region {
        set(&mut plan, "AWS_REGION", region);
        set(&mut plan, "AWS_DEFAULT_REGION", region);
    }
    set(&mut plan, MARKER, profile);
    plan
}

fn set(plan: &mut EnvPlan, name: &str, value: &str) {
    plan.insert(name.into(), Some(value.into()));
}

/// The changes that turn the parent's environment into the child's.
#[must_use]
pub fn child_env(
    parent: &Environ,
    session: &Session,
    profile: &str,
    region: Option<&str>,
) -> EnvPlan {
    let mut plan = common_plan(parent, profile, region);
    set(&mut plan, "AWS_ACCESS_KEY_ID", &session.access_key_id);
    set(
        &mut plan,
        "AWS_SECRET_ACCESS_KEY",
        session.secret_access_key.expose(),
    );
    set(
        &mut plan,
        "AWS_SESSION_TOKEN",
        session.session_token.expose(),
    );
    set(
        &mut plan,
        "AWS_CREDENTIAL_EXPIRATION",
        &session.expiration_rfc3339(),
    );
    plan
}

/// The child's environment for `--server`: the same removals, no keys, and
/// the container credential endpoint with its token instead.
#[must_use]
pub fn server_env(
    parent: &Environ,
    endpoint: &str,
    token: &str,
    profile: &str,
    region: Option<&str>,
) -> EnvPlan {
    let mut plan = common_plan(parent, profile, region);
    set(&mut plan, "AWS_CONTAINER_CREDENTIALS_FULL_URI", endpoint);
    set(&mut plan, "AWS_CONTAINER_AUTHORIZATION_TOKEN", token);
    // SDKs try the shared credentials file before the container endpoint:
    // the long-term keys there would win over the MFA session.
    set(&mut plan, "AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    plan
}

/// The names the plan touches, for `-v` (values are never shown).
#[must_use]
pub fn describe(plan: &EnvPlan) -> String {
    let mut set = Vec::new();
    let mut unset = Vec::new();
    for (name, change) in plan {
        let name = name.to_string_lossy().into_owned();
        match change {
            Some(_) => set.push(name),
            None => unset.push(name),
        }
    }
    format!(
        "set {}; unset {}",
        set.join(" "),
        if unset.is_empty() {
            "nothing".into()
        } else {
            unset.join(" ")
        }
    )
}

/// The shells `--export` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    Posix,
    Fish,
}

/// Lines that apply `plan` when `eval`ed: `unset`/`export` for sh, `set -e`/`set -gx` for fish.
#[must_use]
pub fn shell_script(plan: &EnvPlan, shell: Shell) -> String {
    let mut out = String::new();
    for (name, change) in plan {
        let name = name.to_string_lossy();
        let line = match (change, shell) {
            (None, Shell::Posix) => format!("unset {name}\n"),
            (None, Shell::Fish) => format!("set -e {name};\n"),
            (Some(v), Shell::Posix) => format!("export {name}={}\n", quote(&v.to_string_lossy())),
            (Some(v), Shell::Fish) => {
                format!("set -gx {name} {};\n", quote_fish(&v.to_string_lossy()))
            }
        };
        out.push_str(&line);
    }
    out
}

/// Single-quotes for sh: `'` becomes `'\''`.
fn quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// Single-quotes for fish, where `\` and `'` are escaped inside quotes.
fn quote_fish(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// The `credential_process` answer (Version 1) for AWS SDKs and the CLI.
#[must_use]
pub fn credential_process_json(session: &Session) -> String {
    let value = serde_json::json!({
        "Version": 1,
        "AccessKeyId": session.access_key_id,
        "SecretAccessKey": session.secret_access_key.expose(),
        "SessionToken": session.session_token.expose(),
        "Expiration": session.expiration_rfc3339(),
    });
    format!("{value}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use std::time::{Duration, SystemTime};

    fn session() -> Session {
        Session {
            access_key_id: "ASIANEW".into(),
            secret_access_key: Secret::new("new-secret".into()),
            session_token: Secret::new("new-token".into()),
            expiration: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_402_400),
        }
    }

    fn parent(pairs: &[(&str, &str)]) -> Environ {
        Environ(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn apply(parent: &Environ, plan: &EnvPlan) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = parent
            .0
            .iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        for (k, v) in plan {
            let k = k.to_string_lossy().into_owned();
            match v {
                Some(v) => out.insert(k, v.to_string_lossy().into()),
                None => out.remove(&k),
            };
        }
        out
    }

    #[test]
    fn stale_credentials_are_replaced_and_the_rest_kept() {
        let before = parent(&[
            ("AWS_ACCESS_KEY_ID", "AKIAOLD"),
            ("AWS_SECRET_ACCESS_KEY", "old"),
            ("AWS_SECURITY_TOKEN", "stale"),
            ("AWS_PROFILE", "prod"),
            ("AWS_ROLE_ARN", "arn:aws:iam::1:role/x"),
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "http://169.254.170.2/x",
            ),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
            ("AWS_CONFIG_FILE", "/tmp/config"),
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
        ]);
        let after = apply(
            &before,
            &child_env(&before, &session(), "prod", Some("eu-west-1")),
        );
        let want = strings(&[
            ("AWS_ACCESS_KEY_ID", "ASIANEW"),
            ("AWS_SECRET_ACCESS_KEY", "new-secret"),
            ("AWS_SESSION_TOKEN", "new-token"),
            ("AWS_CREDENTIAL_EXPIRATION", "2026-12-04T16:40:00Z"),
            ("AWS_REGION", "eu-west-1"),
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("MFA_EXEC_PROFILE", "prod"),
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"),
            ("AWS_CONFIG_FILE", "/tmp/config"),
            ("PATH", "/usr/bin"),
            ("HOME", "/home/a"),
        ]);
        assert_eq!(after, want);
    }

    #[test]
    fn every_listed_variable_is_removed() {
        let before = parent(&REMOVED.iter().map(|n| (*n, "x")).collect::<Vec<_>>());
        let after = apply(&before, &child_env(&before, &session(), "p", None));
        let left: Vec<&String> = after.keys().collect();
        assert_eq!(
            left,
            [
                "AWS_ACCESS_KEY_ID",
                "AWS_CREDENTIAL_EXPIRATION",
                "AWS_SECRET_ACCESS_KEY",
                "AWS_SESSION_TOKEN",
                "MFA_EXEC_PROFILE"
            ]
        );
        assert_eq!(after["AWS_CREDENTIAL_EXPIRATION"], "2026-12-04T16:40:00Z");
    }

    #[test]
    fn no_region_means_no_region_variables() {
        let before = parent(&[("AWS_REGION", "ap-south-1")]);
        let plan = child_env(&before, &session(), "p", None);
        assert!(!plan.contains_key(std::ffi::OsStr::new("AWS_REGION")));
        assert_eq!(apply(&before, &plan)["AWS_REGION"], "ap-south-1");
    }

    #[test]
    fn the_server_child_gets_an_endpoint_and_no_keys() {
        let before = parent(&[
            ("AWS_ACCESS_KEY_ID", "AKIAOLD"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "stale"),
            ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/x"),
            ("PATH", "/bin"),
        ]);
        let plan = server_env(&before, "http://127.0.0.1:5/p", "tok", "prod", None);
        let after = apply(&before, &plan);
        let want = strings(&[
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:5/p"),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN", "tok"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("MFA_EXEC_PROFILE", "prod"),
            ("PATH", "/bin"),
        ]);
        assert_eq!(after, want);
    }

    #[test]
    fn export_lines_quote_every_value() {
        let mut plan = EnvPlan::new();
        plan.insert("AWS_PROFILE".into(), None);
        plan.insert("A".into(), Some("it's $x \\ `y`".into()));
        assert_eq!(
            shell_script(&plan, Shell::Posix),
            "export A='it'\\''s $x \\ `y`'\nunset AWS_PROFILE\n"
        );
        assert_eq!(
            shell_script(&plan, Shell::Fish),
            "set -gx A 'it\\'s $x \\\\ `y`';\nset -e AWS_PROFILE;\n"
        );
    }

    #[test]
    fn credential_process_json_is_version_1() {
        let v: serde_json::Value =
            serde_json::from_str(&credential_process_json(&session())).unwrap();
        assert_eq!(v["Version"], 1);
        assert_eq!(v["AccessKeyId"], "ASIANEW");
        assert_eq!(v["SecretAccessKey"], "new-secret");
        assert_eq!(v["SessionToken"], "new-token");
        assert_eq!(v["Expiration"], "2026-12-04T16:40:00Z");
    }

    #[test]
    fn description_names_variables_but_never_values() {
        let text = describe(&child_env(
            &parent(&[("AWS_PROFILE", "x")]),
            &session(),
            "p",
            None,
        ));
        assert!(text.contains("AWS_SESSION_TOKEN"));
        assert!(text.contains("unset AWS_PROFILE"));
        assert!(!text.contains("new-secret") && !text.contains("new-token"));
    }
}
