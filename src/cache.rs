//! The session cache: one 0600 JSON file per (profile, MFA device, source
//! key, role) in a 0700 directory, written atomically, read suspiciously,
//! and guarded by a per-entry `flock` so parallel runs ask for one code.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Environ;
use crate::secret::Secret;
use crate::session::Session;

/// How entries are opened for reading: never through a symlink, and never
/// blocking (a FIFO planted under an entry's name would hang the open).
const READ_FLAGS: i32 = nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits();

/// Temp files older than this belong to runs that died mid-write.
const STALE_TEMP: Duration = Duration::from_secs(600);

/// Bumped whenever the file format changes; other versions are a miss.
pub const FORMAT_VERSION: u32 = 1;

/// What a cache entry belongs to; every part is checked again on read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Key {
    pub profile: String,
    pub serial: String,
    /// The long-term access key id (or `process:<command>` for a
    /// `credential_process` source, whose key is only known by running it).
    pub source: String,
    pub role: Option<String>,
}

impl Key {
    /// The entry's file name: readable profile, then a hash of the whole key.
    #[must_use]
    pub fn file_stem(&self) -> String {
        file_stem(
            &self.profile,
            &[
                &self.serial,
                &self.source,
                self.role.as_deref().unwrap_or(""),
            ],
        )
    }
}

/// Whose MFA device a remembered serial is: a profile with one long-term key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKey {
    pub profile: String,
    pub source: String,
}

impl DeviceKey {
    fn file_name(&self) -> String {
        format!("{}.device", file_stem(&self.profile, &[&self.source]))
    }
}

/// A remembered MFA device, found by `ListMFADevices`; not a secret, but
/// kept as private and checked as carefully as the sessions.
#[derive(Debug, Serialize, Deserialize)]
struct StoredDevice {
    version: u32,
    #[serde(flatten)]
    key: DeviceKey,
    serial: String,
}

/// `<profile>--<hash>`: the readable profile, then a hash of it and `parts`.
fn file_stem(profile: &str, parts: &[&str]) -> String {
    let mut hasher = Fnv64::default();
    for part in std::iter::once(profile).chain(parts.iter().copied()) {
        hasher.write(part.as_bytes());
        hasher.write(&[0]);
    }
    format!("{}--{:016x}", sanitise(profile), hasher.0)
}

/// A profile name made safe for a file name.
fn sanitise(profile: &str) -> String {
    let clean: String = profile
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if clean.is_empty() || clean.starts_with('.') {
        format!("_{clean}")
    } else {
        clean
    }
}

/// FNV-1a: stable across Rust versions, unlike `DefaultHasher`. File names
/// only; the key itself is stored and compared on every read.
struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The on-disk form. No `Debug`: it holds secrets.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: u32,
    #[serde(flatten)]
    key: Key,
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Zeroizing<String>,
    /// Seconds since the Unix epoch.
    expires_at: u64,
    created_at: u64,
    /// RFC 3339, for people reading the file.
    expiration: String,
}

/// Only the non-secret part, for `--status` and `--logout`.
#[derive(Debug, Deserialize)]
pub struct Summary {
    pub version: u32,
    #[serde(flatten)]
    pub key: Key,
    pub expires_at: u64,
}

/// Why an entry was not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    Absent,
    Expired,
    /// Less than `--min-remaining` left.
    TooShort(Duration),
    /// Present but not trustworthy or not readable: warn about it.
    Unusable(String),
}

/// The cache directory, checked to be ours and private.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
}

/// Where the cache lives: `$XDG_CACHE_HOME/mfa-exec`, else the platform's cache folder.
#[must_use]
pub fn default_dir(env: &Environ) -> Option<PathBuf> {
    if let Some(xdg) = env
        .get("XDG_CACHE_HOME")
        .filter(|p| Path::new(p).is_absolute())
    {
        return Some(PathBuf::from(xdg).join("mfa-exec"));
    }
    let home = PathBuf::from(env.get("HOME")?);
    if cfg!(target_os = "macos") {
        Some(home.join("Library/Caches/mfa-exec"))
    } else {
        Some(home.join(".cache/mfa-exec"))
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Checks that a file or directory is ours and not open to group or others.
fn check_private(meta: &fs::Metadata, what: &str) -> Result<(), String> {
    if meta.uid() != euid() {
        return Err(format!("{what} is owned by uid {}, not by you", meta.uid()));
    }
    if meta.mode() & 0o077 != 0 {
        return Err(format!(
            "{what} has mode {:04o}; group and others must have no access",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

impl Cache {
    /// Opens (creating with mode 0700) the cache directory.
    pub fn open(dir: PathBuf, create: bool) -> Result<Self, String> {
        match fs::symlink_metadata(&dir) {
            Ok(meta) => {
                if !meta.is_dir() {
                    return Err(format!("`{}` is not a directory", dir.display()));
                }
                check_private(&meta, &format!("`{}`", dir.display()))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                if let Some(parent) = dir.parent() {
                    fs::create_dir_all(parent)
                        .map_err(|e| format!("cannot create `{}`: {e}", parent.display()))?;
                }
                // Created private, never chmod-ed afterwards: umask can only remove bits.
                match DirBuilder::new().mode(0o700).create(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Cache::open(dir, false);
                    }
                    Err(e) => return Err(format!("cannot create `{}`: {e}", dir.display())),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!("`{}` does not exist", dir.display()));
            }
            Err(e) => return Err(format!("cannot read `{}`: {e}", dir.display())),
        }
        Ok(Cache { dir })
    }

    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    #[must_use]
    pub fn entry_path(&self, key: &Key) -> PathBuf {
        self.dir.join(format!("{}.json", key.file_stem()))
    }

    /// Takes the entry's exclusive lock, waiting for other runs; `on_wait`
    /// is called once if another process holds it for more than a second.
    pub fn lock(&self, key: &Key, on_wait: impl FnOnce()) -> std::io::Result<File> {
        let path = self.dir.join(format!("{}.lock", key.file_stem()));
        // A lock file's existence means nothing: the kernel drops a flock
        // when its holder dies, even by SIGKILL, so no run can be blocked
        // by a dead one. O_CLOEXEC (std's default) keeps it from children.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(path)?;
        // Quietly wait a moment first: parallel jobs on a warm cache hold
        // the lock only for milliseconds, and need not say so.
        let quiet_until = std::time::Instant::now() + Duration::from_secs(1);
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < quiet_until => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(fs::TryLockError::WouldBlock) => {
                    on_wait();
                    file.lock()?;
                    break;
                }
                Err(fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        Ok(file)
    }

    /// Reads the entry for `key`, if it is trustworthy and has more than `min_remaining` left.
    pub fn load(&self, key: &Key, min_remaining: Duration) -> Result<Session, Miss> {
        let mut file = open_entry(&self.entry_path(key))?;
        let mut text = Zeroizing::new(String::new());
        file.read_to_string(&mut text)
            .map_err(|e| Miss::Unusable(format!("cannot read it: {e}")))?;
        let stored: Stored = parse(&text)?;
        if stored.key != *key {
            return Err(Miss::Unusable(
                "it belongs to another profile or key".into(),
            ));
        }
        let session = Session {
            access_key_id: stored.access_key_id.clone(),
            secret_access_key: Secret::new(stored.secret_access_key.to_string()),
            session_token: Secret::new(stored.session_token.to_string()),
            expiration: UNIX_EPOCH + Duration::from_secs(stored.expires_at),
        };
        let left = session.remaining(SystemTime::now());
        if left.is_zero() {
            Err(Miss::Expired)
        } else if left <= min_remaining {
            Err(Miss::TooShort(left))
        } else {
            Ok(session)
        }
    }

    /// Writes the entry atomically, then deletes temp files that killed
    /// writers left behind.
    pub fn store(&self, key: &Key, session: &Session) -> std::io::Result<()> {
        let stored = Stored {
            version: FORMAT_VERSION,
            key: key.clone(),
            access_key_id: session.access_key_id.clone(),
            secret_access_key: Zeroizing::new(session.secret_access_key.expose().to_owned()),
            session_token: Zeroizing::new(session.session_token.expose().to_owned()),
            expires_at: session
                .expiration
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            created_at: now_secs(),
            expiration: session.expiration_rfc3339(),
        };
        let json =
            Zeroizing::new(serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?);
        self.write_atomically(&self.entry_path(key), &json)?;
        self.sweep_temp_files(false);
        Ok(())
    }

    /// The MFA device remembered for `key`, if the file is trustworthy and matches.
    #[must_use]
    pub fn load_device(&self, key: &DeviceKey) -> Option<String> {
        let file = open_entry(&self.dir.join(key.file_name())).ok()?;
        let stored: StoredDevice = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
        (stored.version == FORMAT_VERSION && stored.key == *key).then_some(stored.serial)
    }

    /// Remembers the MFA device for `key`, atomically like a session.
    pub fn store_device(&self, key: &DeviceKey, serial: &str) -> std::io::Result<()> {
        let stored = StoredDevice {
            version: FORMAT_VERSION,
            key: key.clone(),
            serial: serial.to_owned(),
        };
        let json = serde_json::to_vec_pretty(&stored).map_err(std::io::Error::other)?;
        self.write_atomically(&self.dir.join(key.file_name()), &json)
    }

    /// Writes `target` atomically: a 0600 temp file in the same directory,
    /// fsynced, renamed over the old file, then the directory fsynced.
    fn write_atomically(&self, target: &Path, bytes: &[u8]) -> std::io::Result<()> {
        // tempfile creates with O_EXCL and mode 0600.
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .suffix(".json")
            .tempfile_in(&self.dir)?;
        tmp.write_all(bytes)?;
        tmp.as_file().sync_all()?;
        tmp.persist(target).map_err(|e| e.error)?;
        File::open(&self.dir)?.sync_all()
    }

    /// Removes the entries `which` selects (given the file name and, when
    /// readable, the entry's non-secret part); returns what was removed.
    ///
    /// Temp files of interrupted writes are not entries: they are left to
    /// [`Cache::sweep_temp_files`]. Lock files stay too: deleting one while
    /// another run holds it would let a third run lock a new file and both
    /// go ahead.
    pub fn remove(
        &self,
        which: impl Fn(&str, Option<&Summary>) -> bool,
    ) -> std::io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let is_entry = path
                .extension()
                .is_some_and(|e| e == "json" || e == "device")
                && !name.starts_with(".tmp-");
            if is_entry && which(&name, summary_of(&path).as_ref()) {
                fs::remove_file(&path)?;
                if path.extension().is_some_and(|e| e == "json") {
                    removed.push(path);
                }
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Deletes temp files (which may hold secrets) left by runs killed
    /// mid-write; `all` also takes young ones, which could belong to a run
    /// still writing, so only `--logout --all` asks for that.
    pub fn sweep_temp_files(&self, all: bool) {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in dir.filter_map(Result::ok) {
            let stale = entry
                .metadata()
                .ok()
                .and_then(|m| m.modified().ok())
                .is_some_and(|t| t.elapsed().unwrap_or_default() > STALE_TEMP);
            if entry.file_name().to_string_lossy().starts_with(".tmp-") && (all || stale) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Selects a profile's entries for [`Cache::remove`], damaged ones included.
    pub fn of_profile(profile: &str) -> impl Fn(&str, Option<&Summary>) -> bool + '_ {
        move |name, summary| match summary {
            Some(s) => s.key.profile == profile,
            None => {
                name.starts_with(&format!("{}--", sanitise(profile)))
                    && Path::new(name).extension().is_some_and(|e| e == "json")
            }
        }
    }

    /// Every entry's non-secret part, with its path, sorted by profile.
    #[must_use]
    pub fn summaries(&self) -> Vec<(PathBuf, Result<Summary, String>)> {
        let Ok(dir) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|e| e == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .map(|p| {
                let summary = summary_of(&p).ok_or_else(|| "unreadable or not ours".to_owned());
                (p, summary)
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// Opens a cache file for reading, only if it is a regular file of ours
/// that nobody else can access; checks what was opened, not the path, so a
/// swapped file cannot slip in between.
fn open_entry(path: &Path) -> Result<File, Miss> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(READ_FLAGS)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Miss::Absent),
        Err(e) => return Err(Miss::Unusable(format!("cannot open it: {e}"))),
    };
    let meta = file
        .metadata()
        .map_err(|e| Miss::Unusable(format!("cannot stat it: {e}")))?;
    if !meta.is_file() {
        return Err(Miss::Unusable("it is not a regular file".into()));
    }
    check_private(&meta, "it").map_err(Miss::Unusable)?;
    Ok(file)
}

fn summary_of(path: &Path) -> Option<Summary> {
    let file = open_entry(path).ok()?;
    let summary: Summary = serde_json::from_reader(std::io::BufReader::new(file)).ok()?;
    (summary.version == FORMAT_VERSION).then_some(summary)
}

/// Parses an entry, telling a wrong version from a damaged file.
fn parse(text: &str) -> Result<Stored, Miss> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    match serde_json::from_str::<VersionOnly>(text) {
        Ok(v) if v.version != FORMAT_VERSION => {
            return Err(Miss::Unusable(format!(
                "it has format version {}, this mfa-exec reads {FORMAT_VERSION}",
                v.version
            )));
        }
        Ok(_) => {}
        Err(e) => return Err(Miss::Unusable(format!("it is damaged ({e})"))),
    }
    serde_json::from_str(text).map_err(|e| Miss::Unusable(format!("it is damaged ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> Key {
        Key {
            profile: "prod/eu".into(),
            serial: "arn:aws:iam::1:mfa/a".into(),
            source: "AKIAEXAMPLE".into(),
            role: None,
        }
    }

    fn session(secs_left: u64) -> Session {
        Session {
            access_key_id: "ASIACACHED".into(),
            secret_access_key: Secret::new("cached-secret".into()),
            session_token: Secret::new("cached-token".into()),
            expiration: SystemTime::now() + Duration::from_secs(secs_left),
        }
    }

    fn cache() -> (tempfile::TempDir, Cache) {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path().join("mfa-exec"), true).unwrap();
        (dir, cache)
    }

    #[test]
    fn a_stored_session_reads_back() {
        let (_d, cache) = cache();
        cache.store(&key(), &session(3600)).unwrap();
        let back = cache.load(&key(), Duration::from_secs(60)).unwrap();
        assert_eq!(back.access_key_id, "ASIACACHED");
        assert_eq!(back.session_token.expose(), "cached-token");
    }

    #[test]
    fn every_part_of_the_key_selects_a_different_file() {
        let base = key();
        let variants = [
            Key {
                profile: "other".into(),
                ..base.clone()
            },
            Key {
                serial: "arn:aws:iam::1:mfa/b".into(),
                ..base.clone()
            },
            Key {
                source: "AKIAROTATED".into(),
                ..base.clone()
            },
            Key {
                role: Some("arn:aws:iam::2:role/r".into()),
                ..base.clone()
            },
        ];
        for v in variants {
            assert_ne!(v.file_stem(), base.file_stem(), "{v:?}");
        }
        assert!(base.file_stem().starts_with("prod_eu--"));
        assert_eq!(sanitise(".."), "_..");
    }

    #[test]
    fn short_expired_and_absent_entries_are_misses() {
        let (_d, cache) = cache();
        assert_eq!(
            cache.load(&key(), Duration::ZERO).unwrap_err(),
            Miss::Absent
        );
        cache.store(&key(), &session(600)).unwrap();
        assert!(matches!(
            cache.load(&key(), Duration::from_secs(900)),
            Err(Miss::TooShort(_))
        ));
        assert!(cache.load(&key(), Duration::from_secs(300)).is_ok());
        cache.store(&key(), &session(0)).unwrap();
        assert_eq!(
            cache.load(&key(), Duration::ZERO).unwrap_err(),
            Miss::Expired
        );
    }

    #[test]
    fn damaged_foreign_and_open_entries_are_unusable() {
        let (_d, cache) = cache();
        let path = cache.entry_path(&key());
        cache.store(&key(), &session(3600)).unwrap();
        let good = fs::read_to_string(&path).unwrap();

        let cases: Vec<(String, &str)> = vec![
            ("garbage".into(), "damaged"),
            (good[..good.len() / 2].into(), "damaged"),
            (
                good.replace("\"version\": 1", "\"version\": 99"),
                "format version 99",
            ),
            (good.replace("prod/eu", "staging"), "another profile"),
        ];
        for (text, why) in cases {
            fs::write(&path, text).unwrap();
            match cache.load(&key(), Duration::ZERO) {
                Err(Miss::Unusable(reason)) => assert!(reason.contains(why), "{reason}"),
                other => panic!("{why}: {:?}", other.map(|s| s.access_key_id)),
            }
        }

        fs::write(&path, &good).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(
            matches!(cache.load(&key(), Duration::ZERO), Err(Miss::Unusable(r)) if r.contains("0644"))
        );
    }

    #[test]
    fn storing_sweeps_temp_files_of_dead_writers_but_not_young_ones() {
        let (_d, cache) = cache();
        let old = cache.dir().join(".tmp-dead.json");
        let young = cache.dir().join(".tmp-writing.json");
        for path in [&old, &young] {
            fs::write(path, "{\"secret_access_key\": \"half").unwrap();
        }
        let long_ago = SystemTime::now() - STALE_TEMP - Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        cache.store(&key(), &session(3600)).unwrap();
        assert!(!old.exists(), "a dead writer's temp file is left");
        assert!(young.exists(), "a live writer's temp file was taken");
    }

    #[test]
    fn files_and_directory_are_private() {
        let (_d, cache) = cache();
        cache.store(&key(), &session(3600)).unwrap();
        let dir_mode = fs::metadata(cache.dir()).unwrap().mode() & 0o777;
        let file_mode = fs::metadata(cache.entry_path(&key())).unwrap().mode() & 0o777;
        assert_eq!((dir_mode, file_mode), (0o700, 0o600));
    }

    #[test]
    fn an_open_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        let err = Cache::open(open, true).unwrap_err();
        assert!(err.contains("0755"), "{err}");
    }

    #[test]
    fn the_file_never_holds_more_than_it_should() {
        let (_d, cache) = cache();
        cache.store(&key(), &session(3600)).unwrap();
        let text = fs::read_to_string(cache.entry_path(&key())).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut fields: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "access_key_id",
                "created_at",
                "expiration",
                "expires_at",
                "profile",
                "role",
                "secret_access_key",
                "serial",
                "session_token",
                "source",
                "version"
            ]
        );
    }
}
