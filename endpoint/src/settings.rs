//! The agent's settings: a TOML file (`/etc/cauhop/endpoint.toml`) and flags, flags
//! winning. Media sources and sinks are written the way an installer thinks of them:
//! `test`, `none`, `rtp:5004`, a file path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use thiserror::Error;

use crate::media::{AudioIn, MediaConfig, VideoIn};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("missing {0}: give it in the config file or as a flag")]
    Missing(&'static str),
    #[error("config file: {0}")]
    File(String),
}

impl FromStr for VideoIn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "test" => Ok(VideoIn::TestPattern),
            "none" => Ok(VideoIn::None),
            _ => match s.strip_prefix("rtp:") {
                Some(port) => port
                    .parse()
                    .map(VideoIn::Rtp)
                    .map_err(|_| format!("{port:?} is not a UDP port")),
                None if s.ends_with(".ivf") => Ok(VideoIn::Ivf(PathBuf::from(s))),
                None => Err(format!(
                    "{s:?}: use test, none, rtp:PORT or a VP8 .ivf file"
                )),
            },
        }
    }
}

impl FromStr for AudioIn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tone" | "test" => Ok(AudioIn::Tone),
            "none" => Ok(AudioIn::None),
            _ => match s.strip_prefix("rtp:") {
                Some(port) => port
                    .parse()
                    .map(AudioIn::Rtp)
                    .map_err(|_| format!("{port:?} is not a UDP port")),
                None => Err(format!("{s:?}: use tone, none or rtp:PORT")),
            },
        }
    }
}

/// The config file. Every field is optional here; `resolve` says what is missing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    pub bridge: Option<String>,
    pub key: Option<String>,
    /// PEM certificates of the CA that signed the bridge's certificate (a province's own
    /// CA), trusted besides the public web's.
    pub ca_file: Option<PathBuf>,
    /// Allow `http://` to a bridge that is not on this machine (a closed test network).
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub media: FileMedia,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMedia {
    pub video: Option<String>,
    pub audio: Option<String>,
    pub video_out: Option<String>,
    pub audio_out: Option<String>,
    pub via: Option<String>,
    /// Media over TCP for a room whose network lets only web traffic out: `"bridge"`
    /// (the bridge's own HTTPS host and port) or `"host:port"`.
    pub tcp: Option<String>,
}

impl FileSettings {
    pub fn parse(text: &str) -> Result<Self, SettingsError> {
        toml::from_str(text).map_err(|e| SettingsError::File(e.to_string()))
    }
}

/// Values from flags (or the environment); `None` falls back to the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bridge: Option<String>,
    pub key: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub insecure: bool,
    pub video: Option<String>,
    pub audio: Option<String>,
    pub video_out: Option<String>,
    pub audio_out: Option<String>,
    pub via: Option<String>,
    pub tcp: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub bridge: String,
    pub key: String,
    pub ca_file: Option<PathBuf>,
    pub media: MediaConfig,
}

fn addr(field: &'static str, v: Option<String>) -> Result<Option<SocketAddr>, SettingsError> {
    v.map(|s| {
        s.parse().map_err(|_| SettingsError::Invalid {
            field,
            reason: format!("{s:?} is not an address like 127.0.0.1:5004"),
        })
    })
    .transpose()
}

pub fn resolve(file: FileSettings, flags: Overrides) -> Result<Settings, SettingsError> {
    let bridge = flags
        .bridge
        .or(file.bridge)
        .ok_or(SettingsError::Missing("bridge"))?;
    if !(bridge.starts_with("http://") || bridge.starts_with("https://")) {
        return Err(SettingsError::Invalid {
            field: "bridge",
            reason: format!("{bridge:?} must start with https:// (or http:// on a test network)"),
        });
    }
    let insecure = flags.insecure || file.insecure;
    if bridge.starts_with("http://") && !crate::tls::is_loopback_url(&bridge) && !insecure {
        return Err(SettingsError::Invalid {
            field: "bridge",
            reason: format!(
                "{bridge:?}: plain http:// would send this room's key across the network in \
                 clear; use https:// (with ca_file for a private certificate), or --insecure \
                 on a closed test network"
            ),
        });
    }
    let ca_file = flags.ca_file.or(file.ca_file);
    let key = flags
        .key
        .or(file.key)
        .ok_or(SettingsError::Missing("key"))?;
    let m = file.media;
    let video_in = flags
        .video
        .or(m.video)
        .map(|v| v.parse())
        .transpose()
        .map_err(|reason| SettingsError::Invalid {
            field: "video",
            reason,
        })?
        .unwrap_or(VideoIn::TestPattern);
    let audio_in = flags
        .audio
        .or(m.audio)
        .map(|v| v.parse())
        .transpose()
        .map_err(|reason| SettingsError::Invalid {
            field: "audio",
            reason,
        })?
        .unwrap_or(AudioIn::Tone);
    let media = MediaConfig {
        video_in,
        audio_in,
        video_out: addr("video_out", flags.video_out.or(m.video_out))?,
        audio_out: addr("audio_out", flags.audio_out.or(m.audio_out))?,
        media_via: addr("via", flags.via.or(m.via))?,
        media_tcp: flags
            .tcp
            .or(m.tcp)
            .map(|t| tcp_target(&t, &bridge))
            .transpose()?,
        ..MediaConfig::default()
    };
    Ok(Settings {
        bridge,
        key,
        ca_file,
        media,
    })
}

/// Where media over TCP goes: `"bridge"` is the bridge URL's own host and port.
fn tcp_target(v: &str, bridge: &str) -> Result<SocketAddr, SettingsError> {
    use std::net::ToSocketAddrs;
    let invalid = |reason: String| SettingsError::Invalid {
        field: "tcp",
        reason,
    };
    let target = if v == "bridge" {
        let url = reqwest::Url::parse(bridge).map_err(|e| invalid(e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| invalid(format!("{bridge} names no host")))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid(format!("{bridge} names no port")))?;
        format!("{}:{port}", host.trim_matches(['[', ']']))
    } else {
        v.to_owned()
    };
    target
        .to_socket_addrs()
        .map_err(|e| invalid(format!("{target}: {e}")))?
        .next()
        .ok_or_else(|| invalid(format!("{target} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_over_tcp_goes_to_the_bridges_https_port() {
        assert_eq!(
            tcp_target("bridge", "https://127.0.0.1/").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 443)))
        );
        assert_eq!(
            tcp_target("bridge", "https://127.0.0.1:8443").ok(),
            Some(SocketAddr::from(([127, 0, 0, 1], 8443)))
        );
        assert_eq!(
            tcp_target("10.0.0.5:443", "https://x").ok(),
            Some(SocketAddr::from(([10, 0, 0, 5], 443)))
        );
        assert!(tcp_target("not an address", "https://x").is_err());
    }

    #[test]
    fn the_example_in_deploy_is_valid() {
        let file = FileSettings::parse(include_str!("../../deploy/endpoint.example.toml"))
            .expect("example parses");
        let s = resolve(file, Overrides::default()).expect("example resolves");
        assert_eq!(s.media.video_in, VideoIn::Rtp(5004));
        assert_eq!(s.media.audio_in, AudioIn::Rtp(5006));
    }

    #[test]
    fn flags_win_over_the_file() {
        let file = FileSettings::parse(
            r#"
            bridge = "https://cauhop.laocai.gov.vn"
            key = "chd_file"
            [media]
            video = "rtp:5004"
            audio = "rtp:5006"
            audio_out = "127.0.0.1:6000"
            "#,
        )
        .expect("file");
        let s = resolve(
            file,
            Overrides {
                key: Some("chd_flag".into()),
                video: Some("none".into()),
                ..Default::default()
            },
        )
        .expect("settings");
        assert_eq!(s.key, "chd_flag");
        assert_eq!(s.media.video_in, VideoIn::None);
        assert_eq!(s.media.audio_in, AudioIn::Rtp(5006));
        assert_eq!(
            s.media.audio_out,
            Some("127.0.0.1:6000".parse().expect("a"))
        );
    }

    #[test]
    fn plain_http_only_to_this_machine_or_when_told() {
        let with = |bridge: &str, insecure: bool| {
            resolve(
                FileSettings::default(),
                Overrides {
                    bridge: Some(bridge.into()),
                    key: Some("k".into()),
                    insecure,
                    ..Default::default()
                },
            )
        };
        let refused = with("http://10.0.0.5:8080", false).expect_err("refused");
        assert!(refused.to_string().contains("in clear"), "{refused}");
        assert!(with("http://10.0.0.5:8080", true).is_ok());
        assert!(with("http://127.0.0.1:8080", false).is_ok());
        assert!(with("https://cauhop.example.gov.vn", false).is_ok());
        let file = FileSettings::parse(
            "bridge = \"http://10.0.0.5\"\nkey = \"k\"\ninsecure = true\nca_file = \"/etc/cauhop/ca.pem\"\n",
        )
        .expect("file");
        let s = resolve(file, Overrides::default()).expect("insecure in the file");
        assert_eq!(s.ca_file, Some(PathBuf::from("/etc/cauhop/ca.pem")));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let f = || FileSettings::parse(r#"bridge = "https://b""#).expect("file");
        let with = |o: Overrides| resolve(f(), o).expect_err("refused").to_string();
        assert_eq!(
            with(Overrides::default()),
            "missing key: give it in the config file or as a flag"
        );
        let key = || Overrides {
            key: Some("k".into()),
            ..Default::default()
        };
        assert!(
            with(Overrides {
                video: Some("webcam".into()),
                ..key()
            })
            .starts_with("video: \"webcam\"")
        );
        assert!(
            with(Overrides {
                audio_out: Some("speaker".into()),
                ..key()
            })
            .starts_with("audio_out:")
        );
        assert!(
            with(Overrides {
                bridge: Some("cauhop.gov.vn".into()),
                ..key()
            })
            .starts_with("bridge:")
        );
        assert!(FileSettings::parse("bridg = 1").is_err(), "unknown field");
        assert_eq!(
            "clip.ivf".parse::<VideoIn>(),
            Ok(VideoIn::Ivf("clip.ivf".into()))
        );
    }
}
