//! `#[node]`: keeps the function as written and adds a same-named braced struct (type namespace
//! only, so no clash with the fn) implementing the runtime's `Node` and `Step` traits.
//!
//! A rejected function still gets its struct and complete impls, so that the workflows using
//! it and the code running those report nothing more: the types the signature names are kept,
//! and a type it does not name (a borrowed, `impl Trait` or generic one) is replaced by an
//! error type, which rustc does not report again wherever it flows.

mod options;
mod signature;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens as _};
use syn::spanned::Spanned as _;
use syn::{ItemFn, Type};

use self::options::Options;
use self::signature::{Payload, Signature};
use crate::errors::Errors;

/// Expands `#[node(args)] item`.
pub(crate) fn expand(args: TokenStream, item: &TokenStream) -> TokenStream {
    let function: ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_not_a_fn) => {
            let error = syn::Error::new(Span::call_site(), "`#[node]` goes on an `async fn`")
                .to_compile_error();
            // Re-emit the item untouched so the error is the only one.
            return quote!(#item #error);
        }
    };
    let mut errors = Errors::default();
    let options = Options::parse(args, &mut errors);
    let signature = Signature::read(&function, &mut errors);
    match errors.finish() {
        Ok(()) => node_impl(&function, &signature, &options),
        // A method's attribute sits inside an `impl`, where no struct may go: the function as
        // written (so its callers still compile) and the errors.
        Err(error) if signature.method => {
            let error = error.to_compile_error();
            quote!(#function #error)
        }
        Err(error) => fallback(&function, &signature, &options, &error),
    }
}

/// A rejected function: the function as written (so its callers still compile), and a node
/// type whose impls are complete, so that workflows naming it add no errors of their own. The
/// errors are carried by the first type the signature does not name, or emitted beside the
/// impls when it names them all.
fn fallback(
    function: &ItemFn,
    signature: &Signature,
    options: &Options,
    error: &syn::Error,
) -> TokenStream {
    let p = support_path(options);
    let ident = &function.sig.ident;
    let inputs_known = !signature.inputs.is_empty() && signature.inputs.iter().all(|i| i.known);
    let (input, output, errors) = fallback_types(function, signature, &p, error);
    let accepts = if inputs_known {
        accepts_impls(function, signature, &p)
    } else {
        // Whatever the vertex before it outputs: the edge is not checked again. (The
        // parameters' names show in rustc's lists of the types implementing `Accepts`.)
        quote! {
            impl<T> #p::Accepts<T> for #ident {}
            impl<const N: usize, T> #p::Joins<N, T> for #ident {}
        }
    };
    let name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let arity = signature.inputs.len();
    let node_options = options_expr(options, &p);
    let node_struct = node_struct(function);
    quote! {
        #function
        #node_struct

        impl #p::Node for #ident {
            type Input = #input;
            type Output = #output;
            const NAME: &'static str = #name;
            const ARITY: usize = #arity;

            fn options() -> #p::NodeOptions {
                #node_options
            }

            fn call(
                _: Self::Input,
                _: #p::Context,
            ) -> impl #p::Future<Output = #p::Result<Self::Output, #p::NodeError>> + #p::Send + 'static {
                // Never runs: the crate does not compile.
                async move { #p::Err(#p::NodeError::permanent("`#[node]` rejected this function")) }
            }
        }

        #accepts
        #errors
    }
}

/// The fallback's `Input` and `Output`: the types the signature names, [`checked`]; the
/// first one it does not name carries the errors as an [`error_type`], and a second one is a
/// projection of it. With every type named, the errors are returned, to be emitted beside.
fn fallback_types(
    function: &ItemFn,
    signature: &Signature,
    p: &TokenStream,
    error: &syn::Error,
) -> (TokenStream, TokenStream, Option<TokenStream>) {
    let errors = error.to_compile_error();
    let inputs_known = !signature.inputs.is_empty() && signature.inputs.iter().all(|i| i.known);
    let output = &signature.output;
    match (inputs_known, output.known) {
        (true, true) => (
            input_type(function, signature, p).0,
            checked(&output.ty, p),
            Some(errors),
        ),
        (true, false) => (
            input_type(function, signature, p).0,
            error_type(&errors),
            None,
        ),
        (false, true) => (error_type(&errors), checked(&output.ty, p), None),
        (false, false) => (error_type(&errors), quote!(<Self as #p::Node>::Input), None),
    }
}

fn node_impl(function: &ItemFn, signature: &Signature, options: &Options) -> TokenStream {
    let p = support_path(options);
    let ident = &function.sig.ident;
    let name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let arity = signature.inputs.len();
    let output = &signature.output.ty;

    // The associated types carry the spans of the user's types, so that an error about a
    // payload type (a private type in this public impl) points at the parameter or return
    // type.
    let (input_type, input_span) = input_type(function, signature, &p);
    let input_item = quote_spanned!(input_span=> type Input = #input_type;);
    let output_type = checked(output, &p);
    let output_item = quote_spanned!(output.span()=> type Output = #output_type;);

    // Nodes are `async` by contract, even those that never await: clippy's `unused_async`
    // does not apply to them.
    let mut function = function.clone();
    function
        .attrs
        .push(syn::parse_quote!(#[allow(clippy::unused_async)]));

    let (bind_input, ctx_param, body) = call_body(ident, signature, &p);
    let node_options = options_expr(options, &p);
    let node_struct = node_struct(&function);
    let accepts = accepts_impls(&function, signature, &p);

    quote! {
        #function
        #node_struct

        impl #p::Node for #ident {
            #input_item
            #output_item
            const NAME: &'static str = #name;
            const ARITY: usize = #arity;

            fn options() -> #p::NodeOptions {
                #node_options
            }

            fn call(
                __goflow_input: Self::Input,
                #ctx_param: #p::Context,
            ) -> impl #p::Future<Output = #p::Result<Self::Output, #p::NodeError>> + #p::Send + 'static {
                #bind_input
                async move { #body }
            }
        }

        #accepts
    }
}

/// The path of `goflow`'s support module.
fn support_path(options: &Options) -> TokenStream {
    let krate = options
        .krate
        .as_ref()
        .map_or_else(|| quote!(::goflow), |path| path.to_token_stream());
    quote!(#krate::__private)
}

/// The node type: a field-less struct named after the function.
fn node_struct(function: &ItemFn) -> TokenStream {
    let (vis, ident) = (&function.vis, &function.sig.ident);
    // The type is `pub` whatever the function's visibility: a `pub` workflow names it in its
    // associated types, where a less visible type is a hard error (E0446). It is a field-less
    // marker, so exposing it gives nothing away; it stays out of the docs unless the function
    // itself is `pub`.
    let hidden = (!matches!(vis, syn::Visibility::Public(_))).then(|| quote!(#[doc(hidden)]));
    let doc = format!(
        "The workflow vertex of the node function [`{ident}`](fn@{ident}), generated by `#[node]`."
    );
    quote! {
        #[doc = #doc]
        #hidden
        #[allow(non_camel_case_types, unreachable_pub)]
        pub struct #ident {}
    }
}

/// `Accepts` for the input type, and `Joins` for a node of several parameters.
fn accepts_impls(function: &ItemFn, signature: &Signature, p: &TokenStream) -> TokenStream {
    let ident = &function.sig.ident;
    let arity = signature.inputs.len();
    let types: Vec<_> = signature.inputs.iter().map(|i| &i.ty).collect();
    let plain = if let [ty] = &types[..] {
        ty.to_token_stream()
    } else {
        quote!(( #(#types),* ))
    };
    let joins = (arity > 1).then(|| quote!(impl #p::Joins<#arity, #plain> for #ident {}));
    quote! {
        impl #p::Accepts<#plain> for #ident {}
        #joins
    }
}

/// The input type: the parameter's type, or the tuple of all of them for a join node, each
/// [`checked`]; and the span of its associated type. The tuple's parentheses take the span of
/// the parameter list, so that a bound error on the tuple points at the parameters.
fn input_type(function: &ItemFn, signature: &Signature, p: &TokenStream) -> (TokenStream, Span) {
    let paren = function.sig.paren_token.span.join();
    let types: Vec<_> = signature.inputs.iter().map(|i| checked(&i.ty, p)).collect();
    if let [Payload { ty, .. }] = &signature.inputs[..] {
        (types[0].clone(), ty.span())
    } else {
        (quote_spanned!(paren=> ( #(#types),* )), paren)
    }
}

/// `ty`, once checked to be `Data`: `ty` itself when it is, else an error type. The check is
/// the one place where a payload type without serde derives is reported, at the type in the
/// signature; the error type then silences the same complaint at every use of the node (its
/// `Node` impl, the edges of workflows, a workflow's input and output).
///
/// `<[T; N] as IntoIterator>::Item` is `T`; the length `N` is a constant block that names
/// `<T as Data>`, which fails to evaluate when `T` is not `Data`, making the array, and so
/// the item, an error.
fn checked(ty: &Type, p: &TokenStream) -> TokenStream {
    let span = ty.span();
    let check = quote_spanned! {span=>
        <#ty as #p::Data>::encode_with::<#p::MsgPack>
    };
    quote!(<[#ty; { let _ = #check; 1 }] as ::core::iter::IntoIterator>::Item)
}

/// A type that is an error, carrying `errors`: rustc reports them once, and no error about a
/// type built from it.
fn error_type(errors: &TokenStream) -> TokenStream {
    quote!([(); { #errors 0 }])
}

/// The body of `Node::call`: the statement binding the parameters from the input, the
/// context parameter's pattern, and the call of the function, its error turned into a
/// `NodeError`.
fn call_body(
    ident: &syn::Ident,
    signature: &Signature,
    p: &TokenStream,
) -> (TokenStream, TokenStream, TokenStream) {
    let args: Vec<_> = (0..signature.inputs.len())
        .map(|i| format_ident!("__goflow_arg{}", i))
        .collect();
    let bind_input = if let [arg] = &args[..] {
        quote!(let #arg = __goflow_input;)
    } else {
        quote!(let ( #(#args),* ) = __goflow_input;)
    };
    let mut call_args: Vec<TokenStream> = args.iter().map(|a| quote!(#a)).collect();
    let ctx_param = match signature.context_at {
        Some(at) => {
            call_args.insert(at, quote!(__goflow_ctx));
            quote!(__goflow_ctx)
        }
        None => quote!(_),
    };
    let call = quote!(#ident( #(#call_args),* ).await);
    let body = if signature.fallible {
        quote!(#p::Result::map_err(#call, #p::Into::<#p::NodeError>::into))
    } else {
        quote!(#p::Ok(#call))
    };
    (bind_input, ctx_param, body)
}

/// `NodeOptions` with the options given: the defaults live once, in `NodeOptions::DEFAULT`.
fn options_expr(options: &Options, p: &TokenStream) -> TokenStream {
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    let retries = options.retries.map(|n| quote!(.with_retries(#n)));
    let timeout = options.timeout.map(|t| {
        let t = nanos(t);
        quote!(.with_timeout(#p::Duration::from_nanos(#t)))
    });
    let backoff = options.backoff.map(|b| {
        let b = nanos(b);
        quote!(.with_backoff(#p::Duration::from_nanos(#b)))
    });
    quote!(#p::NodeOptions::DEFAULT #retries #timeout #backoff)
}
