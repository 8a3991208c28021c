//! The one integration test binary: mfa-exec run as a user would run it,
//! against a fake STS on 127.0.0.1, moto, the real AWS CLI, and a real pty.

mod fake_sts;
mod peers;
mod support;

mod cache;
mod cli;
mod e2e;
mod exec;
mod prompt;
mod roles;
mod server;
mod sts;
