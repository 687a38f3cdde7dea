//! The code for one checked workflow: its type, `Workflow` and `Step` impls, and the edge
//! checks that let rustc verify every edge's types at the DSL tokens; and for a rejected one,
//! its type with impls that add no errors of their own.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};

use super::check::Analysis;
use super::model::{Arm, Branch, Each, Flow, Link, Used};

/// The code for one checked workflow.
pub(crate) fn flow(flow: &Flow, analysis: &Analysis, krate: &TokenStream) -> TokenStream {
    let x = Expansion::new(flow, analysis, krate);
    let (mut checks, mut wiring) = x.edge_checks_and_wiring();
    let selects: Vec<_> = (0..flow.branches.len()).map(|n| x.select_fn(n)).collect();
    for (n, branch) in flow.branches.iter().enumerate() {
        checks.extend(x.merge_checks(branch));
        wiring.push(x.branch_wiring(n));
    }
    for each in &flow.eaches {
        checks.extend(x.each_checks(each));
        wiring.push(x.each_wiring(each));
    }

    let (attrs, vis, ident) = (&flow.attrs, &flow.vis, &flow.ident);
    let p = &x.p;
    let default_doc = default_doc(flow);
    let entry = x.paths[analysis.entry];
    // The generic parameters of the impls forwarding to the entry vertex show in rustc's
    // lists of the types implementing `Accepts` (`Kyc` implements `Accepts<T>`): plain names,
    // unless the entry's path uses them.
    let (t, n) = (
        type_param("T", "__GoflowT", entry),
        type_param("N", "__GOFLOW_N", entry),
    );
    let workflow_impl = x.workflow_impl();
    let build_plan_impl = x.build_plan_impl(&selects, &wiring);
    let step_impl = x.step_impl();
    // Evaluating the nesting depth is what turns workflows containing each other across
    // `workflow!` invocations into a compile error; at the workflow's name, like the `Step`
    // impl, as rustc reports the cycle as used by this constant. Apart from the checks: in
    // the user's context, an unknown vertex there would get a second error, with a suggestion
    // to declare it as a type parameter.
    let checks_block = quote! {
        const _: () = {
            #(#checks)*
        };
    };
    let nesting = quote_spanned! {ident.span()=>
        const _: usize = <#ident as #p::Step>::NESTING;
    };
    quote! {
        #(#attrs)*
        #default_doc
        #vis struct #ident {}

        #workflow_impl

        #build_plan_impl

        #step_impl

        impl<#t> #p::Accepts<#t> for #ident where #entry: #p::Accepts<#t> {}
        impl<const #n: usize, #t> #p::Joins<#n, #t> for #ident
        where
            #entry: #p::Joins<#n, #t>,
        {
        }

        #checks_block
        #nesting
    }
}

/// A type that is an error, carrying `errors`: rustc reports them once, and nothing about the
/// types built from it.
pub(crate) fn error_type(errors: &syn::Error) -> TokenStream {
    let errors = errors.to_compile_error();
    quote!([(); { #errors 0 }])
}

/// The code for a rejected workflow: its type, so that code naming it finds it, and impls
/// that let that code compile without further errors. Its input and output are `input`, an
/// error type ([`error_type`], or another rejected workflow's input), which rustc reports
/// nowhere it flows; it takes any input, and nothing in it runs.
pub(crate) fn fallback(flow: &Flow, krate: &TokenStream, input: &TokenStream) -> TokenStream {
    let p = quote!(#krate::__private);
    let (attrs, vis, ident, name) = (&flow.attrs, &flow.vis, &flow.ident, &flow.name);
    let default_doc = default_doc(flow);
    let description = description(attrs);
    quote! {
        #(#attrs)*
        #default_doc
        #vis struct #ident {}

        impl #p::Workflow for #ident {
            const NAME: &'static str = #name;
            const DESCRIPTION: &'static str = #description;
            type Input = #input;
            type Output = <Self as #p::Workflow>::Input;

            fn graph() -> &'static #p::Graph {
                ::core::unreachable!()
            }
        }

        impl #p::BuildPlan for #ident {
            fn build<__GoflowC: #p::Codec>(_: &mut #p::PlanBuilder<__GoflowC>) -> #p::Fragment {
                ::core::unreachable!()
            }

            fn local_plan() -> &'static #p::Arc<#p::Plan> {
                ::core::unreachable!()
            }
        }

        impl #p::Step for #ident {
            type Input = <Self as #p::Workflow>::Input;
            type Output = <Self as #p::Workflow>::Output;
            const NESTING: usize = 0;

            fn add_to<__GoflowC: #p::Codec>(
                _: &mut #p::PlanBuilder<__GoflowC>,
                _: &'static str,
            ) -> #p::Fragment {
                ::core::unreachable!()
            }

            fn describe() -> #p::VertexKind {
                ::core::unreachable!()
            }
        }

        impl<T> #p::Accepts<T> for #ident {}
        impl<const N: usize, T> #p::Joins<N, T> for #ident {}
    }
}

/// `The `name` workflow, declared with `workflow!`.`, for a workflow without a doc comment.
fn default_doc(flow: &Flow) -> Option<TokenStream> {
    (!flow.attrs.iter().any(|a| a.path().is_ident("doc"))).then(|| {
        let doc = format!("The `{}` workflow, declared with `workflow!`.", flow.name);
        quote!(#[doc = #doc])
    })
}

/// What the parts of one workflow's code share.
struct Expansion<'a> {
    flow: &'a Flow,
    analysis: &'a Analysis,
    /// The path of `goflow`'s support module.
    p: TokenStream,
    /// Each vertex's node or workflow type.
    paths: Vec<&'a syn::Path>,
    /// Each vertex's local variable in `build`, holding its fragment of the plan.
    slots: Vec<syn::Ident>,
}

impl<'a> Expansion<'a> {
    fn new(flow: &'a Flow, analysis: &'a Analysis, krate: &TokenStream) -> Self {
        Self {
            flow,
            analysis,
            p: quote!(#krate::__private),
            paths: flow.vertices.iter().map(|v| &v.path).collect(),
            slots: (0..flow.vertices.len())
                .map(|i| format_ident!("__goflow_v{}", i))
                .collect(),
        }
    }

    /// A vertex's path with every token at one of its mentions, so that an error about that
    /// mention points there.
    fn at(&self, used: Used) -> TokenStream {
        respan(self.paths[used.vertex].to_token_stream(), used.span)
    }

    /// The graph's edges, one per accepted declaration (a join's, one per branch).
    fn edges(&self) -> Vec<TokenStream> {
        let (flow, p) = (self.flow, &self.p);
        let mut edges = Vec::new();
        for &i in &self.analysis.accepted {
            let decl = &flow.decls[i];
            let (from, to) = (decl.from[0], decl.to);
            match decl.link {
                Link::Join => {
                    for (port, &from) in decl.from.iter().enumerate() {
                        edges.push(quote!(#p::GraphEdge::join(#from, #to, #port)));
                    }
                }
                Link::Then => edges.push(quote!(#p::GraphEdge::then(#from, #to))),
                // An empty arm's edge goes straight to the merge vertex.
                Link::Arm { branch, arm } | Link::Pass { branch, arm } => {
                    let variant = flow.branches[branch].arms[arm].variant.to_string();
                    edges.push(quote!(#p::GraphEdge::arm(#from, #to, #variant)));
                }
                Link::Merge { branch, arm } => {
                    let variant = flow.branches[branch].arms[arm].variant.to_string();
                    edges.push(quote!(#p::GraphEdge::merge(#from, #to, #variant)));
                }
                Link::Scatter { .. } => edges.push(quote!(#p::GraphEdge::scatter(#from, #to))),
                Link::Gather { .. } => edges.push(quote!(#p::GraphEdge::gather(#from, #to))),
            }
        }
        edges
    }

    /// The type checks and the plan wiring of the plain edges (`->` and `=>`), in declaration
    /// order. Conditionals and for-each are checked and wired as a whole, by their own parts.
    fn edge_checks_and_wiring(&self) -> (Vec<TokenStream>, Vec<TokenStream>) {
        let (flow, p, paths, slots) = (self.flow, &self.p, &self.paths, &self.slots);
        let mut checks = Vec::new();
        let mut wiring = Vec::new();
        for &i in &self.analysis.accepted {
            let decl = &flow.decls[i];
            let to = decl.to;
            let to_path = paths[to];
            let span = flow.vertices[to].name.span();
            let from_slots: Vec<_> = decl.from.iter().map(|&f| &slots[f]).collect();
            let to_slot = &slots[to];
            match decl.link {
                Link::Join => {
                    let n = decl.from.len();
                    let outputs = decl.from.iter().map(|&f| {
                        let from = paths[f];
                        quote!(<#from as #p::Step>::Output)
                    });
                    checks.push(takes(
                        to_path,
                        &quote!(#p::Joins<#n, ( #(#outputs,)* )>),
                        span,
                    ));
                    wiring.push(quote!(__goflow_plan.join(&[ #(#from_slots),* ], #to_slot);));
                }
                Link::Then => {
                    let from_path = paths[decl.from[0]];
                    checks.push(takes(
                        to_path,
                        &quote!(#p::Accepts<<#from_path as #p::Step>::Output>),
                        span,
                    ));
                    wiring.push(quote!(__goflow_plan.connect(#(#from_slots)*, #to_slot);));
                }
                _ => {}
            }
        }
        (checks, wiring)
    }

    /// The `select` function of conditional `n`: decodes its vertex's output, picks the arm
    /// of the variant, and re-encodes the payload. It also checks that every arm's entries
    /// (or, for `{}`, the merge vertex) take its variant's payload.
    fn select_fn(&self, n: usize) -> TokenStream {
        let (p, branch) = (&self.p, &self.flow.branches[n]);
        // Local variables keep the macro's own span even inside tokens spanned at the DSL:
        // `workflow!` is a `macro_rules!`, whose hygiene hides them from the user's spans.
        let (codec, bytes) = (quote!(__goflow_codec), quote!(__goflow_bytes));
        let select = format_ident!("__goflow_select_{}", n);
        let vertex = self.paths[branch.vertex];
        let question = branch.question;
        // The patterns name the vertex's output enum after the vertex, as the DSL does: an
        // error about a variant of the wrong shape reads `check::Reject`.
        let output = &self.flow.vertices[branch.vertex].name;
        let mut arms: Vec<_> = branch
            .arms
            .iter()
            .enumerate()
            .map(|(index, arm)| self.select_arm(branch, index, arm, output))
            .collect();
        // Never taken (a guarded arm counts for no variant), and in the macro's context,
        // unlike the arms: rustc suggests a `Variant(_) => todo!()` arm for a missing variant,
        // which is no DSL, only when the last two arms share a context. Before the last arm,
        // it is never unreachable.
        arms.insert(
            arms.len().saturating_sub(1),
            quote!(_ if false => ::core::unreachable!(),),
        );
        // The value matched spans the whole `? { ... }`, where a variant without an arm is
        // reported (E0004).
        let decode = quote_spanned! {question=>
            <__GoflowOut as #p::Data>::decode_with(#codec, #bytes)
        };
        let scrutinee = quote_spanned!(branch.close=> #decode?);
        // Checks a payload against a vertex that takes it, as [`takes`] does. The payload's
        // type is known only from the pattern that binds it, so it is fixed by the first
        // argument before the vertex is cast: in one generic call, rustc would infer the type
        // from the vertex's only `Accepts` impl and report a bare type mismatch.
        let taken_by = quote! {
            fn __goflow_taken_by<__GoflowP>(
                _: &__GoflowP,
                _: *const (dyn #p::Accepts<__GoflowP> + '_),
            ) {
            }
        };
        quote! {
            fn #select<__GoflowCodec: #p::Codec>(
                #codec: &__GoflowCodec,
                #bytes: &[u8],
            ) -> #p::Result<(usize, #p::Bytes), #p::CodecError> {
                type __GoflowOut = <#vertex as #p::Step>::Output;
                #taken_by
                {
                    #[allow(non_camel_case_types)]
                    type #output = __GoflowOut;
                    match #scrutinee {
                        #(#arms)*
                    }
                }
            }
        }
    }

    /// One arm of a select function: the variant's pattern, the checks that its entries (or
    /// the merge vertex) take the payload, and the payload re-encoded with the arm's index.
    fn select_arm(
        &self,
        branch: &Branch,
        index: usize,
        arm: &Arm,
        output: &syn::Ident,
    ) -> TokenStream {
        let p = &self.p;
        let codec = quote!(__goflow_codec);
        let variant = &arm.variant;
        let span = variant.span();
        // The payload is bound at the variant, so that an error about the pattern (a
        // variant of several fields) points there, and only there, as rustc does not
        // note the macro then. Bound and used with that one span, it stays hygienic.
        let payload = syn::Ident::new("__goflow_payload", span);
        let takers = match arm.exit {
            Some(_) => arm.entries.clone(),
            None => vec![branch.merge],
        };
        let checks = takers.into_iter().map(|taker| {
            let (span, taker) = (taker.span, self.at(taker));
            quote_spanned! {span=>
                __goflow_taken_by(&#payload, ::core::ptr::null::<#taker>());
            }
        });
        let mut output = output.clone();
        output.set_span(span);
        let pattern = quote_spanned!(span=> #output::#variant(#payload));
        // The arm is in the user's context (its body spans the variant), unlike the guarded
        // arm of `select_fn`.
        let mut body = Group::new(
            Delimiter::Brace,
            quote! {
                #(#checks)*
                #p::Ok((#index, #p::Data::encode_with(&#payload, #codec)?))
            },
        );
        body.set_span(span);
        quote!(#pattern => #body)
    }

    /// The merge vertex of `branch` takes the output of every arm's exit.
    fn merge_checks(&self, branch: &Branch) -> Vec<TokenStream> {
        let p = &self.p;
        let merge = self.at(branch.merge);
        let span = branch.merge.span;
        branch
            .arms
            .iter()
            .filter_map(|arm| arm.exit)
            .map(|exit| {
                let exit = self.paths[exit.vertex];
                takes(
                    &merge,
                    &quote!(#p::Accepts<<#exit as #p::Step>::Output>),
                    span,
                )
            })
            .collect()
    }

    /// Wires conditional `n` into the plan: its vertex, its select function, its arms' entries
    /// and exits, and its merge vertex.
    fn branch_wiring(&self, n: usize) -> TokenStream {
        let (p, branch) = (&self.p, &self.flow.branches[n]);
        let select = format_ident!("__goflow_select_{}", n);
        let slot = |u: Used| &self.slots[u.vertex];
        let specs = branch.arms.iter().map(|arm| {
            let entries = arm.entries.iter().map(|&e| slot(e));
            let exit = match arm.exit {
                Some(exit) => {
                    let exit = slot(exit);
                    quote!(#p::Some(#exit))
                }
                None => quote!(#p::None),
            };
            quote!(#p::ArmSpec { entries: &[ #(#entries),* ], exit: #exit })
        });
        let (vertex_slot, merge_slot) = (&self.slots[branch.vertex], slot(branch.merge));
        quote! {
            __goflow_plan.branch(
                #vertex_slot,
                #select::<__GoflowC>,
                &[ #(#specs),* ],
                #merge_slot,
            );
        }
    }

    /// For-each: the source outputs a collection whose items the body's entries take, and the
    /// gathering vertex takes the `Vec` of the body exit's outputs.
    fn each_checks(&self, each: &Each) -> Vec<TokenStream> {
        let p = &self.p;
        let source = self.at(each.source);
        let span = each.source.span;
        let item = quote_spanned!(span=> <<#source as #p::Step>::Output as #p::Collection>::Item);
        let mut checks = Vec::new();
        for &entry in &each.entries {
            let (entry, span) = (self.at(entry), entry.span);
            checks.push(takes(&entry, &quote!(#p::Accepts<#item>), span));
        }
        let (gather, span) = (self.at(each.gather), each.gather.span);
        let exit = self.paths[each.exit.vertex];
        checks.push(takes(
            &gather,
            &quote!(#p::Accepts<#p::Vec<<#exit as #p::Step>::Output>>),
            span,
        ));
        checks
    }

    /// Wires a for-each into the plan: its source, its body's entries and exit, and the
    /// gathering vertex.
    fn each_wiring(&self, each: &Each) -> TokenStream {
        let (p, slots) = (&self.p, &self.slots);
        // The item type as the first entry's input: equal to the collection's item once the
        // checks hold, and free of a second error when the source is no collection.
        let first = self.paths[each.entries[0].vertex];
        let entries = each.entries.iter().map(|e| &slots[e.vertex]);
        let (source_slot, exit_slot, gather_slot) = (
            &slots[each.source.vertex],
            &slots[each.exit.vertex],
            &slots[each.gather.vertex],
        );
        quote! {
            __goflow_plan.each::<<#first as #p::Step>::Input>(
                #source_slot,
                &[ #(#entries),* ],
                #exit_slot,
                #gather_slot,
            );
        }
    }

    /// `impl Workflow`: the name, the description, the types, and the graph as data.
    fn workflow_impl(&self) -> TokenStream {
        let (flow, p, paths) = (self.flow, &self.p, &self.paths);
        let (ident, name) = (&flow.ident, &flow.name);
        let names: Vec<String> = flow.vertices.iter().map(|v| v.name.to_string()).collect();
        let (entry_id, exit_id) = (self.analysis.entry, self.analysis.exit);
        let (entry, exit) = (paths[entry_id], paths[exit_id]);
        let description = description(&flow.attrs);
        let edges = self.edges();
        let bodies = self.each_bodies();
        // At the workflow's name, like the `Step` impl: rustc reports a cycle of workflows
        // across invocations as an overflow evaluating these types. (Not the whole impl: in
        // the user's context, an unknown vertex would get a second error, with a suggestion
        // to declare it as a type parameter.)
        let types = quote_spanned! {ident.span()=>
            type Input = <#entry as #p::Step>::Input;
            type Output = <#exit as #p::Step>::Output;
        };
        quote! {
            impl #p::Workflow for #ident {
                const NAME: &'static str = #name;
                const DESCRIPTION: &'static str = #description;
                #types

                fn graph() -> &'static #p::Graph {
                    static GRAPH: #p::OnceLock<#p::Graph> = #p::OnceLock::new();
                    GRAPH.get_or_init(|| {
                        #p::Graph::new(
                            #name,
                            #p::Vec::from([
                                #( #p::GraphVertex::new(#names, <#paths as #p::Step>::describe()) ),*
                            ]),
                            #p::Vec::from([ #(#edges),* ]),
                            #entry_id,
                            #exit_id,
                        )
                        #(#bodies)*
                    })
                }
            }
        }
    }

    /// The graph's `each` bodies: source, gather, enclosing body, and the vertices directly in
    /// it.
    fn each_bodies(&self) -> Vec<TokenStream> {
        let (flow, p) = (self.flow, &self.p);
        (0..flow.eaches.len())
            .map(|e| {
                let each = &flow.eaches[e];
                let (source, gather) = (each.source.vertex, each.gather.vertex);
                let parent = match flow.parent_each(e) {
                    Some(parent) => quote!(#p::Some(#parent)),
                    None => quote!(#p::None),
                };
                let inside = (0..flow.vertices.len()).filter(|&v| flow.each_of(v) == Some(e));
                quote!(.with_each(#source, #gather, #parent, #p::Vec::from([ #(#inside),* ])))
            })
            .collect()
    }

    /// `impl BuildPlan`: `build` adds the vertices, then wires them; `local_plan` builds the
    /// plan `run_local` executes, once.
    fn build_plan_impl(&self, selects: &[TokenStream], wiring: &[TokenStream]) -> TokenStream {
        let (p, ident) = (&self.p, &self.flow.ident);
        let (entry_slot, exit_slot) = (
            &self.slots[self.analysis.entry],
            &self.slots[self.analysis.exit],
        );
        let creation = add_vertices(self.flow, &self.slots, p);
        quote! {
            impl #p::BuildPlan for #ident {
                fn build<__GoflowC: #p::Codec>(
                    __goflow_plan: &mut #p::PlanBuilder<__GoflowC>,
                ) -> #p::Fragment {
                    #(#selects)*
                    #creation
                    #(#wiring)*
                    #p::Fragment {
                        entry: #entry_slot.entry,
                        exit: #exit_slot.exit,
                    }
                }

                fn local_plan() -> &'static #p::Arc<#p::Plan> {
                    static PLAN: #p::OnceLock<#p::Arc<#p::Plan>> = #p::OnceLock::new();
                    PLAN.get_or_init(|| #p::Arc::new(#p::Plan::new::<Self, #p::MsgPack>(#p::MsgPack)))
                }

                fn schemas() -> (#p::Option<#p::JsonValue>, #p::Option<#p::JsonValue>) {
                    (
                        #p::schema_of!(<Self as #p::Workflow>::Input),
                        #p::schema_of!(<Self as #p::Workflow>::Output),
                    )
                }
            }
        }
    }

    /// `impl Step`: a workflow used as a vertex of another.
    fn step_impl(&self) -> TokenStream {
        let (p, ident, paths) = (&self.p, &self.flow.ident, &self.paths);
        // Spanned at the workflow's name: a cycle of workflows across invocations is reported
        // by rustc as a cycle through this impl's `NESTING`, and the message then names the
        // user's declaration rather than a line inside the `goflow` crate.
        quote_spanned! {ident.span()=>
            impl #p::Step for #ident {
                type Input = <Self as #p::Workflow>::Input;
                type Output = <Self as #p::Workflow>::Output;
                const NESTING: usize = 1 + #p::max_nesting(&[ #( <#paths as #p::Step>::NESTING ),* ]);

                fn add_to<__GoflowC: #p::Codec>(
                    __goflow_plan: &mut #p::PlanBuilder<__GoflowC>,
                    __goflow_vertex: &'static str,
                ) -> #p::Fragment {
                    __goflow_plan.subflow::<Self>(__goflow_vertex)
                }

                fn describe() -> #p::VertexKind {
                    #p::VertexKind::Flow {
                        graph: <Self as #p::Workflow>::graph(),
                    }
                }
            }
        }
    }
}

/// The doc comment's text, for `Workflow::DESCRIPTION` (served by `GET /flow/{name}`).
fn description(attrs: &[syn::Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value().trim().to_owned()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// `name`, or `fallback` when `path` names something `name`.
fn type_param(name: &str, fallback: &str, path: &syn::Path) -> syn::Ident {
    fn mentions(tokens: TokenStream, name: &str) -> bool {
        tokens.into_iter().any(|tree| match tree {
            TokenTree::Ident(ident) => ident == name,
            TokenTree::Group(group) => mentions(group.stream(), name),
            _ => false,
        })
    }
    let name = if mentions(path.to_token_stream(), name) {
        fallback
    } else {
        name
    };
    format_ident!("{}", name)
}

/// Checks that `vertex` implements `bound` (`Accepts<T>` or `Joins<N, T>`), with an error
/// at `span`. It is a cast to a trait object rather than a call of a function with the bound,
/// so that the error's notes name no function of `goflow`'s internals.
fn takes(vertex: &impl ToTokens, bound: &TokenStream, span: Span) -> TokenStream {
    quote_spanned! {span=>
        let _ = ::core::ptr::null::<#vertex>() as *const dyn #bound;
    }
}

/// `let`s adding the vertices in order, those of an `each` body between `enter_each` and
/// `leave_each`. A body's vertices are mentioned only inside its braces, so they come one
/// after the other, and so do those of a body nested in it.
fn add_vertices(flow: &Flow, slots: &[syn::Ident], p: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut open: Vec<usize> = Vec::new();
    for (v, vertex) in flow.vertices.iter().enumerate() {
        // The bodies around this vertex, outermost first.
        let mut bodies = Vec::new();
        let mut body = flow.each_of(v);
        while let Some(each) = body {
            bodies.push(each);
            body = flow.parent_each(each);
        }
        bodies.reverse();
        let common = open.iter().zip(&bodies).take_while(|(a, b)| a == b).count();
        for _ in common..open.len() {
            out.extend(quote!(__goflow_plan.leave_each();));
        }
        for _ in common..bodies.len() {
            out.extend(quote!(__goflow_plan.enter_each();));
        }
        open = bodies;
        let (slot, path, name) = (&slots[v], &vertex.path, vertex.name.to_string());
        out.extend(quote!(let #slot = <#path as #p::Step>::add_to(__goflow_plan, #name);));
    }
    for _ in 0..open.len() {
        out.extend(quote!(__goflow_plan.leave_each();));
    }
    out
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = TokenTree::Group(inner);
            } else {
                tree.set_span(span);
            }
            tree
        })
        .collect()
}
