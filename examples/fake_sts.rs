//! Runs the integration tests' fake STS endpoint until killed.
//!
//! Prints `http://127.0.0.1:PORT` as the first line of stdout, then serves
//! the default replies (see `tests/it/fake_sts.rs`).

use std::io::Write;

#[path = "../tests/it/fake_sts.rs"]
mod fake_sts;

fn main() {
    let server = fake_sts::FakeSts::start();
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", server.url()).expect("write URL to stdout");
        out.flush().expect("flush stdout");
    }
    loop {
        std::thread::park();
    }
}
