
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'mfa-exec' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'mfa-exec'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'mfa-exec' {
            [CompletionResult]::new('-p', '-p', [CompletionResultType]::ParameterName, 'Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]')
            [CompletionResult]::new('--profile', '--profile', [CompletionResultType]::ParameterName, 'Profile with the long-term keys [env: `AWS_PROFILE`; else `default`]')
            [CompletionResult]::new('-s', '-s', [CompletionResultType]::ParameterName, 'ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]')
            [CompletionResult]::new('--serial-number', '--serial-number', [CompletionResultType]::ParameterName, 'ARN of the MFA device [env: `AWS_MFA_SERIAL`; else profile `mfa_serial`]')
            [CompletionResult]::new('-t', '-t', [CompletionResultType]::ParameterName, 'The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]')
            [CompletionResult]::new('--token-code', '--token-code', [CompletionResultType]::ParameterName, 'The 6-digit MFA code [else profile `mfa_process`; else asked on the terminal]')
            [CompletionResult]::new('-d', '-d', [CompletionResultType]::ParameterName, 'Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)')
            [CompletionResult]::new('--duration', '--duration', [CompletionResultType]::ParameterName, 'Session lifetime, 15m..36h: `12h`, `90m`, `3600` (seconds)')
            [CompletionResult]::new('--role-arn', '--role-arn', [CompletionResultType]::ParameterName, 'Assume this role with the MFA session [else profile `role_arn`]')
            [CompletionResult]::new('--region', '--region', [CompletionResultType]::ParameterName, 'AWS region [else `AWS_REGION`, `AWS_DEFAULT_REGION`, profile `region`]')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Give up on an STS request after this long (connecting: at most 3s)')
            [CompletionResult]::new('--min-remaining', '--min-remaining', [CompletionResultType]::ParameterName, 'A cached session with less left than this counts as expired')
            [CompletionResult]::new('--export', '--export', [CompletionResultType]::ParameterName, 'Print the credentials instead of running a command: `json` is the `credential_process` format; `env`/`fish` print export lines to `eval` (WARNING: that puts the secrets in your shell and its children)')
            [CompletionResult]::new('--completions', '--completions', [CompletionResultType]::ParameterName, 'Print a completion script for SHELL and exit')
            [CompletionResult]::new('--no-cache', '--no-cache', [CompletionResultType]::ParameterName, 'Neither read nor write the session cache')
            [CompletionResult]::new('-f', '-f', [CompletionResultType]::ParameterName, 'Ignore a cached session and ask for a new code')
            [CompletionResult]::new('--refresh', '--refresh', [CompletionResultType]::ParameterName, 'Ignore a cached session and ask for a new code')
            [CompletionResult]::new('--login', '--login', [CompletionResultType]::ParameterName, 'Get (or refresh) the session and cache it; run nothing')
            [CompletionResult]::new('--logout', '--logout', [CompletionResultType]::ParameterName, 'Delete this profile''s cached sessions (with --all: every profile''s)')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'With --logout: delete every cached session')
            [CompletionResult]::new('--status', '--status', [CompletionResultType]::ParameterName, 'Show profiles, MFA devices and cached sessions with time left; never secrets')
            [CompletionResult]::new('--server', '--server', [CompletionResultType]::ParameterName, 'Run the command as a child and serve it credentials that are refreshed before they expire (the container credential endpoint on 127.0.0.1), instead of fixed keys in its environment: for runs longer than a session')
            [CompletionResult]::new('-v', '-v', [CompletionResultType]::ParameterName, 'Diagnostics on stderr (never secrets)')
            [CompletionResult]::new('--verbose', '--verbose', [CompletionResultType]::ParameterName, 'Diagnostics on stderr (never secrets)')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
