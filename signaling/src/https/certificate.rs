//! The bridge's own TLS certificate: from files an operator (or a CA) put on disk, or
//! self-signed on first run for a bridge that only a LAN reaches. The files are re-read
//! when they change on disk (or on SIGHUP), so a renewed certificate is served without a
//! restart; a file that does not parse keeps the old certificate in service and says why.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tracing::{error, info};
use utoipa::ToSchema;

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A certificate chain and its key (PEM), e.g. from the province's CA or certbot.
    Files { cert: PathBuf, key: PathBuf },
    /// Made on first run for `names` (host names and addresses) and kept in the two
    /// files; used as it is on later runs.
    SelfSigned {
        cert: PathBuf,
        key: PathBuf,
        names: Vec<String>,
    },
    /// Obtained and renewed from an ACME CA for `names` (`acme.rs`), kept in the two
    /// files; until the first one arrives a self-signed one stands in.
    Acme {
        cert: PathBuf,
        key: PathBuf,
        names: Vec<String>,
    },
}

impl Source {
    fn paths(&self) -> (&Path, &Path) {
        match self {
            Source::Files { cert, key }
            | Source::SelfSigned { cert, key, .. }
            | Source::Acme { cert, key, .. } => (cert, key),
        }
    }
}

#[derive(Debug, Error)]
pub enum CertificateError {
    #[error("cannot read {path}: {why}")]
    Read { path: String, why: String },
    #[error("{path} holds no certificate (PEM: -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("{path} holds no private key (PEM: PKCS#8, PKCS#1 RSA or SEC1 EC)")]
    NoKey { path: String },
    #[error("{path}: the key cannot sign: {why}")]
    BadKey { path: String, why: String },
    #[error("the key in {key} does not belong to the certificate in {cert}")]
    Mismatch { cert: String, key: String },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(String),
    #[error("cannot write {path}: {why}")]
    Write { path: String, why: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// What the admin page shows about the certificate in service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct CertificateInfo {
    /// Made by the bridge itself: browsers warn once, and users should compare this
    /// fingerprint with the one the IT officer gives them before accepting it.
    pub self_signed: bool,
    /// SHA-256 of the leaf certificate, as browsers show it (`AB:CD:…`).
    pub fingerprint_sha256: String,
    /// The names and addresses it is valid for.
    pub names: Vec<String>,
    /// When it stops being valid (RFC 2822), if the certificate could be read.
    pub not_after: Option<String>,
    /// The same as seconds since 1970 (renewal; the admin page writes it dd/mm/yyyy).
    pub not_after_unix: Option<i64>,
}

/// The certificate in service, swapped when its files change.
pub struct Certificates {
    source: Source,
    provider: Arc<CryptoProvider>,
    current: RwLock<(Arc<CertifiedKey>, CertificateInfo)>,
    /// TLS-ALPN-01 answers (RFC 8737) by server name, while an ACME order runs.
    challenges: Mutex<std::collections::HashMap<String, Arc<CertifiedKey>>>,
    /// The files' modification times when last read.
    stamp: Mutex<Option<(SystemTime, SystemTime)>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("source", &self.source)
            .field("info", &self.info())
            .finish()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let acme = hello
            .alpn()
            .is_some_and(|mut p| p.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // Only the CA's validation asks for this protocol; nobody else gets an answer.
            let name = hello.server_name()?;
            let challenges = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
            return challenges.get(name).cloned();
        }
        Some(read(&self.current).0.clone())
    }
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// The ALPN protocol of ACME's TLS-ALPN-01 validation (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

impl Certificates {
    /// Load the certificate, making a self-signed one first if it is asked for and its
    /// files do not exist yet.
    pub fn open(source: Source) -> Result<Arc<Self>, CertificateError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if let Source::SelfSigned { cert, key, names } | Source::Acme { cert, key, names } = &source
            && !cert.exists()
            && !key.exists()
        {
            make_self_signed(cert, key, names)?;
            info!(cert = %cert.display(), key = %key.display(), ?names, "made a self-signed TLS certificate");
        }
        let (cert, key) = source.paths();
        let stamp = stamps(cert, key);
        let loaded = load(cert, key, &provider)?;
        warn_expiry(&loaded.1);
        Ok(Arc::new(Self {
            source,
            provider,
            current: RwLock::new(loaded),
            challenges: Mutex::new(std::collections::HashMap::new()),
            stamp: Mutex::new(stamp),
        }))
    }

    pub fn info(&self) -> CertificateInfo {
        read(&self.current).1
    }

    /// The rustls server configuration that serves this certificate (HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, CertificateError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| CertificateError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        if matches!(self.source, Source::Acme { .. }) {
            config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
        }
        Ok(Arc::new(config))
    }

    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Answer TLS-ALPN-01 for `name` with `key` (or stop answering with `None`).
    pub fn set_challenge(&self, name: &str, key: Option<Arc<CertifiedKey>>) {
        let mut c = self.challenges.lock().unwrap_or_else(|p| p.into_inner());
        match key {
            Some(k) => {
                c.insert(name.to_owned(), k);
            }
            None => {
                c.remove(name);
            }
        }
    }

    pub(crate) fn provider(&self) -> &CryptoProvider {
        &self.provider
    }

    /// Read the files again if they changed on disk (or `force`). `Ok(true)`: a new
    /// certificate is in service. On an error the old one stays.
    pub fn reload(&self, force: bool) -> Result<bool, CertificateError> {
        let (cert, key) = self.source.paths();
        let now = stamps(cert, key);
        let mut stamp = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
        if !force && now == *stamp {
            return Ok(false);
        }
        // Whatever happens next, this version of the files has been looked at: a broken
        // file is reported once, not every few seconds.
        *stamp = now;
        drop(stamp);
        let loaded = load(cert, key, &self.provider)?;
        let changed = loaded.1 != self.info();
        warn_expiry(&loaded.1);
        match self.current.write() {
            Ok(mut g) => *g = loaded,
            Err(p) => *p.into_inner() = loaded,
        }
        Ok(changed)
    }

    /// Look at the files every `every`, and at once on SIGHUP, until `shutdown`.
    pub async fn watch(
        self: Arc<Self>,
        every: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let hangup = async {
                match hup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            #[cfg(not(unix))]
            let hangup = std::future::pending::<()>();
            let force = tokio::select! {
                _ = tokio::time::sleep(every) => false,
                _ = hangup => true,
                _ = shutdown.changed() => return,
            };
            match self.reload(force) {
                Ok(true) => {
                    let i = self.info();
                    info!(fingerprint = %i.fingerprint_sha256, not_after = ?i.not_after, "new TLS certificate in service");
                }
                Ok(false) => {}
                Err(e) => error!(
                    "the TLS certificate on disk is not usable, the previous one stays in service: {e}"
                ),
            }
        }
    }
}

fn stamps(cert: &Path, key: &Path) -> Option<(SystemTime, SystemTime)> {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((m(cert)?, m(key)?))
}

fn load(
    cert_path: &Path,
    key_path: &Path,
    provider: &CryptoProvider,
) -> Result<(Arc<CertifiedKey>, CertificateInfo), CertificateError> {
    let shown = |p: &Path| p.display().to_string();
    let read_err = |p: &Path, e: &dyn std::fmt::Display| CertificateError::Read {
        path: shown(p),
        why: e.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| read_err(cert_path, &e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_err(cert_path, &e))?;
    let Some(leaf) = certs.first() else {
        return Err(CertificateError::NoCertificate {
            path: shown(cert_path),
        });
    };
    let key = match PrivateKeyDer::from_pem_file(key_path) {
        Ok(k) => k,
        Err(rustls::pki_types::pem::Error::NoItemsFound) => {
            return Err(CertificateError::NoKey {
                path: shown(key_path),
            });
        }
        Err(e) => return Err(read_err(key_path, &e)),
    };
    let info = describe(leaf);
    let signer =
        provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| CertificateError::BadKey {
                path: shown(key_path),
                why: e.to_string(),
            })?;
    let certified = CertifiedKey::new(certs, signer);
    certified
        .keys_match()
        .map_err(|_| CertificateError::Mismatch {
            cert: shown(cert_path),
            key: shown(key_path),
        })?;
    Ok((Arc::new(certified), info))
}

/// `AB:CD:…`, as browsers show a certificate's SHA-256 fingerprint.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn describe(leaf: &CertificateDer<'_>) -> CertificateInfo {
    let mut info = CertificateInfo {
        self_signed: false,
        fingerprint_sha256: fingerprint(leaf),
        names: Vec::new(),
        not_after: None,
        not_after_unix: None,
    };
    if let Ok((_, x)) = x509_parser::parse_x509_certificate(leaf) {
        // Self-signed: issued by itself, whoever made it (the bridge, or an operator).
        info.self_signed = x.issuer() == x.subject();
        info.not_after = x.validity().not_after.to_rfc2822().ok();
        info.not_after_unix = Some(x.validity().not_after.timestamp());
        if let Ok(Some(san)) = x.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        info.names.push((*d).to_owned())
                    }
                    x509_parser::extensions::GeneralName::IPAddress(b) => {
                        let ip = match b.len() {
                            4 => <[u8; 4]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            16 => <[u8; 16]>::try_from(*b).ok().map(std::net::IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            info.names.push(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let left = x.validity().time_to_expiration();
        if left.is_none() {
            info.not_after = info.not_after.map(|t| format!("{t} (expired)"));
        }
    }
    info
}

fn warn_expiry(info: &CertificateInfo) {
    if let Some(t) = &info.not_after
        && t.ends_with("(expired)")
    {
        error!(not_after = %t, "the TLS certificate has expired: browsers will refuse the bridge");
    }
}

/// A self-signed certificate for `names` (plus localhost), valid for ten years: it is
/// trusted by its fingerprint, not by a date. ECDSA P-256, as browsers prefer.
fn make_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<(), CertificateError> {
    let mut all: Vec<String> = names.to_vec();
    for n in ["localhost", "127.0.0.1"] {
        if !all.iter().any(|a| a == n) {
            all.push(n.to_owned());
        }
    }
    let failed = |e: rcgen::Error| CertificateError::Generate(e.to_string());
    let pair = rcgen::KeyPair::generate().map_err(failed)?;
    let mut params = rcgen::CertificateParams::new(all).map_err(failed)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "cauhop bridge (self-signed)");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(10 * 365);
    let c = params.self_signed(&pair).map_err(failed)?;
    write_private(key, pair.serialize_pem().as_bytes())?;
    std::fs::write(cert, c.pem()).map_err(|e| CertificateError::Write {
        path: cert.display().to_string(),
        why: e.to_string(),
    })?;
    Ok(())
}

/// Write a key readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CertificateError> {
    use std::io::Write;
    let err = |e: std::io::Error| CertificateError::Write {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    Ok(())
}
