#!/usr/bin/env python3
"""Speed, memory and size of mfa-exec, measured against a baseline in one go.

Usage: python3 bench/bench.py [--runs N]

Builds the release binary and the fake STS (examples/fake_sts.rs), starts the
fake STS on 127.0.0.1, and times alternately, N times each:

  baseline  env A=... B=... C=... true
  full      mfa-exec --no-cache -t 123456 -- true   (profile, GetSessionToken, exec)
  cached    mfa-exec -- true                        (profile, cache entry, exec)

then the parallel cold start: 20 runs started together on an empty cache
(one asks STS, 19 wait on the lock and reuse) against one cold run followed
by 20 cached runs, one after another.

Wall time is measured around spawn+wait; peak RSS is the child's ru_maxrss as
seen by examples/peak_rss.rs (spawning from Python would add Python's own
size, which the kernel carries across exec). Medians and ratios are printed. Nothing
here contacts anything but 127.0.0.1. Targets: full run median <= 15 ms,
peak RSS <= 12 MB, stripped release binary <= 8 MB (issue 2); cached run
median <= 1.5x baseline, peak RSS <= 5 MB; 20 parallel cold runs <= 1.5x
(one cold + 20 cached) (issue 3).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build():
    subprocess.run(
        [
            "cargo", "build", "--release", "--bin", "mfa-exec",
            "--example", "fake_sts", "--example", "peak_rss",
        ],
        cwd=ROOT,
        check=True,
    )
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return (
        os.path.join(target, "release", "mfa-exec"),
        os.path.join(target, "release", "examples", "fake_sts"),
        os.path.join(target, "release", "examples", "peak_rss"),
    )


def wall_time(argv, env):
    """Runs argv once; returns its wall time in seconds (spawn to reaped)."""
    start = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env)
    _, status = os.waitpid(pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv} failed with status {status}")
    return wall


def peak_rss(peak_rss_bin, argv, env):
    """Peak RSS of argv in KiB, spawned from the small `peak_rss` program."""
    out = subprocess.run([peak_rss_bin, *argv], env=env, check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def parallel(mfa_exec, true, env, home, rounds):
    """20 cold runs at once vs one cold run then 20 cached runs in a row."""
    together, in_a_row = [], []
    for i in range(rounds):
        cold = dict(env, XDG_CACHE_HOME=os.path.join(home, f"cold-{i}"))
        start = time.perf_counter()
        pids = [
            os.posix_spawn(mfa_exec, [mfa_exec, "-t", "123456", "--", true], cold)
            for _ in range(20)
        ]
        for pid in pids:
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                sys.exit("a parallel run failed")
        together.append(time.perf_counter() - start)

        serial = dict(env, XDG_CACHE_HOME=os.path.join(home, f"serial-{i}"))
        start = time.perf_counter()
        wall_time([mfa_exec, "-t", "123456", "--", true], serial)
        for _ in range(20):
            wall_time([mfa_exec, "--", true], serial)
        in_a_row.append(time.perf_counter() - start)
    t, r = statistics.median(together), statistics.median(in_a_row)
    print(
        f"20 parallel cold runs: {t * 1e3:.1f} ms; one cold + 20 cached in a row: "
        f"{r * 1e3:.1f} ms; ratio {t / r:.2f} (median of {rounds} rounds)"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()

    mfa_exec, fake_sts, peak_rss_bin = build()
    server = subprocess.Popen([fake_sts], stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        home = tempfile.mkdtemp(prefix="mfa-exec-bench-")
        os.makedirs(os.path.join(home, ".aws"))
        with open(os.path.join(home, ".aws", "credentials"), "w") as f:
            f.write(
                "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
                "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
            )
        with open(os.path.join(home, ".aws", "config"), "w") as f:
            f.write("[default]\nmfa_serial = arn:aws:iam::123456789012:mfa/alice\nregion = eu-west-1\n")
        env = {
            "HOME": home,
            "PATH": "/usr/bin:/bin",
            "XDG_CACHE_HOME": os.path.join(home, ".cache"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL": url,
            "AWS_ENDPOINT_URL_STS": url,
        }
        true = "/usr/bin/true" if os.path.exists("/usr/bin/true") else "/bin/true"
        cases = {
            "baseline": ["/usr/bin/env", "A=1", "B=2", "C=3", true],
            "full": [mfa_exec, "--no-cache", "-t", "123456", "--", true],
            "cached": [mfa_exec, "--", true],
        }
        wall_time([mfa_exec, "--login", "-t", "123456"], env)
        results = {name: ([], []) for name in cases}
        for _ in range(5):  # warm the page cache
            for argv in cases.values():
                wall_time(argv, env)
        for i in range(args.runs):
            for name, argv in cases.items():
                results[name][0].append(wall_time(argv, env))
                if i % 10 == 0:
                    results[name][1].append(peak_rss(peak_rss_bin, argv, env))

        base_wall = statistics.median(results["baseline"][0])
        print(f"{args.runs} runs each, alternating; STS at {url}")
        print(f"{'case':<10} {'median ms':>10} {'p90 ms':>8} {'ratio':>7} {'peak RSS MB':>12}")
        for name, (walls, rsss) in results.items():
            med = statistics.median(walls)
            p90 = statistics.quantiles(walls, n=10)[-1]
            print(
                f"{name:<10} {med * 1e3:>10.2f} {p90 * 1e3:>8.2f} {med / base_wall:>7.2f} "
                f"{max(rsss) / 1024:>12.2f}"
            )
        parallel(mfa_exec, true, env, home, rounds=max(3, args.runs // 40))
        size = os.path.getsize(mfa_exec)
        print(f"release binary: {size / 1e6:.2f} MB ({size} bytes, stripped)")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
