//! How the agent trusts the bridge: rustls (no OpenSSL, so `cargo` alone builds it) with
//! the public web's roots, plus the certificates of a CA file for a bridge whose
//! certificate a province issued itself. One client configuration serves the device API
//! (reqwest) and the WebSocket (tokio-tungstenite).

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum TlsError {
    #[error("cannot read CA file {path}: {why}")]
    CaFile { path: String, why: String },
    #[error("CA file {path} holds no certificate (PEM, -----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: String },
    #[error("CA file {path}: certificate not usable as a root: {why}")]
    BadRoot { path: String, why: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// The TLS client configuration for the bridge: web roots, plus `ca_file`'s if given.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let shown = path.display().to_string();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| TlsError::CaFile {
                path: shown.clone(),
                why: e.to_string(),
            })?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::CaFile {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        if certs.is_empty() {
            return Err(TlsError::NoCertificate { path: shown });
        }
        for c in certs {
            roots.add(c).map_err(|e| TlsError::BadRoot {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        }
    }
    // The provider named here, not a process default: more than one crypto backend is
    // linked into this binary (str0m's), and rustls will not guess between them.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Is `url`'s host this machine? Plain `http://` is allowed only there (or when the
/// operator says `--insecure`): elsewhere the device key would cross the network in clear.
pub fn is_loopback_url(url: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    let host = url.host_str().unwrap_or("");
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert!(matches!(
            client_config(Some(&empty)),
            Err(TlsError::NoCertificate { .. })
        ));
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(Some(&missing)),
            Err(TlsError::CaFile { .. })
        ));
        assert!(client_config(None).is_ok());
    }

    #[test]
    fn only_this_machine_counts_as_loopback() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080", true),
            ("http://[::1]:8080", true),
            ("http://10.0.0.5:8080", false),
            ("http://cauhop.example.gov.vn", false),
            ("not a url", false),
        ] {
            assert_eq!(is_loopback_url(url), local, "{url}");
        }
    }
}
