//! Certificates from an ACME CA (Let's Encrypt, or a province's own such as step-ca)
//! for a bridge with a public name, obtained on first start and renewed before they
//! expire, with no port but the HTTPS one: the CA validates over TLS-ALPN-01 (RFC 8737)
//! on the very listener that serves the bridge. The account and the certificate live in
//! files beside the store; the certificate store (`certificate.rs`) serves what is on
//! disk and the challenge answers while an order runs.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use thiserror::Error;
use tracing::{error, info, warn};

use super::certificate::{Certificates, Source};

/// Where and how to ask for certificates.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The CA's directory URL (Let's Encrypt: `https://acme-v02.api.letsencrypt.org/directory`).
    pub directory: String,
    /// `mailto:` addresses the CA writes to about expiry and problems.
    pub contact: Vec<String>,
    /// A CA certificate (PEM) to trust for the directory itself: a private ACME CA.
    pub ca_file: Option<PathBuf>,
    /// Where the account's credentials are kept (owner-only).
    pub account_file: PathBuf,
    /// Renew when the certificate has less than this left.
    pub renew_before: Duration,
}

#[derive(Debug, Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Acme(#[from] instant_acme::Error),
    #[error("ACME order for {names:?} ended {status}")]
    Order { names: Vec<String>, status: String },
    #[error("the CA offered no tls-alpn-01 challenge for {0}")]
    NoChallenge(String),
    #[error("cannot make a key or request: {0}")]
    Key(String),
    #[error("cannot keep {path}: {why}")]
    Store { path: String, why: String },
    #[error(transparent)]
    Certificate(#[from] super::certificate::CertificateError),
}

/// Obtain a certificate when there is none from the CA yet or it is due for renewal,
/// then look again twice a day, until `shutdown`. Failures are logged and retried with
/// a growing pause (1 minute to 1 hour); the certificate in service stays meanwhile.
pub async fn run(
    certs: Arc<Certificates>,
    cfg: AcmeConfig,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut pause = Duration::from_secs(60);
    loop {
        let wait = if due(&certs, cfg.renew_before) {
            match obtain(&certs, &cfg).await {
                Ok(()) => {
                    let i = certs.info();
                    info!(fingerprint = %i.fingerprint_sha256, not_after = ?i.not_after, names = ?i.names, "certificate from the ACME CA in service");
                    pause = Duration::from_secs(60);
                    Duration::from_secs(12 * 3600)
                }
                Err(e) => {
                    error!(
                        "cannot get a certificate from the ACME CA ({}), retrying in {} s: {e}",
                        cfg.directory,
                        pause.as_secs()
                    );
                    let p = pause;
                    pause = (pause * 2).min(Duration::from_secs(3600));
                    p
                }
            }
        } else {
            Duration::from_secs(12 * 3600)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// A certificate is due when the one in service is the self-signed stand-in, or has
/// less than `before` left.
pub fn due(certs: &Certificates, before: Duration) -> bool {
    let i = certs.info();
    if i.self_signed {
        return true;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    i.not_after_unix
        .is_none_or(|t| t - now < before.as_secs() as i64)
}

/// One order: account, TLS-ALPN-01 for each name, a new key and CSR, the chain, the
/// files, the certificate in service.
pub async fn obtain(certs: &Certificates, cfg: &AcmeConfig) -> Result<(), AcmeError> {
    let Source::Acme { cert, key, names } = certs.source() else {
        return Ok(());
    };
    let account = account(cfg).await?;
    let identifiers: Vec<Identifier> = names.iter().map(|n| Identifier::Dns(n.clone())).collect();
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await?;
    let mut answered = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let name = authz.identifier().to_string();
        let mut challenge = authz
            .challenge(ChallengeType::TlsAlpn01)
            .ok_or_else(|| AcmeError::NoChallenge(name.clone()))?;
        let digest = challenge.key_authorization().digest();
        let answer = challenge_certificate(certs, &name, digest.as_ref())?;
        certs.set_challenge(&name, Some(answer));
        answered.push(name);
        challenge.set_ready().await?;
    }
    let retry = RetryPolicy::new().timeout(Duration::from_secs(120));
    let status = order.poll_ready(&retry).await;
    for name in &answered {
        certs.set_challenge(name, None);
    }
    let status = status?;
    if status != OrderStatus::Ready {
        return Err(AcmeError::Order {
            names: names.clone(),
            status: format!("{status:?}"),
        });
    }
    // A new key for each certificate; the request names every name.
    let fail = |e: rcgen::Error| AcmeError::Key(e.to_string());
    let pair = rcgen::KeyPair::generate().map_err(fail)?;
    let params = rcgen::CertificateParams::new(names.clone()).map_err(fail)?;
    let csr = params.serialize_request(&pair).map_err(fail)?;
    order.finalize_csr(csr.der()).await?;
    let chain = order.poll_certificate(&retry).await?;
    // Key first: a reader that sees the new chain with the old key would refuse it, and
    // the store keeps the old pair until both files agree.
    write_private(key, pair.serialize_pem().as_bytes())?;
    write_file(cert, chain.as_bytes())?;
    certs.reload(true)?;
    Ok(())
}

/// The account from its file, or a new one (kept in the file, owner-only).
async fn account(cfg: &AcmeConfig) -> Result<Account, AcmeError> {
    let builder = match &cfg.ca_file {
        Some(ca) => Account::builder_with_root(ca)?,
        None => Account::builder()?,
    };
    if let Ok(text) = std::fs::read_to_string(&cfg.account_file)
        && let Ok(creds) = serde_json::from_str::<AccountCredentials>(&text)
    {
        return Ok(builder.from_credentials(creds).await?);
    }
    let contact: Vec<&str> = cfg.contact.iter().map(String::as_str).collect();
    let (account, creds) = builder
        .create(
            &NewAccount {
                contact: &contact,
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            cfg.directory.clone(),
            None,
        )
        .await?;
    let json = serde_json::to_string(&creds).map_err(|e| AcmeError::Store {
        path: cfg.account_file.display().to_string(),
        why: e.to_string(),
    })?;
    let _ = std::fs::remove_file(&cfg.account_file);
    write_private(&cfg.account_file, json.as_bytes())?;
    info!(directory = %cfg.directory, file = %cfg.account_file.display(), "ACME account created");
    Ok(account)
}

/// The self-signed certificate that answers TLS-ALPN-01 for `name` (RFC 8737 3).
fn challenge_certificate(
    certs: &Certificates,
    name: &str,
    digest: &[u8],
) -> Result<Arc<CertifiedKey>, AcmeError> {
    let fail = |e: rcgen::Error| AcmeError::Key(e.to_string());
    let pair = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).map_err(fail)?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest));
    let cert = params.self_signed(&pair).map_err(fail)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pair.serialize_der()));
    let signer = certs
        .provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| AcmeError::Key(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signer,
    )))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    // Beside the target, then renamed: a reader never sees half a file.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| AcmeError::Store {
            path: path.display().to_string(),
            why: e.to_string(),
        })
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    use std::io::Write;
    let tmp = path.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let err = |e: std::io::Error| AcmeError::Store {
        path: path.display().to_string(),
        why: e.to_string(),
    };
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Err(e) = std::fs::metadata(path) {
        warn!(path = %path.display(), "cannot read back: {e}");
    }
    Ok(())
}
