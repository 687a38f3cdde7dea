//! The smallest workflow: one node.
//!
//! The Go goflow original declares it as
//!
//! ```go
//! dag.Node("test", func(data []byte, option map[string][]string) ([]byte, error) {
//!     return []byte("Hello " + string(data)), nil
//! })
//! ```
//!
//! In goflow the node is a typed `async fn`, and the workflow is one vertex. Run it with
//!
//! ```sh
//! cargo run --example single_node
//! ```

use goflow::prelude::*;

/// Greets whoever is named in the input. A node that cannot fail returns its output directly.
#[node(name = "test")]
async fn greet(name: String) -> String {
    format!("Hello {name}")
}

workflow! {
    /// A workflow of a single node.
    Greeting = greet;
}

#[tokio::main]
async fn main() -> Result<(), goflow::Error> {
    let output = Greeting::run_local("goflow".to_owned()).await?;
    println!("workflow `{}` returned: {output:?}", Greeting::NAME);
    Ok(())
}
