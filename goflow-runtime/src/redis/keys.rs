//! The Redis key layout. Every key of one workflow carries the hash tag `{prefix:flow}`, so all
//! keys a script touches live in one Cluster slot. Nothing here ever scans the keyspace:
//! per-request keys are named from the request id and expire; per-flow keys are bounded
//! (entries are deleted when acknowledged, the event streams are capped).

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

#[cfg(test)]
mod tests {
    use super::*;

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
