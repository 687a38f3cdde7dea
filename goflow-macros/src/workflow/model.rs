//! Lowers the parsed DSL into vertices and input declarations, keeping tokens for blame.

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::{quote, ToTokens as _};
use syn::{Attribute, Ident, Path, Visibility};

use super::check::Decl;
use super::parse::{Chain, FlowDef, Op, Term, VertexRef};
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
}

/// A vertex: its name token and the node or workflow type it runs.
pub(crate) struct Vertex {
    pub(crate) name: Ident,
    pub(crate) path: Path,
}

/// What a chain produces: the vertices its input reaches, the vertices its output comes from.
struct Frontier {
    entries: Vec<usize>,
    exits: Vec<usize>,
    /// The chain's last term, for errors about what follows it.
    last: TokenStream,
}

struct Lowering<'a> {
    flow: &'a Ident,
    vertices: Vec<Vertex>,
    by_name: HashMap<String, usize>,
    decls: Vec<Decl>,
    decl_tokens: Vec<TokenStream>,
    errors: &'a mut Errors,
}

/// Lowers one workflow; mistakes go to `errors`.
pub(crate) fn lower(def: &FlowDef, errors: &mut Errors) -> Flow {
    let mut lowering = Lowering {
        flow: &def.ident,
        vertices: Vec::new(),
        by_name: HashMap::new(),
        decls: Vec::new(),
        decl_tokens: Vec::new(),
        errors,
    };
    for chain in &def.body {
        lowering.chain(chain);
    }
    Flow {
        attrs: def.attrs.clone(),
        vis: def.vis.clone(),
        ident: def.ident.clone(),
        name: snake_case(&def.ident.to_string()),
        vertices: lowering.vertices,
        decls: lowering.decls,
        decl_tokens: lowering.decl_tokens,
    }
}

impl Lowering<'_> {
    fn chain(&mut self, chain: &Chain) -> Frontier {
        let mut acc = self.term(&chain.first);
        for (op, term) in &chain.rest {
            let next = self.term(term);
            let tokens = quote!(#op #term);
            match op {
                Op::Then(_) => match acc.exits[..] {
                    [from] => {
                        for &to in &next.entries {
                            self.declare(vec![from], to, false, tokens.clone());
                        }
                    }
                    _ => {
                        let last = &acc.last;
                        self.errors.push(syn::Error::new_spanned(
                            quote!(#last #op),
                            format!(
                                "`->` passes one output on, but this group has {} branches; to give their outputs to one vertex, join them with `=>`, as in `[b, c] => d`",
                                acc.exits.len()
                            ),
                        ));
                    }
                },
                Op::Join(_) => {
                    if !matches!(term, Term::Vertex(_)) {
                        self.errors.push(syn::Error::new_spanned(
                            term,
                            "`=>` joins branches into one vertex: write a single node or workflow after it",
                        ));
                    } else if acc.exits.len() < 2 {
                        self.errors.push(syn::Error::new_spanned(
                            op,
                            "`=>` joins a group of two or more branches, as in `[b, c] => d`; use `->` to pass one output on",
                        ));
                    } else {
                        self.declare(acc.exits.clone(), next.entries[0], true, tokens);
                    }
                }
            }
            acc = Frontier {
                entries: acc.entries,
                exits: next.exits,
                last: next.last,
            };
        }
        acc
    }

    fn term(&mut self, term: &Term) -> Frontier {
        match term {
            Term::Vertex(vertex) => {
                let id = self.vertex(vertex);
                Frontier {
                    entries: vec![id],
                    exits: vec![id],
                    last: vertex.to_token_stream(),
                }
            }
            Term::Group { branches, .. } => {
                let mut entries = Vec::new();
                let mut exits = Vec::new();
                for branch in branches {
                    let frontier = self.chain(branch);
                    entries.extend(frontier.entries);
                    exits.extend(frontier.exits);
                }
                Frontier {
                    entries,
                    exits,
                    last: term.to_token_stream(),
                }
            }
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

    fn push_vertex(&mut self, vertex: &VertexRef) -> usize {
        self.vertices.push(Vertex {
            name: vertex.name().clone(),
            path: vertex.path.clone(),
        });
        self.vertices.len() - 1
    }

    fn declare(&mut self, from: Vec<usize>, to: usize, join: bool, tokens: TokenStream) {
        self.decls.push(Decl { from, to, join });
        self.decl_tokens.push(tokens);
    }
}
