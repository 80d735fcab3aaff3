//! `coordinator.toml`, the environment and the flags, resolved into one
//! [`FileConfig`] with the source of every value.
//!
//! ```toml
//! url = "file:///var/lib/coordinator"    # the store (COORDINATOR_URL)
//! namespace = "orders"                    # (COORDINATOR_NAMESPACE)
//! namespaces = ["orders", "billing"]      # `run` joins each
//! worker_id_env = "POD_NAME"              # read the worker id from this variable
//!
//! [coordinator]                           # coordinator_runtime::CoordinatorConfig, as is
//! worker_id = "worker-1"                  # (COORDINATOR_WORKER_ID)
//! mode = "global"                         # or "per_plugin" (COORDINATOR_MODE)
//!
//! [coordinator.election]                  # coordinator_core::Config
//! heartbeat_interval = "5s"               # (COORDINATOR_ELECTION_HEARTBEAT_INTERVAL)
//! lease_timeout = "15s"
//!
//! [plugins.queue]                         # `run` starts each queue's maintenance
//! names = ["jobs"]
//! [plugins.queue.config]                  # coordinator_plugins::queue::QueueConfig
//! visibility_timeout = "30s"              # (COORDINATOR_PLUGINS_QUEUE_VISIBILITY_TIMEOUT)
//! ```
//!
//! The `[coordinator]` table is exactly
//! [`coordinator_runtime::CoordinatorConfig`]'s serde
//! form, so an application embedding the library reads the same file with
//! `toml::from_str` and takes that table.
//!
//! Precedence, lowest first: defaults, the file, `COORDINATOR_…`
//! variables, flags. A variable's name is `COORDINATOR_` and the value's
//! path in upper case with `_` for `.`, without the `coordinator.` and
//! `.config` levels. Errors name the file and line (or the variable) and
//! the field, with the library's own rule and hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coordinator_plugins::queue::QueueConfig;
use coordinator_plugins::scheduler::SchedulerConfig;
use coordinator_plugins::ttl::TtlConfig;
use coordinator_runtime::{CoordinatorConfig, CoordinatorError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cli::Globals;
use crate::output::{self, Table};
use crate::{exit, redact, Failure};

/// The variable that names the config file when `--config` is not given.
pub(crate) const CONFIG_ENV: &str = "COORDINATOR_CONFIG";

/// The prefix of every environment variable the binary reads.
pub(crate) const ENV_PREFIX: &str = "COORDINATOR_";

/// Everything `coordinator.toml` can say.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// The store URL.
    pub(crate) url: Option<String>,
    /// The namespace the read-only commands look at.
    pub(crate) namespace: Option<String>,
    /// The namespaces `run` joins (default: `namespace`).
    pub(crate) namespaces: Vec<String>,
    /// An environment variable to read the worker id from (`POD_NAME`, …)
    /// when `coordinator.worker_id` is not set.
    pub(crate) worker_id_env: Option<String>,
    /// The library's own configuration.
    pub(crate) coordinator: CoordinatorConfig,
    /// The built-in plugins `run` starts.
    pub(crate) plugins: PluginsConfig,
}

/// `[plugins]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PluginsConfig {
    pub(crate) queue: PluginSection<QueueConfig>,
    pub(crate) scheduler: PluginSection<SchedulerConfig>,
    pub(crate) ttl: PluginSection<TtlConfig>,
}

/// `[plugins.<kind>]`: the instances' names and their shared config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct PluginSection<C> {
    pub(crate) names: Vec<String>,
    pub(crate) config: C,
}

/// The resolved configuration.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub(crate) config: FileConfig,
    /// The file read, if any.
    pub(crate) path: Option<PathBuf>,
    /// Every value's path (`coordinator.election.lease_timeout`) and where
    /// it came from: `default`, `file:LINE`, `env NAME`, `flag --NAME`.
    pub(crate) sources: BTreeMap<String, String>,
}

impl Resolved {
    /// The store URL, or a usage error saying how to give one.
    pub(crate) fn url(&self) -> Result<&str, Failure> {
        self.config.url.as_deref().ok_or_else(|| {
            Failure::usage(
                "no store URL: pass --url URL, set COORDINATOR_URL, or write `url = \"…\"` in the \
                 config file (file:///abs/dir, s3://bucket/prefix, gs://…, az://…, memory://)",
            )
        })
    }

    /// The namespace of the read-only commands.
    pub(crate) fn namespace(&self) -> Result<String, Failure> {
        self.config
            .namespace
            .clone()
            .or_else(|| self.config.namespaces.first().cloned())
            .ok_or_else(|| {
                Failure::usage(
                    "no namespace: pass --namespace NS, set COORDINATOR_NAMESPACE, or write \
                     `namespace = \"…\"` in the config file",
                )
            })
    }

    /// The namespaces `run` joins: the one named by a flag or variable
    /// alone, else the file's `namespace` and `namespaces`.
    pub(crate) fn namespaces(&self) -> Result<Vec<String>, Failure> {
        let source = self.source("namespace");
        if source.starts_with("flag") || source.starts_with("env") {
            return Ok(vec![self.namespace()?]);
        }
        let mut all = self.config.namespaces.clone();
        if let Some(ns) = &self.config.namespace {
            if !all.contains(ns) {
                all.insert(0, ns.clone());
            }
        }
        if all.is_empty() {
            return Err(self
                .namespace()
                .err()
                .unwrap_or_else(|| Failure::usage("no namespace")));
        }
        Ok(all)
    }

    /// The source of one value.
    pub(crate) fn source(&self, path: &str) -> &str {
        self.sources.get(path).map_or("default", String::as_str)
    }
}

/// Loads the file, applies the environment and the flags, validates.
pub(crate) fn load(globals: &Globals) -> Result<Resolved, Failure> {
    load_from(globals, &|name| std::env::var(name).ok())
}

pub(crate) fn load_from(
    globals: &Globals,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Resolved, Failure> {
    let path = globals
        .config
        .clone()
        .or_else(|| env(CONFIG_ENV).map(PathBuf::from));
    let (mut config, lines, shown) = match &path {
        Some(path) => read_file(path)?,
        None => (FileConfig::default(), BTreeMap::new(), String::new()),
    };
    if let Some(url) = &config.url {
        redact::url(url);
    }

    let mut tree = to_value(&config)?;
    let mut sources = BTreeMap::new();
    let mut leaves = Vec::new();
    collect_leaves(&tree, "", &mut leaves);
    for path in &leaves {
        if let Some(line) = lines.get(path) {
            sources.insert(path.clone(), format!("file {shown}:{line}"));
        }
    }

    // The environment.
    let mut env_set: Vec<(String, String)> = Vec::new();
    for path in &leaves {
        let name = env_name(path);
        if let Some(raw) = env(&name) {
            let value = if MAP_VALUES.contains(&path.as_str()) {
                map_value(&raw).map_err(|e| {
                    Failure::error(format!(
                        "invalid environment variable {name}: {e}; write \
                         `name=value,name=value`, e.g. {name}=\"queue.orders=global,ttl.sessions=per_plugin\""
                    ))
                })?
            } else {
                typed(&tree, path, &raw)
            };
            set_leaf(&mut tree, path, value);
            sources.insert(path.clone(), format!("env {name}"));
            env_set.push((name, path.clone()));
        }
    }
    if !env_set.is_empty() {
        config = serde_json::from_value(tree.clone()).map_err(|e| {
            let names: Vec<&str> = env_set.iter().map(|(n, _)| n.as_str()).collect();
            Failure::error(format!(
                "invalid environment variable ({}): {e}",
                names.join(", ")
            ))
        })?;
    }

    // The flags.
    if let Some(url) = &globals.url {
        config.url = Some(url.clone());
        sources.insert("url".into(), "flag --url".into());
    }
    if let Some(ns) = &globals.namespace {
        config.namespace = Some(ns.clone());
        sources.insert("namespace".into(), "flag --namespace".into());
    }
    if let Some(url) = &config.url {
        redact::url(url);
    }

    // The worker id source.
    if config.coordinator.worker_id.is_none() {
        if let Some(var) = &config.worker_id_env {
            if let Some(id) = env(var).filter(|id| !id.trim().is_empty()) {
                config.coordinator.worker_id = Some(id.trim().to_owned());
                sources.insert(
                    "coordinator.worker_id".into(),
                    format!("env {var} (worker_id_env)"),
                );
            }
        }
    }

    let resolved = Resolved {
        config,
        path,
        sources,
    };
    validate(&resolved)?;
    Ok(resolved)
}

fn read_file(path: &Path) -> Result<(FileConfig, BTreeMap<String, usize>, String), Failure> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::error(format!(
            "cannot read the config file `{shown}`: {e}; check the path given by --config or \
             {CONFIG_ENV}"
        ))
    })?;
    let config: FileConfig = toml::from_str(&text).map_err(|e| {
        let at = e
            .span()
            .map(|span| {
                let (line, column) = line_col(&text, span.start);
                format!(":{line}:{column}")
            })
            .unwrap_or_default();
        let key = e
            .span()
            .and_then(|span| key_at(&text, span.start))
            .map(|k| format!(" (field `{k}`)"))
            .unwrap_or_default();
        Failure::error(format!(
            "config file {shown}{at}{key}: {}",
            e.message().trim_end()
        ))
    })?;
    let mut lines = BTreeMap::new();
    if let Ok(table) = toml::de::DeTable::parse(&text) {
        collect_lines(&text, table.get_ref(), "", &mut lines);
    }
    Ok((config, lines, shown))
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key on the line of `offset`, if that line is `key = value`.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    (!key.is_empty() && !key.starts_with('[')).then(|| key.to_owned())
}

fn collect_lines(
    text: &str,
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table {
        let path = join(prefix, key.get_ref());
        let (line, _) = line_col(text, key.span().start);
        out.insert(path.clone(), line);
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            collect_lines(text, inner, &path, out);
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn to_value(config: &FileConfig) -> Result<Value, Failure> {
    serde_json::to_value(config).map_err(|e| Failure::error(format!("internal: config: {e}")))
}

/// Maps whose keys contain dots (plugin names: `queue.orders`), so each is
/// one value, shown and set whole: `COORDINATOR_PLUGIN_MODES` is
/// `queue.orders=global,ttl.sessions=per_plugin` and replaces the file's
/// table.
const MAP_VALUES: [&str; 1] = ["coordinator.plugin_modes"];

fn collect_leaves(value: &Value, prefix: &str, out: &mut Vec<String>) {
    if MAP_VALUES.contains(&prefix) {
        out.push(prefix.to_owned());
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                collect_leaves(inner, &join(prefix, key), out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

/// `COORDINATOR_` + the path without the `coordinator.` and `.config`
/// levels, upper case, `_` for `.`.
pub(crate) fn env_name(path: &str) -> String {
    let parts: Vec<&str> = path.split('.').collect();
    let kept: Vec<&str> = parts
        .iter()
        .enumerate()
        .filter(|(i, part)| {
            !(*i == 0 && **part == "coordinator" && parts.len() > 1
                || *i == 2 && **part == "config" && parts[0] == "plugins")
        })
        .map(|(_, part)| *part)
        .collect();
    format!("{ENV_PREFIX}{}", kept.join("_").to_ascii_uppercase())
}

fn leaf<'a>(tree: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(tree, |v, key| v.get(key))
}

fn set_leaf(tree: &mut Value, path: &str, value: Value) {
    let mut node = tree;
    for key in path.split('.') {
        match node.get_mut(key) {
            Some(next) => node = next,
            None => return,
        }
    }
    *node = value;
}

/// `name=value,name=value` as a JSON object (the values as strings; serde
/// checks them against the map's value type).
fn map_value(raw: &str) -> Result<Value, String> {
    let mut map = serde_json::Map::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = pair
            .split_once('=')
            .map(|(n, v)| (n.trim(), v.trim()))
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .ok_or_else(|| format!("`{pair}` is not `name=value`"))?;
        if map
            .insert(name.to_owned(), Value::String(value.to_owned()))
            .is_some()
        {
            return Err(format!("`{name}` is given twice"));
        }
    }
    Ok(Value::Object(map))
}

/// An environment value typed like the value it replaces.
fn typed(tree: &Value, path: &str, raw: &str) -> Value {
    let raw = raw.trim();
    match leaf(tree, path) {
        Some(Value::Number(_)) | Some(Value::Bool(_)) => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
        }
        Some(Value::Array(_)) => Value::Array(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
        ),
        Some(Value::Null) if path.ends_with("seed") => {
            serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()))
        }
        _ => Value::String(raw.to_owned()),
    }
}

/// Runs the library's own validation, naming where the bad value came from.
fn validate(resolved: &Resolved) -> Result<(), Failure> {
    let config = &resolved.config;
    // A bad flag is a usage error; a bad file or variable an error.
    let code = |path: &str| {
        if resolved.source(path).starts_with("flag") {
            exit::USAGE
        } else {
            exit::ERROR
        }
    };
    let at = |path: &str| -> String {
        let source = resolved.source(path);
        if source == "default" {
            format!("`{path}` (default)")
        } else {
            format!("{source}: `{path}`")
        }
    };
    if let Err(e) = config.coordinator.validate() {
        let path = match &e {
            CoordinatorError::Config(c) => format!("coordinator.election.{}", c.field),
            CoordinatorError::InvalidId(_) => "coordinator.worker_id".to_owned(),
            CoordinatorError::InvalidOption { field, .. } => format!("coordinator.{field}"),
            _ => "coordinator".to_owned(),
        };
        return Err(config_error(&at(&path), &e.to_string()));
    }
    for ns in config.namespace.iter().chain(&config.namespaces) {
        if let Err(e) = coordinator_core::Namespace::new(ns.as_str()) {
            let path = if config.namespace.as_ref() == Some(ns) {
                "namespace"
            } else {
                "namespaces"
            };
            let mut failure = config_error(&at(path), &e.to_string());
            failure.code = code(path);
            return Err(failure);
        }
    }
    let plugins = &config.plugins;
    let checks: [(&str, Option<(String, String)>); 3] = [
        (
            "queue",
            plugins.queue.config.validate().err().map(|e| match e {
                coordinator_plugins::queue::QueueError::Config { field, .. } => {
                    (field.to_owned(), e.to_string())
                }
                other => (String::new(), other.to_string()),
            }),
        ),
        (
            "scheduler",
            plugins.scheduler.config.validate().err().map(|e| match e {
                coordinator_plugins::scheduler::SchedulerError::Config { field, .. } => {
                    (field.to_owned(), e.to_string())
                }
                other => (String::new(), other.to_string()),
            }),
        ),
        (
            "ttl",
            plugins.ttl.config.validate().err().map(|e| match e {
                coordinator_plugins::ttl::TtlError::Config { field, .. } => {
                    (field.to_owned(), e.to_string())
                }
                other => (String::new(), other.to_string()),
            }),
        ),
    ];
    for (kind, failure) in checks {
        if let Some((field, message)) = failure {
            let path = join(&format!("plugins.{kind}.config"), &field);
            return Err(config_error(&at(&path), &message));
        }
    }
    Ok(())
}

fn config_error(at: &str, message: &str) -> Failure {
    Failure {
        message: format!("{at}: {message}"),
        code: exit::ERROR,
    }
}

/// `coordinator config`: every value with its source.
pub(crate) fn command(globals: &Globals) -> Result<u8, Failure> {
    let resolved = load(globals)?;
    let rows = rows(&resolved)?;
    if globals.json {
        let mut values = serde_json::Map::new();
        for (path, value, source) in rows {
            values.insert(
                path,
                serde_json::json!({ "value": value, "source": source }),
            );
        }
        output::json(
            &serde_json::json!({
                "file": resolved.path.as_ref().map(|p| p.display().to_string()),
                "values": values,
            }),
            true,
        );
    } else {
        let mut table = Table::new();
        table.row(["KEY", "VALUE", "SOURCE", "ENV"]);
        for (path, value, source) in rows {
            let env = env_name(&path);
            table.row([path, shown(&value), source, env]);
        }
        table.print();
    }
    Ok(exit::OK)
}

/// (path, value, source) for every value of the resolved config; the URL
/// is shown redacted.
pub(crate) fn rows(resolved: &Resolved) -> Result<Vec<(String, Value, String)>, Failure> {
    let tree = to_value(&resolved.config)?;
    let mut leaves = Vec::new();
    collect_leaves(&tree, "", &mut leaves);
    Ok(leaves
        .into_iter()
        .map(|path| {
            let mut value = leaf(&tree, &path).cloned().unwrap_or(Value::Null);
            if path == "url" {
                if let Value::String(url) = &value {
                    value = Value::String(redact::url(url));
                }
            }
            let source = resolved.source(&path).to_owned();
            (path, value, source)
        })
        .collect())
}

fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        // A map value, as its variable is written.
        Value::Object(map) if map.is_empty() => "-".into(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", shown(v)))
            .collect::<Vec<_>>()
            .join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_drop_the_library_levels() {
        assert_eq!(env_name("url"), "COORDINATOR_URL");
        assert_eq!(
            env_name("coordinator.election.lease_timeout"),
            "COORDINATOR_ELECTION_LEASE_TIMEOUT"
        );
        assert_eq!(env_name("coordinator.worker_id"), "COORDINATOR_WORKER_ID");
        assert_eq!(
            env_name("plugins.queue.config.retry.max_attempts"),
            "COORDINATOR_PLUGINS_QUEUE_RETRY_MAX_ATTEMPTS"
        );
        assert_eq!(
            env_name("plugins.ttl.names"),
            "COORDINATOR_PLUGINS_TTL_NAMES"
        );
    }

    #[test]
    fn the_coordinator_table_is_the_librarys_struct() {
        let text = r#"
url = "memory://"
[coordinator]
worker_id = "w1"
mode = "per_plugin"
[coordinator.election]
heartbeat_interval = "2s"
"#;
        #[derive(Deserialize)]
        struct Embedding {
            coordinator: CoordinatorConfig,
        }
        let embedded: Embedding = toml::from_str(text).unwrap();
        let file: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(embedded.coordinator, file.coordinator);
        assert_eq!(
            file.coordinator.election.heartbeat_interval,
            std::time::Duration::from_secs(2)
        );
    }

    #[test]
    fn run_joins_the_flags_namespace_alone_else_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "namespace = \"a\"\nnamespaces = [\"b\", \"c\"]\n").unwrap();
        let globals = |namespace: Option<&str>| Globals {
            url: None,
            namespace: namespace.map(str::to_owned),
            config: Some(file.clone()),
            json: false,
        };
        let none = |_: &str| None;
        let from_file = load_from(&globals(None), &none).unwrap();
        assert_eq!(from_file.namespaces().unwrap(), ["a", "b", "c"]);
        let from_flag = load_from(&globals(Some("x")), &none).unwrap();
        assert_eq!(from_flag.namespaces().unwrap(), ["x"]);
        let env = |name: &str| (name == "COORDINATOR_NAMESPACE").then(|| "y".to_owned());
        let from_env = load_from(&globals(None), &env).unwrap();
        assert_eq!(from_env.namespaces().unwrap(), ["y"]);
    }
}
