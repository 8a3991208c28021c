//! Runs a command once and prints its peak resident set size in KiB.
//!
//! Used by `bench/bench.py`. A child's `ru_maxrss` includes the memory of the
//! process it was spawned from (the kernel keeps the old address space's high
//! water mark across exec), so measuring from Python would report Python's
//! size; spawned from this small program, the floor is a few hundred KiB.

use std::process::{Command, ExitCode};

use nix::sys::resource::{UsageWho, getrusage};

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let Some(program) = args.next() else {
        eprintln!("usage: peak_rss COMMAND [ARG]...");
        return ExitCode::from(2);
    };
    let status = match Command::new(program).args(args).status() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("peak_rss: {e}");
            return ExitCode::from(127);
        }
    };
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).expect("getrusage");
    println!("{}", usage.max_rss());
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
