//! Lowers the parsed DSL into vertices and input declarations, keeping tokens for blame.

use std::collections::HashMap;
use std::iter::Peekable;
use std::slice::Iter;

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens as _};
use syn::{Attribute, Ident, Path, Token, Visibility};

use super::parse::{self, Arms, Chain, FlowDef, Term, VertexRef};
use crate::errors::Errors;
use crate::names::snake_case;

/// A workflow, lowered.
pub(crate) struct Flow {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    /// `NAME`: the type name in snake_case.
    pub(crate) name: String,
    pub(crate) vertices: Vec<Vertex>,
    pub(crate) decls: Vec<Decl>,
    /// For each declaration, the tokens an error about it points at (operator and target).
    pub(crate) decl_tokens: Vec<TokenStream>,
    /// Region 0 is the workflow itself; the others are arms and `each` bodies.
    pub(crate) regions: Vec<Region>,
    pub(crate) branches: Vec<Branch>,
    pub(crate) eaches: Vec<Each>,
}

/// A vertex: its name token, the node or workflow type it runs, and the region it is in.
pub(crate) struct Vertex {
    pub(crate) name: Ident,
    pub(crate) path: Path,
    pub(crate) region: usize,
}

/// One input declaration: `to` takes the output of `from` (or, for a join, of each of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decl {
    pub(crate) from: Vec<usize>,
    pub(crate) to: usize,
    pub(crate) link: Link,
}

/// How a declaration passes values on; conditionals and for-each bodies by their index in
/// the workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Link {
    /// `from -> to`.
    Then,
    /// `[from...] => to`.
    Join,
    /// `to` is an entry of arm `arm` of conditional `branch`, whose vertex is `from`: it takes
    /// the variant's payload when that arm is chosen.
    Arm { branch: usize, arm: usize },
    /// `to` is the vertex after conditional `branch`; `from` is the exit of arm `arm`. The
    /// merge vertex has one such declaration per arm and takes the output of the arm that ran.
    Merge { branch: usize, arm: usize },
    /// Arm `arm` of conditional `branch` is empty (`{}`): `to`, the merge vertex, takes the
    /// payload straight from the conditional's vertex `from`.
    Pass { branch: usize, arm: usize },
    /// `to` is an entry of the body of for-each `each`, over the items of `from`'s output.
    Scatter { each: usize },
    /// `to` takes the outputs of for-each `each`'s body exit `from`, one per item.
    Gather { each: usize },
}

/// A part of a workflow whose vertices belong to it alone: the workflow's top level, an arm
/// of a conditional, or an `each` body.
pub(crate) struct Region {
    pub(crate) parent: Option<usize>,
    pub(crate) kind: RegionKind,
}

pub(crate) enum RegionKind {
    Top,
    /// The arm for this variant.
    Arm(Ident),
    /// An `each` body.
    Body,
}

/// A vertex at one of its mentions in the DSL, for errors about that mention.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Used {
    pub(crate) vertex: usize,
    pub(crate) span: Span,
}

/// `vertex ? { Variant => arm, ... } -> merge`
pub(crate) struct Branch {
    pub(crate) vertex: usize,
    /// The `?` and the arms' closing brace: rustc reports variants without an arm at the
    /// `? { ... }` between them.
    pub(crate) question: Span,
    pub(crate) close: Span,
    pub(crate) arms: Vec<Arm>,
    pub(crate) merge: Used,
}

/// One arm of a [`Branch`].
pub(crate) struct Arm {
    pub(crate) variant: Ident,
    /// The vertices taking the payload; empty for `{}`.
    pub(crate) entries: Vec<Used>,
    /// The vertex whose output goes to the merge vertex; `None` for `{}`.
    pub(crate) exit: Option<Used>,
}

/// `source -> each { body } => gather`
pub(crate) struct Each {
    pub(crate) source: Used,
    pub(crate) entries: Vec<Used>,
    pub(crate) exit: Used,
    pub(crate) gather: Used,
    /// The body's region.
    pub(crate) region: usize,
}

impl Flow {
    /// The innermost `each` whose body holds `region`.
    fn each_of_region(&self, region: usize) -> Option<usize> {
        let mut at = Some(region);
        while let Some(r) = at {
            if let Some(each) = self.eaches.iter().position(|e| e.region == r) {
                return Some(each);
            }
            at = self.regions[r].parent;
        }
        None
    }

    /// The innermost `each` whose body holds `vertex`.
    pub(crate) fn each_of(&self, vertex: usize) -> Option<usize> {
        self.each_of_region(self.vertices[vertex].region)
    }

    /// The `each` whose body holds `each`'s whole construct (source and gather included).
    pub(crate) fn parent_each(&self, each: usize) -> Option<usize> {
        self.each_of(self.eaches[each].source.vertex)
    }
}

/// What a chain produces: the vertices its input reaches, the vertices its output comes from.
/// No exits means that a mistake was reported and what follows is not wired.
struct Frontier {
    entries: Vec<Used>,
    exits: Vec<Used>,
    /// The chain's last term, for errors about what follows it.
    last: TokenStream,
    /// Whether that term is a single vertex.
    single: bool,
}

impl Frontier {
    /// After a mistake: nothing to wire to.
    fn broken(entries: Vec<Used>, last: TokenStream) -> Self {
        Self {
            entries,
            exits: Vec::new(),
            last,
            single: false,
        }
    }
}

/// Where a chain starts, for the error about an `each` that no vertex feeds.
#[derive(Clone, Copy)]
enum Start<'a> {
    Chain,
    Arm(&'a Ident),
}

/// A conditional's arms, lowered.
struct LoweredArms {
    arms: Vec<Arm>,
    /// Where each arm's declarations start, for the entries' declarations to go before them.
    starts: Vec<usize>,
    /// Whether every arm has an entry and one exit (else a mistake in it was reported).
    complete: bool,
}

/// The vertex after a conditional.
struct Merge<'c> {
    used: Used,
    /// `-> vertex`, for errors about the declarations it makes.
    tokens: TokenStream,
    name: &'c VertexRef,
}

struct Lowering<'a> {
    flow: &'a Ident,
    vertices: Vec<Vertex>,
    by_name: HashMap<String, usize>,
    decls: Vec<Decl>,
    decl_tokens: Vec<TokenStream>,
    regions: Vec<Region>,
    region: usize,
    branches: Vec<Branch>,
    eaches: Vec<Each>,
    errors: &'a mut Errors,
}

type Links<'c> = Peekable<Iter<'c, parse::Link>>;

/// Lowers one workflow; mistakes go to `errors`.
pub(crate) fn lower(def: &FlowDef, errors: &mut Errors) -> Flow {
    let mut lowering = Lowering {
        flow: &def.ident,
        vertices: Vec::new(),
        by_name: HashMap::new(),
        decls: Vec::new(),
        decl_tokens: Vec::new(),
        regions: vec![Region {
            parent: None,
            kind: RegionKind::Top,
        }],
        region: 0,
        branches: Vec::new(),
        eaches: Vec::new(),
        errors,
    };
    for chain in &def.body {
        lowering.chain(chain, Start::Chain);
    }
    Flow {
        attrs: def.attrs.clone(),
        vis: def.vis.clone(),
        ident: def.ident.clone(),
        name: snake_case(&def.ident.to_string()),
        vertices: lowering.vertices,
        decls: lowering.decls,
        decl_tokens: lowering.decl_tokens,
        regions: lowering.regions,
        branches: lowering.branches,
        eaches: lowering.eaches,
    }
}

impl Lowering<'_> {
    fn chain(&mut self, chain: &Chain, start: Start<'_>) -> Frontier {
        let mut acc = self.first_term(&chain.first, start);
        let mut links = chain.rest.iter().peekable();
        while let Some(link) = links.next() {
            acc = match link {
                parse::Link::Then(arrow, term @ Term::Each { each, body, .. }) => {
                    self.each(acc, arrow, each, body, term, &mut links)
                }
                parse::Link::Then(arrow, term) => self.then(acc, arrow, term),
                parse::Link::Join(arrow, term) => self.join(acc, arrow, term),
                parse::Link::Branch(question, arms) => self.branch(acc, question, arms, &mut links),
            };
        }
        acc
    }

    fn first_term(&mut self, term: &Term, start: Start<'_>) -> Frontier {
        if let Term::Each { each, .. } = term {
            let message = match start {
                Start::Chain => "`each { ... }` runs over the output of the vertex before it: write it after `->` from a vertex that outputs a `Vec`, as in `a -> each { b } => c`".to_owned(),
                Start::Arm(variant) => format!(
                    "an arm cannot start with `each`: the `{variant}` payload goes to a vertex first; put one before `each` that outputs the `Vec` to run over, as in `{variant} => items -> each {{ b }} => c`"
                ),
            };
            self.errors.push(syn::Error::new(each.span(), message));
        }
        self.term(term)
    }

    /// `acc -> term`
    fn then(&mut self, acc: Frontier, arrow: &Token![->], term: &Term) -> Frontier {
        let next = self.term(term);
        match acc.exits[..] {
            [] => {}
            [from] => {
                for to in &next.entries {
                    self.declare(
                        vec![from.vertex],
                        to.vertex,
                        Link::Then,
                        quote!(#arrow #term),
                    );
                }
            }
            _ => self.group_needs_join(&acc, arrow),
        }
        Frontier {
            entries: acc.entries,
            ..next
        }
    }

    /// `acc => term`
    fn join(&mut self, acc: Frontier, arrow: &Token![=>], term: &Term) -> Frontier {
        let next = self.term(term);
        if acc.exits.is_empty() {
        } else if !matches!(term, Term::Vertex(_)) {
            self.errors.push(syn::Error::new_spanned(
                term,
                "`=>` joins branches into one vertex: write a single node or workflow after it",
            ));
        } else if acc.exits.len() < 2 {
            self.errors.push(syn::Error::new_spanned(
                arrow,
                "`=>` joins a group of two or more branches, as in `[b, c] => d`; use `->` to pass one output on",
            ));
        } else {
            self.declare(
                acc.exits.iter().map(|u| u.vertex).collect(),
                next.entries[0].vertex,
                Link::Join,
                quote!(#arrow #term),
            );
        }
        Frontier {
            entries: acc.entries,
            ..next
        }
    }

    fn group_needs_join(&mut self, acc: &Frontier, arrow: &Token![->]) {
        let last = &acc.last;
        self.errors.push(syn::Error::new_spanned(
            quote!(#last #arrow),
            format!(
                "`->` passes one output on, but this group has {} branches; to give their outputs to one vertex, join them with `=>`, as in `[b, c] => d`",
                acc.exits.len()
            ),
        ));
    }

    /// `acc ? { Variant => arm, ... } -> merge`
    fn branch(
        &mut self,
        acc: Frontier,
        question: &Token![?],
        arms: &Arms,
        links: &mut Links<'_>,
    ) -> Frontier {
        let vertex = self.branch_vertex(&acc, question);
        let lowered = self.arms(arms);
        let Some(merge) = self.merge(arms, links) else {
            return Frontier::broken(acc.entries, quote!(#question #arms));
        };
        let merged = Frontier {
            entries: acc.entries,
            exits: vec![merge.used],
            last: merge.name.to_token_stream(),
            single: true,
        };
        if let (Some(vertex), true) = (vertex, lowered.complete) {
            self.declare_branch(vertex, question, arms, lowered, &merge);
        }
        merged
    }

    /// The vertex whose output picks the arm: the single vertex before the `?`.
    fn branch_vertex(&mut self, acc: &Frontier, question: &Token![?]) -> Option<Used> {
        match acc.exits[..] {
            [] => None,
            [one] if acc.single => Some(one),
            _ => {
                let last = &acc.last;
                self.errors.push(syn::Error::new_spanned(
                    quote!(#last #question),
                    format!(
                        "`?` picks an arm by the output of one vertex, but this is a group of {} branches; join them first, as in `[b, c] => d ? {{ ... }}`",
                        acc.exits.len()
                    ),
                ));
                None
            }
        }
    }

    /// Lowers each arm in its own region, reporting duplicate variants and arms that do not end
    /// in one vertex.
    fn arms(&mut self, arms: &Arms) -> LoweredArms {
        let mut lowered = LoweredArms {
            arms: Vec::new(),
            starts: Vec::new(),
            complete: true,
        };
        let mut seen: HashMap<String, &Ident> = HashMap::new();
        for arm in &arms.arms {
            if let Some(first) = seen.insert(arm.variant.to_string(), &arm.variant) {
                self.errors.push(syn::Error::new(
                    arm.variant.span(),
                    format!(
                        "duplicate arm `{first}`: this conditional already has an arm for this variant; each variant has exactly one"
                    ),
                ));
            }
            lowered.starts.push(self.decls.len());
            let Some(chain) = &arm.chain else {
                lowered.arms.push(Arm {
                    variant: arm.variant.clone(),
                    entries: Vec::new(),
                    exit: None,
                });
                continue;
            };
            let outer = self.enter(RegionKind::Arm(arm.variant.clone()));
            let frontier = self.chain(chain, Start::Arm(&arm.variant));
            self.region = outer;
            let exit = match frontier.exits[..] {
                [] => None,
                [one] => Some(one),
                _ => {
                    lowered.complete = false;
                    self.errors.push(syn::Error::new_spanned(
                        &frontier.last,
                        format!(
                            "an arm ends in one vertex, whose output goes to the vertex after the conditional, but this arm ends in {} ({}); join them, as in `{} => [b, c] => d`",
                            frontier.exits.len(),
                            self.names(&frontier.exits),
                            arm.variant,
                        ),
                    ));
                    None
                }
            };
            // Without an entry or an exit, a mistake in the arm was reported.
            lowered.complete &= exit.is_some() && !frontier.entries.is_empty();
            lowered.arms.push(Arm {
                variant: arm.variant.clone(),
                entries: distinct(frontier.entries),
                exit,
            });
        }
        lowered
    }

    /// The `-> vertex` after a conditional, taken from `links`; reported when missing.
    fn merge<'c>(&mut self, arms: &Arms, links: &mut Links<'c>) -> Option<Merge<'c>> {
        match links.peek().copied() {
            Some(link @ parse::Link::Then(_, Term::Vertex(name))) => {
                links.next();
                Some(Merge {
                    used: self.used(name),
                    tokens: link.to_token_stream(),
                    name,
                })
            }
            next => {
                let message = "a conditional is followed by `-> vertex`: the node or workflow that takes the output of whichever arm ran, as in `check ? { Pass => a, Fail => b } -> merge`";
                // At what follows instead, or else at the arms' closing brace.
                self.errors.push(match next {
                    Some(link) => syn::Error::new_spanned(link, message),
                    None => syn::Error::new(arms.brace.span.close(), message),
                });
                None
            }
        }
    }

    /// Declares a well-formed conditional: each arm's entries take the payload, and the merge
    /// vertex takes each arm's output (or, for `{}`, the payload).
    fn declare_branch(
        &mut self,
        vertex: Used,
        question: &Token![?],
        arms: &Arms,
        lowered: LoweredArms,
        merge: &Merge<'_>,
    ) {
        let branch = self.branches.len();
        // Each arm's entry declarations go before the arm's own, last arm first so that the
        // earlier insertion points stay valid; the merge's declarations go after all arms.
        for (i, (arm, &at)) in lowered.arms.iter().zip(&lowered.starts).enumerate().rev() {
            for (k, entry) in arm.entries.iter().enumerate() {
                self.decls.insert(
                    at + k,
                    Decl {
                        from: vec![vertex.vertex],
                        to: entry.vertex,
                        link: Link::Arm { branch, arm: i },
                    },
                );
                self.decl_tokens.insert(at + k, quote!(#question));
            }
        }
        for (i, (arm, syntax)) in lowered.arms.iter().zip(&arms.arms).enumerate() {
            match arm.exit {
                Some(exit) => self.declare(
                    vec![exit.vertex],
                    merge.used.vertex,
                    Link::Merge { branch, arm: i },
                    merge.tokens.clone(),
                ),
                None => {
                    let (variant, target) = (&syntax.variant, &syntax.target);
                    self.declare(
                        vec![vertex.vertex],
                        merge.used.vertex,
                        Link::Pass { branch, arm: i },
                        quote!(#variant #target),
                    );
                }
            }
        }
        self.branches.push(Branch {
            vertex: vertex.vertex,
            question: question.spans[0],
            close: arms.brace.span.close(),
            arms: lowered.arms,
            merge: merge.used,
        });
    }

    /// `acc -> each { body } => gather`
    fn each(
        &mut self,
        acc: Frontier,
        arrow: &Token![->],
        each: &Ident,
        body: &Chain,
        term: &Term,
        links: &mut Links<'_>,
    ) -> Frontier {
        let source = match acc.exits[..] {
            [] => None,
            [one] => Some(one),
            _ => {
                self.group_needs_join(&acc, arrow);
                None
            }
        };
        let at = self.decls.len();
        let outer = self.enter(RegionKind::Body);
        let region = self.region;
        let inner = self.chain(body, Start::Chain);
        self.region = outer;
        let exit = match inner.exits[..] {
            [] => None,
            [one] => Some(one),
            _ => {
                self.errors.push(syn::Error::new_spanned(
                    &inner.last,
                    format!(
                        "an `each` body ends in one vertex, whose outputs the vertex after `=>` gathers, but this body ends in {} ({}); join them, as in `each {{ a -> [b, c] => d }}`",
                        inner.exits.len(),
                        self.names(&inner.exits),
                    ),
                ));
                None
            }
        };
        let gather = match links.peek().copied() {
            Some(link @ parse::Link::Join(_, Term::Vertex(gather))) => {
                links.next();
                Some((self.used(gather), link.to_token_stream(), gather))
            }
            next => {
                let tokens = match next {
                    Some(link) => link.to_token_stream(),
                    None => term.to_token_stream(),
                };
                self.errors.push(syn::Error::new_spanned(
                    tokens,
                    "`each { ... }` is followed by `=> vertex`: the node or workflow that takes the `Vec` of the body's outputs, in item order, as in `a -> each { b } => c`",
                ));
                None
            }
        };
        let Some((gather, gather_tokens, gather_ref)) = gather else {
            return Frontier::broken(acc.entries, term.to_token_stream());
        };
        let gathered = Frontier {
            entries: acc.entries,
            exits: vec![gather],
            last: gather_ref.to_token_stream(),
            single: true,
        };
        let (Some(source), Some(exit), false) = (source, exit, inner.entries.is_empty()) else {
            return gathered;
        };
        let index = self.eaches.len();
        let entries = distinct(inner.entries);
        for (k, entry) in entries.iter().enumerate() {
            self.decls.insert(
                at + k,
                Decl {
                    from: vec![source.vertex],
                    to: entry.vertex,
                    link: Link::Scatter { each: index },
                },
            );
            self.decl_tokens.insert(at + k, quote!(#arrow #each));
        }
        self.declare(
            vec![exit.vertex],
            gather.vertex,
            Link::Gather { each: index },
            gather_tokens,
        );
        self.eaches.push(Each {
            source,
            entries,
            exit,
            gather,
            region,
        });
        gathered
    }

    fn term(&mut self, term: &Term) -> Frontier {
        match term {
            Term::Vertex(vertex) => {
                let used = self.used(vertex);
                Frontier {
                    entries: vec![used],
                    exits: vec![used],
                    last: vertex.to_token_stream(),
                    single: true,
                }
            }
            Term::Group { branches, .. } => {
                let mut entries = Vec::new();
                let mut exits = Vec::new();
                for branch in branches {
                    let frontier = self.chain(branch, Start::Chain);
                    entries.extend(frontier.entries);
                    exits.extend(frontier.exits);
                }
                Frontier {
                    entries,
                    exits,
                    last: term.to_token_stream(),
                    single: false,
                }
            }
            // Misplaced (an error says so): lowered only so that its names are checked.
            Term::Each { body, .. } => {
                let outer = self.enter(RegionKind::Body);
                self.chain(body, Start::Chain);
                self.region = outer;
                Frontier::broken(Vec::new(), term.to_token_stream())
            }
        }
    }

    /// Enters a new region inside the current one; returns the current one, to go back to.
    fn enter(&mut self, kind: RegionKind) -> usize {
        let outer = self.region;
        self.regions.push(Region {
            parent: Some(outer),
            kind,
        });
        self.region = self.regions.len() - 1;
        outer
    }

    fn used(&mut self, vertex: &VertexRef) -> Used {
        Used {
            vertex: self.vertex(vertex),
            span: vertex.name().span(),
        }
    }

    /// The vertex a reference names: the same name is the same vertex; `path as name` binds a
    /// new name to a node or workflow.
    fn vertex(&mut self, vertex: &VertexRef) -> usize {
        let name = vertex.name();
        if vertex.path.is_ident(self.flow) {
            self.errors.push(syn::Error::new_spanned(
                &vertex.path,
                format!("workflow `{}` cannot contain itself", self.flow),
            ));
        }
        let key = name.to_string();
        if let Some(&id) = self.by_name.get(&key) {
            let region = self.vertices[id].region;
            if region != self.region {
                let message = self.region_conflict(&key, region, vertex);
                self.errors.push(syn::Error::new_spanned(vertex, message));
                return self.push_vertex(vertex);
            }
            let existing = &self.vertices[id].path;
            let same = (vertex.alias.is_none() && vertex.path.get_ident().is_some())
                || vertex.path.to_token_stream().to_string()
                    == existing.to_token_stream().to_string();
            if same {
                return id;
            }
            self.errors.push(syn::Error::new_spanned(
                vertex,
                format!(
                    "`{key}` already names a vertex running `{}`; give this one another name with `as`",
                    existing.to_token_stream().to_string().replace(' ', "")
                ),
            ));
            // Go on with a separate, unnamed vertex so that the edges around it do not add
            // errors of their own.
            return self.push_vertex(vertex);
        }
        let id = self.push_vertex(vertex);
        self.by_name.insert(key, id);
        id
    }

    /// The message for a name first used in region `first` and now in the current region.
    fn region_conflict(&self, name: &str, first: usize, vertex: &VertexRef) -> String {
        let ancestors = |region: usize| {
            let mut path = vec![region];
            while let Some(parent) = self.regions[*path.last().unwrap_or(&0)].parent {
                path.push(parent);
            }
            path.reverse();
            path
        };
        let (a, b) = (ancestors(first), ancestors(self.region));
        let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let place = match (a.get(common), b.get(common)) {
            // First outside, now inside.
            (None, Some(&inner)) => format!("both outside and inside {}", self.describe(inner)),
            // First inside, now outside.
            (Some(&inner), None) => format!("both inside {} and outside it", self.describe(inner)),
            (Some(&x), Some(&y)) => match (&self.regions[x].kind, &self.regions[y].kind) {
                (RegionKind::Body, RegionKind::Body) => "in two `each` bodies".to_owned(),
                _ => format!("both in {} and in {}", self.describe(x), self.describe(y)),
            },
            (None, None) => "twice".to_owned(),
        };
        let path = vertex.path.to_token_stream().to_string().replace(' ', "");
        format!(
            "`{name}` is used {place}; a vertex in an arm or an `each` body belongs to it alone: to run the same node or workflow here, give this vertex another name, as in `{path} as {name}2`"
        )
    }

    fn describe(&self, region: usize) -> String {
        match &self.regions[region].kind {
            RegionKind::Top => "the workflow".to_owned(),
            RegionKind::Arm(variant) => format!("the `{variant}` arm"),
            RegionKind::Body => "an `each` body".to_owned(),
        }
    }

    fn names(&self, used: &[Used]) -> String {
        used.iter()
            .map(|u| format!("`{}`", self.vertices[u.vertex].name))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn push_vertex(&mut self, vertex: &VertexRef) -> usize {
        self.vertices.push(Vertex {
            name: vertex.name().clone(),
            path: vertex.path.clone(),
            region: self.region,
        });
        self.vertices.len() - 1
    }

    fn declare(&mut self, from: Vec<usize>, to: usize, link: Link, tokens: TokenStream) {
        self.decls.push(Decl { from, to, link });
        self.decl_tokens.push(tokens);
    }
}

/// `used` without repeated vertices (`[a, a -> b]` enters at `a` once), in order.
fn distinct(mut used: Vec<Used>) -> Vec<Used> {
    let mut seen = Vec::new();
    used.retain(|u| {
        let new = !seen.contains(&u.vertex);
        seen.push(u.vertex);
        new
    });
    used
}
