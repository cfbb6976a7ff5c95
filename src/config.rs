//! The bridge's configuration: a TOML file (every field optional), overridden by
//! `CAUHOP_*` environment variables and command-line flags. `deploy/config.example.toml`
//! lists every field with its default; a test checks that it parses.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cauhop_sfu::SfuConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) http: HttpConfig,
    pub(crate) https: HttpsConfig,
    pub(crate) turn: TurnConfig,
    pub(crate) sfu: SfuConfig,
    pub(crate) store: StoreConfig,
    pub(crate) meetings: MeetingsConfig,
    pub(crate) record: RecordConfig,
    pub(crate) history: HistoryConfig,
    pub(crate) report: ReportConfig,
    pub(crate) webhooks: WebhooksConfig,
    pub(crate) log: LogConfig,
}

/// Meeting and site events posted to other systems, signed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct WebhooksConfig {
    /// Where each event is posted (empty: none).
    pub(crate) urls: Vec<String>,
    /// The HMAC-SHA256 key events are signed with (`CAUHOP_WEBHOOK_SECRET` replaces it).
    pub(crate) secret: String,
    /// An invited site still not in this many minutes after the start is reported.
    pub(crate) unreachable_after_min: u32,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: String::new(),
            unreachable_after_min: 5,
        }
    }
}

/// Each participant's link, sampled during meetings and kept for the meeting report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HistoryConfig {
    /// Seconds between two samples of a participant's link (1 to 60).
    pub(crate) sample_s: u32,
    /// Samples older than this are pruned (0: kept for ever).
    pub(crate) keep_days: u32,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        Self {
            sample_s: 10,
            keep_days: 90,
        }
    }
}

/// The meeting report.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ReportConfig {
    /// A site cut off, not heard with its microphone open, or on audio only for longer
    /// than this is named among the sites that could not be heard or seen.
    pub(crate) after_s: u32,
    /// The office's letterhead at the top of the printed report, one line per line
    /// ("UBND TỈNH ...\nVĂN PHÒNG").
    pub(crate) letterhead: String,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            after_s: 60,
            letterhead: String::new(),
        }
    }
}

/// Meetings' audio records (a meeting's settings say whether it is recorded).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct RecordConfig {
    /// Off: no meeting is recorded on this bridge, whatever its settings say.
    pub(crate) enabled: bool,
    /// Where records go: one folder per meeting. Not in `cauhop backup` unless asked
    /// (`--with-records`).
    pub(crate) dir: PathBuf,
    /// Records older than this are deleted (0: kept for ever).
    pub(crate) keep_days: u32,
    /// A record stops cleanly, and the chair is told, when the disk has less free
    /// space than this.
    pub(crate) min_free_mb: u64,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            dir: "records".into(),
            keep_days: 365,
            min_free_mb: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct StoreConfig {
    /// `sqlite://cauhop.db` (a file, created on first run) or `postgres://user@host/db`.
    pub(crate) database_url: String,
    /// The keys join links are signed with: outside the store, so no backup holds them.
    /// Created on first run (owner-only); `CAUHOP_JOIN_KEY` replaces it.
    pub(crate) join_key_file: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            database_url: "sqlite://cauhop.db".into(),
            join_key_file: "cauhop-join.key".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// Address of the web page, the API and the signaling WebSocket.
    pub(crate) listen: SocketAddr,
    /// Mark the admin session cookie `Secure` (sent only over HTTPS, or to localhost).
    pub(crate) secure_cookies: bool,
    /// Reverse proxies (addresses or CIDRs) whose `X-Forwarded-For` names the client, for
    /// rate limits and logs. Only these: anyone else could claim any address.
    pub(crate) trusted_proxies: Vec<ipnet::IpNet>,
    /// Prometheus scrapes `/metrics` with `Authorization: Bearer <this>`; unset, only
    /// this machine may read it. `CAUHOP_METRICS_TOKEN` replaces it; never printed.
    #[serde(skip_serializing)]
    pub(crate) metrics_token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            // Behind the TLS proxy on the same machine: plain HTTP never leaves it.
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            secure_cookies: true,
            trusted_proxies: cauhop_signaling::client_addr::TrustedProxies::default().0,
            metrics_token: None,
        }
    }
}

/// HTTPS served by the bridge itself (browsers allow camera and microphone only on
/// https://). Off unless `listen` is set: `cargo run` serves plain HTTP on localhost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpsConfig {
    /// Address for HTTPS, e.g. "0.0.0.0:443" (the packaged service may bind 443).
    pub(crate) listen: Option<SocketAddr>,
    /// "self-signed": made on first run into `cert_file`/`key_file`, for a bridge only a
    /// LAN reaches (users accept it once, after comparing the fingerprint the bridge
    /// prints). "files": a certificate and key you put there (the province's CA,
    /// certbot); re-read when they change on disk or on SIGHUP.
    pub(crate) certificate: CertificateKind,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
    /// Host names and addresses users type to reach the bridge: the self-signed
    /// certificate's names (localhost and the media addresses are always in it).
    pub(crate) names: Vec<String>,
    /// A plain-HTTP address that sends every request to HTTPS, e.g. "0.0.0.0:80".
    pub(crate) redirect_listen: Option<SocketAddr>,
    /// With `certificate = "acme"`: the CA's directory (Let's Encrypt by default), the
    /// `mailto:` contacts it writes to, a CA file to trust for a private ACME CA, and
    /// where the account is kept. `names` are the names certified; the CA checks them
    /// on this HTTPS port (TLS-ALPN-01), which must be 443 as the CA sees it.
    pub(crate) acme_directory: String,
    pub(crate) acme_contact: Vec<String>,
    pub(crate) acme_ca_file: Option<PathBuf>,
    pub(crate) acme_account_file: PathBuf,
    /// Media over TCP on the HTTPS port too (ICE-TCP, RFC 6544), for sites whose
    /// network lets only web traffic out; UDP wins wherever it works.
    pub(crate) ice_tcp: bool,
}

/// A TURN server (coturn) for sites whose network lets out nothing but web traffic,
/// even to the HTTPS port's ICE-TCP (a proxy that inspects TLS): clients get its URLs
/// with short-lived credentials made from the secret the bridge shares with it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct TurnConfig {
    /// e.g. ["turn:turn.example.gov.vn:3478?transport=udp",
    /// "turns:turn.example.gov.vn:443?transport=tcp"]; empty: no TURN.
    pub(crate) urls: Vec<String>,
    /// coturn's `static-auth-secret` (with `use-auth-secret`). `CAUHOP_TURN_SECRET`
    /// replaces it; never printed.
    #[serde(skip_serializing)]
    pub(crate) secret: String,
    /// How long a client's credential lives.
    pub(crate) ttl_minutes: u32,
}

impl Default for TurnConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            secret: String::new(),
            ttl_minutes: 12 * 60,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum CertificateKind {
    #[default]
    SelfSigned,
    Files,
    Acme,
}

impl Default for HttpsConfig {
    fn default() -> Self {
        Self {
            listen: None,
            certificate: CertificateKind::SelfSigned,
            cert_file: "cauhop-tls.crt".into(),
            key_file: "cauhop-tls.key".into(),
            names: Vec::new(),
            redirect_listen: None,
            acme_directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            acme_contact: Vec::new(),
            acme_ca_file: None,
            acme_account_file: "cauhop-acme-account.json".into(),
            ice_tcp: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MeetingsConfig {
    /// Rooms anyone can open by name, without a join link (demos, tests). Off by default:
    /// an official bridge admits only scheduled meetings' invitees.
    pub(crate) ad_hoc: bool,
    /// With `ad_hoc`, only these room ids.
    pub(crate) allowed: Option<Vec<String>>,
    /// The lobby opens this many minutes before the start.
    pub(crate) lobby_minutes: u32,
    /// Participants are warned this many minutes before the end.
    pub(crate) warn_minutes: u32,
    /// The room closes this many minutes after the end (the chair can extend or end early).
    pub(crate) grace_minutes: u32,
    /// Participants one meeting admits at once (further joins get `full`).
    pub(crate) max_per_meeting: usize,
    /// Participants the whole bridge admits at once.
    pub(crate) max_participants: usize,
}

impl Default for MeetingsConfig {
    fn default() -> Self {
        Self {
            ad_hoc: false,
            allowed: None,
            lobby_minutes: 15,
            warn_minutes: 5,
            grace_minutes: 10,
            max_per_meeting: 500,
            max_participants: 2000,
        }
    }
}

impl MeetingsConfig {
    pub(crate) fn schedule(&self) -> cauhop_store::schedule::ScheduleConfig {
        cauhop_store::schedule::ScheduleConfig {
            lobby_before_secs: i64::from(self.lobby_minutes) * 60,
            warn_before_secs: i64::from(self.warn_minutes) * 60,
            grace_secs: i64::from(self.grace_minutes) * 60,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct LogConfig {
    /// One JSON object per line instead of text (for journald/Loki collectors).
    pub(crate) json: bool,
}

impl Config {
    pub(crate) fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("config file {} is invalid", path.display()))
    }

    pub(crate) fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_matches_defaults() {
        let text = include_str!("../deploy/config.example.toml");
        let parsed = Config::parse(text).expect("example config parses");
        let defaults = Config::default();
        assert_eq!(parsed.http.listen, defaults.http.listen);
        assert_eq!(parsed.sfu.port, defaults.sfu.port);
        assert_eq!(parsed.https.listen, defaults.https.listen);
        assert_eq!(parsed.https.certificate, defaults.https.certificate);
        assert_eq!(parsed.https.cert_file, defaults.https.cert_file);
    }

    #[test]
    fn https_from_files_parses() {
        let c = Config::parse(
            "[https]\nlisten = \"0.0.0.0:443\"\ncertificate = \"files\"\n\
             cert_file = \"/etc/cauhop/tls.crt\"\nkey_file = \"/etc/cauhop/tls.key\"\n\
             redirect_listen = \"0.0.0.0:80\"\n",
        )
        .expect("parses");
        assert_eq!(c.https.certificate, CertificateKind::Files);
        assert_eq!(c.https.listen, Some(SocketAddr::from(([0, 0, 0, 0], 443))));
        let err = Config::parse("[https]\ncertificate = \"acme-please\"\n").expect_err("bad kind");
        assert!(format!("{err:#}").contains("acme-please"), "{err:#}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = Config::parse("[http]\nlisten_port = 1\n").expect_err("unknown field");
        assert!(format!("{err:#}").contains("listen_port"), "{err:#}");
    }
}
