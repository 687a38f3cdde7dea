//! What `#[node]` accepts as a node function, and what it learns from the signature.

use crate::errors::Errors;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

/// A node function's signature, reduced to what the expansion needs.
pub(crate) struct Signature {
    /// The input parameters' types, in order (a context parameter excluded).
    pub(crate) inputs: Vec<Type>,
    /// Where the context parameter is among all parameters, if there is one.
    pub(crate) context_at: Option<usize>,
    /// The output type: the `T` of `Result<T, E>`, or the return type.
    pub(crate) output: Type,
    /// Whether the function returns a `Result` whose error converts into `NodeError`.
    pub(crate) fallible: bool,
}

impl Signature {
    /// Checks the function and reads its signature; all problems are reported together.
    pub(crate) fn read(item: &ItemFn) -> Result<Self, syn::Error> {
        let sig = &item.sig;
        let mut errors = Errors::default();
        check_qualifiers(sig, &mut errors);
        let (inputs, context_at) = read_inputs(sig, &mut errors);
        let (output, fallible) = read_output(sig, &mut errors);
        errors.finish()?;
        Ok(Self {
            inputs,
            context_at,
            output,
            fallible,
        })
    }
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
fn read_inputs(sig: &syn::Signature, errors: &mut Errors) -> (Vec<Type>, Option<usize>) {
    let mut inputs = Vec::new();
    let mut unsupported_inputs = 0;
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
        } else if let Some(problem) = unsupported_type(ty) {
            unsupported_inputs += 1;
            errors.push(syn::Error::new_spanned(
                ty,
                format!("unsupported node parameter type: {problem}"),
            ));
        } else {
            inputs.push(ty.clone());
        }
    }
    if inputs.is_empty()
        && unsupported_inputs == 0
        && !sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_)))
    {
        errors.push(syn::Error::new(
            sig.paren_token.span.join(),
            "a node takes at least one input parameter: the output of the vertex before it, or the workflow's input",
        ));
    }
    (inputs, context_at)
}

/// The output type (the `T` of a `Result<T, E>`), and whether the function is fallible.
fn read_output(sig: &syn::Signature, errors: &mut Errors) -> (Type, bool) {
    match &sig.output {
        ReturnType::Default => (syn::parse_quote!(()), false),
        ReturnType::Type(_, ty) => {
            if let Some(problem) = unsupported_type(ty) {
                errors.push(syn::Error::new_spanned(
                    ty,
                    format!("unsupported node return type: {problem}"),
                ));
            }
            match result_ok_type(ty) {
                Some(ok) => (ok.clone(), true),
                None => ((**ty).clone(), false),
            }
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
fn unsupported_type(ty: &Type) -> Option<&'static str> {
    match ty {
        Type::Reference(_) => {
            Some("values between vertices are owned; take the type by value, without `&`")
        }
        Type::ImplTrait(_) => Some("`impl Trait` has no concrete type to encode; name the type"),
        Type::TraitObject(_) => {
            Some("a trait object has no concrete type to encode; name the type")
        }
        Type::Ptr(_) => Some("raw pointers cannot travel between vertices"),
        Type::Infer(_) => Some("the type must be written out"),
        Type::Paren(inner) => unsupported_type(&inner.elem),
        Type::Group(inner) => unsupported_type(&inner.elem),
        _ => None,
    }
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

    fn read(src: &str) -> Result<Signature, String> {
        Signature::read(&syn::parse_str(src).unwrap()).map_err(|e| {
            e.into_iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(" | ")
        })
    }

    fn error(src: &str) -> String {
        match read(src) {
            Ok(_) => panic!("`{src}` was accepted"),
            Err(error) => error,
        }
    }

    #[test]
    fn reads_inputs_context_and_result() {
        let Ok(sig) = read("async fn f(ctx: goflow::Context, a: A, b: B) -> Result<O, E> {}")
        else {
            panic!("rejected")
        };
        assert_eq!(sig.inputs.len(), 2);
        assert_eq!(sig.context_at, Some(0));
        assert!(sig.fallible);
        let Ok(sig) = read("async fn f(a: A) -> io::Result<O> {}") else {
            panic!("rejected")
        };
        assert!(sig.fallible);
        let Ok(sig) = read("async fn f(a: A) -> O {}") else {
            panic!("rejected")
        };
        assert!(!sig.fallible);
    }

    #[test]
    fn reports_every_problem() {
        let error = error("fn f<T>(x: &str) -> impl Sized {}");
        assert!(error.contains("must be `async`"), "{error}");
        assert!(error.contains("generic nodes"), "{error}");
        assert!(error.contains("without `&`"), "{error}");
        assert!(error.contains("return type"), "{error}");
    }

    #[test]
    fn requires_an_input() {
        let error = error("async fn f(ctx: Context) -> u8 {}");
        assert!(error.contains("at least one input"), "{error}");
    }
}
