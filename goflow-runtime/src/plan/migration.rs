//! Whether a request of one version of a workflow's graph can move to another, worked out from
//! the two plans' layouts alone, never guessed: which vertices of the old version carry over to
//! the new one (the same path and the same [`Signature`]), and which vertices of the new one
//! would be left unfed by completions the request has already made.
//!
//! A request can move when every vertex where it has made progress (any state: queued, running,
//! done, skipped, failed, arrivals counted) carries over, and no vertex of the new version
//! without a counterpart takes the output of a vertex the request has already completed (its
//! input would never arrive). The engine checks both against the request's state atomically,
//! from what [`Migration`] lists: the vertices that carry over and the vertices whose completion
//! matters.

use std::fmt::Write as _;

use super::{FeedShape, Layout, VertexId};

/// How the vertices of one version's plan carry over to another's.
#[derive(Debug)]
pub(crate) struct Migration {
    /// Per vertex of the old plan, the vertex of the new plan it carries over to.
    map: Vec<Option<VertexId>>,
    /// Per vertex of the old plan that does not carry over, why.
    why: Vec<Option<String>>,
    /// Pairs (old vertex, new vertex): the new vertex has no counterpart in the old plan and
    /// takes the output of the old vertex's path. A request that has completed the old vertex
    /// cannot move: the new vertex's input would never arrive.
    fed: Vec<(VertexId, VertexId)>,
    /// The paths of the new plan's vertices.
    new_paths: Vec<String>,
    /// The paths of the old plan's vertices.
    old_paths: Vec<String>,
}

/// Why a request cannot move to another version: the first vertex where its progress does not
/// carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Incompatible {
    /// The vertex, by its path.
    pub(crate) vertex: String,
    /// Why, in a sentence that follows the vertex's name.
    pub(crate) reason: String,
}

impl Migration {
    /// How `old`'s vertices carry over to `new`'s; `None` when either layout lacks its
    /// signatures (an older goflow wrote it), so that nothing can be compared.
    pub(crate) fn between(old: &Layout, new: &Layout) -> Option<Self> {
        let known = |l: &Layout| (0..l.len()).all(|v| l.signature(v).is_some());
        if !known(old) || !known(new) {
            return None;
        }
        let mut map = vec![None; old.len()];
        let mut why = vec![None; old.len()];
        for o in 0..old.len() {
            let path = old.path(o);
            match new.find(path) {
                None => why[o] = Some("is not in the new graph".to_owned()),
                Some(n) => match difference(old, o, new, n) {
                    None => map[o] = Some(n),
                    Some(reason) => why[o] = Some(reason),
                },
            }
        }
        let mut fed = Vec::new();
        for n in 0..new.len() {
            if map.contains(&Some(n)) {
                continue;
            }
            let feed = &new.signature(n).expect("known").feed;
            for parent in feed.parents() {
                if let Some(o) = old.find(parent) {
                    fed.push((o, n));
                }
            }
        }
        Some(Self {
            map,
            why,
            fed,
            new_paths: (0..new.len()).map(|n| new.path(n).to_string()).collect(),
            old_paths: (0..old.len()).map(|o| old.path(o).to_string()).collect(),
        })
    }

    /// The old plan's vertices that carry over, with their vertex in the new plan.
    pub(crate) fn carried(&self) -> impl Iterator<Item = (VertexId, VertexId)> + '_ {
        self.map
            .iter()
            .enumerate()
            .filter_map(|(o, n)| n.map(|n| (o, n)))
    }

    /// The old plan's vertices a request must not have completed (in any instance) to move:
    /// each feeds a vertex of the new plan that has no counterpart. Each once, in order.
    pub(crate) fn must_not_have_completed(&self) -> Vec<VertexId> {
        let mut old: Vec<VertexId> = self.fed.iter().map(|&(o, _)| o).collect();
        old.sort_unstable();
        old.dedup();
        old
    }

    /// The first incompatibility of a request with progress at the old vertices `progress` that
    /// do not carry over, and completions at the old vertices `completed` (of
    /// [`must_not_have_completed`](Self::must_not_have_completed)), as the engine found them:
    /// the first such vertex in plan order, else the first vertex of the new plan left unfed.
    pub(crate) fn incompatible(
        &self,
        progress: &[VertexId],
        completed: &[VertexId],
    ) -> Option<Incompatible> {
        if let Some(&o) = progress
            .iter()
            .filter(|&&o| o < self.map.len() && self.map[o].is_none())
            .min()
        {
            let reason = self.why[o].as_deref().unwrap_or("does not carry over");
            return Some(Incompatible {
                vertex: self.old_paths[o].clone(),
                reason: format!("has progress in this request and {reason}"),
            });
        }
        let (o, n) = self
            .fed
            .iter()
            .filter(|(o, _)| completed.contains(o))
            .min_by_key(|&&(_, n)| n)?;
        let mut reason =
            String::from("has no counterpart in the old graph (it is new, or changed)");
        let _ = write!(
            reason,
            " and takes the output of `{}`, which this request has already completed: its input \
             would never arrive",
            self.old_paths[*o]
        );
        Some(Incompatible {
            vertex: self.new_paths[*n].clone(),
            reason,
        })
    }
}

/// How old vertex `o` differs from new vertex `n` (of the same path), if it does.
fn difference(old: &Layout, o: VertexId, new: &Layout, n: VertexId) -> Option<String> {
    let (a, b) = (old.signature(o)?, new.signature(n)?);
    if a.node != b.node {
        return Some(format!(
            "runs node `{}` in the old graph, `{}` in the new",
            a.node, b.node
        ));
    }
    if (&a.input, &a.output) != (&b.input, &b.output) {
        return Some(format!(
            "takes `{}` and gives `{}` in the old graph, takes `{}` and gives `{}` in the new",
            a.input, a.output, b.input, b.output
        ));
    }
    if a.feed != b.feed {
        return Some(format!(
            "takes {} in the old graph, {} in the new",
            describe(&a.feed),
            describe(&b.feed)
        ));
    }
    if old.depth(o) != new.depth(n) {
        return Some(format!(
            "runs in {} for-each bodies in the old graph, {} in the new",
            old.depth(o),
            new.depth(n)
        ));
    }
    if a.route != b.route {
        return Some(format!(
            "routes its output as `{}` in the old graph, `{}` in the new",
            a.route, b.route
        ));
    }
    None
}

/// A feed in words: `the output of `a``, ...
fn describe(feed: &FeedShape) -> String {
    let names = |from: &[std::sync::Arc<str>]| {
        from.iter()
            .map(|p| format!("`{p}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match feed {
        FeedShape::Request => "the request's input".to_owned(),
        FeedShape::All(from) if from.len() == 1 => format!("the output of {}", names(from)),
        FeedShape::All(from) => format!("the outputs of {}", names(from)),
        FeedShape::First(from) => format!("the output of whichever of {} ran", names(from)),
        FeedShape::Item(from) => format!("one item of the output of `{from}`"),
        FeedShape::Gather(from) => format!("the outputs of `{from}` for every item"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::plan::Signature;

    /// A layout of vertices `(path, node, feed)`, all of one type, outside any body.
    fn layout(vertices: &[(&str, &str, FeedShape)]) -> Layout {
        Layout::new(
            vertices
                .iter()
                .map(|(p, _, _)| (Arc::from(*p), 0))
                .collect(),
            vertices.len() - 1,
            vertices
                .iter()
                .map(|(_, node, feed)| Signature {
                    node: Arc::from(*node),
                    input: Arc::from("String"),
                    output: Arc::from("String"),
                    feed: feed.clone(),
                    route: Arc::from("plain"),
                })
                .collect(),
        )
    }

    fn from(path: &str) -> FeedShape {
        FeedShape::All(vec![Arc::from(path)])
    }

    /// v1 `fetch -> slow -> finish`, v2 `fetch -> slow -> enrich -> finish`.
    fn versions() -> (Layout, Layout) {
        let v1 = layout(&[
            ("fetch", "fetch", FeedShape::Request),
            ("slow", "slow", from("fetch")),
            ("finish", "finish_v1", from("slow")),
        ]);
        let v2 = layout(&[
            ("fetch", "fetch", FeedShape::Request),
            ("slow", "slow", from("fetch")),
            ("enrich", "enrich", from("slow")),
            ("finish", "finish_v2", from("enrich")),
        ]);
        (v1, v2)
    }

    #[test]
    fn vertices_of_the_same_path_and_signature_carry_over() {
        let (v1, v2) = versions();
        let m = Migration::between(&v1, &v2).unwrap();
        assert_eq!(m.carried().collect::<Vec<_>>(), vec![(0, 0), (1, 1)]);
        // `enrich` and the changed `finish` have no counterpart: `slow` feeds the first.
        assert_eq!(m.must_not_have_completed(), vec![1]);
    }

    #[test]
    fn a_request_before_the_change_moves() {
        let (v1, v2) = versions();
        let m = Migration::between(&v1, &v2).unwrap();
        // Progress at fetch and slow (slow running, say): both carry over, slow not completed.
        assert_eq!(m.incompatible(&[0, 1], &[]), None);
    }

    #[test]
    fn a_request_past_the_change_does_not_and_the_first_vertex_is_named() {
        let (v1, v2) = versions();
        let m = Migration::between(&v1, &v2).unwrap();
        // slow completed, finish queued: finish (changed) is named first, in plan order.
        let why = m.incompatible(&[0, 1, 2], &[1]).unwrap();
        assert_eq!(why.vertex, "finish");
        assert!(why.reason.contains("finish_v1"), "{}", why.reason);
        // slow completed and nothing queued yet at finish: the new enrich would never be fed.
        let why = m.incompatible(&[0, 1], &[1]).unwrap();
        assert_eq!(why.vertex, "enrich");
        assert!(why.reason.contains("`slow`"), "{}", why.reason);
    }

    #[test]
    fn a_changed_feed_or_type_does_not_carry_over() {
        let v1 = layout(&[
            ("a", "a", FeedShape::Request),
            ("b", "b", from("a")),
            (
                "c",
                "c",
                FeedShape::All(vec![Arc::from("a"), Arc::from("b")]),
            ),
        ]);
        let mut v2 = layout(&[
            ("a", "a", FeedShape::Request),
            ("b", "b", from("a")),
            (
                "c",
                "c",
                FeedShape::All(vec![Arc::from("b"), Arc::from("a")]),
            ),
        ]);
        let m = Migration::between(&v1, &v2).unwrap();
        let why = m.incompatible(&[2], &[]).unwrap();
        assert_eq!(why.vertex, "c");
        assert!(
            why.reason.contains("the outputs of `a`, `b`"),
            "{}",
            why.reason
        );
        v2.signatures_mut()[1].output = Arc::from("u64");
        let m = Migration::between(&v1, &v2).unwrap();
        let why = m.incompatible(&[0, 1], &[]).unwrap();
        assert_eq!(why.vertex, "b");
        assert!(why.reason.contains("`u64`"), "{}", why.reason);
    }

    #[test]
    fn a_layout_without_signatures_compares_nothing() {
        let (v1, _) = versions();
        assert!(Migration::between(&Layout::unnamed(3), &v1).is_none());
    }
}
