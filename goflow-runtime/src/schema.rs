//! JSON Schemas of workflows' inputs and outputs, for the service's OpenAPI document and
//! `GET /flow/{name}`: from `schemars::JsonSchema` when the payload type implements it, and
//! none otherwise (a workflow whose types do not implement it still compiles and serves).
//!
//! `workflow!` asks for each schema where the types are concrete, with `schema_of!`, which
//! picks the implementation by autoref: a method found on `Probe<T>` itself (`T: JsonSchema`)
//! wins over the one found on `&Probe<T>` (any `T`).

use std::marker::PhantomData;

use serde_json::Value;

/// Stands for a payload type `T` while its schema is looked for.
#[derive(Debug)]
pub struct Probe<T>(PhantomData<T>);

impl<T> Probe<T> {
    /// A probe for `T`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(PhantomData)
    }
}

/// The schema of a type that implements `JsonSchema`.
pub trait Specific {
    /// `T`'s schema.
    fn schema(&self) -> Option<Value>;
}

impl<T: schemars::JsonSchema> Specific for Probe<T> {
    fn schema(&self) -> Option<Value> {
        Some(schemars::schema_for!(T).to_value())
    }
}

/// No schema, for a type that does not.
pub trait General {
    /// None.
    fn schema(&self) -> Option<Value>;
}

impl<T> General for &Probe<T> {
    fn schema(&self) -> Option<Value> {
        None
    }
}

/// The JSON Schema of type `$t` if it implements `schemars::JsonSchema`, as an
/// `Option<serde_json::Value>`; for the code `workflow!` generates.
#[doc(hidden)]
#[macro_export]
macro_rules! __schema_of {
    ($t:ty) => {{
        #[allow(unused_imports)]
        use $crate::__private::{SchemaGeneral as _, SchemaSpecific as _};
        (&$crate::__private::SchemaProbe::<$t>::new()).schema()
    }};
}

#[cfg(test)]
mod tests {
    #[derive(schemars::JsonSchema)]
    #[allow(dead_code)]
    struct Described {
        name: String,
    }

    #[allow(dead_code)]
    struct Plain;

    #[test]
    fn a_type_with_a_schema_has_it_and_one_without_has_none() {
        let schema = crate::__schema_of!(Described).expect("a schema");
        assert_eq!(schema["properties"]["name"]["type"], "string");
        assert_eq!(crate::__schema_of!(Plain), None);
        assert!(crate::__schema_of!(Vec<u32>).is_some());
    }
}
