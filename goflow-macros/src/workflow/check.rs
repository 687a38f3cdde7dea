//! Graph analysis of a workflow, on plain indices: no tokens, no spans, unit-testable. It
//! reads the model's declarations ([`Decl`]); the model does not depend on it.

use super::model::{Decl, Link};

/// What the analysis needs to know about a declaration's link.
impl Link {
    /// Which conditional or for-each a declaration routes its source's output through:
    /// `Some` for the declarations that take a conditional's or a for-each source's output.
    fn route(self) -> Option<Route> {
        match self {
            Link::Arm { branch, .. } | Link::Pass { branch, .. } => Some(Route::Branch(branch)),
            Link::Scatter { each } => Some(Route::Each(each)),
            Link::Then | Link::Join | Link::Merge { .. } | Link::Gather { .. } => None,
        }
    }

    /// The conditional whose merge vertex this declaration feeds.
    fn merge_of(self) -> Option<usize> {
        match self {
            Link::Merge { branch, .. } | Link::Pass { branch, .. } => Some(branch),
            _ => None,
        }
    }
}

/// Where a conditional's vertex or a for-each source sends its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// To the chosen arm of conditional `n`.
    Branch(usize),
    /// Item by item to the body of for-each `n`.
    Each(usize),
}

/// A mistake in the shape, by vertex and declaration indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// Declaration `decl` feeds a vertex its own output.
    SelfLoop { decl: usize },
    /// Declaration `second` gives `vertex` another input than `first` did.
    Unjoined {
        vertex: usize,
        first: usize,
        second: usize,
    },
    /// `path` (first vertex repeated at the end) is a cycle closed by declaration `decl`.
    Cycle { path: Vec<usize>, decl: usize },
    /// `vertex` is a conditional's vertex or a for-each source (`route`), whose output goes
    /// only to its arms or body, yet declaration `decl` gives it elsewhere too.
    SharedOutput {
        vertex: usize,
        route: Route,
        decl: usize,
    },
    /// Not exactly one vertex lacks predecessors.
    Entries(Vec<usize>),
    /// Not exactly one vertex lacks successors.
    Exits(Vec<usize>),
}

/// The result of [`analyze`].
#[derive(Debug)]
pub(crate) struct Analysis {
    /// The declarations that stand (duplicates and rejected ones left out), in order.
    pub(crate) accepted: Vec<usize>,
    pub(crate) entry: usize,
    pub(crate) exit: usize,
    pub(crate) problems: Vec<Problem>,
}

/// Checks the shape formed by `decls` over `vertices` vertices. `check_ends` asks for the
/// one-entry/one-exit rule too; it is skipped after a syntax-level mistake, whose dropped
/// edges would make it report noise.
pub(crate) fn analyze(vertices: usize, decls: &[Decl], check_ends: bool) -> Analysis {
    let mut problems = Vec::new();
    let mut input_of: Vec<Option<usize>> = vec![None; vertices];
    let mut accepted = Vec::new();
    let mut conflicts = Vec::new();
    for (i, decl) in decls.iter().enumerate() {
        if decl.from.contains(&decl.to) {
            problems.push(Problem::SelfLoop { decl: i });
            continue;
        }
        match input_of[decl.to] {
            None => {
                input_of[decl.to] = Some(i);
                accepted.push(i);
            }
            // The same declaration repeated (`a -> b; a -> b;`) is harmless.
            Some(first) if decls[first] == *decl => {}
            // The vertex after a conditional takes one input per arm.
            Some(first)
                if decl.link.merge_of().is_some()
                    && decls[first].link.merge_of() == decl.link.merge_of() =>
            {
                accepted.push(i);
            }
            Some(first) => conflicts.push((first, i)),
        }
    }

    let mut successors: Vec<Vec<(usize, usize)>> = vec![Vec::new(); vertices];
    for &i in &accepted {
        for &from in &decls[i].from {
            successors[from].push((decls[i].to, i));
        }
    }
    for (path, decl) in find_cycles(&successors) {
        problems.push(Problem::Cycle { path, decl });
    }
    problems.extend(shared_outputs(decls, &successors));
    // A second input that would close a loop is reported as the cycle it makes, which says
    // more than "two predecessors".
    for (first, second) in conflicts {
        let decl = &decls[second];
        let cycle = decl
            .from
            .iter()
            .find_map(|&from| path_between(&successors, decl.to, from));
        problems.push(match cycle {
            Some(mut path) => {
                path.push(decl.to);
                Problem::Cycle { path, decl: second }
            }
            None => Problem::Unjoined {
                vertex: decl.to,
                first,
                second,
            },
        });
    }

    let mut entry = 0;
    let mut exit = 0;
    if problems.is_empty() && check_ends {
        let entries: Vec<usize> = (0..vertices).filter(|&v| input_of[v].is_none()).collect();
        let exits: Vec<usize> = (0..vertices)
            .filter(|&v| successors[v].is_empty())
            .collect();
        match entries[..] {
            [only] => entry = only,
            _ => problems.push(Problem::Entries(entries)),
        }
        match exits[..] {
            [only] => exit = only,
            _ => problems.push(Problem::Exits(exits)),
        }
    }
    Analysis {
        accepted,
        entry,
        exit,
        problems,
    }
}

/// Conditionals' vertices and for-each sources whose output some declaration also takes
/// another way: one problem per vertex, at the declaration written last.
fn shared_outputs(decls: &[Decl], successors: &[Vec<(usize, usize)>]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (vertex, outgoing) in successors.iter().enumerate() {
        let Some((owner, route)) = outgoing
            .iter()
            .find_map(|&(_, d)| decls[d].link.route().map(|route| (d, route)))
        else {
            continue;
        };
        if let Some(&(_, other)) = outgoing
            .iter()
            .find(|&&(_, d)| decls[d].link.route() != Some(route))
        {
            problems.push(Problem::SharedOutput {
                vertex,
                route,
                decl: owner.max(other),
            });
        }
    }
    problems
}

/// The vertices on a shortest path from `from` to `to` (both included), if there is one.
fn path_between(successors: &[Vec<(usize, usize)>], from: usize, to: usize) -> Option<Vec<usize>> {
    let mut parent = vec![usize::MAX; successors.len()];
    let mut queue = std::collections::VecDeque::from([from]);
    parent[from] = from;
    while let Some(vertex) = queue.pop_front() {
        if vertex == to {
            let mut path = vec![to];
            let mut at = to;
            while at != from {
                at = parent[at];
                path.push(at);
            }
            path.reverse();
            return Some(path);
        }
        for &(next, _) in &successors[vertex] {
            if parent[next] == usize::MAX {
                parent[next] = vertex;
                queue.push_back(next);
            }
        }
    }
    None
}

/// Every cycle closed by a back edge of a depth-first search, as the path around it (first
/// vertex repeated at the end) and the tag of the closing edge. `successors[v]` lists
/// `(next, tag)`. Deterministic: vertices and edges are visited in order.
pub(crate) fn find_cycles(successors: &[Vec<(usize, usize)>]) -> Vec<(Vec<usize>, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark = vec![Mark::New; successors.len()];
    let mut cycles = Vec::new();
    for root in 0..successors.len() {
        if mark[root] != Mark::New {
            continue;
        }
        // (vertex, index of its next edge to visit); the stack is also the current path.
        let mut stack = vec![(root, 0)];
        mark[root] = Mark::OnStack;
        while let Some(&mut (vertex, ref mut next)) = stack.last_mut() {
            if let Some(&(to, tag)) = successors[vertex].get(*next) {
                *next += 1;
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::OnStack;
                        stack.push((to, 0));
                    }
                    Mark::OnStack => {
                        let start = stack.iter().position(|&(v, _)| v == to).unwrap_or(0);
                        let mut path: Vec<usize> = stack[start..].iter().map(|&(v, _)| v).collect();
                        path.push(to);
                        cycles.push((path, tag));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[vertex] = Mark::Done;
                stack.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;

    fn then(from: usize, to: usize) -> Decl {
        link(from, to, Link::Then)
    }

    fn join(from: &[usize], to: usize) -> Decl {
        Decl {
            from: from.to_vec(),
            to,
            link: Link::Join,
        }
    }

    fn link(from: usize, to: usize, link: Link) -> Decl {
        Decl {
            from: vec![from],
            to,
            link,
        }
    }

    /// `0 ? { A => 1 -> 2, B => 3, C => {} } -> 4`
    fn conditional() -> Vec<Decl> {
        vec![
            link(0, 1, Link::Arm { branch: 0, arm: 0 }),
            then(1, 2),
            link(0, 3, Link::Arm { branch: 0, arm: 1 }),
            link(2, 4, Link::Merge { branch: 0, arm: 0 }),
            link(3, 4, Link::Merge { branch: 0, arm: 1 }),
            link(0, 4, Link::Pass { branch: 0, arm: 2 }),
        ]
    }

    /// `0 -> each { [1, 2] => 3 } => 4`
    fn for_each() -> Vec<Decl> {
        vec![
            link(0, 1, Link::Scatter { each: 0 }),
            link(0, 2, Link::Scatter { each: 0 }),
            join(&[1, 2], 3),
            link(3, 4, Link::Gather { each: 0 }),
        ]
    }

    #[test]
    fn accepts_the_kyc_diamond() {
        let analysis = analyze(4, &[then(0, 1), then(0, 2), join(&[1, 2], 3)], true);
        assert_eq!(analysis.problems, vec![]);
        assert_eq!((analysis.entry, analysis.exit), (0, 3));
        assert_eq!(analysis.accepted, vec![0, 1, 2]);
    }

    #[test]
    fn finds_a_three_vertex_cycle_with_its_path() {
        // 1 already takes 0's output, so `3 -> 1` is a second input; it closes a loop, so it is
        // reported as the cycle.
        let analysis = analyze(4, &[then(0, 1), then(1, 2), then(2, 3), then(3, 1)], true);
        assert_eq!(
            analysis.problems,
            vec![Problem::Cycle {
                path: vec![1, 2, 3, 1],
                decl: 3
            }]
        );
        let analysis = analyze(3, &[then(0, 1), then(1, 2), then(2, 0)], true);
        assert_eq!(
            analysis.problems,
            vec![Problem::Cycle {
                path: vec![0, 1, 2, 0],
                decl: 2
            }]
        );
    }

    #[test]
    fn finds_a_cycle_through_a_join() {
        // 0 -> [1, 2] => 3; 3 -> 2 closes 2 -> 3 -> 2 ... but 2 already has an input, so make a
        // join the closing edge instead: 3 feeds 0 via a join with 4.
        let decls = [
            then(0, 1),
            then(0, 2),
            join(&[1, 2], 3),
            join(&[3, 4], 0),
            then(3, 4),
        ];
        let analysis = analyze(5, &decls, true);
        assert!(
            analysis
                .problems
                .iter()
                .any(|p| matches!(p, Problem::Cycle { path, .. } if path.first() == path.last())),
            "{:?}",
            analysis.problems
        );
    }

    #[test]
    fn reports_self_loops() {
        let analysis = analyze(2, &[then(0, 1), then(1, 1)], true);
        assert_eq!(analysis.problems, vec![Problem::SelfLoop { decl: 1 }]);
    }

    #[test]
    fn repeated_declarations_are_harmless_but_different_ones_are_not() {
        let analysis = analyze(2, &[then(0, 1), then(0, 1)], true);
        assert_eq!(analysis.problems, vec![]);
        assert_eq!(analysis.accepted, vec![0]);
        let analysis = analyze(3, &[then(0, 2), then(1, 2)], true);
        assert_eq!(
            analysis.problems,
            vec![Problem::Unjoined {
                vertex: 2,
                first: 0,
                second: 1
            }]
        );
    }

    #[test]
    fn requires_one_entry_and_one_exit() {
        let analysis = analyze(3, &[then(0, 1), then(0, 2)], true);
        assert_eq!(analysis.problems, vec![Problem::Exits(vec![1, 2])]);
        let analysis = analyze(3, &[join(&[0, 1], 2)], true);
        assert_eq!(analysis.problems, vec![Problem::Entries(vec![0, 1])]);
        let analysis = analyze(1, &[], true);
        assert_eq!(analysis.problems, vec![]);
    }

    #[test]
    fn the_merge_vertex_takes_one_input_per_arm() {
        let analysis = analyze(5, &conditional(), true);
        assert_eq!(analysis.problems, vec![]);
        assert_eq!((analysis.entry, analysis.exit), (0, 4));
        assert_eq!(analysis.accepted, vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_merge_vertex_with_another_input_is_unjoined() {
        let mut decls = conditional();
        decls.push(then(5, 4));
        let analysis = analyze(6, &decls, true);
        assert_eq!(
            analysis.problems,
            vec![Problem::Unjoined {
                vertex: 4,
                first: 3,
                second: 6
            }]
        );
    }

    #[test]
    fn body_vertices_are_neither_entries_nor_exits() {
        let analysis = analyze(5, &for_each(), true);
        assert_eq!(analysis.problems, vec![]);
        assert_eq!((analysis.entry, analysis.exit), (0, 4));
    }

    #[test]
    fn a_cycle_through_an_arm_is_a_cycle() {
        // 0 ? { A => 1 } -> 2, and 1 -> 0.
        let decls = [
            link(0, 1, Link::Arm { branch: 0, arm: 0 }),
            link(1, 2, Link::Merge { branch: 0, arm: 0 }),
            then(1, 0),
        ];
        let analysis = analyze(3, &decls, true);
        assert_eq!(
            analysis.problems,
            vec![Problem::Cycle {
                path: vec![0, 1, 0],
                decl: 2
            }]
        );
    }

    #[test]
    fn a_conditional_or_for_each_keeps_its_output_to_itself() {
        let mut decls = conditional();
        decls.push(then(0, 5));
        let analysis = analyze(6, &decls, true);
        assert_eq!(
            analysis.problems,
            vec![Problem::SharedOutput {
                vertex: 0,
                route: Route::Branch(0),
                decl: 6
            }]
        );
        // Declared first, the plain edge is not to blame: the for-each is.
        let mut decls = vec![then(0, 5)];
        decls.extend(for_each());
        let analysis = analyze(6, &decls, true);
        assert_eq!(
            analysis.problems,
            vec![Problem::SharedOutput {
                vertex: 0,
                route: Route::Each(0),
                decl: 1
            }]
        );
        // Two for-each over one source.
        let mut decls = for_each();
        decls.push(link(0, 5, Link::Scatter { each: 1 }));
        decls.push(link(5, 6, Link::Gather { each: 1 }));
        let analysis = analyze(7, &decls, true);
        assert_eq!(
            analysis.problems,
            vec![Problem::SharedOutput {
                vertex: 0,
                route: Route::Each(0),
                decl: 4
            }]
        );
    }

    #[test]
    fn every_back_edge_is_one_cycle() {
        let successors = vec![vec![(1, 10)], vec![(0, 11), (2, 12)], vec![(1, 13)]];
        assert_eq!(
            find_cycles(&successors),
            vec![(vec![0, 1, 0], 11), (vec![1, 2, 1], 13)]
        );
    }
}
