//! One error type for the whole tool, with the exit status and hint of each case.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit status when mfa-exec itself fails (usage, config, STS, terminal).
pub const EXIT_FAILURE: u8 = 125;
/// Exit status when the command exists but cannot be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit status when the command cannot be found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit status when the user cancels at the prompt.
pub const EXIT_CANCELLED: u8 = 130;

/// Everything that can go wrong before the command runs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{}`: command not found", .0.to_string_lossy())]
    CommandNotFound(OsString),

    #[error("`{}`: not executable", .0.display())]
    CommandNotExecutable(PathBuf),

    #[error("cannot run `{}`", .command.display())]
    Exec {
        command: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid {what} `{value}`: {reason}")]
    InvalidDuration {
        what: &'static str,
        value: String,
        reason: String,
    },

    #[error("session duration {secs} s is out of range")]
    DurationOutOfRange { secs: u64 },

    #[error("cannot read the AWS config files")]
    ProfileLoad(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("profile `{profile}` not found")]
    ProfileNotFound { profile: String, files: String },

    #[error("profile `{profile}`: `source_profile` loops back to `{at}`")]
    SourceProfileLoop { profile: String, at: String },

    #[error("no long-term AWS access key for profile `{profile}`")]
    NoSourceCredentials { profile: String },

    #[error("the source credentials are temporary (they come from {origin})")]
    TemporarySourceCredentials { origin: String },

    #[error("profile `{profile}` gets its keys from `credential_process`, which runs mfa-exec")]
    CredentialProcessLoop { profile: String },

    #[error("profile `{profile}`: `credential_process` failed")]
    CredentialProcess {
        profile: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    #[error("profile `{profile}` assumes role `{role}` but has no usable `source_profile`{}", .named.as_ref().map(|s| format!(" (`{s}` is not a profile)")).unwrap_or_default())]
    RoleWithoutSource {
        profile: String,
        role: String,
        named: Option<String>,
        credential_source: bool,
    },

    #[error(
        "profile `{profile}`: its source `{via}` assumes role `{role}` itself; chained roles are not supported"
    )]
    ChainedRole {
        profile: String,
        via: String,
        role: String,
    },

    #[error("the IAM user of profile `{profile}` has no MFA device")]
    NoMfaDevice { profile: String },

    #[error("the only MFA devices are FIDO security keys, which cannot be used from the command line: {}", .devices.join(", "))]
    OnlyFidoDevices { devices: Vec<String> },

    #[error("several MFA devices: {}", .devices.join(", "))]
    SeveralMfaDevices { devices: Vec<String> },

    #[error("`{value}` is not an MFA code: expected 6 digits")]
    MalformedCode { value: String, from: &'static str },

    #[error("no terminal to ask for the MFA code")]
    NoTerminal(#[source] std::io::Error),

    #[error("cannot read the MFA code from the terminal")]
    Terminal(#[source] std::io::Error),

    #[error("`mfa_process` of profile `{profile}` failed: {reason}")]
    CodeProcess { profile: String, reason: String },

    #[error("cancelled")]
    Cancelled,

    #[error("gave up after {tries} wrong MFA codes")]
    TooManyTries { tries: u32 },

    #[error("{0}")]
    Sts(Box<crate::sts::StsError>),

    #[error("cannot read the CA bundle `{}`", .path.display())]
    CaBundle {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot change the session cache in `{}`", .dir.display())]
    Cache {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cannot set up the HTTP client")]
    HttpClient(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("cannot start the credential server")]
    Server(#[source] std::io::Error),

    #[error("cannot write to standard output")]
    Stdout(#[source] std::io::Error),
}

impl From<Box<crate::sts::StsError>> for Error {
    fn from(e: Box<crate::sts::StsError>) -> Self {
        Error::Sts(e)
    }
}

impl Error {
    /// The exit status for this error, following env(1) and timeout(1).
    #[must_use]
    pub fn exit_status(&self) -> u8 {
        match self {
            Error::CommandNotFound(_) => EXIT_NOT_FOUND,
            Error::CommandNotExecutable(_) => EXIT_NOT_EXECUTABLE,
            Error::Exec { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
                _ => EXIT_NOT_EXECUTABLE,
            },
            Error::Cancelled => EXIT_CANCELLED,
            Error::InvalidDuration { .. }
            | Error::DurationOutOfRange { .. }
            | Error::ProfileLoad(_)
            | Error::ProfileNotFound { .. }
            | Error::SourceProfileLoop { .. }
            | Error::NoSourceCredentials { .. }
            | Error::TemporarySourceCredentials { .. }
            | Error::CredentialProcess { .. }
            | Error::CredentialProcessLoop { .. }
            | Error::RoleWithoutSource { .. }
            | Error::ChainedRole { .. }
            | Error::NoMfaDevice { .. }
            | Error::OnlyFidoDevices { .. }
            | Error::SeveralMfaDevices { .. }
            | Error::MalformedCode { .. }
            | Error::NoTerminal(_)
            | Error::Terminal(_)
            | Error::CodeProcess { .. }
            | Error::TooManyTries { .. }
            | Error::Sts(_)
            | Error::CaBundle { .. }
            | Error::Cache { .. }
            | Error::Server(_)
            | Error::HttpClient(_)
            | Error::Stdout(_) => EXIT_FAILURE,
        }
    }

    /// What the user can do about it, when there is something to say.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            Error::CommandNotFound(_) => {
                "check the spelling, or that the program is on `PATH`".into()
            }
            Error::CommandNotExecutable(_) => {
                "check the file's permissions (`chmod +x`) and that it is not a directory".into()
            }
            Error::InvalidDuration { .. } => {
                "use seconds (`3600`) or a unit: `90m`, `12h`, `1h30m`".into()
            }
            Error::DurationOutOfRange { .. } => {
                "STS accepts 15m to 36h for an IAM user (at most 1h for the root user)".into()
            }
            Error::ProfileNotFound { files, .. } => {
                format!("add it to {files}, or pick another with `--profile` or `AWS_PROFILE`")
            }
            Error::SourceProfileLoop { .. } => {
                "make the chain of `source_profile` entries end at a profile with keys".into()
            }
            Error::NoSourceCredentials { profile } => format!(
                "put `aws_access_key_id` and `aws_secret_access_key` for `{profile}` in \
                 ~/.aws/credentials (`aws configure --profile {profile}`)"
            ),
            Error::TemporarySourceCredentials { .. } => {
                "STS refuses to make an MFA session from a session; use the IAM user's \
                 long-term access key (AKIA…), e.g. from ~/.aws/credentials"
                    .into()
            }
            Error::NoMfaDevice { .. } => "assign a virtual MFA device in the console: IAM > Users \
                                            > your user > Security credentials > Assign MFA device"
                .into(),
            Error::OnlyFidoDevices { .. } => "assign a virtual (authenticator app) or hardware \
                                              TOTP device as well; STS needs a 6-digit code"
                .into(),
            Error::SeveralMfaDevices { .. } => {
                "pick one with `--serial-number`, or set `mfa_serial` in the profile".into()
            }
            Error::MalformedCode { from, .. } => {
                format!("{from} must give the 6-digit code shown by the authenticator app")
            }
            Error::NoTerminal(_) => "pass the code with `--token-code`, or set `mfa_process` in \
                                     the profile to a command that prints it"
                .into(),
            Error::CredentialProcessLoop { .. } => "mfa-exec needs long-term keys: pass \
                `--profile` naming the profile with `aws_access_key_id`, not the one whose \
                `credential_process` is mfa-exec"
                .into(),
            Error::CodeProcess { .. } => {
                "run the command by hand; it must print the 6-digit code on stdout".into()
            }
            Error::TooManyTries { .. } => {
                "check the authenticator app's entry and the device's clock, then run again".into()
            }
            Error::RoleWithoutSource {
                profile,
                credential_source,
                ..
            } => {
                let extra = if *credential_source {
                    "; `credential_source` (instance or container credentials) cannot make an MFA session"
                } else {
                    ""
                };
                format!(
                    "add `source_profile = NAME` to profile `{profile}`, naming the profile with \
                     your long-term keys{extra}"
                )
            }
            Error::ChainedRole { via, .. } => {
                format!("point `source_profile` at a profile with long-term keys, not at `{via}`")
            }
            Error::Sts(e) => return e.hint(),
            Error::CaBundle { .. } => "check `AWS_CA_BUNDLE` or the profile's `ca_bundle`".into(),
            Error::Exec { .. }
            | Error::ProfileLoad(_)
            | Error::CredentialProcess { .. }
            | Error::Terminal(_)
            | Error::Cancelled
            | Error::Cache { .. }
            | Error::Server(_)
            | Error::HttpClient(_)
            | Error::Stdout(_) => return None,
        };
        Some(hint)
    }

    /// The full report: `mfa-exec: …`, `caused by: …` lines, then `hint: …`.
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = format!("mfa-exec: {self}\n");
        let mut source = std::error::Error::source(self);
        // `Sts` shows its own detail; its sources are already in the message.
        if matches!(self, Error::Sts(_)) {
            source = None;
        }
        while let Some(cause) = source {
            let _ = writeln!(out, "caused by: {cause}");
            source = cause.source();
        }
        if let Some(hint) = self.hint() {
            let _ = writeln!(out, "hint: {hint}");
        }
        out
    }

    #[must_use]
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_errors_use_env_exit_statuses() {
        assert_eq!(Error::CommandNotFound("x".into()).exit_status(), 127);
        assert_eq!(Error::CommandNotExecutable("x".into()).exit_status(), 126);
        assert_eq!(Error::Cancelled.exit_status(), 130);
        assert_eq!(
            Error::NoMfaDevice {
                profile: "p".into()
            }
            .exit_status(),
            125
        );
    }

    #[test]
    fn report_has_message_then_hint() {
        let report = Error::CommandNotFound("terrafrom".into()).report();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[0], "mfa-exec: `terrafrom`: command not found");
        assert!(lines[1].starts_with("hint: "));
    }
}
