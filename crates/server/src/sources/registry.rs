//! The sources registry: which sources exist, their verifier keys, who may submit
//! for them and how often they should report. Read from the sources file (TOML,
//! `[[source]]` tables; `deploy/sources.toml` documents it) and reloaded when the
//! file changes (checked every `sources-reload-interval`) and on SIGHUP. A changed
//! file that does not parse or check keeps the previous registry and logs an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use merklog_auth::Principal;
use merklog_daemon::ConfigDuration;
use merklog_event::SourceKey;
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ServerError;
use crate::reload::{WatchedFile, spawn_file_watch};

/// The principal pattern that admits any authenticated principal.
pub const ANY_PRINCIPAL: &str = "*";

/// The sources file: `[[source]]` tables.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourcesFile {
    #[serde(default)]
    source: Vec<SourceTable>,
}

/// One `[[source]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SourceTable {
    name: String,
    vkey: String,
    #[serde(default)]
    principals: Vec<String>,
    heartbeat_interval: Option<ConfigDuration>,
}

/// A registered source.
#[derive(Debug, Clone)]
pub struct RegisteredSource {
    /// The source's name (its key's name).
    pub name: String,
    /// Its verifier key.
    pub key: SourceKey,
    /// The vkey text, as configured.
    pub vkey: String,
    /// Principals allowed to submit for it (`*`: any authenticated principal).
    pub principals: Vec<String>,
    /// How often it should report (an event or a heartbeat), if it should.
    pub heartbeat_interval: Option<Duration>,
}

impl RegisteredSource {
    /// Whether `principal` may submit events of this source. `*` admits every
    /// principal the front door authenticated, and "anonymous" on a log without
    /// authentication (where everyone is).
    pub fn admits(&self, principal: &Principal) -> bool {
        self.principals
            .iter()
            .any(|p| p == ANY_PRINCIPAL || p == principal.as_str())
    }
}

/// The registered sources, by name, in file order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sources: Vec<Arc<RegisteredSource>>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Parses and checks a sources file's text. `origin` is the log's own source
    /// name (of its status records), which no source may take.
    pub fn parse(text: &str, origin: &str) -> Result<Registry, String> {
        let file: SourcesFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut registry = Registry::default();
        for (i, table) in file.source.into_iter().enumerate() {
            let at = |reason: String| format!("[[source]] {} ({:?}): {reason}", i + 1, table.name);
            let key = SourceKey::parse(&table.vkey).map_err(|e| at(format!("vkey: {e}")))?;
            if key.name() != table.name {
                return Err(at(format!(
                    "the vkey is named {:?}; it must be the source's name",
                    key.name()
                )));
            }
            if table.name == crate::rules::entry::ALERT_SOURCE {
                return Err(at(
                    "the name is reserved for the log's own alert entries".into()
                ));
            }
            if table.name == origin {
                return Err(at(
                    "the log's origin is the source name of the log's own status records".into(),
                ));
            }
            if table.principals.is_empty() {
                return Err(at(
                    "principals is empty: nobody could submit (use [\"*\"] for anyone)".into(),
                ));
            }
            if let Some(bad) = table
                .principals
                .iter()
                .find(|p| *p != ANY_PRINCIPAL && Principal::new(p).is_err())
            {
                return Err(at(format!(
                    "principal {bad:?} is not a valid principal name"
                )));
            }
            let heartbeat_interval = table.heartbeat_interval.map(|d| d.get());
            if heartbeat_interval.is_some_and(|d| d.is_zero()) {
                return Err(at("heartbeat-interval must be positive".into()));
            }
            if registry.by_name.contains_key(&table.name) {
                return Err(at("the name is registered twice".into()));
            }
            registry
                .by_name
                .insert(table.name.clone(), registry.sources.len());
            registry.sources.push(Arc::new(RegisteredSource {
                name: table.name,
                vkey: key.to_vkey(),
                key,
                principals: table.principals,
                heartbeat_interval,
            }));
        }
        Ok(registry)
    }

    /// Reads a sources file; a missing file registers no source.
    pub fn read(path: &Path, origin: &str) -> Result<Registry, String> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Registry::parse(&text, origin).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Registry::default()),
            Err(e) => Err(format!("reading {}: {e}", path.display())),
        }
    }

    /// The source of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<RegisteredSource>> {
        self.by_name.get(name).and_then(|&i| self.sources.get(i))
    }

    /// Every source, in file order.
    pub fn sources(&self) -> &[Arc<RegisteredSource>] {
        &self.sources
    }
}

/// The registry the server checks now; replaced whole on reload.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveRegistry {
    current: Arc<RwLock<Arc<Registry>>>,
}

impl LiveRegistry {
    /// Loads the file at start (an error stops the start).
    pub(crate) fn load(path: Option<&Path>, origin: &str) -> Result<Self, ServerError> {
        let registry = match path {
            Some(path) => Registry::read(path, origin).map_err(ServerError::Config)?,
            None => Registry::default(),
        };
        Ok(Self {
            current: Arc::new(RwLock::new(Arc::new(registry))),
        })
    }

    /// The current registry.
    pub(crate) fn get(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, registry: Registry) {
        let registry = Arc::new(registry);
        match self.current.write() {
            Ok(mut current) => *current = registry,
            Err(poisoned) => *poisoned.into_inner() = registry,
        }
    }

    /// Re-reads the file every `interval` and on SIGHUP until `stop` is set; a
    /// changed file that parses replaces the registry, one that does not keeps it.
    pub(crate) fn spawn_reloader(
        &self,
        path: PathBuf,
        origin: String,
        interval: Duration,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let live = self.clone();
        let file = WatchedFile {
            what: "the sources file",
            metric: "merklog_sources_reloads_total",
        };
        // A file that cannot be read counts as missing: the registry then says why.
        let read = |path: &Path| Ok(std::fs::read(path).ok());
        let shown = path.clone();
        spawn_file_watch(file, path, interval, stop, read, move |_| {
            let registry = Registry::read(&shown, &origin)?;
            let records = registry.sources().len();
            live.replace(registry);
            Ok(records)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use merklog_note::Ed25519Signer;

    fn vkey(name: &str) -> String {
        Ed25519Signer::from_seed(name, &[1u8; 32])
            .unwrap()
            .verifier()
            .to_vkey()
    }

    #[test]
    fn parses_and_refuses_bad_tables() {
        let good = format!(
            "[[source]]\nname = \"a.example/x\"\nvkey = \"{}\"\nprincipals = [\"*\"]\nheartbeat-interval = \"300ms\"\n",
            vkey("a.example/x")
        );
        let registry = Registry::parse(&good, "log.example").unwrap();
        let source = registry.get("a.example/x").unwrap();
        assert_eq!(source.heartbeat_interval, Some(Duration::from_millis(300)));
        assert!(source.admits(&Principal::anonymous()));

        let wrong_name = good.replace("name = \"a.example/x\"", "name = \"b.example/x\"");
        assert!(
            Registry::parse(&wrong_name, "log.example")
                .unwrap_err()
                .contains("vkey is named")
        );
        let twice = format!("{good}{good}");
        assert!(
            Registry::parse(&twice, "log.example")
                .unwrap_err()
                .contains("twice")
        );
        let nobody = good.replace("principals = [\"*\"]", "principals = []");
        assert!(Registry::parse(&nobody, "log.example").is_err());
        let unknown = format!("{good}colour = \"red\"\n");
        assert!(Registry::parse(&unknown, "log.example").is_err());
        assert!(Registry::parse(&good, "a.example/x").is_err());
        let only = good.replace("[\"*\"]", "[\"agent-7\"]");
        let source = Registry::parse(&only, "log.example").unwrap();
        let source = source.get("a.example/x").unwrap();
        assert!(source.admits(&Principal::new("agent-7").unwrap()));
        assert!(!source.admits(&Principal::new("agent-8").unwrap()));
    }

    #[test]
    fn the_deployed_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sources.toml");
        let registry = Registry::read(&path, "log.example.com").unwrap();
        assert!(!registry.sources().is_empty());
    }
}
