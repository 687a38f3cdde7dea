include!("../common.rs");

workflow! {
    pub Diamond = {
        a -> [b, c];
        b -> d;
        c -> d;
    };
}

fn main() {}
