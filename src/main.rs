//! The `mfa-exec` binary: everything lives in the library.

fn main() -> std::process::ExitCode {
    mfa_exec::main()
}
