//! The plan's scheduling semantics, checked directly: instance keys and names, where each kind
//! of vertex takes its input (`Plan::inputs_of`), and what a completion sets going
//! (`Plan::advance`, applied by `Progress` as the embedded engine does).
//!
//! No node runs here: each test feeds the plan encoded outputs it chose, so the expected
//! stores, arrivals, skips and framed inputs are exact. `tests/branches.rs` and
//! `tests/conformance.rs` cover the same rules end to end, on both engines.

use goflow::__private::{Advance, Feed, Inputs, Instance, Need, Plan, Progress, Slot, VertexId};
use goflow::codec::{Codec, MsgPack};
use goflow::prelude::*;
use goflow::request::Failure;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Nodes. Their bodies never run: only their types and names matter to a plan.

#[node]
async fn start(n: u32) -> u32 {
    n
}

#[node]
async fn left(n: u32) -> u32 {
    n + 1
}

#[node]
async fn right(n: u32) -> u32 {
    n + 2
}

#[node]
async fn both(l: u32, r: u32) -> u32 {
    l * 10 + r
}

/// What `classify` makes of a number: each variant carries what its arm needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Verdict {
    /// Approved: the number.
    Pass(u32),
    /// Rejected: why.
    Fail(String),
    /// Neither: the number passes through.
    Skip(u32),
}

#[node]
async fn classify(n: u32) -> Verdict {
    Verdict::Pass(n)
}

#[node]
async fn approve(n: u32) -> u32 {
    n * 10
}

#[node]
async fn plus_one(n: u32) -> u32 {
    n + 1
}

#[node]
async fn reason_length(reason: String) -> u32 {
    reason.len() as u32
}

#[node]
async fn report(n: u32) -> String {
    format!("report {n}")
}

/// Sorts a number for the conditional whose arm holds a for-each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Size {
    /// Big enough to count up to.
    Big(u32),
    /// Passed straight on.
    Small(u32),
}

#[node]
async fn size(n: u32) -> Size {
    Size::Small(n)
}

#[node]
async fn numbers(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[node]
async fn square(n: u32) -> u32 {
    n * n
}

#[node]
async fn verify(n: u32) -> u32 {
    n
}

#[node]
async fn total(xs: Vec<u32>) -> u32 {
    xs.iter().sum()
}

#[node]
async fn listing(xs: Vec<u32>) -> String {
    format!("{xs:?}")
}

#[node]
async fn grid(n: u32) -> Vec<Vec<u32>> {
    vec![(0..n).collect()]
}

#[node]
async fn row(xs: Vec<u32>) -> Vec<u32> {
    xs
}

workflow! {
    Diamond = start -> [left, right] => both;
    /// A chain arm, a one-vertex arm and an empty arm.
    Triage = classify ? {
        Pass => approve -> plus_one,
        Fail => reason_length,
        Skip => {},
    } -> report;
    /// A conditional inside a for-each body.
    PerItem = numbers -> each {
        classify ? { Pass => approve, Fail => reason_length, Skip => {} } -> plus_one
    } => listing;
    /// A for-each inside an arm.
    InArm = size ? { Big => numbers -> each { square } => total, Small => {} } -> plus_one;
    /// A body that is a chain.
    Squares = numbers -> each { square -> plus_one } => listing;
    /// A for-each nested in a for-each.
    Grid = grid -> each { row -> each { square } => total } => listing;
    /// A for-each inlined as a vertex (named `sub`), inside a for-each and at the top level.
    Sub = numbers -> each { verify } => total;
    Nest = numbers -> each { Sub as sub } => listing;
    Wrapped = Sub as sub -> report;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// Encodes `value` as the engines do.
macro_rules! enc {
    ($value:expr) => {
        MsgPack.encode(&$value).expect("test values encode")
    };
}

/// The plan of `W` with the engines' default codec, as the embedded engine builds it.
fn plan<W: Workflow>() -> std::sync::Arc<Plan> {
    std::sync::Arc::new(Plan::new::<W, _>(MsgPack))
}

/// The vertex at `path` (`sub/verify`); panics naming the paths there are.
fn id(plan: &Plan, path: &str) -> VertexId {
    plan.vertices()
        .iter()
        .position(|v| &**v.path() == path)
        .unwrap_or_else(|| {
            let paths: Vec<&str> = plan.vertices().iter().map(|v| &**v.path()).collect();
            panic!("no vertex `{path}` in {paths:?}")
        })
}

/// The instance of the vertex at `path` at the item path `items`.
fn at(plan: &Plan, path: &str, items: &[u32]) -> Instance {
    Instance::new(id(plan, path), items.to_vec())
}

/// The plan's advance for `done` completing with `output`.
fn advance<T: Serialize>(plan: &Plan, done: &Instance, output: &T) -> Advance {
    plan.advance(done, enc!(*output))
        .unwrap_or_else(|e| panic!("advance of `{}`: {e}", plan.name_of(done)))
}

/// Completes `done` with `output` and applies what that sets going: the instances now ready.
fn complete<T: Serialize>(
    plan: &Plan,
    progress: &mut Progress,
    done: &Instance,
    output: &T,
) -> Vec<Instance> {
    progress.apply(advance(plan, done, output))
}

/// The one input part of a ready instance, decoded.
fn single_input<T: DeserializeOwned>(plan: &Plan, progress: &Progress, instance: &Instance) -> T {
    let parts = progress
        .inputs(plan, instance)
        .unwrap_or_else(|| panic!("`{}` has no inputs", plan.name_of(instance)));
    assert_eq!(
        parts.len(),
        1,
        "`{}` takes one part",
        plan.name_of(instance)
    );
    MsgPack.decode(&parts[0]).expect("the part decodes")
}

/// Every order of `0..n`.
fn orders(n: u32) -> Vec<Vec<u32>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut all = Vec::new();
    for shorter in orders(n - 1) {
        for at in 0..=shorter.len() {
            let mut order = shorter.clone();
            order.insert(at, n - 1);
            all.push(order);
        }
    }
    all
}

// ---------------------------------------------------------------------------------------------
// Instances: keys and names.

#[test]
fn instance_keys_round_trip() {
    let root = Instance::root(5);
    assert_eq!(root, Instance::new(5, Vec::new()));
    assert_eq!(root.key(), "5");
    assert_eq!(Instance::parse_key("5"), Some(root));

    let nested = Instance::new(5, vec![3, 7]);
    assert_eq!(nested.key(), "5.3.7");
    assert_eq!(Instance::parse_key("5.3.7"), Some(nested.clone()));
    assert_eq!((nested.vertex(), nested.items()), (5, &[3, 7][..]));

    let max = Instance::new(0, vec![u32::MAX]);
    assert_eq!(Instance::parse_key(&max.key()), Some(max));
}

#[test]
fn garbage_keys_are_rejected() {
    for key in [
        "",
        ".",
        "5.",
        ".5",
        "5..3",
        "5.x",
        "x",
        "-1",
        "5.-3",
        "5 ",
        " 5",
        "5.4294967296", // an item past u32
        "5,3",
        // Not canonical: these would name the same instance as `5` or `5.3`.
        "+5",
        "05",
        "5.+3",
        "5.03",
    ] {
        assert_eq!(Instance::parse_key(key), None, "key {key:?}");
    }
}

#[test]
fn instance_names_are_the_vertex_path_then_each_item() {
    let sub = plan::<Sub>();
    assert_eq!(&*sub.name_of(&at(&sub, "numbers", &[])), "numbers");
    assert_eq!(&*sub.name_of(&at(&sub, "verify", &[3])), "verify[3]");

    let nest = plan::<Nest>();
    assert_eq!(
        &*nest.name_of(&at(&nest, "sub/numbers", &[3])),
        "sub/numbers[3]"
    );
    assert_eq!(
        &*nest.name_of(&at(&nest, "sub/verify", &[3, 0])),
        "sub/verify[3][0]"
    );
    assert_eq!(nest.vertex(id(&nest, "sub/verify")).depth(), 2);
    assert_eq!(nest.vertex(id(&nest, "sub/total")).depth(), 1);
    assert_eq!(nest.vertex(id(&nest, "listing")).depth(), 0);
}

// ---------------------------------------------------------------------------------------------
// `inputs_of`: one case per kind of feed.

#[test]
fn the_entry_takes_the_request_input() {
    let plan = plan::<Diamond>();
    let start = id(&plan, "start");
    assert_eq!((plan.entry(), plan.exit()), (start, id(&plan, "both")));
    assert_eq!(plan.vertex(start).feed(), &Feed::Request);
    assert_eq!(
        plan.inputs_of(&Instance::root(start)),
        Inputs::Slots(vec![Slot::Input])
    );
}

#[test]
fn a_single_parent_feeds_its_output_at_the_same_item_path() {
    let diamond = plan::<Diamond>();
    let start = id(&diamond, "start");
    assert_eq!(
        diamond.vertex(id(&diamond, "left")).feed(),
        &Feed::All(vec![start])
    );
    assert_eq!(
        diamond.inputs_of(&at(&diamond, "left", &[])),
        Inputs::Slots(vec![Slot::Output(Instance::root(start))])
    );

    let squares = plan::<Squares>();
    assert_eq!(
        squares.inputs_of(&at(&squares, "plus_one", &[4])),
        Inputs::Slots(vec![Slot::Output(at(&squares, "square", &[4]))])
    );
}

#[test]
fn a_join_takes_its_parents_in_declaration_order() {
    let plan = plan::<Diamond>();
    let (left, right) = (id(&plan, "left"), id(&plan, "right"));
    assert_eq!(
        plan.vertex(id(&plan, "both")).feed(),
        &Feed::All(vec![left, right])
    );
    assert_eq!(
        plan.inputs_of(&at(&plan, "both", &[])),
        Inputs::Slots(vec![
            Slot::Output(Instance::root(left)),
            Slot::Output(Instance::root(right)),
        ])
    );
}

#[test]
fn the_merge_takes_the_first_arm_output_then_the_passed_payload() {
    let triage = plan::<Triage>();
    let arm_exits = ["plus_one", "reason_length", "classify"].map(|p| id(&triage, p));
    assert_eq!(
        triage.vertex(id(&triage, "report")).feed(),
        &Feed::First(arm_exits.to_vec())
    );
    assert_eq!(
        triage.inputs_of(&at(&triage, "report", &[])),
        Inputs::FirstOf(
            arm_exits
                .iter()
                .map(|&v| Slot::Output(Instance::root(v)))
                .collect()
        )
    );
    // The arms' entries take the conditional's output (its payload, once advanced).
    assert_eq!(
        triage.inputs_of(&at(&triage, "approve", &[])),
        Inputs::Slots(vec![Slot::Output(at(&triage, "classify", &[]))])
    );

    // Inside a body, at the merge's item path.
    let per_item = plan::<PerItem>();
    assert_eq!(
        per_item.inputs_of(&at(&per_item, "plus_one", &[2])),
        Inputs::FirstOf(vec![
            Slot::Output(at(&per_item, "approve", &[2])),
            Slot::Output(at(&per_item, "reason_length", &[2])),
            Slot::Output(at(&per_item, "classify", &[2])),
        ])
    );
}

#[test]
fn a_body_entry_takes_its_item_and_the_gather_the_exit_outputs() {
    let squares = plan::<Squares>();
    let numbers = id(&squares, "numbers");
    assert_eq!(
        squares.vertex(id(&squares, "square")).feed(),
        &Feed::Item(numbers)
    );
    assert_eq!(
        squares.inputs_of(&at(&squares, "square", &[2])),
        Inputs::Slots(vec![Slot::Item(Instance::root(numbers), 2)])
    );
    let exit = id(&squares, "plus_one");
    assert_eq!(
        squares.vertex(id(&squares, "listing")).feed(),
        &Feed::Gather(exit)
    );
    assert_eq!(
        squares.inputs_of(&at(&squares, "listing", &[])),
        Inputs::Gather {
            exit,
            items: Vec::new()
        }
    );

    // Nested: the item of the enclosing instance, and a gather at its item path.
    let grid = plan::<Grid>();
    assert_eq!(
        grid.inputs_of(&at(&grid, "square", &[1, 0])),
        Inputs::Slots(vec![Slot::Item(at(&grid, "row", &[1]), 0)])
    );
    assert_eq!(
        grid.inputs_of(&at(&grid, "row", &[1])),
        Inputs::Slots(vec![Slot::Item(at(&grid, "grid", &[]), 1)])
    );
    assert_eq!(
        grid.inputs_of(&at(&grid, "total", &[1])),
        Inputs::Gather {
            exit: id(&grid, "square"),
            items: vec![1]
        }
    );
    assert_eq!(
        Inputs::gathered(id(&grid, "square"), &[1], 2),
        Slot::Output(at(&grid, "square", &[1, 2]))
    );
}

// ---------------------------------------------------------------------------------------------
// `advance` and `Progress`: joins.

#[test]
fn a_join_fires_once_on_its_last_parent() {
    let plan = plan::<Diamond>();
    let [start, left, right, both] = ["start", "left", "right", "both"].map(|p| at(&plan, p, &[]));

    let started = advance(&plan, &start, &1u32);
    assert_eq!(
        started.store,
        vec![(Slot::Output(start.clone()), enc!(1u32))]
    );
    assert_eq!(
        started.arrivals,
        vec![(left.clone(), Need::One), (right.clone(), Need::One)]
    );
    assert!(started.skipped.is_empty() && started.sizes.is_empty() && !started.completes);

    for first_left in [true, false] {
        let mut progress = Progress::new(enc!(1u32));
        assert_eq!(
            progress.inputs(&plan, &start),
            Some(vec![enc!(1u32)]),
            "the request input"
        );
        assert_eq!(
            complete(&plan, &mut progress, &start, &1u32),
            vec![left.clone(), right.clone()]
        );
        let (first, second) = if first_left {
            ((&left, 2u32), (&right, 3u32))
        } else {
            ((&right, 3u32), (&left, 2u32))
        };
        let arrived = advance(&plan, first.0, &first.1);
        assert_eq!(arrived.arrivals, vec![(both.clone(), Need::Count(2))]);
        assert_eq!(progress.apply(arrived), Vec::<Instance>::new());
        assert_eq!(progress.inputs(&plan, &both), None, "one parent missing");
        assert_eq!(
            complete(&plan, &mut progress, second.0, &second.1),
            vec![both.clone()]
        );
        // The parameters in declaration order, whichever parent finished last.
        assert_eq!(
            progress.inputs(&plan, &both),
            Some(vec![enc!(2u32), enc!(3u32)])
        );
        // Counted exactly at the need, as the Redis engine counts: an arrival past it (which
        // engines prevent by deduplicating completions) does not ready the join again.
        assert_eq!(
            complete(&plan, &mut progress, first.0, &first.1),
            Vec::<Instance>::new()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Conditionals.

#[test]
fn a_conditional_runs_the_arm_of_its_variant_with_the_payload() {
    let plan = plan::<Triage>();
    let [classify, approve, plus_one, reason_length, report] =
        ["classify", "approve", "plus_one", "reason_length", "report"].map(|p| at(&plan, p, &[]));

    let passed = advance(&plan, &classify, &Verdict::Pass(7));
    assert_eq!(
        passed.store,
        vec![(Slot::Output(classify.clone()), enc!(7u32))]
    );
    assert_eq!(passed.arrivals, vec![(approve.clone(), Need::One)]);
    assert_eq!(passed.skipped, vec![reason_length.clone()]);
    assert!(passed.sizes.is_empty() && !passed.completes);

    let mut progress = Progress::new(enc!(0u32));
    assert_eq!(progress.apply(passed), vec![approve.clone()]);
    assert_eq!(single_input::<u32>(&plan, &progress, &approve), 7);
    assert_eq!(
        complete(&plan, &mut progress, &approve, &70u32),
        vec![plus_one.clone()]
    );
    assert_eq!(
        complete(&plan, &mut progress, &plus_one, &71u32),
        vec![report.clone()]
    );
    // The arm's output, not the payload the conditional's slot also holds.
    assert_eq!(single_input::<u32>(&plan, &progress, &report), 71);

    let failed = advance(&plan, &classify, &Verdict::Fail("too odd".to_owned()));
    assert_eq!(
        failed.store,
        vec![(Slot::Output(classify), enc!("too odd"))]
    );
    assert_eq!(failed.arrivals, vec![(reason_length.clone(), Need::One)]);
    // A chain arm skips every vertex in it.
    assert_eq!(failed.skipped, vec![approve, plus_one]);
    let mut progress = Progress::new(enc!(0u32));
    assert_eq!(progress.apply(failed), vec![reason_length.clone()]);
    assert_eq!(
        single_input::<String>(&plan, &progress, &reason_length),
        "too odd"
    );
    assert_eq!(
        complete(&plan, &mut progress, &reason_length, &7u32),
        vec![report.clone()]
    );
    assert_eq!(single_input::<u32>(&plan, &progress, &report), 7);
}

#[test]
fn an_empty_arm_passes_the_payload_straight_to_the_merge() {
    let plan = plan::<Triage>();
    let [classify, approve, plus_one, reason_length, report] =
        ["classify", "approve", "plus_one", "reason_length", "report"].map(|p| at(&plan, p, &[]));

    let skipped = advance(&plan, &classify, &Verdict::Skip(5));
    assert_eq!(skipped.arrivals, vec![(report.clone(), Need::One)]);
    assert_eq!(skipped.skipped, vec![approve, plus_one, reason_length]);

    let mut progress = Progress::new(enc!(0u32));
    assert_eq!(progress.apply(skipped), vec![report.clone()]);
    assert_eq!(single_input::<u32>(&plan, &progress, &report), 5);
}

#[test]
fn a_conditional_in_a_body_runs_and_skips_at_its_item_path() {
    let plan = plan::<PerItem>();
    let classify = at(&plan, "classify", &[2]);

    let failed = advance(&plan, &classify, &Verdict::Fail("no".to_owned()));
    assert_eq!(
        failed.store,
        vec![(Slot::Output(classify.clone()), enc!("no"))]
    );
    assert_eq!(
        failed.arrivals,
        vec![(at(&plan, "reason_length", &[2]), Need::One)]
    );
    assert_eq!(failed.skipped, vec![at(&plan, "approve", &[2])]);

    let skipped = advance(&plan, &classify, &Verdict::Skip(4));
    assert_eq!(
        skipped.arrivals,
        vec![(at(&plan, "plus_one", &[2]), Need::One)]
    );
    assert_eq!(
        skipped.skipped,
        vec![at(&plan, "approve", &[2]), at(&plan, "reason_length", &[2])]
    );
}

#[test]
fn an_arm_not_taken_skips_its_vertices_but_not_those_in_bodies_inside_it() {
    let plan = plan::<InArm>();
    let small = advance(&plan, &at(&plan, "size", &[]), &Size::Small(3));
    assert_eq!(
        small.arrivals,
        vec![(at(&plan, "plus_one", &[]), Need::One)]
    );
    // `square` has no instance at the conditional's item path: only per item, and no item
    // will ever exist.
    assert_eq!(
        small.skipped,
        vec![at(&plan, "numbers", &[]), at(&plan, "total", &[])]
    );

    let big = advance(&plan, &at(&plan, "size", &[]), &Size::Big(3));
    assert_eq!(big.arrivals, vec![(at(&plan, "numbers", &[]), Need::One)]);
    assert!(big.skipped.is_empty(), "an empty arm has no vertices");
}

// ---------------------------------------------------------------------------------------------
// For-each.

#[test]
fn a_for_each_stores_its_items_and_starts_one_body_instance_per_item() {
    let plan = plan::<Squares>();
    let numbers = at(&plan, "numbers", &[]);
    let squares: Vec<Instance> = (0..3).map(|n| at(&plan, "square", &[n])).collect();

    let split = advance(&plan, &numbers, &vec![10u32, 20, 30]);
    assert_eq!(
        split.store,
        vec![
            (Slot::Item(numbers.clone(), 0), enc!(10u32)),
            (Slot::Item(numbers.clone(), 1), enc!(20u32)),
            (Slot::Item(numbers, 2), enc!(30u32)),
        ]
    );
    assert_eq!(split.sizes, vec![(at(&plan, "listing", &[]), 3)]);
    assert_eq!(
        split.arrivals,
        squares
            .iter()
            .map(|s| (s.clone(), Need::One))
            .collect::<Vec<_>>()
    );
    assert!(split.skipped.is_empty() && !split.completes);

    let mut progress = Progress::new(enc!(3u32));
    assert_eq!(progress.apply(split), squares);
    assert_eq!(single_input::<u32>(&plan, &progress, &squares[1]), 20);

    // Within the body, an item's chain stays at its item path.
    let squared = advance(&plan, &squares[1], &400u32);
    assert_eq!(
        squared.arrivals,
        vec![(at(&plan, "plus_one", &[1]), Need::One)]
    );
}

#[test]
fn the_gather_fires_once_after_the_last_item_in_any_order() {
    let plan = plan::<Squares>();
    let listing = at(&plan, "listing", &[]);
    let items = [3u32, 1, 4, 1];
    let count = items.len() as u32;

    let all = orders(count);
    assert_eq!(all.len(), 24);
    for order in all {
        let mut progress = Progress::new(enc!(count));
        complete(
            &plan,
            &mut progress,
            &at(&plan, "numbers", &[]),
            &items.to_vec(),
        );
        for (done, &n) in order.iter().enumerate() {
            let square = at(&plan, "square", &[n]);
            let item: u32 = single_input(&plan, &progress, &square);
            assert_eq!(item, items[n as usize]);
            assert_eq!(
                complete(&plan, &mut progress, &square, &(item * item)),
                vec![at(&plan, "plus_one", &[n])],
                "order {order:?}"
            );

            let exit = at(&plan, "plus_one", &[n]);
            let output = item * item + 1 + 100 * n; // distinct per item
            let arrived = advance(&plan, &exit, &output);
            assert_eq!(arrived.arrivals, vec![(listing.clone(), Need::Size)]);
            let ready = progress.apply(arrived);
            if done + 1 < order.len() {
                assert_eq!(ready, Vec::<Instance>::new(), "order {order:?}, {done}");
                assert_eq!(progress.inputs(&plan, &listing), None);
            } else {
                assert_eq!(ready, vec![listing.clone()], "order {order:?}");
            }
        }
        // In item order, whatever the completion order.
        assert_eq!(
            single_input::<Vec<u32>>(&plan, &progress, &listing),
            vec![10, 102, 217, 302],
            "order {order:?}"
        );
    }
}

#[test]
fn an_empty_collection_makes_the_gather_ready_at_once() {
    let plan = plan::<Squares>();
    let listing = at(&plan, "listing", &[]);

    let split = advance(&plan, &at(&plan, "numbers", &[]), &Vec::<u32>::new());
    assert!(split.store.is_empty());
    assert_eq!(split.sizes, vec![(listing.clone(), 0)]);
    assert_eq!(split.arrivals, vec![(listing.clone(), Need::One)]);

    let mut progress = Progress::new(enc!(0u32));
    assert_eq!(progress.apply(split), vec![listing.clone()]);
    assert_eq!(
        single_input::<Vec<u32>>(&plan, &progress, &listing),
        Vec::<u32>::new()
    );
}

#[test]
fn nested_for_each_instances_extend_the_item_path() {
    let plan = plan::<Grid>();
    let listing = at(&plan, "listing", &[]);
    let mut progress = Progress::new(enc!(3u32));

    let rows = vec![vec![1u32, 2], Vec::new(), vec![3]];
    assert_eq!(
        complete(&plan, &mut progress, &at(&plan, "grid", &[]), &rows),
        (0..3).map(|r| at(&plan, "row", &[r])).collect::<Vec<_>>()
    );
    assert_eq!(
        single_input::<Vec<u32>>(&plan, &progress, &at(&plan, "row", &[2])),
        vec![3]
    );

    let row0 = at(&plan, "row", &[0]);
    let split = advance(&plan, &row0, &rows[0]);
    assert_eq!(
        split.store,
        vec![
            (Slot::Item(row0.clone(), 0), enc!(1u32)),
            (Slot::Item(row0, 1), enc!(2u32)),
        ]
    );
    assert_eq!(split.sizes, vec![(at(&plan, "total", &[0]), 2)]);
    assert_eq!(
        split.arrivals,
        vec![
            (at(&plan, "square", &[0, 0]), Need::One),
            (at(&plan, "square", &[0, 1]), Need::One),
        ]
    );
    progress.apply(split);

    // An empty inner collection readies its own gather only.
    assert_eq!(
        complete(&plan, &mut progress, &at(&plan, "row", &[1]), &rows[1]),
        vec![at(&plan, "total", &[1])]
    );
    assert_eq!(
        complete(&plan, &mut progress, &at(&plan, "row", &[2]), &rows[2]),
        vec![at(&plan, "square", &[2, 0])]
    );
    assert_eq!(
        single_input::<u32>(&plan, &progress, &at(&plan, "square", &[0, 1])),
        2
    );

    // The inner gathers, out of order.
    assert_eq!(
        complete(&plan, &mut progress, &at(&plan, "square", &[2, 0]), &9u32),
        vec![at(&plan, "total", &[2])]
    );
    let square01 = advance(&plan, &at(&plan, "square", &[0, 1]), &4u32);
    assert_eq!(
        square01.arrivals,
        vec![(at(&plan, "total", &[0]), Need::Size)]
    );
    assert_eq!(progress.apply(square01), Vec::<Instance>::new());
    assert_eq!(
        complete(&plan, &mut progress, &at(&plan, "square", &[0, 0]), &1u32),
        vec![at(&plan, "total", &[0])]
    );
    let gathered = |progress: &Progress, r: u32| {
        single_input::<Vec<u32>>(&plan, progress, &at(&plan, "total", &[r]))
    };
    assert_eq!(gathered(&progress, 0), vec![1, 4]);
    assert_eq!(gathered(&progress, 1), Vec::<u32>::new());
    assert_eq!(gathered(&progress, 2), vec![9]);

    // The outer gather, after the last inner exit.
    for (r, sum, ready) in [(2, 9u32, false), (0, 5, false), (1, 0, true)] {
        let got = complete(&plan, &mut progress, &at(&plan, "total", &[r]), &sum);
        let want = if ready {
            vec![listing.clone()]
        } else {
            Vec::new()
        };
        assert_eq!(got, want, "after total[{r}]");
    }
    assert_eq!(
        single_input::<Vec<u32>>(&plan, &progress, &listing),
        vec![5, 0, 9]
    );
}

#[test]
fn a_sub_workflow_for_each_runs_per_outer_item() {
    let plan = plan::<Nest>();
    let inner = at(&plan, "sub/numbers", &[1]);
    let split = advance(&plan, &inner, &vec![7u32, 8]);
    assert_eq!(split.sizes, vec![(at(&plan, "sub/total", &[1]), 2)]);
    assert_eq!(
        split.arrivals,
        vec![
            (at(&plan, "sub/verify", &[1, 0]), Need::One),
            (at(&plan, "sub/verify", &[1, 1]), Need::One),
        ]
    );
    let gathered = advance(&plan, &at(&plan, "sub/total", &[1]), &15u32);
    assert_eq!(
        gathered.arrivals,
        vec![(at(&plan, "listing", &[]), Need::Size)]
    );
    assert!(!gathered.completes);
}

// ---------------------------------------------------------------------------------------------
// Completion and codec errors.

#[test]
fn only_the_root_exit_completes_the_request() {
    let plan = plan::<Wrapped>();
    assert_eq!(plan.exit(), id(&plan, "report"));
    assert_eq!(
        plan.vertex(plan.exit()).depth(),
        0,
        "the exit is in no body"
    );
    let not_yet = [
        advance(&plan, &at(&plan, "sub/numbers", &[]), &vec![1u32]),
        advance(&plan, &at(&plan, "sub/verify", &[0]), &1u32),
        // The exit of the inlined workflow is not the request's exit.
        advance(&plan, &at(&plan, "sub/total", &[]), &1u32),
    ];
    for advance in &not_yet {
        assert!(!advance.completes, "{advance:?}");
    }
    let done = advance(&plan, &at(&plan, "report", &[]), &"report 1");
    assert!(done.completes);
    assert!(done.arrivals.is_empty() && done.skipped.is_empty() && done.sizes.is_empty());
    assert_eq!(
        done.store,
        vec![(Slot::Output(at(&plan, "report", &[])), enc!("report 1"))]
    );
}

#[test]
fn undecodable_conditional_and_collection_outputs_are_codec_errors() {
    let triage = plan::<Triage>();
    let classify = at(&triage, "classify", &[]);
    for output in [
        vec![0xc1u8].into(), // a byte MessagePack never uses
        enc!(Size::Big(1)),  // a variant the conditional does not have
        enc!(7u32),
    ] {
        let error = triage.advance(&classify, output).unwrap_err();
        assert!(
            matches!(&error, Failure::Codec(m) if m.starts_with("msgpack decoding failed")),
            "{error}"
        );
    }

    let squares = plan::<Squares>();
    let numbers = at(&squares, "numbers", &[]);
    for output in [vec![0xc1u8].into(), enc!(vec!["a"]), enc!(7u32)] {
        let error = squares.advance(&numbers, output).unwrap_err();
        assert!(
            matches!(&error, Failure::Codec(m) if m.starts_with("msgpack decoding failed")),
            "{error}"
        );
    }

    // A plain vertex's output is passed on as it is: its successors decode it.
    let stored = squares
        .advance(&at(&squares, "square", &[0]), vec![0xc1u8].into())
        .expect("a plain output is not decoded");
    assert_eq!(stored.store.len(), 1);
    assert_eq!(
        stored.store[0].0,
        Slot::Output(at(&squares, "square", &[0]))
    );
    assert_eq!(stored.store[0].1[..], [0xc1]);
}
