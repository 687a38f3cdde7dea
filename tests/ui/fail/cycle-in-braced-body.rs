include!("../common.rs");

workflow! {
    pub Loop = {
        a -> b;
        b -> c;
        c -> d;
        d -> b;
    };
}

fn main() {}
