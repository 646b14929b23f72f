//! A rustls `ServerConfig` built from a PEM certificate chain and its private key.
//!
//! What is checked here, so that a bad file is a clear error at construction and never a
//! handshake failure in front of a client:
//!
//! - both files exist, are readable, and hold PEM (RFC 7468 §2: "-----BEGIN label-----"
//!   lines); the certificate file holds at least one `CERTIFICATE` block, the first being
//!   the server's own (RFC 8446 §4.4.2: "The sender's certificate MUST come in the first
//!   CertificateEntry in the list"), any others the chain that signs it;
//! - the key file holds one private key, PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or
//!   PKCS#1 (`RSA PRIVATE KEY`), of a kind the crypto provider can sign with (RSA, ECDSA
//!   P-256/P-384, Ed25519);
//! - the key is the certificate's: its public half equals the certificate's
//!   SubjectPublicKeyInfo (rustls' `CertifiedKey::keys_match`).
//!
//! The crypto provider is *ring* (see the README's HTTPS section: it builds with a C compiler
//! alone, where aws-lc-rs needs cmake and a much longer C build on a 2-core CI machine).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, StoresServerSessions};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::{self, PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The ALPN protocol the server speaks (RFC 7301 §3.2: the server picks one of the client's;
/// a client that offers only others gets the `no_application_protocol` alert).
pub const ALPN_HTTP11: &[u8] = b"http/1.1";

/// TLS sessions kept for resumption by session ID (TLS 1.2) and stateful resumption.
const SESSION_CACHE_SIZE: usize = 1024;

/// Which of the two files a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Certificate,
    Key,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Certificate => "TLS certificate file",
            Role::Key => "TLS key file",
        })
    }
}

/// Why the certificate and key cannot be used. Every message names the file.
#[derive(Debug)]
pub enum TlsFileError {
    Missing(Role, PathBuf),
    Unreadable(Role, PathBuf, io::Error),
    NotPem(Role, PathBuf, String),
    NoCertificate(PathBuf),
    NoKey(PathBuf),
    UnsupportedKey(PathBuf, String),
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
    },
    Rejected(PathBuf, String),
    /// The crypto provider failed (no system randomness): not about either file.
    Crypto(String),
}

impl fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsFileError::Missing(role, path) => {
                write!(f, "{role} {} does not exist", path.display())
            }
            TlsFileError::Unreadable(role, path, error) => {
                write!(f, "{role} {} cannot be read: {error}", path.display())
            }
            TlsFileError::NotPem(role, path, detail) => {
                write!(f, "{role} {} is not PEM: {detail}", path.display())
            }
            TlsFileError::NoCertificate(path) => write!(
                f,
                "TLS certificate file {} holds no PEM CERTIFICATE block",
                path.display()
            ),
            TlsFileError::NoKey(path) => write!(
                f,
                "TLS key file {} holds no PEM private key (PRIVATE KEY, EC PRIVATE KEY or \
                 RSA PRIVATE KEY)",
                path.display()
            ),
            TlsFileError::UnsupportedKey(path, detail) => write!(
                f,
                "TLS key file {} holds a key that cannot be used: {detail}",
                path.display()
            ),
            TlsFileError::Mismatch { cert, key } => write!(
                f,
                "TLS key file {} does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
            TlsFileError::Rejected(path, detail) => write!(
                f,
                "TLS certificate file {} cannot be used: {detail}",
                path.display()
            ),
            TlsFileError::Crypto(detail) => write!(f, "TLS cannot be set up: {detail}"),
        }
    }
}

impl std::error::Error for TlsFileError {}

/// The two files, as given.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a whole file, telling "missing" from "unreadable" (a folder, no permission).
fn read(role: Role, path: &Path) -> Result<Vec<u8>, TlsFileError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            Err(TlsFileError::Missing(role, path.to_owned()))
        }
        Err(error) => Err(TlsFileError::Unreadable(role, path.to_owned(), error)),
    }
}

fn pem_detail(error: &pem::Error) -> String {
    match error {
        pem::Error::NoItemsFound => "no -----BEGIN ...----- block found".into(),
        other => other.to_string(),
    }
}

/// The certificate chain in `path`, the server's own certificate first.
pub fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let bytes = read(Role::Certificate, path)?;
    let mut chain = Vec::new();
    let mut any_section = false;
    for item in <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes) {
        let (kind, der) = item.map_err(|error| {
            TlsFileError::NotPem(Role::Certificate, path.to_owned(), pem_detail(&error))
        })?;
        any_section = true;
        if kind == SectionKind::Certificate {
            chain.push(CertificateDer::from(der));
        }
    }
    if !any_section {
        return Err(TlsFileError::NotPem(
            Role::Certificate,
            path.to_owned(),
            pem_detail(&pem::Error::NoItemsFound),
        ));
    }
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate(path.to_owned()));
    }
    Ok(chain)
}

/// The private key in `path` (PKCS#8, SEC1 or PKCS#1).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    let bytes = read(Role::Key, path)?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            // Tell "not PEM at all" from "PEM, but no key in it" (a certificate given twice).
            let any_section = <(SectionKind, Vec<u8>)>::pem_slice_iter(&bytes)
                .next()
                .is_some_and(|item| item.is_ok());
            if any_section {
                Err(TlsFileError::NoKey(path.to_owned()))
            } else {
                Err(TlsFileError::NotPem(
                    Role::Key,
                    path.to_owned(),
                    pem_detail(&pem::Error::NoItemsFound),
                ))
            }
        }
        Err(error) => Err(TlsFileError::NotPem(
            Role::Key,
            path.to_owned(),
            pem_detail(&error),
        )),
    }
}

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate chain and key of `files`, checked to belong together.
pub fn load_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsFileError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| TlsFileError::UnsupportedKey(files.key.clone(), error.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsFileError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        // Every key type ring loads exposes its public key, so "unknown" does not happen
        // with this provider; should it, the handshake still proves possession.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(error) => Err(TlsFileError::Rejected(
            files.cert.clone(),
            error.to_string(),
        )),
    }
}

/// What survives a reload: the session cache and the ticket keys, so that clients holding a
/// session from before `reload_tls()` can still resume it.
pub struct Resumption {
    pub sessions: Arc<dyn StoresServerSessions>,
    pub ticketer: Arc<dyn ProducesTickets>,
}

impl Resumption {
    /// A session cache and a ticketer whose keys rotate every 6 hours (rustls' default).
    pub fn new() -> Result<Self, TlsFileError> {
        Ok(Resumption {
            sessions: rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_SIZE),
            ticketer: rustls::crypto::ring::Ticketer::new()
                .map_err(|error| TlsFileError::Crypto(error.to_string()))?,
        })
    }
}

/// A server configuration for `files`: TLS 1.3 and 1.2 (RFC 8446, RFC 5246; nothing older,
/// per RFC 8996 "TLS 1.0 and TLS 1.1 MUST NOT be used"), ALPN `http/1.1`, resumption by
/// session ID and by tickets.
pub fn server_config(
    files: &TlsFiles,
    resumption: &Resumption,
) -> Result<Arc<ServerConfig>, TlsFileError> {
    let provider = provider();
    let certified = Arc::new(load_certified_key(files, &provider)?);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| TlsFileError::Rejected(files.cert.clone(), error.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(OneCertificate(certified)));
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.session_storage = resumption.sessions.clone();
    config.ticketer = resumption.ticketer.clone();
    Ok(Arc::new(config))
}

/// The server has one certificate, whatever name the client asks for (SNI is not checked:
/// a LAN address typed on a phone sends none).
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for OneCertificate {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder with an rcgen certificate and key, plus a second, unrelated key.
    fn scratch(name: &str) -> (PathBuf, TlsFiles, PathBuf) {
        let folder =
            std::env::temp_dir().join(format!("godottpd-tls-config-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).expect("a scratch folder");
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("a certificate");
        let other = rcgen::KeyPair::generate().expect("a key");
        let files = TlsFiles {
            cert: folder.join("cert.pem"),
            key: folder.join("key.pem"),
        };
        std::fs::write(&files.cert, cert.pem()).expect("written");
        std::fs::write(&files.key, key.serialize_pem()).expect("written");
        let other_path = folder.join("other.pem");
        std::fs::write(&other_path, other.serialize_pem()).expect("written");
        (folder, files, other_path)
    }

    #[test]
    fn a_matching_pair_makes_a_configuration_with_alpn() {
        let (folder, files, _) = scratch("ok");
        let resumption = Resumption::new().expect("randomness");
        let config = server_config(&files, &resumption).expect("a configuration");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let _ = std::fs::remove_dir_all(folder);
    }

    #[test]
    fn each_problem_names_its_file() {
        let (folder, files, other) = scratch("errors");
        let check = |files: &TlsFiles, expected: &str| {
            let error = load_certified_key(files, &provider()).expect_err("refused");
            let message = error.to_string();
            assert!(message.contains(expected), "{message:?} lacks {expected:?}");
        };
        let mismatched = TlsFiles {
            key: other.clone(),
            ..files.clone()
        };
        check(&mismatched, "other.pem does not match the certificate in");
        let missing = TlsFiles {
            cert: folder.join("missing.pem"),
            ..files.clone()
        };
        check(&missing, "missing.pem does not exist");
        let folder_as_file = TlsFiles {
            key: folder.clone(),
            ..files.clone()
        };
        check(&folder_as_file, "cannot be read");
        let garbage = folder.join("garbage.pem");
        std::fs::write(&garbage, b"\x00\x01 not pem").expect("written");
        let not_pem = TlsFiles {
            cert: garbage,
            ..files.clone()
        };
        check(&not_pem, "garbage.pem is not PEM");
        let swapped = TlsFiles {
            cert: files.key.clone(),
            key: files.cert.clone(),
        };
        check(&swapped, "holds no PEM CERTIFICATE block");
        let _ = std::fs::remove_dir_all(folder);
    }
}
