//! The workflows a service serves, with their types erased: the HTTP layer works with names,
//! JSON and encoded payloads, and these functions convert at the edges.

use bytes::Bytes;

use crate::codec::{CodecError, Json, MsgPack};
use crate::embedded::EmbeddedEngineBuilder;
use crate::graph::Graph;
use crate::node::Data as _;
use crate::workflow::Workflow;

/// One registered workflow.
#[derive(Clone, Copy)]
pub(crate) struct FlowDef {
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) graph: fn() -> &'static Graph,
    /// Registers the workflow with the engine the service runs, whichever it is.
    pub(crate) register_embedded: fn(EmbeddedEngineBuilder) -> EmbeddedEngineBuilder,
    #[cfg(feature = "redis")]
    pub(crate) register_redis:
        fn(crate::redis::RedisEngineBuilder) -> crate::redis::RedisEngineBuilder,
    /// JSON request body → the workflow input, encoded with the service's codec. The error
    /// names the path of the offending field.
    pub(crate) input_from_json: fn(&[u8]) -> Result<Bytes, CodecError>,
    /// Encoded workflow output → JSON.
    pub(crate) output_to_json: fn(&[u8]) -> Result<serde_json::Value, CodecError>,
    /// The JSON Schemas of the input and the output, where the types have one.
    pub(crate) schemas: fn() -> (Option<serde_json::Value>, Option<serde_json::Value>),
}

impl FlowDef {
    pub(crate) fn of<W: Workflow>() -> Self {
        Self {
            name: W::NAME,
            description: W::DESCRIPTION,
            graph: W::graph,
            register_embedded: |builder| builder.register::<W>(),
            #[cfg(feature = "redis")]
            register_redis: |builder| builder.register::<W>(),
            input_from_json: |body| W::Input::decode_with(&Json, body)?.encode_with(&MsgPack),
            output_to_json: |bytes| {
                let output = W::Output::decode_with(&MsgPack, bytes)?;
                let json = output.encode_with(&Json)?;
                serde_json::from_slice(&json).map_err(|e| CodecError::decode("json", &e))
            },
            schemas: W::schemas,
        }
    }
}

impl std::fmt::Debug for FlowDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowDef")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
