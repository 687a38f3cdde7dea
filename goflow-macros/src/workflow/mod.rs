//! `workflow!`: parse the DSL, lower it, check the graph, expand to types and trait impls.

mod check;
mod expand;
mod model;
mod parse;

use std::collections::HashMap;

use proc_macro2::TokenStream;
use quote::quote;

use self::check::{Analysis, Problem, Route};
use self::model::Flow;
use self::parse::Invocation;
use crate::errors::Errors;

/// One workflow of the invocation on its way to expansion.
struct Entry {
    flow: Flow,
    errors: Errors,
    /// Whether the workflow is expanded; when not, only its struct is emitted (see `expand`).
    ok: bool,
    /// A second declaration of a name: not even the struct is emitted.
    duplicate: bool,
}

/// Expands one `workflow!` invocation.
pub(crate) fn expand(input: TokenStream) -> TokenStream {
    let invocation: Invocation = match syn::parse2(input) {
        Ok(invocation) => invocation,
        Err(error) => return error.to_compile_error(),
    };
    let krate = invocation.krate.clone().unwrap_or_else(|| quote!(::goflow));

    let mut seen: HashMap<String, &syn::Ident> = HashMap::new();
    let mut entries = Vec::new();
    let mut analyses = Vec::new();
    for def in &invocation.flows {
        let mut errors = Errors::default();
        let flow = model::lower(def, &mut errors);
        let mut duplicate = false;
        if let Some(first) = seen.insert(flow.name.clone(), &def.ident) {
            duplicate = true;
            let message = if *first == def.ident {
                format!("workflow `{first}` is declared twice in this `workflow!`; workflow names must be unique")
            } else {
                format!(
                    "workflows `{first}` and `{}` both get the name `{}`; workflow names must be unique",
                    def.ident, flow.name
                )
            };
            errors.push(syn::Error::new(def.ident.span(), message));
        }
        let analysis = check::analyze(flow.vertices.len(), &flow.decls, errors.is_empty());
        for problem in &analysis.problems {
            errors.push(describe(&flow, problem));
        }
        let ok = errors.is_empty();
        entries.push(Entry {
            flow,
            errors,
            ok,
            duplicate,
        });
        analyses.push(analysis);
    }
    report_containment_cycles(&mut entries);
    poison_dependents(&mut entries);

    emit(entries, &analyses, &krate)
}

/// The code of every workflow of the invocation, and its errors. A rejected workflow carries
/// its errors in its fallback type; one rejected only because of another's errors carries an
/// error type of that one's; the errors of a second declaration of a name, which gets no
/// type, are emitted on their own.
fn emit(entries: Vec<Entry>, analyses: &[Analysis], krate: &TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    let mut loose = Errors::default();
    // The first rejected workflow that carries its own errors, for the others to borrow.
    let mut carrier = entries
        .iter()
        .find(|e| !e.ok && !e.duplicate && !e.errors.is_empty())
        .map(|e| e.flow.ident.clone());
    let mut borrowers = Vec::new();
    for (entry, analysis) in entries.into_iter().zip(analyses) {
        let Entry {
            flow,
            errors,
            ok,
            duplicate,
        } = entry;
        if ok {
            out.extend(expand::flow(&flow, analysis, krate));
            continue;
        }
        match errors.finish() {
            Err(error) if duplicate => loose.push(error),
            Err(error) => out.extend(expand::fallback(&flow, krate, &expand::error_type(&error))),
            Ok(()) if duplicate => {}
            Ok(()) => borrowers.push(flow),
        }
    }
    // Rejected because of a workflow that carries errors: that workflow's error type; when
    // only second declarations carry errors, the first such workflow's type carries them.
    let mut loose = loose.finish().err();
    for flow in borrowers {
        let input = match (&carrier, loose.take()) {
            (Some(carrier), loose) => {
                out.extend(loose.map(|e| e.to_compile_error()));
                quote!(<#carrier as #krate::__private::Workflow>::Input)
            }
            (None, Some(error)) => {
                carrier = Some(flow.ident.clone());
                expand::error_type(&error)
            }
            // Not rejected without an error somewhere; were it, `()` adds none.
            (None, None) => quote!(()),
        };
        out.extend(expand::fallback(&flow, krate, &input));
    }
    if let Some(error) = loose {
        out.extend(error.to_compile_error());
    }
    out
}

/// The workflows of this invocation that a workflow uses as vertices: `(workflow, vertex)`.
fn uses(entries: &[Entry]) -> Vec<Vec<(usize, usize)>> {
    let index: HashMap<String, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| (entry.flow.ident.to_string(), i))
        .collect();
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            entry
                .flow
                .vertices
                .iter()
                .enumerate()
                .filter_map(|(v, vertex)| {
                    let target = *index.get(&vertex.path.get_ident()?.to_string())?;
                    // Direct self-containment is reported during lowering.
                    (target != i).then_some((target, v))
                })
                .collect()
        })
        .collect()
}

/// Workflows of one invocation that contain each other (`A` uses `B`, `B` uses `A`). Cycles
/// through workflows of other invocations are rejected by rustc (the types or the
/// `Step::NESTING` constants they imply cannot be computed).
fn report_containment_cycles(entries: &mut [Entry]) {
    for (path, vertex) in check::find_cycles(&uses(entries)) {
        let names: Vec<String> = path
            .iter()
            .map(|&i| entries[i].flow.ident.to_string())
            .collect();
        let owner = path[path.len() - 2];
        let tokens = entries[owner].flow.vertices[vertex].path.clone();
        entries[owner].errors.push(syn::Error::new_spanned(
            tokens,
            format!("workflows contain each other: `{}`", names.join(" -> ")),
        ));
        for &member in &path {
            entries[member].ok = false;
        }
    }
}

/// A workflow using a workflow of this invocation that is not expanded cannot be expanded
/// either: its checks would only repeat the first error in rustc's words.
fn poison_dependents(entries: &mut [Entry]) {
    let uses = uses(entries);
    let mut changed = true;
    while changed {
        changed = false;
        for (i, used) in uses.iter().enumerate() {
            if entries[i].ok && used.iter().any(|&(target, _)| !entries[target].ok) {
                entries[i].ok = false;
                changed = true;
            }
        }
    }
}

/// The error for one problem of a workflow's shape, at the tokens to blame.
fn describe(flow: &Flow, problem: &Problem) -> syn::Error {
    let name = |v: usize| format!("`{}`", flow.vertices[v].name);
    let names = |vs: &[usize]| vs.iter().map(|&v| name(v)).collect::<Vec<_>>().join(", ");
    let bare = |vs: &[usize]| {
        vs.iter()
            .map(|&v| flow.vertices[v].name.to_string())
            .collect::<Vec<_>>()
    };
    let at = |decl: usize| flow.decl_tokens[decl].clone();
    match problem {
        Problem::SelfLoop { decl } => syn::Error::new_spanned(
            at(*decl),
            format!("self-loop: {} would take its own output", name(flow.decls[*decl].to)),
        ),
        Problem::Unjoined {
            vertex,
            first,
            second,
        } => {
            let mut parents = flow.decls[*first].from.clone();
            parents.extend(&flow.decls[*second].from);
            syn::Error::new_spanned(
                at(*second),
                format!(
                    "{} has un-joined predecessors {}; a vertex takes one input, so join them: `[{}] => {}`",
                    name(*vertex),
                    names(&parents),
                    bare(&parents).join(", "),
                    flow.vertices[*vertex].name,
                ),
            )
        }
        Problem::Cycle { path, decl } => syn::Error::new_spanned(
            at(*decl),
            format!(
                "cycle in workflow `{}`: `{}`; a workflow must be acyclic",
                flow.ident,
                bare(path).join(" -> ")
            ),
        ),
        Problem::SharedOutput {
            vertex,
            route,
            decl,
        } => syn::Error::new_spanned(
            at(*decl),
            match route {
                Route::Branch(_) => format!(
                    "{} picks an arm of its conditional with its output, so nothing else can take that output; use it after the conditional, or in its arms",
                    name(*vertex)
                ),
                Route::Each(_) => format!(
                    "{} hands the items of its output to its `each` body, so nothing else can take that output; use it in the body, or after the vertex that gathers it",
                    name(*vertex)
                ),
            },
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
                bare(exits).join(", "),
            ),
        ),
    }
}
