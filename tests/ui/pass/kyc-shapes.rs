include!("../common.rs");

mod nodes {
    use goflow::prelude::*;

    #[node(name = "double-it", retries = 1, timeout = "1s", backoff = "10ms")]
    pub(crate) async fn double(ctx: Context, x: u32) -> Result<u32, std::io::Error> {
        let _ = ctx.request_id();
        Ok(x * 2)
    }
}

#[node]
async fn sum3(x: u32, y: u32, z: u32) -> u32 {
    x + y + z
}

workflow! {
    /// The KYC flow.
    pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
    pub Diamond = { a -> [b, c]; [b, c] => sum2; };
    pub Outer = get_kyc_image -> Verify -> profile_name;
    pub(crate) Verify = check -> [face_detect, face_match] => mark_profile;
    pub Chain = a -> nodes::double -> a as a2 -> nodes::double as double2;
    pub Nested = a -> [b -> c, d, Diamond] => sum3;
}

#[node]
async fn sum2(x: u32, y: u32) -> u32 {
    x + y
}

#[node]
async fn check(image: Image) -> Image {
    image
}

#[node]
async fn profile_name(profile: Profile) -> String {
    profile.0
}

fn main() {
    let _ = (Kyc::NAME, Diamond::NAME, Outer::NAME, Chain::NAME, Nested::NAME);
    // Node functions stay callable as written.
    let _ = a(1);
}
