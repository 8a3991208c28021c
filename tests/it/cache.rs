//! The session cache as a user meets it: one code per session lifetime,
//! private files written atomically, suspicious reads that warn and carry on,
//! one code for many parallel runs, and no run blocked or damaged by a
//! killed one.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::fake_sts::{FakeSts, Reply};
use crate::support::{Home, KEY_ID, SECRET, SERIAL, assert_no_secrets, bin, stderr, stdout};

/// What the child prints: the session it was given.
const SHOW_SESSION: &str = "echo $AWS_ACCESS_KEY_ID $AWS_SESSION_TOKEN";

fn cache_dir(home: &Home) -> PathBuf {
    home.path().join(".cache/mfa-exec")
}

/// `mfa-exec ARGS` as given.
fn run(home: &Home, sts: &FakeSts, args: &[&str]) -> Output {
    home.cmd(&sts.url()).args(args).output().unwrap()
}

/// `mfa-exec ARGS -- sh -c 'echo $AWS_ACCESS_KEY_ID $AWS_SESSION_TOKEN'`.
fn show(home: &Home, sts: &FakeSts, args: &[&str]) -> Output {
    home.cmd(&sts.url())
        .args(args)
        .args(["--", "sh", "-c", SHOW_SESSION])
        .output()
        .unwrap()
}

/// The line `show` prints for the session `Reply::session(n)`.
fn session_line(n: u32) -> String {
    let Reply::Session {
        access_key_id,
        session_token,
        ..
    } = Reply::session(n)
    else {
        unreachable!("Reply::session is a session")
    };
    format!("{access_key_id} {session_token}\n")
}

/// The secret parts of `Reply::session(n)`.
fn session_secrets(n: u32) -> [String; 2] {
    let Reply::Session {
        secret_access_key,
        session_token,
        ..
    } = Reply::session(n)
    else {
        unreachable!("Reply::session is a session")
    };
    [secret_access_key, session_token]
}

/// Asserts a run succeeded and printed the session `n`.
fn assert_saw_session(out: &Output, n: u32) {
    assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
    assert_eq!(stdout(out), session_line(n), "stderr: {}", stderr(out));
}

/// The cache entries (`*.json`, not the `.tmp-*` files), sorted.
fn entries(home: &Home) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(cache_dir(home)) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = dir
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "json")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    out.sort();
    out
}

/// The one cache entry.
fn the_entry(home: &Home) -> PathBuf {
    let mut all = entries(home);
    assert_eq!(all.len(), 1, "{all:?}");
    all.pop().unwrap()
}

/// Leftover temporary files of interrupted writes.
fn temp_files(home: &Home) -> Vec<PathBuf> {
    let Ok(dir) = fs::read_dir(cache_dir(home)) else {
        return Vec::new();
    };
    dir.map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect()
}

/// The lock file (there is exactly one).
fn the_lock(home: &Home) -> PathBuf {
    let locks: Vec<PathBuf> = fs::read_dir(cache_dir(home))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "lock"))
        .collect();
    assert_eq!(locks.len(), 1, "{locks:?}");
    locks.into_iter().next().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// Writes a config whose `default` profile gets its code from `command`.
fn with_mfa_process(home: &Home, command: &Path) {
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\nmfa_process = {}\n",
        command.display()
    ));
}

/// Nothing of the cache outside `<home>/.cache/mfa-exec`: no entry, lock or
/// temp file elsewhere in the home, nothing else in `<home>/.cache`, and no
/// session secret in any other file.
fn assert_cache_stays_in_its_directory(home: &Home) {
    let cache = cache_dir(home);
    let mut dirs = vec![home.path().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path == cache {
                continue;
            }
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let cache_like = path.extension().is_some_and(|e| e == "json" || e == "lock");
            assert!(
                !(cache_like || name.starts_with(".tmp-")),
                "cache file outside the cache directory: {}",
                path.display()
            );
            if kind.is_file() {
                let text = String::from_utf8_lossy(&fs::read(&path).unwrap()).into_owned();
                for secret in ["fakeSessionSecret/", "FakeSessionToken"] {
                    assert!(
                        !text.contains(secret),
                        "a session secret outside the cache directory: {}",
                        path.display()
                    );
                }
            }
        }
    }
    if let Ok(dir) = fs::read_dir(home.path().join(".cache")) {
        let names: Vec<String> = dir
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.iter().all(|n| n == "mfa-exec"),
            "other things in ~/.cache: {names:?}"
        );
    }
}

/// Kills a process group when dropped, so no test leaves a sleeper behind.
struct KillGroupOnDrop(Pid);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

fn pid_of(child: &std::process::Child) -> Pid {
    Pid::from_raw(i32::try_from(child.id()).unwrap())
}

/// Waits until `path` holds a line, for at most `limit`.
fn wait_for_line(path: &Path, limit: Duration) -> Option<String> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return Some(text);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

// --- reuse -------------------------------------------------------------------

#[test]
fn a_second_run_reuses_the_cached_session_without_a_request() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();

    let first = show(&home, &sts, &["-t", "123456"]);
    assert_saw_session(&first, 1);
    assert_eq!(sts.count(), 1);

    // No code given: a cached session needs none.
    let second = show(&home, &sts, &[]);
    assert_saw_session(&second, 1);
    assert_eq!(stderr(&second), "");
    assert_eq!(sts.count(), 1, "the second run asked STS again");
    assert_eq!(first.stdout, second.stdout);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn refresh_gets_a_new_session_that_later_runs_reuse() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.push(Reply::session(2));
    sts.set_default(Reply::session(3));
    let home = Home::new();

    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 1);
    assert_saw_session(&show(&home, &sts, &["--refresh", "-t", "123456"]), 2);
    assert_eq!(sts.count(), 2, "--refresh made no request");
    assert_saw_session(&show(&home, &sts, &[]), 2);
    assert_saw_session(&show(&home, &sts, &["-f", "-t", "123456"]), 3);
    assert_saw_session(&show(&home, &sts, &[]), 3);
    assert_eq!(sts.count(), 3);
    assert_eq!(entries(&home).len(), 1, "a refresh replaces the entry");
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn no_cache_asks_sts_every_time_and_never_touches_the_cache() {
    let sts = FakeSts::start();
    for n in 1..=4 {
        sts.push(Reply::session(n));
    }
    sts.set_default(Reply::session(99));
    let home = Home::new();

    assert_saw_session(&show(&home, &sts, &["--no-cache", "-t", "123456"]), 1);
    assert_saw_session(&show(&home, &sts, &["--no-cache", "-t", "123456"]), 2);
    assert_eq!(sts.count(), 2);
    assert!(
        entries(&home).is_empty() && temp_files(&home).is_empty(),
        "--no-cache wrote to the cache"
    );

    // A cached entry is neither read nor replaced by --no-cache.
    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 3);
    let entry = the_entry(&home);
    let before = fs::read(&entry).unwrap();
    assert_saw_session(&show(&home, &sts, &["--no-cache", "-t", "123456"]), 4);
    assert_eq!(sts.count(), 4, "--no-cache used the cached session");
    assert_eq!(
        fs::read(&entry).unwrap(),
        before,
        "--no-cache wrote the entry"
    );
    assert_saw_session(&show(&home, &sts, &[]), 3);
    assert_eq!(sts.count(), 4);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn a_session_with_less_than_min_remaining_left_is_renewed() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1).expiring_in(600));
    sts.set_default(Reply::session(2));
    let home = Home::new();

    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 1);
    // 10 minutes left is enough when 5 are asked for...
    assert_saw_session(&show(&home, &sts, &["--min-remaining", "5m"]), 1);
    assert_eq!(sts.count(), 1);
    // ...but not by default (15 minutes).
    let out = show(&home, &sts, &["-v", "-t", "123456"]);
    assert_saw_session(&out, 2);
    assert_eq!(sts.count(), 2, "a session with 10m left was reused");
    let err = stderr(&out);
    assert!(
        err.contains("no usable cached session") && err.contains("(only 9m"),
        "{err}"
    );
    assert!(!err.contains("warning"), "{err}");
    // The new 12-hour session is what the next run uses.
    assert_saw_session(&show(&home, &sts, &[]), 2);
    assert_eq!(sts.count(), 2);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn a_rotated_access_key_gets_a_new_session() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();
    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 1);
    let old_entry = the_entry(&home);

    home.credentials(&format!(
        "[default]\naws_access_key_id = AKIAROTATEDKEY000000\naws_secret_access_key = {SECRET}\n"
    ));
    let out = show(&home, &sts, &["-t", "123456"]);
    assert_saw_session(&out, 2);
    assert_eq!(sts.count(), 2, "the session of the old key was used");
    assert_eq!(
        sts.last().unwrap().signing_key_id().as_deref(),
        Some("AKIAROTATEDKEY000000")
    );
    assert_eq!(stderr(&out), "", "a different key is no reason to warn");
    let all = entries(&home);
    assert_eq!(all.len(), 2, "{all:?}");
    let new_entry = all.into_iter().find(|p| *p != old_entry).unwrap();
    assert!(
        fs::read_to_string(&new_entry)
            .unwrap()
            .contains("AKIAROTATEDKEY000000")
    );
    assert_saw_session(&show(&home, &sts, &[]), 2);
    assert_eq!(sts.count(), 2);
    assert_cache_stays_in_its_directory(&home);
}

// --- --login, --logout, --status ------------------------------------------------

#[test]
fn login_caches_a_session_and_runs_nothing() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();
    let marker = home.path().join("shell-ran");
    let shell = home.script("shell.sh", &format!("touch '{}'", marker.display()));
    let home = home.var("SHELL", &shell);

    let out = run(&home, &sts, &["--login", "-t", "123456"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("`default`"), "{text}");
    assert!(
        text.contains("valid for 11h59m") || text.contains("valid for 12h"),
        "{text}"
    );
    assert!(!text.contains("not cached"), "{text}");
    assert_no_secrets(&out);
    for secret in session_secrets(1) {
        assert!(!text.contains(&secret) && !stderr(&out).contains(&secret));
    }
    assert!(!marker.exists(), "--login ran $SHELL");
    assert_eq!(sts.count(), 1);
    assert_eq!(mode(&the_entry(&home)), 0o600);

    assert_saw_session(&show(&home, &sts, &[]), 1);
    assert_eq!(sts.count(), 1, "the session of --login was not used");
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn login_with_a_command_is_a_usage_error() {
    let sts = FakeSts::start();
    let home = Home::new();
    let out = run(&home, &sts, &["--login", "-t", "123456", "--", "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("error:"), "{}", stderr(&out));
    assert_eq!(sts.count(), 0);
    assert!(!cache_dir(&home).exists());
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn logout_removes_this_profiles_sessions_and_all_removes_every_one() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.credentials(&format!(
        "[default]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n\
         [work]\naws_access_key_id = AKIAWORKKEY000000000\naws_secret_access_key = w\n"
    ));
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n\
         [profile work]\nmfa_serial = arn:aws:iam::123456789012:mfa/bob\nregion = eu-west-1\n"
    ));

    let out = run(&home, &sts, &["--logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "mfa-exec: no cached sessions\n");
    assert!(!cache_dir(&home).exists(), "--logout created the cache");

    for profile in ["default", "work"] {
        let out = run(&home, &sts, &["-p", profile, "-t", "123456", "--", "true"]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_eq!(entries(&home).len(), 2);
    assert_eq!(sts.count(), 2);

    let out = run(&home, &sts, &["--logout"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mfa-exec: removed 1 cached session of profile `default`\n"
    );
    let left = the_entry(&home);
    assert!(
        left.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("work--"),
        "{left:?}"
    );
    // The other profile's session is still good; this one's is gone.
    assert!(
        run(&home, &sts, &["-p", "work", "--", "true"])
            .status
            .success()
    );
    assert_eq!(sts.count(), 2);
    assert!(
        run(&home, &sts, &["-t", "123456", "--", "true"])
            .status
            .success()
    );
    assert_eq!(sts.count(), 3, "the logged-out session was used");

    let out = run(&home, &sts, &["-p", "default", "--logout"]);
    assert_eq!(
        stdout(&out),
        "mfa-exec: removed 1 cached session of profile `default`\n"
    );
    assert!(
        run(&home, &sts, &["-t", "123456", "--", "true"])
            .status
            .success()
    );
    let out = run(&home, &sts, &["--logout", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "mfa-exec: removed 2 cached sessions of all profiles\n"
    );
    assert!(entries(&home).is_empty());

    let out = run(&home, &sts, &["--logout", "--all"]);
    assert_eq!(
        stdout(&out),
        "mfa-exec: no cached sessions of all profiles\n"
    );
    let out = run(&home, &sts, &["-p", "work", "--logout"]);
    assert_eq!(
        stdout(&out),
        "mfa-exec: no cached sessions of profile `work`\n"
    );
    let out = run(&home, &sts, &["--all"]);
    assert_eq!(out.status.code(), Some(125), "--all without --logout");
    assert_eq!(sts.count(), 4);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn status_lists_profiles_and_sessions_without_secrets() {
    let sts = FakeSts::start();
    let home = Home::new();
    home.config(&format!(
        "[default]\nmfa_serial = {SERIAL}\nregion = eu-west-1\n[profile plain]\nregion = eu-west-1\n"
    ));

    let out = run(&home, &sts, &["--status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(&format!("\n  default  MFA device {SERIAL}\n")),
        "{text}"
    );
    assert!(text.contains("\n  plain    no MFA device"), "{text}");
    let cached = format!(
        "cached sessions ({}):\n  none\n",
        cache_dir(&home).display()
    );
    assert!(text.ends_with(&cached), "{text}");
    assert!(!cache_dir(&home).exists(), "--status created the cache");

    assert!(
        run(&home, &sts, &["-t", "123456", "--", "true"])
            .status
            .success()
    );
    let out = run(&home, &sts, &["--status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("  default  {SERIAL}  ")))
        .unwrap_or_else(|| panic!("no session line:\n{text}"));
    assert!(line.contains("  key AKIA…MPLE  "), "{line}");
    assert!(
        line.contains("  11h59m") && line.contains(" left (until 20") && line.ends_with("Z)"),
        "{line}"
    );
    assert!(!text.contains("  none\n"), "{text}");
    assert!(!text.contains(KEY_ID), "the full key id is shown:\n{text}");
    assert_no_secrets(&out);
    for secret in session_secrets(1) {
        assert!(!text.contains(&secret) && !stderr(&out).contains(&secret));
    }
    assert_eq!(sts.count(), 1, "--status made a request");
    assert_cache_stays_in_its_directory(&home);
}

// --- files on disk ----------------------------------------------------------------

#[test]
fn cache_files_are_private_whatever_the_umask() {
    let sts = FakeSts::start();
    let home = Home::new();
    let out = std::process::Command::new("/bin/sh")
        .env_clear()
        .envs(home.env(&sts.url()))
        .current_dir(home.path())
        .args([
            "-c",
            &format!(
                "umask 000; exec '{}' -t 123456 -- sh -c umask",
                bin().display()
            ),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "0000", "the umask was not 000");

    let dir = cache_dir(&home);
    let entry = the_entry(&home);
    let lock = entry.with_extension("lock");
    assert_eq!(mode(&dir), 0o700, "cache directory");
    assert_eq!(mode(&entry), 0o600, "entry");
    assert_eq!(mode(&lock), 0o600, "lock file");
    for path in [&dir, &entry, &lock] {
        assert_eq!(fs::metadata(path).unwrap().uid(), uid());
    }
    let name = entry.file_name().unwrap().to_string_lossy().into_owned();
    let hash = name
        .strip_prefix("default--")
        .and_then(|n| n.strip_suffix(".json"))
        .unwrap_or_else(|| panic!("entry name {name}"));
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
    let names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_cache_stays_in_its_directory(&home);
}

// --- tampering ----------------------------------------------------------------------

/// Caches session 1, lets `tamper` change the entry, then checks that the
/// next run warns once (naming the entry and `why`), gets session 2 from STS
/// and replaces the entry, and that the run after that uses it quietly.
fn tampered_entry_is_replaced(home: &Home, tamper: impl FnOnce(&Path), why: &str) {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    assert_saw_session(&show(home, &sts, &["-t", "123456"]), 1);
    let entry = the_entry(home);
    tamper(&entry);

    let out = show(home, &sts, &["-t", "123456"]);
    assert_saw_session(&out, 2);
    assert_eq!(sts.count(), 2, "the tampered entry was used");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    let prefix = format!(
        "mfa-exec: warning: ignoring the cached session `{}`: ",
        entry.display()
    );
    assert!(err.starts_with(&prefix), "{err}");
    assert!(err.contains(why), "the warning does not say `{why}`: {err}");
    assert_no_secrets(&out);

    let meta = fs::symlink_metadata(&entry).unwrap();
    assert!(meta.is_file(), "the entry was not replaced");
    assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o600, uid()));
    let out = show(home, &sts, &[]);
    assert_saw_session(&out, 2);
    assert_eq!(stderr(&out), "");
    assert_eq!(sts.count(), 2);
    assert_cache_stays_in_its_directory(home);
}

#[test]
fn a_garbage_entry_is_ignored_with_a_warning() {
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| fs::write(entry, "garbage\n").unwrap(),
        "it is damaged (",
    );
}

#[test]
fn a_truncated_entry_is_ignored_with_a_warning() {
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| {
            let text = fs::read(entry).unwrap();
            fs::write(entry, &text[..text.len() / 2]).unwrap();
        },
        "it is damaged (EOF while parsing",
    );
}

#[test]
fn an_entry_of_another_format_version_is_ignored_with_a_warning() {
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| {
            let text = fs::read_to_string(entry).unwrap();
            assert!(text.contains("\"version\": 1,"), "{}", entry.display());
            fs::write(entry, text.replace("\"version\": 1,", "\"version\": 99,")).unwrap();
        },
        "it has format version 99, this mfa-exec reads 1",
    );
}

#[test]
fn an_entry_of_another_profile_is_ignored_with_a_warning() {
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| {
            let text = fs::read_to_string(entry).unwrap();
            assert!(text.contains("\"profile\": \"default\""));
            let text = text.replace("\"profile\": \"default\"", "\"profile\": \"other\"");
            fs::write(entry, text).unwrap();
        },
        "it belongs to another profile or key",
    );
}

#[test]
fn an_entry_readable_by_others_is_ignored_with_a_warning() {
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| fs::set_permissions(entry, fs::Permissions::from_mode(0o644)).unwrap(),
        "it has mode 0644; group and others must have no access",
    );
}

#[test]
fn an_entry_owned_by_another_user_is_ignored_with_a_warning() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!(
            "skipped: giving a file to another user (uid 65534) needs root, \
             and these tests do not run as root"
        );
        return;
    }
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| std::os::unix::fs::chown(entry, Some(65534), Some(65534)).unwrap(),
        "it is owned by uid 65534, not by you",
    );
}

#[test]
fn a_symlinked_entry_is_ignored_with_a_warning() {
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("planted.json");
    tampered_entry_is_replaced(
        &Home::new(),
        |entry| {
            // A valid, private entry; only the link is wrong.
            fs::copy(entry, &target).unwrap();
            fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
            fs::remove_file(entry).unwrap();
            std::os::unix::fs::symlink(&target, entry).unwrap();
        },
        "cannot open it: Too many levels of symbolic links",
    );
    // The new session replaced the link, not the file it pointed to.
    let planted = fs::read_to_string(&target).unwrap();
    assert!(planted.contains("ASIAFAKESESSION00001"), "{planted}");
    assert!(!planted.contains("ASIAFAKESESSION00002"), "{planted}");
}

#[test]
fn an_open_cache_directory_is_not_used_and_the_run_still_works() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();
    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 1);
    let dir = cache_dir(&home);
    let entry = the_entry(&home);
    let before = fs::read(&entry).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();

    for count in [2, 3] {
        let out = show(&home, &sts, &["-t", "123456"]);
        assert_saw_session(&out, 2);
        assert_eq!(sts.count(), count, "the open directory's entry was used");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.starts_with(&format!(
                "mfa-exec: warning: not using the session cache: `{}` has mode 0755",
                dir.display()
            )),
            "{err}"
        );
    }
    assert_eq!(fs::read(&entry).unwrap(), before, "wrote into an open dir");
    assert_eq!(mode(&dir), 0o755, "mfa-exec changed the directory's mode");
    assert!(temp_files(&home).is_empty());
    assert_cache_stays_in_its_directory(&home);
}

/// An entry that is a FIFO: opening it for reading blocks until a writer
/// comes, which never happens. Shown with `--status`, a run, and `--logout`.
/// Regression: entries are opened with `O_NONBLOCK`, then checked to be files.
#[test]
fn a_fifo_entry_is_ignored_with_a_warning_instead_of_hanging() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();
    assert_saw_session(&show(&home, &sts, &["-t", "123456"]), 1);
    let entry = the_entry(&home);

    let fifo = || {
        let _ = fs::remove_file(&entry);
        nix::unistd::mkfifo(&entry, Mode::S_IRUSR | Mode::S_IWUSR).unwrap();
    };
    // Each with its own FIFO: a killed reader may have left it in any state.
    let mut hung = Vec::new();
    for args in [
        &["--status"][..],
        &["--logout"],
        &["-t", "123456", "--", "sh", "-c", SHOW_SESSION],
    ] {
        fifo();
        let out = home
            .cmd(&sts.url())
            .args(args)
            .timeout(Duration::from_secs(5))
            .output()
            .unwrap();
        if out.status.signal().is_some() {
            hung.push(args[0]);
        }
    }
    assert!(hung.is_empty(), "these hung on a FIFO entry: {hung:?}");
    fifo();
    let out = show(&home, &sts, &["-t", "123456"]);
    assert_saw_session(&out, 2);
    assert!(
        stderr(&out).contains("it is not a regular file"),
        "{}",
        stderr(&out)
    );
}

// --- concurrency and crashes ----------------------------------------------------------

#[test]
fn twenty_parallel_runs_on_a_cold_cache_ask_for_one_code() {
    let sts = FakeSts::start();
    sts.push(Reply::session(1));
    sts.set_default(Reply::session(2));
    let home = Home::new();
    let counter = home.path().join("codes-asked");
    let script = home.script(
        "code.sh",
        &format!(
            "echo asked >> '{}'\nsleep 2\necho 123456",
            counter.display()
        ),
    );
    with_mfa_process(&home, &script);
    let url = sts.url();

    let start = std::sync::Barrier::new(20);
    let outs: Vec<Output> = std::thread::scope(|scope| {
        let runs: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    let mut cmd = home.cmd(&url);
                    cmd.args(["--", "sh", "-c", "echo $AWS_ACCESS_KEY_ID"]);
                    start.wait();
                    cmd.output().unwrap()
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });

    for out in &outs {
        assert!(out.status.success(), "{:?}: {}", out.status, stderr(out));
        assert_eq!(stdout(out), "ASIAFAKESESSION00001\n", "{}", stderr(out));
        let err = stderr(out);
        assert!(
            err.lines().all(|l| l
                == "mfa-exec: waiting for another mfa-exec to get the session of profile `default`"),
            "{err}"
        );
    }
    let waited = outs
        .iter()
        .filter(|o| stderr(o).contains("waiting for another"))
        .count();
    assert!(waited >= 1, "no run waited for the first one");
    assert_eq!(
        fs::read_to_string(&counter).unwrap(),
        "asked\n",
        "the code was asked for more than once"
    );
    assert_eq!(sts.count(), 1);
    assert_eq!(entries(&home).len(), 1);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn a_run_killed_while_holding_the_lock_does_not_block_the_next() {
    let sts = FakeSts::start();
    let home = Home::new();
    let started = home.path().join("code-source-pid");
    let script = home.script(
        "slow-code.sh",
        &format!("echo $$ > '{}'\nsleep 30\necho 123456", started.display()),
    );
    with_mfa_process(&home, &script);

    let mut holder = home
        .std_cmd(&sts.url())
        .args(["--", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = pid_of(&holder);
    let _cleanup = KillGroupOnDrop(group);

    // The code source runs under the lock: once it has started, the lock is held.
    let code_source =
        wait_for_line(&started, Duration::from_secs(20)).expect("the code source never started");
    let code_source = Pid::from_raw(code_source.trim().parse().unwrap());
    let lock = the_lock(&home);
    assert!(
        matches!(
            fs::File::open(&lock).unwrap().try_lock(),
            Err(fs::TryLockError::WouldBlock)
        ),
        "the lock is not held while the code source runs"
    );

    kill(group, Signal::SIGKILL).unwrap();
    let status = holder.wait().unwrap();
    assert_eq!(status.signal(), Some(9));
    // Its code source lives on, and must not be what holds the lock.
    assert!(
        kill(code_source, None).is_ok(),
        "the code source died with mfa-exec"
    );

    let begun = Instant::now();
    let out = home
        .cmd(&sts.url())
        .args(["-t", "123456", "--", "sh", "-c", SHOW_SESSION])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    let took = begun.elapsed();
    assert_saw_session(&out, 1);
    assert!(took < Duration::from_secs(5), "the next run took {took:?}");
    assert!(!stderr(&out).contains("waiting"), "{}", stderr(&out));
    assert_eq!(sts.count(), 1);
    assert_cache_stays_in_its_directory(&home);
}

#[test]
fn runs_killed_at_random_moments_never_leave_a_damaged_entry() {
    let sts = FakeSts::start();
    let home = Home::new();
    let mut finished = 0;
    for i in 0..30_u64 {
        let mut child = home
            .std_cmd(&sts.url())
            .args(["--refresh", "-t", "123456", "--", "true"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * 13 % 21));
        // Fails only if it is already gone; a zombie still takes the signal.
        let _ = kill(pid_of(&child), Signal::SIGKILL);
        if child.wait().unwrap().success() {
            finished += 1;
        }
    }
    eprintln!(
        "{finished} of 30 runs finished before the kill; {} STS requests; {} leftover temp files",
        sts.count(),
        temp_files(&home).len()
    );

    let out = run(&home, &sts, &["-t", "123456", "--", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a killed run left something behind");
    let all = entries(&home);
    assert_eq!(all.len(), 1, "{all:?}");
    for entry in &all {
        let text = fs::read_to_string(entry).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", entry.display()));
        assert_eq!(value["version"], 1, "{text}");
        assert_eq!(mode(entry), 0o600);
    }
    let out = run(&home, &sts, &["--status"]);
    assert!(!stdout(&out).contains("unreadable"), "{}", stdout(&out));
    assert_cache_stays_in_its_directory(&home);
}

/// Regression: temp files are swept, not counted as sessions.
#[test]
fn logout_all_wipes_temp_files_of_killed_runs_without_counting_them() {
    let sts = FakeSts::start();
    let home = Home::new();
    assert!(
        run(&home, &sts, &["-t", "123456", "--", "true"])
            .status
            .success()
    );
    let entry = the_entry(&home);
    let text = fs::read(&entry).unwrap();
    // What a run killed between writing and renaming leaves: whole, or cut short.
    let whole = cache_dir(&home).join(".tmp-AbC123.json");
    let cut = cache_dir(&home).join(".tmp-XyZ789.json");
    fs::write(&whole, &text).unwrap();
    fs::write(&cut, &text[..text.len() / 2]).unwrap();
    for path in [&whole, &cut] {
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let out = run(&home, &sts, &["--logout", "--all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(temp_files(&home).is_empty(), "{:?}", temp_files(&home));
    assert!(entries(&home).is_empty());
    // One session was cached; the temp files are debris, not sessions.
    assert_eq!(
        stdout(&out),
        "mfa-exec: removed 1 cached session of all profiles\n"
    );
    assert_cache_stays_in_its_directory(&home);
}

/// The fast path: a cached run builds no STS client (and so no runtime or
/// TLS roots): `-v` names the cached session and never an STS endpoint, and
/// it works with STS unreachable.
#[test]
fn a_cached_run_never_builds_an_sts_client() {
    let sts = FakeSts::start();
    let home = Home::new();
    let first = home
        .cmd(&sts.url())
        .args(["-v", "-t", "123456", "--", "true"])
        .output()
        .unwrap();
    assert!(stderr(&first).contains("STS at"), "{}", stderr(&first));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = home
        .cmd(&format!("http://127.0.0.1:{closed}"))
        .args(["-v", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("using the cached session of profile `default`"),
        "{err}"
    );
    assert!(!err.contains("STS at"), "{err}");
    assert_eq!(sts.count(), 1);
}
