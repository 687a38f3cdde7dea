include!("../common.rs");
include!("../branching.rs");

/// Sorts a number for the nested conditional.
#[derive(Clone, Serialize, Deserialize)]
pub enum Size {
    Big(u32),
    Small(u32),
}

#[node]
async fn size(x: u32) -> Size {
    if x > 9 {
        Size::Big(x)
    } else {
        Size::Small(x)
    }
}
#[node]
async fn range(x: u32) -> Vec<u32> {
    (0..x).collect()
}
#[node]
async fn rows(x: u32) -> Vec<Vec<u32>> {
    vec![(0..x).collect()]
}
#[node]
async fn total(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}
#[node]
async fn pair(x: u32, y: u32) -> u32 {
    x + y
}
#[node]
async fn lens(images: Vec<Image>) -> Vec<u32> {
    images.iter().map(|i| i.0.len() as u32).collect()
}
/// A node that happens to be called `each`: a plain vertex wherever no `{` follows.
#[node]
async fn each(x: u32) -> u32 {
    x
}

workflow! {
    /// The conditional of the README: chain arms, an empty arm, a trailing comma.
    pub Verify = get_kyc_image -> face_detect -> check_face ? {
        Pass => face_match,
        Fail => create_user -> notify,
        Skip => {},
    } -> generate_result;
    /// The for-each of the README.
    pub Sweep = list_images -> each { face_detect -> flag } => count_flags;

    /// A body whose entries are a group, a conditional inside a body, a nested conditional in
    /// an arm, a group in an arm.
    pub Shapes = range -> each {
        [a, b] => pair -> size ? {
            Big => c -> size as resize ? { Big => {}, Small => d } -> a as again,
            Small => [b as b2, c as c2] => pair as pair2,
        } -> each as last
    } => total;
    /// Nested bodies, a for-each inside an arm (after a vertex), a conditional in a group.
    pub Nested = {
        rows -> each { e -> each { a } => total } => total as grand;
    };
    pub InArm = size ? {
        Big => range -> each { b } => total,
        Small => {},
    } -> a;
    pub InGroup = a -> [size ? { Big => b, Small => c } -> d, each] => pair;
    /// Workflows with conditionals and for-each as vertices, inside arms and bodies.
    pub Outer = range -> each { InArm } => total -> InGroup -> Verified;
    pub Verified = a -> size ? { Big => InArm, Small => Shapes2 } -> each;
    pub Shapes2 = range -> each { a } => total;
    /// A workflow whose entry is a conditional and whose exit gathers.
    pub Ends = size ? { Big => range, Small => range as range2 } -> e -> each { a } => total;
    pub Images = list_images -> lens -> each { d } => total;
}

#[node]
async fn e(xs: Vec<u32>) -> Vec<u32> {
    xs
}

fn main() {
    let _ = (Verify::NAME, Sweep::NAME, Shapes::NAME, Nested::NAME, InArm::NAME);
    let _ = (InGroup::NAME, Outer::NAME, Ends::NAME, Images::NAME);
}
