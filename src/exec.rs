//! Finding the command (before anything else happens) and becoming it.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::env::EnvPlan;
use crate::error::Error;

/// Resolves `program` as a shell would: a path if it has a `/`, else a `PATH` search.
///
/// Done first, so a typo costs no MFA code and no request.
pub fn resolve(program: &OsStr, path_var: Option<&OsStr>, cwd: &Path) -> Result<PathBuf, Error> {
    if let Ok(found) = which::which_in(program, path_var, cwd) {
        return Ok(found);
    }
    // `which` only reports executables; tell "exists but cannot run" (126)
    // from "not there" (127), as shells do.
    let has_slash = program.as_encoded_bytes().contains(&b'/');
    let candidates: Vec<PathBuf> = if has_slash {
        vec![cwd.join(program)]
    } else {
        path_var
            .map(|p| {
                std::env::split_paths(p)
                    .map(|dir| cwd.join(dir).join(program))
                    .collect()
            })
            .unwrap_or_default()
    };
    match candidates.into_iter().find(|c| c.exists()) {
        Some(found) if has_slash || found.is_file() => Err(Error::CommandNotExecutable(found)),
        _ => Err(Error::CommandNotFound(program.to_owned())),
    }
}

/// The command with its `argv[0]` as typed, its arguments, and `plan`
/// applied to the inherited environment.
#[must_use]
pub fn command(path: &Path, argv0: &OsStr, args: &[OsString], plan: &EnvPlan) -> Command {
    let mut command = Command::new(path);
    command.arg0(argv0).args(args);
    for (name, change) in plan {
        match change {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command
}

/// Replaces this process with the command; returns only on failure.
///
/// The same PID runs on, so the command's exit status and signals reach the
/// caller unchanged; std's exec also resets SIGPIPE to the default.
#[must_use]
pub fn exec(path: &Path, argv0: &OsStr, args: &[OsString], plan: &EnvPlan) -> Error {
    let source = command(path, argv0, args, plan).exec();
    let executable = std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0);
    if source.kind() == std::io::ErrorKind::NotFound && executable {
        // ENOENT for an existing file means its interpreter (`#!`) is missing.
        return Error::Exec {
            command: path.to_owned(),
            source: std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{source}; is the interpreter on its `#!` line installed?"),
            ),
        };
    }
    Error::Exec {
        command: path.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn missing_command_is_127_and_non_executable_is_126() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain");
        fs::write(&plain, "#!/bin/sh\n").unwrap();
        let path = Some(dir.path().as_os_str());

        let err = resolve(OsStr::new("nope-not-here"), path, dir.path()).unwrap_err();
        assert_eq!(err.exit_status(), 127);
        let err = resolve(OsStr::new("plain"), path, dir.path()).unwrap_err();
        assert_eq!(err.exit_status(), 126);
        let err = resolve(plain.as_os_str(), path, dir.path()).unwrap_err();
        assert_eq!(err.exit_status(), 126);
        let err = resolve(dir.path().as_os_str(), path, dir.path()).unwrap_err();
        assert_eq!(err.exit_status(), 126, "a directory cannot run");

        fs::set_permissions(&plain, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            resolve(OsStr::new("plain"), path, dir.path()).unwrap(),
            plain
        );
    }
}
