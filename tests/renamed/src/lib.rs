//! goflow under another name (`gf = { package = "goflow" }`): `workflow!` finds its crate through
//! `$crate`, and `#[node]` through its `crate = ...` option.

use gf::prelude::*;
use serde::{Deserialize, Serialize};

/// A greeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Greeting(pub String);

/// Greets.
#[node(crate = gf)]
pub async fn greet(name: String) -> Greeting {
    Greeting(format!("Hello {name}"))
}

/// Shouts.
#[gf::node(crate = ::gf)]
pub async fn shout(greeting: Greeting) -> Result<Greeting, NodeError> {
    Ok(Greeting(greeting.0.to_uppercase()))
}

gf::workflow! {
    /// Greets loudly.
    pub Loud = greet -> shout;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_under_a_renamed_dependency() {
        assert_eq!(
            Loud::run_local("gf".into()).await.unwrap(),
            Greeting("HELLO GF".into())
        );
        assert_eq!(<Loud as gf::Workflow>::NAME, "loud");
    }
}
