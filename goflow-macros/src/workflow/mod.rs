//! `workflow!`: parse the DSL, lower it, check the graph, expand to types and trait impls.

mod check;
mod expand;
mod model;
mod parse;

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::quote;

use self::check::Problem;
use self::model::Flow;
use self::parse::Invocation;
use crate::errors::Errors;

/// Expands one `workflow!` invocation.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let invocation: Invocation = match syn::parse2(input) {
        Ok(invocation) => invocation,
        Err(error) => return error.to_compile_error(),
    };
    let krate = invocation.krate.clone().unwrap_or_else(|| quote!(::goflow));
    let mut all_errors = Errors::default();
    let mut out = TokenStream::new();

    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    let mut flows = Vec::new();
    for def in &invocation.flows {
        let mut errors = Errors::default();
        let flow = model::lower(def, &mut errors);
        if let Some(first) = seen.insert(flow.name.clone(), &def.ident) {
            errors.push(syn::Error::new(
                def.ident.span(),
                format!(
                    "workflow `{}` is declared twice in this `workflow!` (first as `{first}`); workflow names must be unique",
                    def.ident
                ),
            ));
        }
        flows.push((flow, errors));
    }
    report_containment_cycles(&mut flows);

    for (flow, mut errors) in flows {
        let analysis = check::analyze(flow.vertices.len(), &flow.decls);
        for problem in &analysis.problems {
            errors.push(describe(&flow, problem));
        }
        match errors.finish() {
            Ok(()) => out.extend(expand::flow(&flow, &analysis, &krate)),
            Err(error) => {
                // Keep the type so that code naming it reports no further errors.
                let (attrs, vis, ident) = (&flow.attrs, &flow.vis, &flow.ident);
                out.extend(quote!(#(#attrs)* #vis struct #ident {}));
                all_errors.push(error);
            }
        }
    }
    if let Err(error) = all_errors.finish() {
        out.extend(error.to_compile_error());
    }
    out
}

/// Workflows of one invocation that contain each other (`A` uses `B`, `B` uses `A`). Cycles
/// through workflows of other invocations are caught by rustc, through `Step::NESTING`.
fn report_containment_cycles(flows: &mut [(Flow, Errors)]) {
    let index: HashMap<String, usize> = flows
        .iter()
        .enumerate()
        .map(|(i, (flow, _))| (flow.ident.to_string(), i))
        .collect();
    let mut uses: Vec<Vec<(usize, usize)>> = vec![Vec::new(); flows.len()];
    for (i, (flow, _)) in flows.iter().enumerate() {
        for (v, vertex) in flow.vertices.iter().enumerate() {
            let target = vertex
                .path
                .get_ident()
                .and_then(|id| index.get(&id.to_string()));
            // Direct self-containment is reported during lowering.
            if let Some(&target) = target.filter(|&&t| t != i) {
                uses[i].push((target, v));
            }
        }
    }
    for (path, vertex) in check::find_cycles(&uses) {
        let names: Vec<String> = path.iter().map(|&i| flows[i].0.ident.to_string()).collect();
        let owner = path[path.len() - 2];
        let tokens = flows[owner].0.vertices[vertex].path.clone();
        flows[owner].1.push(syn::Error::new_spanned(
            tokens,
            format!("workflows contain each other: `{}`", names.join(" -> ")),
        ));
    }
}

/// The error for one problem of a workflow's shape, at the tokens to blame.
fn describe(flow: &Flow, problem: &Problem) -> syn::Error {
    let name = |v: usize| format!("`{}`", flow.vertices[v].name);
    let names = |vs: &[usize]| vs.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", ");
    let at = |decl: usize| flow.decl_tokens[decl].clone();
    match problem {
        Problem::SelfLoop { decl } => syn::Error::new_spanned(
            at(*decl),
            format!("self-loop: {} would take its own output", name(flow.decls[*decl].to)),
        ),
        Problem::Unjoined { vertex, first, second } => {
            let mut parents = flow.decls[*first].from.clone();
            parents.extend(&flow.decls[*second].from);
            syn::Error::new_spanned(
                at(*second),
                format!(
                    "{} has un-joined predecessors {}; a vertex takes one input, so join them: `[{}] => {}`",
                    name(*vertex),
                    names(&parents),
                    parents.iter().map(|&v| flow.vertices[v].name.to_string()).collect::<Vec<_>>().join(", "),
                    flow.vertices[*vertex].name,
                ),
            )
        }
        Problem::Cycle { path, decl } => syn::Error::new_spanned(
            at(*decl),
            format!(
                "cycle in workflow `{}`: `{}`; a workflow must be acyclic",
                flow.ident,
                path.iter().map(|&v| flow.vertices[v].name.to_string()).collect::<Vec<_>>().join(" -> ")
            ),
        ),
        Problem::Entries(entries) if entries.is_empty() => syn::Error::new(
            flow.ident.span(),
            format!("workflow `{}` has no entry vertex", flow.ident),
        ),
        Problem::Entries(entries) => syn::Error::new(
            flow.ident.span(),
            format!(
                "workflow `{}` has {} entry vertices ({}); its input goes to exactly one vertex, so give the others a predecessor",
                flow.ident,
                entries.len(),
                names(entries)
            ),
        ),
        Problem::Exits(exits) => syn::Error::new(
            flow.ident.span(),
            format!(
                "workflow `{}` ends in {} vertices ({}); its output comes from exactly one vertex, so join them: `[{}] => ...`",
                flow.ident,
                exits.len(),
                names(exits),
                exits.iter().map(|&v| flow.vertices[v].name.to_string()).collect::<Vec<_>>().join(", "),
            ),
        ),
    }
}
