//! Reading `XINFO` replies: the fields of one item by name, a consumer group's lag, and the
//! consumers of a group as the workers they are.

use std::collections::HashMap;

use fred::types::Value;

use crate::request::{WorkerInfo, Workers};

/// The fields of one item of an `XINFO` reply, by name.
pub(super) fn fields(info: Value) -> HashMap<String, Value> {
    let Ok(map) = info.into_map() else {
        return HashMap::new();
    };
    map.inner()
        .into_iter()
        .filter_map(|(key, value)| Some((key.as_str()?.to_owned(), value)))
        .collect()
}

/// The `lag` of consumer group `group` in an `XINFO GROUPS` reply; `None` when Redis cannot
/// tell (it answers nil, or is older than 7 and has no such field).
pub(super) fn group_lag(groups: Value, group: &str) -> Option<u64> {
    groups.into_array().into_iter().find_map(|info| {
        let fields = fields(info);
        if fields.get("name")?.as_string()? != group {
            return None;
        }
        fields.get("lag")?.as_u64()
    })
}

/// The workers of a group, which read the ready stream of version `version` of a graph: its
/// `XINFO CONSUMERS` reply (each consumer is one worker process) and its lag from the
/// `XINFO GROUPS` reply of the stream.
pub(super) fn workers(consumers: Value, groups: Value, group: &str, version: &str) -> Workers {
    Workers {
        lag: group_lag(groups, group),
        workers: self::consumers(consumers, version),
    }
}

/// The consumers of an `XINFO CONSUMERS` reply, as the workers of version `version`.
pub(super) fn consumers(consumers: Value, version: &str) -> Vec<WorkerInfo> {
    consumers
        .into_array()
        .into_iter()
        .filter_map(|info| {
            let mut fields = fields(info);
            Some(WorkerInfo {
                in_flight: fields.get("pending")?.as_u64()?,
                idle_ms: fields.get("idle")?.as_u64()?,
                name: fields.remove("name")?.as_string()?,
                version: version.to_owned(),
            })
        })
        .collect()
}

/// Whether `error` says that the stream or its group does not exist (no worker of its version
/// has started).
pub(super) fn no_group(error: &fred::error::Error) -> bool {
    error.details().contains("no such key") || error.details().starts_with("NOGROUP")
}

/// Adds the workers of another partition's group, `more`, to `all`: a worker in both is one,
/// with the entries it holds in each and the least idle time; the lags add up.
pub(super) fn merge(all: &mut Workers, more: Workers) {
    all.lag = match (all.lag, more.lag) {
        (Some(a), Some(b)) => Some(a + b),
        (a, b) => a.or(b),
    };
    for worker in more.workers {
        match all.workers.iter_mut().find(|w| w.name == worker.name) {
            Some(known) => {
                known.in_flight += worker.in_flight;
                known.idle_ms = known.idle_ms.min(worker.idle_ms);
            }
            None => all.workers.push(worker),
        }
    }
}
