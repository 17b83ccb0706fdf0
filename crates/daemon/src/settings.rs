//! Layered settings: flags > environment variables > TOML file > defaults.
//!
//! A daemon declares its settings once, as one struct that derives both
//! [`clap::Args`] (each field a flag with its environment variable and default)
//! and serde (each field a key of the TOML file, kebab-case like the flag). clap
//! reads the flags and the environment; [`layered`] then merges, in one place,
//! the values clap took from neither over the file over the defaults.
//!
//! The struct's serde side must refuse unknown keys (`deny_unknown_fields`), so
//! that a typo in the file is an error naming the key rather than a silently
//! ignored setting.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use clap::ArgMatches;
use clap::parser::ValueSource;
use figment::Figment;
use figment::providers::{Format as _, Serialized, Toml};
use figment::value::{Dict, Value};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::DaemonError;

/// Parses a duration: a number and a unit, optionally several (`500ms`, `5s`,
/// `2m`, `1h30m`). The error says what is expected.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is not a duration ({e}): write e.g. 500ms, 5s, 2m or 1h30m"))
}

/// A duration setting. Flags, environment variables and the file all write it
/// with units (`500ms`, `5s`, `2m`, `1h30m`); it prints back the same way
/// (`2s 500ms`), so `--print-config` output reads like the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConfigDuration(#[serde(with = "humantime_serde")] pub Duration);

impl ConfigDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

impl From<Duration> for ConfigDuration {
    fn from(duration: Duration) -> Self {
        Self(duration)
    }
}

impl std::str::FromStr for ConfigDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_duration(text).map(Self)
    }
}

impl std::fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        humantime::format_duration(self.0).fmt(f)
    }
}

/// Resolves a daemon's settings.
///
/// `parsed` is what clap produced from `matches` (flags, environment variables
/// and clap's defaults). Values whose source is the command line or the
/// environment win; then come the keys of the TOML file at `file`, if any; then
/// the defaults declared on `S`. Settings that clap does not parse (e.g. tables
/// only the file can hold) take the file's value, or their default in `parsed`.
pub fn layered<S>(parsed: &S, matches: &ArgMatches, file: Option<&Path>) -> Result<S, DaemonError>
where
    S: clap::Args + Serialize + DeserializeOwned,
{
    let flags: HashSet<String> = S::augment_args(clap::Command::new("settings"))
        .get_arguments()
        .map(|arg| arg.get_id().as_str().to_owned())
        .collect();
    let Value::Dict(_, values) =
        Value::serialize(parsed).map_err(|e| DaemonError::Settings(format!("settings: {e}")))?
    else {
        return Err(DaemonError::Settings(
            "settings: not a table of keys".to_owned(),
        ));
    };
    let mut defaults = Dict::new();
    let mut given = Dict::new();
    for (key, value) in values {
        let id = key.replace('-', "_");
        let explicit = flags.contains(&id)
            && matches!(
                matches.value_source(&id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            );
        if explicit {
            given.insert(key, value);
        } else if !matches!(value, Value::Empty(..)) {
            defaults.insert(key, value);
        }
    }

    let mut figment = Figment::new().merge(Serialized::defaults(defaults));
    if let Some(path) = file {
        // Figment treats a missing file as empty; a named file must exist.
        std::fs::metadata(path).map_err(|e| {
            DaemonError::Settings(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Serialized::defaults(given))
        .extract()
        .map_err(|error| DaemonError::Settings(describe(error)))
}

/// One line per problem, naming the key and where its value came from.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = match &e.metadata {
                Some(metadata) => match &metadata.source {
                    Some(figment::Source::File(path)) => format!(" in {}", path.display()),
                    _ => String::new(),
                },
                None => String::new(),
            };
            if key.is_empty() {
                format!("settings{source}: {}", e.kind)
            } else {
                format!("setting `{key}`{source}: {}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use clap::{CommandFactory as _, FromArgMatches as _, Parser};

    #[derive(Debug, Parser, Serialize, Deserialize)]
    #[serde(rename_all = "kebab-case", deny_unknown_fields)]
    struct Example {
        #[arg(long, default_value = "a")]
        name: String,
        #[arg(long, default_value_t = 7)]
        count: u32,
        #[arg(long, default_value = "5s")]
        wait: ConfigDuration,
        #[arg(long)]
        give_up: Option<ConfigDuration>,
        #[arg(skip)]
        #[serde(default)]
        table: Vec<String>,
    }

    fn resolve(args: &[&str], file: Option<&str>) -> Result<Example, DaemonError> {
        let matches = Example::command()
            .try_get_matches_from(std::iter::once("example").chain(args.iter().copied()))
            .unwrap();
        let parsed = Example::from_arg_matches(&matches).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        if let Some(text) = file {
            std::fs::write(&path, text).unwrap();
        }
        layered(&parsed, &matches, file.map(|_| path.as_path()))
    }

    #[test]
    fn flag_over_file_over_default() {
        let s = resolve(&[], None).unwrap();
        assert_eq!((s.name.as_str(), s.count), ("a", 7));
        assert_eq!(s.wait.get(), Duration::from_secs(5));
        assert_eq!(s.give_up, None);

        let file = "name = \"f\"\nwait = \"1h30m\"\ngive-up = \"250ms\"\ntable = [\"x\"]\n";
        let s = resolve(&[], Some(file)).unwrap();
        assert_eq!((s.name.as_str(), s.count), ("f", 7));
        assert_eq!(s.wait.get(), Duration::from_secs(5400));
        assert_eq!(s.give_up, Some(ConfigDuration(Duration::from_millis(250))));
        assert_eq!(s.table, ["x"]);

        let s = resolve(&["--name", "cli", "--wait", "2m"], Some(file)).unwrap();
        assert_eq!(s.name, "cli");
        assert_eq!(s.wait.get(), Duration::from_secs(120));
        assert_eq!(
            s.give_up,
            Some(ConfigDuration(Duration::from_millis(250))),
            "file kept"
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let error = resolve(&[], Some("nmae = \"x\"\n"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("nmae") && error.contains("example.toml"),
            "{error}"
        );
        let error = resolve(&[], Some("wait = \"5\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`wait`"), "{error}");
        let error = resolve(&[], Some("count = \"many\"\n"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("`count`"), "{error}");
        assert!(
            Example::try_parse_from(["example", "--wait", "5"])
                .unwrap_err()
                .to_string()
                .contains("--wait")
        );
    }

    #[test]
    fn durations_take_units() {
        for (text, expected) in [
            ("500ms", Duration::from_millis(500)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h30m", Duration::from_secs(5400)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
            let printed = ConfigDuration(expected).to_string();
            assert_eq!(
                printed.parse::<ConfigDuration>(),
                Ok(ConfigDuration(expected))
            );
        }
        assert_eq!(
            ConfigDuration(Duration::from_millis(2500)).to_string(),
            "2s 500ms"
        );
        for bad in ["", "5", "s", "-1s", "5 parsecs"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains("500ms, 5s"), "{error}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let matches = Example::command()
            .try_get_matches_from(["example"])
            .unwrap();
        let parsed = Example::from_arg_matches(&matches).unwrap();
        let error = layered(&parsed, &matches, Some(Path::new("/nonexistent/x.toml")))
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot read") && error.contains("/nonexistent/x.toml"));
    }
}
