//! Graph analysis of a workflow, on plain indices: no tokens, no spans, unit-testable.

/// One input declaration: `from -> to` (one parent) or `[from...] => to` (a join).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decl {
    pub(crate) from: Vec<usize>,
    pub(crate) to: usize,
    pub(crate) join: bool,
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
        Decl {
            from: vec![from],
            to,
            join: false,
        }
    }

    fn join(from: &[usize], to: usize) -> Decl {
        Decl {
            from: from.to_vec(),
            to,
            join: true,
        }
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
    fn every_back_edge_is_one_cycle() {
        let successors = vec![vec![(1, 10)], vec![(0, 11), (2, 12)], vec![(1, 13)]];
        assert_eq!(
            find_cycles(&successors),
            vec![(vec![0, 1, 0], 11), (vec![1, 2, 1], 13)]
        );
    }
}
