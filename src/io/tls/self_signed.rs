//! A self-signed certificate for serving HTTPS on a local network, made once and reused.
//!
//! Browsers only allow some features in a secure context (`SharedArrayBuffer`, which a
//! threaded Godot web export needs, among them), and plain HTTP on a LAN address is not one.
//! A self-signed certificate, trusted once on the device, makes it one. So that the trust
//! (or the browser's exception) lasts, the certificate is kept in a per-user cache folder
//! and reused for as long as it is valid and names every address asked for.
//!
//! The certificate names `localhost`, `127.0.0.1`, `::1`, the host name (and `HOST.local`,
//! its mDNS name), every address of the machine's interfaces, and any names the caller
//! adds (RFC 5280 §4.2.1.6: subjectAltName `dNSName` and `iPAddress` entries; browsers
//! match only those, never the subject's CN). Its key is ECDSA P-256, the key file written
//! with mode 0600 in a folder of mode 0700.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};

use crate::io::tls::config::{load_certified_key, provider, read_chain, TlsFiles};

pub const CERT_FILE: &str = "self-signed-cert.pem";
pub const KEY_FILE: &str = "self-signed-key.pem";
const LOCK_FILE: &str = ".self-signed.lock";

/// How long a new certificate is valid: under the 398 days browsers accept for a server
/// certificate (Apple's rule, also applied to certificates a user trusts by hand).
const VALIDITY: Duration = Duration::from_secs(397 * 24 * 3600);
/// A certificate this close to expiry is replaced rather than reused.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 3600);
/// A clock a little behind ours must not see the certificate as not yet valid.
const BACKDATE: Duration = Duration::from_secs(24 * 3600);
/// A new certificate keeps the old one's names too (a laptop moving between networks), up
/// to this many.
const MAX_KEPT_NAMES: usize = 32;

#[derive(Debug)]
pub enum SelfSignedError {
    /// A name that is neither a DNS name nor an IP address.
    BadName(String),
    Io(PathBuf, io::Error),
    /// No folder was given and neither `XDG_CACHE_HOME` nor `HOME` is set.
    NoCacheFolder,
    Generate(String),
}

impl fmt::Display for SelfSignedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SelfSignedError::BadName(name) => {
                write!(f, "{name:?} is neither a DNS name nor an IP address")
            }
            SelfSignedError::Io(path, error) => write!(f, "{}: {error}", path.display()),
            SelfSignedError::NoCacheFolder => {
                f.write_str("no cache folder: neither XDG_CACHE_HOME nor HOME is set")
            }
            SelfSignedError::Generate(detail) => {
                write!(f, "cannot make a certificate: {detail}")
            }
        }
    }
}

impl std::error::Error for SelfSignedError {}

/// The per-user cache folder: `$XDG_CACHE_HOME/godottpd`, else `~/Library/Caches/godottpd`
/// on macOS and `~/.cache/godottpd` elsewhere (the XDG Base Directory default).
pub fn default_folder() -> Result<PathBuf, SelfSignedError> {
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|value| !value.is_empty()) {
        let cache = PathBuf::from(cache);
        // The XDG spec: a relative path in this variable is invalid and must be ignored.
        if cache.is_absolute() {
            return Ok(cache.join("godottpd"));
        }
    }
    let home = std::env::var_os("HOME")
        .filter(|value| !value.is_empty())
        .ok_or(SelfSignedError::NoCacheFolder)?;
    let base = if cfg!(target_os = "macos") {
        PathBuf::from(home).join("Library").join("Caches")
    } else {
        PathBuf::from(home).join(".cache")
    };
    Ok(base.join("godottpd"))
}

/// This machine's host name, if it has one.
pub fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which lives across the call;
    // gethostname(2) writes at most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer.iter().position(|&b| b == 0).unwrap_or(buffer.len());
    let name = std::str::from_utf8(&buffer[..end]).ok()?.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// The addresses of the machine's interfaces that another device can reach, in a stable
/// order (IPv4 first); loopback is named separately and IPv6 link-local addresses are left
/// out (a URL needs their zone, which a certificate cannot carry).
pub fn machine_addresses() -> Vec<IpAddr> {
    let mut addresses: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|interface| !interface.is_loopback())
        .map(|interface| interface.ip())
        .filter(|ip| match ip {
            IpAddr::V4(_) => true,
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
        })
        .collect();
    addresses.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    addresses.dedup();
    addresses
}

/// Every name the certificate must cover: the fixed ones, the machine's, and `extra`.
pub fn wanted_names(extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = host_name() {
        let host = host.to_ascii_lowercase();
        if !host.contains('.') && host != "localhost" {
            names.push(format!("{host}.local"));
        }
        names.push(host);
    }
    names.extend(machine_addresses().iter().map(IpAddr::to_string));
    names.extend(extra.iter().cloned());
    let mut seen = BTreeSet::new();
    names
        .into_iter()
        .map(|name| canonical(&name))
        .filter(|name| seen.insert(name.clone()))
        .collect()
}

/// One spelling per name: IP addresses in their standard form, DNS names in lower case
/// (RFC 4343: DNS names compare case-insensitively).
fn canonical(name: &str) -> String {
    let trimmed = name.trim().trim_start_matches('[').trim_end_matches(']');
    match trimmed.parse::<IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => trimmed.to_ascii_lowercase(),
    }
}

/// The names of a certificate file, and when it expires (seconds since the epoch); `None`
/// when the file cannot be read or parsed.
fn describe(cert: &Path) -> Option<(BTreeSet<String>, i64)> {
    let chain = read_chain(cert).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(chain.first()?.as_ref()).ok()?;
    let not_after = parsed.validity().not_after.timestamp();
    let mut names = BTreeSet::new();
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => {
                    names.insert(canonical(dns));
                }
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    let ip = match bytes.len() {
                        4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        names.insert(ip.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Some((names, not_after))
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}

/// Holds an exclusive `flock(2)` on the folder's lock file while alive, so that two
/// processes starting at once do not write a certificate and a key that do not match.
struct FolderLock(fs::File);

impl FolderLock {
    fn take(folder: &Path) -> Result<Self, SelfSignedError> {
        let path = folder.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|error| SelfSignedError::Io(path.clone(), error))?;
        // SAFETY: the descriptor belongs to `file`, open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(SelfSignedError::Io(path, io::Error::last_os_error()));
        }
        Ok(FolderLock(file))
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // SAFETY: the descriptor belongs to the file this lock owns, still open here.
        unsafe {
            libc::flock(self.0.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// Writes `contents` to `path` by way of a temporary file renamed over it, so that a reader
/// never sees half a file; created with `mode`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), SelfSignedError> {
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let _ = fs::remove_file(&temporary);
        let mut file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    })();
    written.map_err(|error| {
        let _ = fs::remove_file(&temporary);
        SelfSignedError::Io(path.to_owned(), error)
    })
}

/// Makes a certificate for `names` and its key.
fn generate(names: &[String]) -> Result<(String, String), SelfSignedError> {
    let mut params = CertificateParams::new(Vec::<String>::new())
        .map_err(|error| SelfSignedError::Generate(error.to_string()))?;
    for name in names {
        let san = match name.parse::<IpAddr>() {
            Ok(ip) => rcgen::SanType::IpAddress(ip),
            Err(_) => rcgen::SanType::DnsName(
                name.clone()
                    .try_into()
                    .map_err(|_| SelfSignedError::BadName(name.clone()))?,
            ),
        };
        params.subject_alt_names.push(san);
    }
    let mut subject = DistinguishedName::new();
    subject.push(DnType::CommonName, "godottpd self-signed certificate");
    params.distinguished_name = subject;
    let now = SystemTime::now();
    let unix = |time: SystemTime| {
        let seconds = time
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs() as i64)
            .unwrap_or(0);
        time::OffsetDateTime::from_unix_timestamp(seconds)
            .map_err(|error| SelfSignedError::Generate(error.to_string()))
    };
    params.not_before = unix(now.checked_sub(BACKDATE).unwrap_or(UNIX_EPOCH))?;
    let not_after = now
        .checked_add(VALIDITY)
        .ok_or_else(|| SelfSignedError::Generate("the clock is out of range".into()))?;
    params.not_after = unix(not_after)?;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(|error| SelfSignedError::Generate(error.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|error| SelfSignedError::Generate(error.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Checks every name before anything is written, so a typo is a clear error.
fn check_names(names: &[String]) -> Result<(), SelfSignedError> {
    for name in names {
        if name.parse::<IpAddr>().is_ok() {
            continue;
        }
        let valid = !name.is_empty()
            && name.len() <= 253
            && name.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            });
        if !valid {
            return Err(SelfSignedError::BadName(name.clone()));
        }
    }
    Ok(())
}

/// The certificate and key files in `folder` (made there if need be) covering the
/// machine's names and `extra`; an existing pair is reused while it is valid for at least
/// 30 more days, names all of them, and its key matches.
pub fn ensure(folder: &Path, extra: &[String]) -> Result<TlsFiles, SelfSignedError> {
    let extra: Vec<String> = extra.iter().map(|name| canonical(name)).collect();
    check_names(&extra)?;
    let wanted = wanted_names(&extra);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(|error| SelfSignedError::Io(folder.to_owned(), error))?;
    let files = TlsFiles {
        cert: folder.join(CERT_FILE),
        key: folder.join(KEY_FILE),
    };
    let _lock = FolderLock::take(folder)?;
    let existing = describe(&files.cert);
    if let Some((names, not_after)) = &existing {
        let fresh = *not_after - now_unix() > RENEW_BEFORE.as_secs() as i64;
        let covers = wanted.iter().all(|name| names.contains(name));
        let matches = load_certified_key(&files, &provider()).is_ok();
        if fresh && covers && matches {
            return Ok(files);
        }
    }
    let mut names = wanted.clone();
    if let Some((old, _)) = existing {
        for name in old {
            if names.len() >= MAX_KEPT_NAMES {
                break;
            }
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let (cert, key) = generate(&names)?;
    write_atomically(&files.key, key.as_bytes(), 0o600)?;
    write_atomically(&files.cert, cert.as_bytes(), 0o644)?;
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let folder = std::env::temp_dir().join(format!(
            "godottpd-self-signed-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&folder);
        folder
    }

    #[test]
    fn makes_a_matching_pair_once_and_reuses_it() {
        let folder = scratch("reuse");
        let files = ensure(&folder, &[]).expect("a certificate");
        load_certified_key(&files, &provider()).expect("the key matches");
        let first = fs::read(&files.cert).expect("cert");
        let again = ensure(&folder, &[]).expect("a certificate");
        assert_eq!(fs::read(&again.cert).expect("cert"), first);
        let (names, not_after) = describe(&files.cert).expect("parsed");
        for name in ["localhost", "127.0.0.1", "::1"] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        assert!(not_after - now_unix() > 390 * 24 * 3600);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&files.key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let _ = fs::remove_dir_all(&folder);
    }

    #[test]
    fn a_new_name_makes_a_new_certificate_that_keeps_the_old_names() {
        let folder = scratch("names");
        let files = ensure(&folder, &["game.test".into()]).expect("a certificate");
        let first = fs::read(&files.cert).expect("cert");
        let files = ensure(&folder, &["Other.TEST".into()]).expect("a certificate");
        assert_ne!(fs::read(&files.cert).expect("cert"), first);
        let (names, _) = describe(&files.cert).expect("parsed");
        assert!(names.contains("game.test") && names.contains("other.test"));
        let _ = fs::remove_dir_all(&folder);
    }

    #[test]
    fn a_bad_name_is_an_error_before_anything_is_written() {
        let folder = scratch("bad");
        let error = ensure(&folder, &["not a name".into()]).expect_err("refused");
        assert!(matches!(error, SelfSignedError::BadName(_)));
        assert!(!folder.exists());
    }
}
