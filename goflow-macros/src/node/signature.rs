//! What `#[node]` accepts as a node function, and what it learns from the signature.

use crate::errors::Errors;
use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens as _;
use syn::{FnArg, GenericArgument, GenericParam, ItemFn, PathArguments, ReturnType, Type};

/// A node function's signature, reduced to what the expansion needs. It is read even from a
/// rejected function, so that the node type still gets every type that can be named.
pub(crate) struct Signature {
    /// The input parameters' types, in order (a context parameter excluded).
    pub(crate) inputs: Vec<Payload>,
    /// Where the context parameter is among all parameters, if there is one.
    pub(crate) context_at: Option<usize>,
    /// The output type: the `T` of `Result<T, E>`, or the return type.
    pub(crate) output: Payload,
    /// Whether the function returns a `Result` whose error converts into `NodeError`.
    pub(crate) fallible: bool,
    /// Whether the function is a method (it takes `self`).
    pub(crate) method: bool,
}

/// A type a node takes or produces.
pub(crate) struct Payload {
    pub(crate) ty: Type,
    /// Whether the node's impls can name the type: it was not rejected, and it does not
    /// mention the function's generic parameters.
    pub(crate) known: bool,
}

impl Signature {
    /// Checks the function and reads its signature; every problem goes to `errors`.
    pub(crate) fn read(item: &ItemFn, errors: &mut Errors) -> Self {
        let sig = &item.sig;
        check_qualifiers(sig, errors);
        let generics = generic_names(&sig.generics);
        let (mut inputs, context_at) = read_inputs(sig, errors);
        let mut output = read_output(sig, errors);
        for payload in inputs.iter_mut().chain([&mut output.0]) {
            payload.known &= !mentions(payload.ty.to_token_stream(), &generics);
        }
        Self {
            inputs,
            context_at,
            output: output.0,
            fallible: output.1,
            method: sig.receiver().is_some(),
        }
    }
}

/// The names of the function's generic parameters (lifetimes with their `'`).
fn generic_names(generics: &syn::Generics) -> Vec<String> {
    generics
        .params
        .iter()
        .map(|param| match param {
            GenericParam::Type(param) => param.ident.to_string(),
            GenericParam::Const(param) => param.ident.to_string(),
            GenericParam::Lifetime(param) => param.lifetime.to_string(),
        })
        .collect()
}

/// Whether `tokens` name one of `names` (an identifier, or a lifetime such as `'a`).
fn mentions(tokens: TokenStream, names: &[String]) -> bool {
    let mut quote = false;
    for tree in tokens {
        match tree {
            TokenTree::Group(group) if mentions(group.stream(), names) => return true,
            TokenTree::Punct(punct) if punct.as_char() == '\'' => {
                quote = true;
                continue;
            }
            TokenTree::Ident(ident) => {
                let name = if quote {
                    format!("'{ident}")
                } else {
                    ident.to_string()
                };
                if names.contains(&name) {
                    return true;
                }
            }
            _ => {}
        }
        quote = false;
    }
    false
}

/// What a node function cannot be: not `async`, `const`, `unsafe`, `extern`, generic or
/// variadic.
fn check_qualifiers(sig: &syn::Signature, errors: &mut Errors) {
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!(
                "`#[node]` functions must be `async`: write `async fn {}`",
                sig.ident
            ),
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(syn::Error::new(token.span, "a node cannot be a `const fn`"));
    }
    if let syn::Safety::Unsafe(token) = &sig.safety {
        errors.push(syn::Error::new(
            token.span,
            "a node cannot be an `unsafe fn`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(abi, "a node cannot declare an ABI"));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "generic nodes are not supported: a workflow vertex needs concrete input and output types",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "a node cannot be variadic",
        ));
    }
}

/// The input parameters' types, and where the context parameter is.
fn read_inputs(sig: &syn::Signature, errors: &mut Errors) -> (Vec<Payload>, Option<usize>) {
    let mut inputs = Vec::new();
    let mut context_at = None;
    for (index, arg) in sig.inputs.iter().enumerate() {
        let typed = match arg {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new_spanned(
                    receiver,
                    "`#[node]` goes on a free function, not a method taking `self`",
                ));
                continue;
            }
            FnArg::Typed(typed) => typed,
        };
        let ty = &*typed.ty;
        if is_context(ty) {
            if context_at.replace(index).is_some() {
                errors.push(syn::Error::new_spanned(
                    ty,
                    "a node takes at most one `Context` parameter",
                ));
            }
        } else {
            let problem = unsupported_type(ty);
            if let Some(problem) = &problem {
                errors.push(syn::Error::new_spanned(
                    ty,
                    format!("unsupported node parameter type: {problem}"),
                ));
            }
            inputs.push(Payload {
                ty: ty.clone(),
                known: problem.is_none(),
            });
        }
    }
    if inputs.is_empty() && sig.receiver().is_none() {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a node takes at least one input parameter: the output of the vertex before it, or the workflow's input",
        ));
    }
    (inputs, context_at)
}

/// The output type (the `T` of a `Result<T, E>`), and whether the function is fallible.
fn read_output(sig: &syn::Signature, errors: &mut Errors) -> (Payload, bool) {
    match &sig.output {
        ReturnType::Default => (
            Payload {
                ty: syn::parse_quote!(()),
                known: true,
            },
            false,
        ),
        ReturnType::Type(_, ty) => {
            let (ty, fallible) = match result_ok_type(ty) {
                Some(ok) => (ok, true),
                None => (&**ty, false),
            };
            let problem = unsupported_type(ty);
            if let Some(problem) = &problem {
                errors.push(syn::Error::new_spanned(
                    ty,
                    format!("unsupported node return type: {problem}"),
                ));
            }
            let known = problem.is_none();
            (
                Payload {
                    ty: ty.clone(),
                    known,
                },
                fallible,
            )
        }
    }
}

/// A parameter of type `Context` (any path ending in it) is the execution context.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|s| s.ident == "Context" && s.arguments.is_empty()),
        _ => false,
    }
}

/// Why a type cannot travel between vertices, as far as syntax can tell.
fn unsupported_type(ty: &Type) -> Option<String> {
    let problem = match ty {
        Type::Reference(reference) => {
            let written = compact(ty);
            return Some(format!(
                "values between vertices are owned: use `{}` instead of `{written}`",
                owned(&reference.elem)
            ));
        }
        Type::ImplTrait(_) => "`impl Trait` has no concrete type to encode; name the type",
        Type::TraitObject(_) => "a trait object has no concrete type to encode; name the type",
        Type::Ptr(_) => "raw pointers cannot travel between vertices",
        Type::Infer(_) => "the type must be written out",
        Type::Paren(inner) => return unsupported_type(&inner.elem),
        Type::Group(inner) => return unsupported_type(&inner.elem),
        _ => return None,
    };
    Some(problem.to_owned())
}

/// The owned type for a borrowed `elem`: `String` for `str`, `Vec<T>` for `[T]`, else `elem`.
fn owned(elem: &Type) -> String {
    match elem {
        Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => "String".into(),
        Type::Slice(slice) => format!("Vec<{}>", compact(&slice.elem)),
        _ => compact(elem),
    }
}

/// A type as written, without the spaces of its token stream (`&[u8]`, `Vec<String>`).
fn compact(ty: &Type) -> String {
    let text = ty.to_token_stream().to_string();
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // Spaces only separate words that would otherwise merge (`dyn Trait`, `&'a T`).
        let keep = c == ' '
            && out
                .chars()
                .last()
                .is_some_and(|p: char| p.is_alphanumeric() || p == '_')
            && chars
                .peek()
                .is_some_and(|n| n.is_alphanumeric() || *n == '_');
        if c != ' ' || keep {
            out.push(c);
        }
    }
    out
}

/// `T` when `ty` is `Result<T, E>` or a one-parameter alias such as `io::Result<T>`.
fn result_ok_type(ty: &Type) -> Option<&Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(ok) if args.args.len() <= 2 => Some(ok),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature and every problem found, joined.
    fn read(src: &str) -> (Signature, String) {
        let mut errors = Errors::default();
        let sig = Signature::read(&syn::parse_str(src).unwrap(), &mut errors);
        let problems = match errors.finish() {
            Ok(()) => String::new(),
            Err(error) => error
                .into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | "),
        };
        (sig, problems)
    }

    fn accepted(src: &str) -> Signature {
        let (sig, problems) = read(src);
        assert_eq!(problems, "", "`{src}` was rejected");
        sig
    }

    fn error(src: &str) -> String {
        let (_, problems) = read(src);
        assert!(!problems.is_empty(), "`{src}` was accepted");
        problems
    }

    #[test]
    fn reads_inputs_context_and_result() {
        let sig = accepted("async fn f(ctx: goflow::Context, a: A, b: B) -> Result<O, E> {}");
        assert_eq!(sig.inputs.len(), 2);
        assert_eq!(sig.context_at, Some(0));
        assert!(sig.fallible);
        assert!(accepted("async fn f(a: A) -> io::Result<O> {}").fallible);
        assert!(!accepted("async fn f(a: A) -> O {}").fallible);
    }

    #[test]
    fn reports_every_problem() {
        let error = error("fn f<T>(x: &str) -> impl Sized {}");
        assert!(error.contains("must be `async`"), "{error}");
        assert!(error.contains("generic nodes"), "{error}");
        assert!(error.contains("use `String` instead of `&str`"), "{error}");
        assert!(error.contains("return type"), "{error}");
    }

    #[test]
    fn requires_an_input() {
        let error = error("async fn f(ctx: Context) -> u8 {}");
        assert!(error.contains("at least one input"), "{error}");
    }

    #[test]
    fn a_rejected_function_keeps_the_types_it_names() {
        let (sig, _) = read("fn f(a: A, b: &B) -> Result<O, E> {}");
        let known: Vec<_> = sig.inputs.iter().map(|i| i.known).collect();
        assert_eq!(known, [true, false]);
        assert!(sig.output.known && sig.fallible);
        let (sig, _) = read("async fn f<'a, T>(a: T, b: Cow<'a, str>, c: u8) -> Vec<T> {}");
        let known: Vec<_> = sig.inputs.iter().map(|i| i.known).collect();
        assert_eq!(known, [false, false, true]);
        assert!(!sig.output.known);
        let (sig, problems) = read("async fn f(a: A) -> Result<&'static str, E> {}");
        assert!(!sig.output.known);
        assert!(
            problems.contains("unsupported node return type"),
            "{problems}"
        );
        assert!(read("async fn f(&self, a: A) -> O {}").0.method);
    }

    #[test]
    fn names_the_owned_type_of_a_borrow() {
        for (borrowed, owned) in [
            ("&Profile", "`Profile` instead of `&Profile`"),
            ("&'a str", "`String` instead of `&'a str`"),
            ("&[u8]", "`Vec<u8>` instead of `&[u8]`"),
            (
                "&mut Vec<String>",
                "`Vec<String>` instead of `&mut Vec<String>`",
            ),
        ] {
            let error = error(&format!("async fn f(x: {borrowed}) {{}}"));
            assert!(error.contains(owned), "{error}");
        }
    }
}
