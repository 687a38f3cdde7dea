//! The code for one checked workflow: its type, `Workflow` and `Step` impls, and the edge
//! checks that let rustc verify every edge's types at the DSL tokens.

use proc_macro2::{Delimiter, Group, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens as _};

use super::check::Analysis;
use super::model::{Flow, Link, Used};

pub(crate) fn flow(flow: &Flow, analysis: &Analysis, krate: &TokenStream) -> TokenStream {
    let p = quote!(#krate::__private);
    let Flow {
        attrs,
        vis,
        ident,
        name,
        ..
    } = flow;
    let paths: Vec<_> = flow.vertices.iter().map(|v| &v.path).collect();
    let names: Vec<String> = flow.vertices.iter().map(|v| v.name.to_string()).collect();
    let entry = paths[analysis.entry];
    let exit = paths[analysis.exit];
    let (entry_id, exit_id) = (analysis.entry, analysis.exit);
    let slots: Vec<_> = (0..paths.len())
        .map(|i| format_ident!("__goflow_v{}", i))
        .collect();
    let (entry_slot, exit_slot) = (&slots[entry_id], &slots[exit_id]);
    // A vertex's path with every token at one of its mentions, so that an error about that
    // mention points there.
    let at = |used: Used| respan(paths[used.vertex].to_token_stream(), used.span);

    let mut edges = Vec::new();
    let mut wiring = Vec::new();
    let mut checks = Vec::new();
    for &i in &analysis.accepted {
        let decl = &flow.decls[i];
        let to = decl.to;
        let to_path = paths[to];
        let span = flow.vertices[to].name.span();
        let from_slots: Vec<_> = decl.from.iter().map(|&f| &slots[f]).collect();
        let to_slot = &slots[to];
        let from = decl.from[0];
        match decl.link {
            Link::Join => {
                let n = decl.from.len();
                let outputs = decl.from.iter().map(|&f| {
                    let from = paths[f];
                    quote!(<#from as #p::Step>::Output)
                });
                checks.push(quote_spanned! {span=>
                    #p::joins::<#to_path, #n, ( #(#outputs,)* )>();
                });
                wiring.push(quote!(__goflow_plan.join(&[ #(#from_slots),* ], #to_slot);));
                for (port, &from) in decl.from.iter().enumerate() {
                    edges.push(quote!(#p::GraphEdge::join(#from, #to, #port)));
                }
            }
            Link::Then => {
                let from_path = paths[from];
                checks.push(quote_spanned! {span=>
                    #p::accepts::<#to_path, <#from_path as #p::Step>::Output>();
                });
                wiring.push(quote!(__goflow_plan.connect(#(#from_slots)*, #to_slot);));
                edges.push(quote!(#p::GraphEdge::then(#from, #to)));
            }
            // Conditionals and for-each are wired and checked below, as a whole.
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

    // Conditionals: a `select` function each, which also checks that every arm's entries
    // (or, for `{}`, the merge vertex) take its variant's payload; the arms' exits must give
    // the merge vertex its input.
    let mut selects = Vec::new();
    // Local variables keep the macro's own span even inside tokens spanned at the DSL:
    // `workflow!` is a `macro_rules!`, whose hygiene hides them from the user's spans.
    let (codec, bytes, payload) = (
        quote!(__goflow_codec),
        quote!(__goflow_bytes),
        quote!(__goflow_payload),
    );
    for (n, branch) in flow.branches.iter().enumerate() {
        let select = format_ident!("__goflow_select_{}", n);
        let vertex = paths[branch.vertex];
        let merge = at(branch.merge);
        let question = branch.question;
        let arms = branch.arms.iter().enumerate().map(|(index, arm)| {
            let variant = &arm.variant;
            let takers = match arm.exit {
                Some(_) => arm.entries.clone(),
                None => vec![branch.merge],
            };
            let checks = takers.into_iter().map(|taker| {
                let (span, taker) = (taker.span, at(taker));
                quote_spanned! {span=>
                    #payload.__goflow_taken_by::<#taker>();
                }
            });
            let pattern = quote_spanned!(variant.span()=> __GoflowOut::#variant(#payload));
            // The arm spans the DSL arm, so that rustc's suggestion for a missing variant
            // lands after the last arm the user wrote rather than inside `goflow`.
            let mut body = Group::new(
                Delimiter::Brace,
                quote! {
                    #(#checks)*
                    #p::Ok((#index, #p::Data::encode_with(&#payload, #codec)?))
                },
            );
            body.set_span(arm.end);
            quote!(#pattern => #body)
        });
        let scrutinee = quote_spanned! {question=>
            <__GoflowOut as #p::Data>::decode_with(#codec, #bytes)?
        };
        // Checks a payload against a vertex that takes it. The payload's type is known only
        // from the pattern that binds it, so it is fixed as a method call's receiver: passed to
        // a generic function instead, rustc would infer the type from the vertex's only
        // `Accepts` impl and report a bare type mismatch. The bound points at the `?`.
        let payload_trait = quote_spanned! {question=>
            use #p::Accepts as __GoflowAccepts;
            trait __GoflowPayload {
                fn __goflow_taken_by<__GoflowS: __GoflowAccepts<Self> + ?::core::marker::Sized>(
                    &self,
                ) where
                    Self: ::core::marker::Sized,
                {
                }
            }
            impl<__GoflowT> __GoflowPayload for __GoflowT {}
        };
        selects.push(quote! {
            fn #select<__GoflowCodec: #p::Codec>(
                #codec: &__GoflowCodec,
                #bytes: &[u8],
            ) -> #p::Result<(usize, #p::Bytes), #p::CodecError> {
                type __GoflowOut = <#vertex as #p::Step>::Output;
                #payload_trait
                match #scrutinee {
                    #(#arms)*
                }
            }
        });
        for arm in &branch.arms {
            if let Some(exit) = arm.exit {
                let exit = paths[exit.vertex];
                let span = branch.merge.span;
                checks.push(quote_spanned! {span=>
                    #p::accepts::<#merge, <#exit as #p::Step>::Output>();
                });
            }
        }
        let slot = |u: Used| &slots[u.vertex];
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
        let (vertex_slot, merge_slot) = (&slots[branch.vertex], slot(branch.merge));
        wiring.push(quote! {
            __goflow_plan.branch(
                #vertex_slot,
                #select::<__GoflowC>,
                &[ #(#specs),* ],
                #merge_slot,
            );
        });
    }
    // For-each: the source outputs a collection whose items the body's entries take, and the
    // gathering vertex takes the `Vec` of the body exit's outputs.
    for each in &flow.eaches {
        let source = at(each.source);
        let span = each.source.span;
        let item = quote_spanned!(span=> <<#source as #p::Step>::Output as #p::Collection>::Item);
        for &entry in &each.entries {
            let (entry, span) = (at(entry), entry.span);
            checks.push(quote_spanned! {span=>
                #p::accepts::<#entry, #item>();
            });
        }
        let (gather, span) = (at(each.gather), each.gather.span);
        let exit = paths[each.exit.vertex];
        checks.push(quote_spanned! {span=>
            #p::accepts::<#gather, #p::Vec<<#exit as #p::Step>::Output>>();
        });
        // The item type as the first entry's input: equal to the collection's item once the
        // checks above hold, and free of a second error when the source is no collection.
        let first = paths[each.entries[0].vertex];
        let entries = each.entries.iter().map(|e| &slots[e.vertex]);
        let (source_slot, exit_slot, gather_slot) = (
            &slots[each.source.vertex],
            &slots[each.exit.vertex],
            &slots[each.gather.vertex],
        );
        wiring.push(quote! {
            __goflow_plan.each::<<#first as #p::Step>::Input>(
                #source_slot,
                &[ #(#entries),* ],
                #exit_slot,
                #gather_slot,
            );
        });
    }

    let creation = add_vertices(flow, &slots, &p);

    // The graph's `each` bodies: source, gather, enclosing body, and the vertices directly in it.
    let bodies = (0..flow.eaches.len()).map(|e| {
        let each = &flow.eaches[e];
        let (source, gather) = (each.source.vertex, each.gather.vertex);
        let parent = match flow.parent_each(e) {
            Some(parent) => quote!(#p::Some(#parent)),
            None => quote!(#p::None),
        };
        let inside = (0..flow.vertices.len()).filter(|&v| flow.each_of(v) == Some(e));
        quote!(.with_each(#source, #gather, #parent, #p::Vec::from([ #(#inside),* ])))
    });

    // Spanned at the workflow's name: a cycle of workflows across invocations is reported by
    // rustc as a cycle through this impl's `NESTING`, and the message then names the user's
    // declaration rather than a line inside the `goflow` crate.
    let step_impl = quote_spanned! {ident.span()=>
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
    };

    let has_doc = attrs.iter().any(|a| a.path().is_ident("doc"));
    // The doc comment's text, for `Workflow::DESCRIPTION` (served by `GET /flow/{name}`).
    let description = attrs
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
        .to_owned();
    let default_doc = (!has_doc).then(|| {
        let doc = format!("The `{name}` workflow, declared with `workflow!`.");
        quote!(#[doc = #doc])
    });

    quote! {
        #(#attrs)*
        #default_doc
        #vis struct #ident {}

        impl #p::Workflow for #ident {
            const NAME: &'static str = #name;
            const DESCRIPTION: &'static str = #description;
            type Input = <#entry as #p::Step>::Input;
            type Output = <#exit as #p::Step>::Output;

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
        }

        #step_impl

        impl<__GoflowT> #p::Accepts<__GoflowT> for #ident where #entry: #p::Accepts<__GoflowT> {}
        impl<const __GOFLOW_N: usize, __GoflowT> #p::Joins<__GOFLOW_N, __GoflowT> for #ident
        where
            #entry: #p::Joins<__GOFLOW_N, __GoflowT>,
        {
        }

        const _: () = {
            #(#checks)*
            // Evaluating the nesting depth is what turns workflows containing each other
            // across `workflow!` invocations into a compile error.
            let _ = <#ident as #p::Step>::NESTING;
        };
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
