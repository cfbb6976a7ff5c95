//! The bridge's configuration: a TOML file (every field optional), overridden by
//! `CAUHOP_*` environment variables and command-line flags. `deploy/config.example.toml`
//! lists every field with its default; a test checks that it parses.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use cauhop_sfu::SfuConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Config {
    pub(crate) http: HttpConfig,
    pub(crate) sfu: SfuConfig,
    pub(crate) meetings: MeetingsConfig,
    pub(crate) log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct HttpConfig {
    /// Address of the web page, the API and the signaling WebSocket.
    pub(crate) listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct MeetingsConfig {
    /// If set, only these meeting ids can be joined; otherwise any well-formed id opens
    /// an ad-hoc meeting (until scheduling takes over).
    pub(crate) allowed: Option<Vec<String>>,
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
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = Config::parse("[http]\nlisten_port = 1\n").expect_err("unknown field");
        assert!(format!("{err:#}").contains("listen_port"), "{err:#}");
    }
}
