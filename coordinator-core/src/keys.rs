//! The storage layout of one namespace.
//!
//! ```text
//! <root>/plg_coordinator_global/<namespace>/state.json         the lease
//! <root>/plg_coordinator_global/<namespace>/workers/<id>.json  one per live worker
//! <root>/plg_coordinator_global/<namespace>/roster.json        the full roster
//! <root>/plg_coordinator_global/<namespace>/metadata.json      epoch high-water mark
//! ```
//!
//! Per-plugin mode uses the same layout under `plg_coordinator_plugin/<plugin>/<namespace>/`,
//! so both modes can run side by side during a migration.

use crate::ids::{Namespace, WorkerId};

/// The prefix of global mode (one election per namespace for all plugins).
pub const GLOBAL_PREFIX: &str = "plg_coordinator_global";

/// The prefix of per-plugin mode (one election per plugin and namespace).
pub const PLUGIN_PREFIX: &str = "plg_coordinator_plugin";

/// The prefix of the plugins' data, shared by both modes.
pub const DATA_PREFIX: &str = "plg_coordinator_data";

/// The keys of one namespace's election, relative to the store's root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keys {
    base: String,
    data: String,
    marker: String,
}

impl Keys {
    /// The keys of `namespace` in global mode.
    ///
    /// ```
    /// use coordinator_core::{Keys, Namespace};
    /// let keys = Keys::global(&Namespace::new("orders").unwrap());
    /// assert_eq!(keys.lease(), "plg_coordinator_global/orders/state.json");
    /// ```
    pub fn global(namespace: &Namespace) -> Self {
        Self {
            base: format!("{GLOBAL_PREFIX}/{namespace}"),
            data: format!("{DATA_PREFIX}/{namespace}/"),
            marker: format!("{DATA_PREFIX}/{namespace}/.elections/global.json"),
        }
    }

    /// The keys of `namespace` for one plugin in per-plugin mode. The plugin
    /// name is validated like a namespace.
    pub fn per_plugin(plugin: &Namespace, namespace: &Namespace) -> Self {
        Self {
            base: format!("{PLUGIN_PREFIX}/{plugin}/{namespace}"),
            data: format!("{DATA_PREFIX}/{namespace}/"),
            marker: format!("{DATA_PREFIX}/{namespace}/.elections/plugin.{plugin}.json"),
        }
    }

    /// The namespace's folder; plugins keep their own objects below it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `<base>/`: every object of this election (with the slash).
    pub fn election_prefix(&self) -> String {
        format!("{}/", self.base)
    }

    /// `plg_coordinator_data/<namespace>/`: the plugins' data of the
    /// namespace, shared by both modes (with the slash).
    pub fn data_prefix(&self) -> &str {
        &self.data
    }

    /// `plg_coordinator_data/<namespace>/.elections/<election>.json`: a
    /// copy of this election's epoch mark kept beside the plugins' data, so
    /// that deleting the election's own prefix does not make a used
    /// namespace look new. The leader rewrites it with `metadata.json`.
    pub fn election_marker(&self) -> &str {
        &self.marker
    }

    /// `…/state.json`, the lease.
    pub fn lease(&self) -> String {
        format!("{}/state.json", self.base)
    }

    /// `…/metadata.json`, the epoch high-water mark.
    pub fn metadata(&self) -> String {
        format!("{}/metadata.json", self.base)
    }

    /// `…/roster.json`, the full roster the leader last published.
    pub fn roster(&self) -> String {
        format!("{}/roster.json", self.base)
    }

    /// `…/workers/`, the prefix of every heartbeat object (with the slash).
    pub fn workers_prefix(&self) -> String {
        format!("{}/workers/", self.base)
    }

    /// `…/workers/<id>.json`, one worker's heartbeat object.
    pub fn worker(&self, worker_id: &WorkerId) -> String {
        format!("{}/workers/{worker_id}.json", self.base)
    }

    /// The worker id of a heartbeat key from a listing, if it is one.
    pub fn worker_of_key(&self, key: &str) -> Option<WorkerId> {
        let rest = key.strip_prefix(&self.workers_prefix())?;
        let id = rest.strip_suffix(".json")?;
        WorkerId::new(id).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips_worker_keys() {
        let ns = Namespace::new("orders").unwrap();
        let keys = Keys::global(&ns);
        let w = WorkerId::new("w-1").unwrap();
        assert_eq!(
            keys.worker(&w),
            "plg_coordinator_global/orders/workers/w-1.json"
        );
        assert_eq!(keys.worker_of_key(&keys.worker(&w)), Some(w));
        assert_eq!(
            keys.worker_of_key("plg_coordinator_global/orders/workers/x.tmp"),
            None
        );
        assert_eq!(
            keys.worker_of_key("plg_coordinator_global/other/workers/x.json"),
            None
        );
        let plugin = Keys::per_plugin(&Namespace::new("queue").unwrap(), &ns);
        assert_eq!(
            plugin.lease(),
            "plg_coordinator_plugin/queue/orders/state.json"
        );
        assert_eq!(
            keys.election_marker(),
            "plg_coordinator_data/orders/.elections/global.json"
        );
        assert_eq!(
            plugin.election_marker(),
            "plg_coordinator_data/orders/.elections/plugin.queue.json"
        );
    }
}
