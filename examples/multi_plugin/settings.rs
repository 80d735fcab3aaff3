//! The example's command line and its `coordinator.toml`.

use std::path::PathBuf;

use coordinator_plugins::queue::QueueConfig;
use coordinator_plugins::scheduler::SchedulerConfig;
use coordinator_plugins::ttl::TtlConfig;
use coordinator_runtime::CoordinatorConfig;
use serde::Deserialize;

/// `coordinator.toml` as docs/configuration.md describes it (the layout the
/// `coordinator` command reads); the example uses `url`, `namespace`,
/// `[coordinator]` and the first name and the config of each
/// `[plugins.<kind>]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The store; the example's `--url` wins, and without either it uses a
    /// temporary directory.
    pub(crate) url: Option<String>,
    /// The namespace the workers join.
    pub(crate) namespace: Option<String>,
    /// Other namespaces `coordinator run` joins (unused here).
    pub(crate) namespaces: Vec<String>,
    /// Where `coordinator run` reads the worker id from (unused here: the
    /// example names its workers w1, w2, w3).
    pub(crate) worker_id_env: Option<String>,
    /// The library's configuration, as is.
    pub(crate) coordinator: CoordinatorConfig,
    /// The built-in plugins.
    pub(crate) plugins: PluginsConfig,
}

/// `[plugins]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PluginsConfig {
    /// `[plugins.queue]`.
    pub(crate) queue: PluginSection<QueueConfig>,
    /// `[plugins.scheduler]`.
    pub(crate) scheduler: PluginSection<SchedulerConfig>,
    /// `[plugins.ttl]`.
    pub(crate) ttl: PluginSection<TtlConfig>,
}

/// `[plugins.<kind>]`: instance names and their shared config.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PluginSection<C> {
    /// The instances (the example runs the first).
    pub(crate) names: Vec<String>,
    /// `[plugins.<kind>.config]`.
    pub(crate) config: C,
}

impl<C> PluginSection<C> {
    /// The first instance's name, or `default`.
    pub(crate) fn name<'a>(&'a self, default: &'a str) -> &'a str {
        self.names.first().map_or(default, String::as_str)
    }
}

impl FileConfig {
    /// Reads and parses `path`, and validates the `[coordinator]` table.
    pub(crate) fn load(path: &std::path::Path) -> Result<Self, Box<dyn std::error::Error>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the config file {}: {e}", path.display()))?;
        let config: FileConfig =
            toml::from_str(&text).map_err(|e| format!("config file {}: {e}", path.display()))?;
        config
            .coordinator
            .validate()
            .map_err(|e| format!("config file {}: {e}", path.display()))?;
        Ok(config)
    }
}

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    /// `--config PATH` (default: examples/multi_plugin.toml).
    pub(crate) config: PathBuf,
    /// `--url URL`: the store, instead of a temporary directory.
    pub(crate) url: Option<String>,
    /// `--namespace NS`: instead of the file's `namespace`.
    pub(crate) namespace: Option<String>,
    /// `--metrics-port PORT`: where the Prometheus endpoint listens on
    /// 127.0.0.1 (default: a free port); `--metrics-port 0` turns it off.
    pub(crate) metrics_port: Option<u16>,
}

pub(crate) const USAGE: &str =
    "usage: multi_plugin [--config PATH] [--url URL] [--namespace NS] [--metrics-port PORT]";

impl Args {
    /// Parses `args` (without the program name).
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut parsed = Args {
            config: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/multi_plugin.toml")),
            url: None,
            namespace: None,
            metrics_port: None,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
            match flag.as_str() {
                "--config" => parsed.config = PathBuf::from(value()?),
                "--url" => parsed.url = Some(value()?),
                "--namespace" => parsed.namespace = Some(value()?),
                "--metrics-port" => {
                    let text = value()?;
                    let port = text.parse().map_err(|_| {
                        format!("--metrics-port {text}: not a port number\n{USAGE}")
                    })?;
                    parsed.metrics_port = Some(port);
                }
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown argument {other}\n{USAGE}")),
            }
        }
        Ok(parsed)
    }
}
