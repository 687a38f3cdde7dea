//! The code for one checked workflow: its type, `Workflow` and `Step` impls, and the edge
//! checks that let rustc verify every edge's types at the DSL tokens.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};

use super::check::Analysis;
use super::model::Flow;

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
        if decl.join {
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
        } else {
            let from = decl.from[0];
            let from_path = paths[from];
            checks.push(quote_spanned! {span=>
                #p::accepts::<#to_path, <#from_path as #p::Step>::Output>();
            });
            wiring.push(quote!(__goflow_plan.connect(#(#from_slots)*, #to_slot);));
            edges.push(quote!(#p::GraphEdge::then(#from, #to)));
        }
    }

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
                })
            }

            fn build<__GoflowC: #p::Codec>(
                __goflow_plan: &mut #p::PlanBuilder<__GoflowC>,
            ) -> #p::Fragment {
                #( let #slots = <#paths as #p::Step>::add_to(__goflow_plan, #names); )*
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
