complete -c mfa-exec -s p -l profile -d 'Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]' -r
complete -c mfa-exec -s s -l serial-number -d 'ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]' -r
complete -c mfa-exec -s t -l token-code -d 'The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]' -r
complete -c mfa-exec -s d -l duration -d 'Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)' -r
complete -c mfa-exec -l role-arn -d 'Assume this role with the MFA session [else profile `role_arn`]' -r
complete -c mfa-exec -l region -d 'AWS region [else `AWS_REGION`, `AWS_DEFAULT_REGION`, profile `region`]' -r
complete -c mfa-exec -l timeout -d 'Give up on an STS request after this long (connecting: at most 3s)' -r
complete -c mfa-exec -l min-remaining -d 'A cached session with less left than this counts as expired' -r
complete -c mfa-exec -l export -d 'Print the credentials instead of running a command: `json` is the `credential_process` format; `env`/`fish` print export lines to `eval` (WARNING: that puts the secrets in your shell and its children)' -r -f -a "env\t'`export NAME=\'value\'` lines for sh, bash, zsh'
fish\t'`set -gx NAME \'value\'` lines for fish'
json\t'JSON for `credential_process` (Version 1)'"
complete -c mfa-exec -l completions -d 'Print a completion script for SHELL and exit' -r -f -a "bash\t''
elvish\t''
fish\t''
powershell\t''
zsh\t''"
complete -c mfa-exec -l no-cache -d 'Neither read nor write the session cache'
complete -c mfa-exec -s f -l refresh -d 'Ignore a cached session and ask for a new code'
complete -c mfa-exec -l login -d 'Get (or refresh) the session and cache it; run nothing'
complete -c mfa-exec -l logout -d 'Delete this profile\'s cached sessions (with --all: every profile\'s)'
complete -c mfa-exec -l all -d 'With --logout: delete every cached session'
complete -c mfa-exec -l status -d 'Show profiles, MFA devices and cached sessions with time left; never secrets'
complete -c mfa-exec -l server -d 'Run the command as a child and serve it credentials that are refreshed before they expire (the container credential endpoint on 127.0.0.1), instead of fixed keys in its environment: for runs longer than a session'
complete -c mfa-exec -s v -l verbose -d 'Diagnostics on stderr (never secrets)'
complete -c mfa-exec -s h -l help -d 'Print help (see more with \'--help\')'
complete -c mfa-exec -s V -l version -d 'Print version'
