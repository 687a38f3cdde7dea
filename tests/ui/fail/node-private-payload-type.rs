use goflow::prelude::*;
use serde::{Deserialize, Serialize};

mod orders {
    use super::*;

    // Payload types must be `pub` (a `pub` type in a private module is fine): a node's input
    // and output types appear in the public `Node` impl of its generated type.
    #[derive(Serialize, Deserialize)]
    struct Order(u32);

    #[node]
    pub(crate) async fn total(order: Order) -> u32 {
        order.0
    }
}

fn main() {}
