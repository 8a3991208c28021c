
use builtin;
use str;

set edit:completion:arg-completer[mfa-exec] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'mfa-exec'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'mfa-exec'= {
            cand -p 'Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]'
            cand --profile 'Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]'
            cand -s 'ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]'
            cand --serial-number 'ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]'
            cand -t 'The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]'
            cand --token-code 'The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]'
            cand -d 'Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)'
            cand --duration 'Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)'
            cand --role-arn 'Assume this role with the MFA session [else profile `role_arn`]'
            cand --region 'AWS region [else `AWS_REGION`, `AWS_DEFAULT_REGION`, profile `region`]'
            cand --timeout 'Give up on an STS request after this long (connecting: at most 3s)'
            cand --min-remaining 'A cached session with less left than this counts as expired'
            cand --export 'Print the credentials instead of running a command: `json` is the `credential_process` format; `env`/`fish` print export lines to `eval` (WARNING: that puts the secrets in your shell and its children)'
            cand --completions 'Print a completion script for SHELL and exit'
            cand --no-cache 'Neither read nor write the session cache'
            cand -f 'Ignore a cached session and ask for a new code'
            cand --refresh 'Ignore a cached session and ask for a new code'
            cand --login 'Get (or refresh) the session and cache it; run nothing'
            cand --logout 'Delete this profile''s cached sessions (with --all: every profile''s)'
            cand --all 'With --logout: delete every cached session'
            cand --status 'Show profiles, MFA devices and cached sessions with time left; never secrets'
            cand --server 'Run the command as a child and serve it credentials that are refreshed before they expire (the container credential endpoint on 127.0.0.1), instead of fixed keys in its environment: for runs longer than a session'
            cand -v 'Diagnostics on stderr (never secrets)'
            cand --verbose 'Diagnostics on stderr (never secrets)'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
    ]
    $completions[$command]
}
