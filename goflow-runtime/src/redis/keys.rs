//! The Redis key layout. Every key of one workflow carries the hash tag `{prefix:flow}`, so all
//! keys a script touches live in one Cluster slot. Nothing here ever scans the keyspace:
//! per-request keys are named from the request id and expire; per-flow keys are bounded
//! (entries are deleted when acknowledged, the event streams are capped).
//!
//! The request hash's fields that hold values and counters are named in [`fields`]; the
//! scripts name the per-instance bookkeeping fields (`s:`, `a:`, `f:`, `t0:`, `t1:`, `w:`,
//! `e:`, each followed by the instance key) themselves, and `RequestState::from_fields` reads
//! them. They also name the field listing the instances a stream entry carries once a
//! completion handed it on (`m:<entry id>`; see `entry.lua`).

use crate::plan::{Instance, Slot, VertexId};
use crate::request_id::RequestId;

/// The keys of one workflow.
#[derive(Debug, Clone)]
pub(crate) struct FlowKeys {
    tag: String,
    /// Stream of ready vertices, read by the workers' consumer group.
    pub(crate) ready: String,
    /// Sorted set of retries waiting for their backoff, scored by due time (ms).
    pub(crate) delayed: String,
    /// Capped stream of request completions (completed, failed, stopped), for waiters.
    pub(crate) done: String,
    /// Capped stream of vertices that failed for good, with their failure.
    pub(crate) dead: String,
}

impl FlowKeys {
    pub(crate) fn new(prefix: &str, flow: &str) -> Self {
        let tag = format!("{{{prefix}:{flow}}}");
        Self {
            ready: format!("{tag}:ready"),
            delayed: format!("{tag}:delayed"),
            done: format!("{tag}:done"),
            dead: format!("{tag}:dead"),
            tag,
        }
    }

    /// The request's state hash.
    pub(crate) fn request(&self, id: &RequestId) -> String {
        format!("{}:req:{id}", self.tag)
    }

    /// The vertices parked while the request is paused.
    pub(crate) fn parked(&self, id: &RequestId) -> String {
        format!("{}:parked:{id}", self.tag)
    }
}

/// The names of the request hash's fields that hold values and counters. Instances are named
/// by their [key](Instance::key): `5`, or `5.3.7` inside `each` bodies.
pub(crate) mod fields {
    use super::{Instance, Slot, VertexId};

    /// Where a value is stored: the request's input `in`, an instance's output `o:<key>`, item
    /// `n` of a for-each source's collection `o:<key>#<n>`.
    pub(crate) fn slot(slot: &Slot) -> String {
        match slot {
            Slot::Input => "in".to_owned(),
            Slot::Output(instance) => format!("o:{}", instance.key()),
            Slot::Item(instance, n) => format!("o:{}#{n}", instance.key()),
        }
    }

    /// How many items a gathering instance waits for: `c:<key>`.
    pub(crate) fn size(instance: &Instance) -> String {
        format!("c:{}", instance.key())
    }

    /// How many inputs have arrived at a join (or a gather): `n:<key>`.
    pub(crate) fn arrivals(instance: &Instance) -> String {
        format!("n:{}", instance.key())
    }

    /// The status of an instance: `s:<key>`.
    pub(crate) fn status(instance: &Instance) -> String {
        format!("s:{}", instance.key())
    }

    /// What the output field of item `n` of a gather starts with: the outputs of the
    /// instances of `exit` at `items` then `n` are this followed by `n`
    /// (`o:<exit>.<items>.`).
    pub(crate) fn gathered_prefix(exit: VertexId, items: &[u32]) -> String {
        format!("o:{}.", Instance::new(exit, items.to_vec()).key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Inputs;

    #[test]
    fn field_names() {
        let at = Instance::new(5, vec![3, 7]);
        assert_eq!(fields::slot(&Slot::Input), "in");
        assert_eq!(fields::slot(&Slot::Output(Instance::root(2))), "o:2");
        assert_eq!(fields::slot(&Slot::Output(at.clone())), "o:5.3.7");
        assert_eq!(fields::slot(&Slot::Item(at.clone(), 4)), "o:5.3.7#4");
        assert_eq!(fields::size(&at), "c:5.3.7");
        assert_eq!(fields::arrivals(&Instance::root(4)), "n:4");
        assert_eq!(fields::status(&at), "s:5.3.7");
    }

    #[test]
    fn a_gather_reads_its_items_by_prefix() {
        for items in [vec![], vec![2], vec![2, 9]] {
            let prefix = fields::gathered_prefix(6, &items);
            for n in [0, 1, 12] {
                assert_eq!(
                    format!("{prefix}{n}"),
                    fields::slot(&Inputs::gathered(6, &items, n))
                );
            }
        }
    }

    #[test]
    fn all_keys_of_a_flow_share_one_hash_tag() {
        let keys = FlowKeys::new("goflow", "kyc");
        let id = RequestId::parse("r1").unwrap();
        for key in [
            keys.ready.clone(),
            keys.delayed.clone(),
            keys.done.clone(),
            keys.dead.clone(),
            keys.request(&id),
            keys.parked(&id),
        ] {
            assert!(key.starts_with("{goflow:kyc}:"), "{key}");
        }
        assert_eq!(keys.request(&id), "{goflow:kyc}:req:r1");
    }
}
