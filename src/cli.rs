//! The command line, as clap derive types; nothing else knows clap.

use std::ffi::OsString;

use clap::{CommandFactory, Parser, ValueHint};
use clap_complete::Shell;

const EXAMPLES: &str = "\
Examples:
  mfa-exec -- aws ec2 describe-instances        run the AWS CLI with an MFA session
  mfa-exec -p prod -- terraform apply           use the keys of profile `prod`
  mfa-exec -t 123456 -- make deploy             pass the code instead of being asked
  mfa-exec -p prod                              start $SHELL with the session
  mfa-exec --server -p prod -- terraform apply  refresh credentials while it runs
  mfa-exec --login                              get a session now, use it all day
  mfa-exec --status                             what is cached, and for how long

In ~/.aws/config, for tools that cannot be wrapped (SDKs, IDEs, terraform):
  [profile dev]
  credential_process = mfa-exec --profile base --export json

The code is read from `--token-code`, else from the profile's `mfa_process`
command, else asked on the terminal (/dev/tty) without echo. The session's
credentials are set in the command's environment only, and cached (0600, in
~/.cache/mfa-exec) so that one code lasts the session's lifetime.

Exit status: the command's own; 125 if mfa-exec fails; 126 if the command
cannot run; 127 if it is not found; 130 if cancelled at the prompt.";

/// Run a command with an MFA-backed AWS STS session in its environment.
// Each flag is a bool because that is what clap's derive gives a flag.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Parser)]
#[command(
    name = "mfa-exec",
    version,
    about,
    after_help = EXAMPLES,
    max_term_width = 100
)]
pub struct Cli {
    /// Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]
    #[arg(short, long, value_name = "NAME")]
    pub profile: Option<String>,

    /// ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]
    #[arg(short = 's', long, value_name = "ARN")]
    pub serial_number: Option<String>,

    /// The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]
    #[arg(short = 't', long, value_name = "CODE")]
    pub token_code: Option<String>,

    /// Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)
    #[arg(short, long, value_name = "DUR", default_value = "12h")]
    pub duration: String,

    /// Assume this role with the MFA session [else profile `role_arn`]
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,

    /// AWS region [else `AWS_REGION`, `AWS_DEFAULT_REGION`, profile `region`]
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,

    /// Give up on an STS request after this long (connecting: at most 3s)
    #[arg(long, value_name = "DUR", default_value = "30s")]
    pub timeout: String,

    /// Neither read nor write the session cache
    #[arg(long)]
    pub no_cache: bool,

    /// Ignore a cached session and ask for a new code
    #[arg(short = 'f', long)]
    pub refresh: bool,

    /// A cached session with less left than this counts as expired
    #[arg(long, value_name = "DUR", default_value = "15m")]
    pub min_remaining: String,

    /// Get (or refresh) the session and cache it; run nothing
    #[arg(long, group = "action", conflicts_with = "command")]
    pub login: bool,

    /// Delete this profile's cached sessions (with --all: every profile's)
    #[arg(long, group = "action", conflicts_with = "command")]
    pub logout: bool,

    /// With --logout: delete every cached session
    #[arg(long, requires = "logout")]
    pub all: bool,

    /// Show profiles, MFA devices and cached sessions with time left; never secrets
    #[arg(long, group = "action", conflicts_with = "command")]
    pub status: bool,

    /// Run the command as a child and serve it credentials that are refreshed
    /// before they expire (the container credential endpoint on 127.0.0.1),
    /// instead of fixed keys in its environment: for runs longer than a session
    #[arg(long, conflicts_with_all = ["login", "logout", "status", "export"])]
    pub server: bool,

    /// Print the credentials instead of running a command: `json` is the
    /// `credential_process` format; `env`/`fish` print export lines to `eval`
    /// (WARNING: that puts the secrets in your shell and its children)
    #[arg(
        long,
        value_name = "FORMAT",
        group = "action",
        conflicts_with = "command"
    )]
    pub export: Option<ExportFormat>,

    /// Print a completion script for SHELL and exit
    #[arg(
        long,
        value_name = "SHELL",
        group = "action",
        conflicts_with = "command"
    )]
    pub completions: Option<Shell>,

    /// Diagnostics on stderr (never secrets)
    #[arg(short, long)]
    pub verbose: bool,

    /// The command to run, and its arguments [default: `$SHELL`]
    #[arg(
        value_name = "COMMAND",
        trailing_var_arg = true,
        value_hint = ValueHint::CommandWithArguments,
        value_parser = clap::value_parser!(OsString)
    )]
    pub command: Vec<OsString>,
}

/// What `--export` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// `export NAME='value'` lines for sh, bash, zsh
    Env,
    /// `set -gx NAME 'value'` lines for fish
    Fish,
    /// JSON for `credential_process` (Version 1)
    Json,
}

impl Cli {
    /// The clap command, for completions and tests.
    #[must_use]
    pub fn command() -> clap::Command {
        <Self as CommandFactory>::command()
    }
}

/// Writes the completion script for `shell` into `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "mfa-exec", out);
}

/// Every shell we ship a completion script for, with its file name.
#[must_use]
pub fn completion_files() -> Vec<(Shell, &'static str)> {
    vec![
        (Shell::Bash, "mfa-exec.bash"),
        (Shell::Zsh, "_mfa-exec"),
        (Shell::Fish, "mfa-exec.fish"),
        (Shell::Elvish, "mfa-exec.elv"),
        (Shell::PowerShell, "_mfa-exec.ps1"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn options_after_the_command_belong_to_the_command() {
        let cli = Cli::try_parse_from(["mfa-exec", "-p", "x", "aws", "-p", "--debug"]).unwrap();
        assert_eq!(cli.profile.as_deref(), Some("x"));
        assert_eq!(cli.command, ["aws", "-p", "--debug"]);
    }

    #[test]
    fn double_dash_separates_the_command() {
        let cli = Cli::try_parse_from(["mfa-exec", "--", "-weird", "a"]).unwrap();
        assert_eq!(cli.command, ["-weird", "a"]);
    }

    #[test]
    fn the_man_page_is_current() {
        // Regenerate with `MFA_EXEC_UPDATE_COMPLETIONS=1 cargo test man_page`.
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("man/mfa-exec.1");
        let mut fresh = Vec::new();
        clap_mangen::Man::new(Cli::command())
            .render(&mut fresh)
            .unwrap();
        if std::env::var_os("MFA_EXEC_UPDATE_COMPLETIONS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &fresh).unwrap();
        }
        assert!(
            std::fs::read(&path).ok().as_deref() == Some(fresh.as_slice()),
            "man/mfa-exec.1 is stale: run `MFA_EXEC_UPDATE_COMPLETIONS=1 cargo test man_page`"
        );
    }

    #[test]
    fn completions_are_current() {
        // Regenerate with `MFA_EXEC_UPDATE_COMPLETIONS=1 cargo test`.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
        let update = std::env::var_os("MFA_EXEC_UPDATE_COMPLETIONS").is_some();
        let mut stale = Vec::new();
        for (shell, name) in completion_files() {
            let mut fresh = Vec::new();
            write_completions(shell, &mut fresh);
            let path = dir.join(name);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &fresh).unwrap();
            } else if std::fs::read(&path).ok().as_deref() != Some(fresh.as_slice()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "completions/{stale:?} are stale: run `MFA_EXEC_UPDATE_COMPLETIONS=1 cargo test completions`"
        );
    }
}
