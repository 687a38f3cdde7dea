//! `#[node]`: keeps the function as written and adds a same-named braced struct (type namespace
//! only, so no clash with the fn) implementing the runtime's `Node` and `Step` traits.

mod options;
mod signature;

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens as _};
use syn::spanned::Spanned as _;
use syn::ItemFn;

use self::options::Options;
use self::signature::Signature;
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
    let (options, option_errors) = Options::parse(args);
    let signature = Signature::read(&function);
    let mut errors = Errors::default();
    errors.extend(option_errors);
    let signature = match signature {
        Ok(signature) => signature,
        Err(error) => {
            errors.push(error);
            return fallback(&function, errors);
        }
    };
    if let Err(error) = errors.finish() {
        let mut errors = Errors::default();
        errors.push(error);
        return fallback(&function, errors);
    }
    node_impl(&function, &signature, &options)
}

/// On error: the function as written (so its callers still compile), a struct of the same
/// name (so workflows naming it do not add "cannot find type" errors), and the errors.
fn fallback(function: &ItemFn, errors: Errors) -> TokenStream {
    let ident = &function.sig.ident;
    let error = errors.finish().err().map(|e| e.to_compile_error());
    // A method's attribute sits inside an `impl`, where no struct may go.
    let is_method = function.sig.receiver().is_some();
    let marker = (!is_method).then(|| {
        quote! {
            #[doc(hidden)]
            #[allow(non_camel_case_types, unreachable_pub)]
            pub struct #ident {}
        }
    });
    quote! {
        #function
        #marker
        #error
    }
}

fn node_impl(function: &ItemFn, signature: &Signature, options: &Options) -> TokenStream {
    let krate = options
        .krate
        .as_ref()
        .map_or_else(|| quote!(::goflow), |path| path.to_token_stream());
    let p = quote!(#krate::__private);
    let vis = &function.vis;
    let ident = &function.sig.ident;
    let name = options.name.clone().unwrap_or_else(|| ident.to_string());
    let arity = signature.inputs.len();
    let inputs = &signature.inputs;
    let output = &signature.output;

    // The input type: the parameter's type, or the tuple of all of them for a join node. The
    // tuple's parentheses take the span of the parameter list, so that a bound error on the
    // tuple points at the parameters.
    let paren = function.sig.paren_token.span.join();
    let input_type = if arity == 1 {
        inputs[0].to_token_stream()
    } else {
        quote_spanned!(paren=> ( #(#inputs),* ))
    };

    // The associated types carry the spans of the user's types, so that an error about a
    // payload type (a missing serde derive, or a private type in this public impl) points
    // at the parameter or return type.
    let input_item = {
        let span = if arity == 1 { inputs[0].span() } else { paren };
        quote_spanned!(span=> type Input = #input_type;)
    };
    let output_item = quote_spanned!(output.span()=> type Output = #output;);

    // Nodes are `async` by contract, even those that never await: clippy's `unused_async`
    // does not apply to them.
    let mut function = function.clone();
    function
        .attrs
        .push(syn::parse_quote!(#[allow(clippy::unused_async)]));

    let args: Vec<_> = (0..arity)
        .map(|i| format_ident!("__goflow_arg{}", i))
        .collect();
    let bind_input = if arity == 1 {
        quote!(let #(#args)* = __goflow_input;)
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

    // Only the options given are set: the defaults live once, in `NodeOptions::DEFAULT`.
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
    let joins = (arity > 1).then(|| quote!(impl #p::Joins<#arity, #input_type> for #ident {}));
    // The type is `pub` whatever the function's visibility: a `pub` workflow names it in its
    // associated types, where a less visible type is a hard error (E0446). It is a field-less
    // marker, so exposing it gives nothing away; it stays out of the docs unless the function
    // itself is `pub`.
    let hidden = (!matches!(vis, syn::Visibility::Public(_))).then(|| quote!(#[doc(hidden)]));
    let doc = format!(
        "The workflow vertex of the node function [`{ident}`](fn@{ident}), generated by `#[node]`."
    );

    quote! {
        #function

        #[doc = #doc]
        #hidden
        #[allow(non_camel_case_types, unreachable_pub)]
        pub struct #ident {}

        impl #p::Node for #ident {
            #input_item
            #output_item
            const NAME: &'static str = #name;
            const ARITY: usize = #arity;

            fn options() -> #p::NodeOptions {
                #p::NodeOptions::DEFAULT #retries #timeout #backoff
            }

            fn call(
                __goflow_input: Self::Input,
                #ctx_param: #p::Context,
            ) -> impl #p::Future<Output = #p::Result<Self::Output, #p::NodeError>> + #p::Send + 'static {
                #bind_input
                async move { #body }
            }
        }

        impl #p::Accepts<#input_type> for #ident {}
        #joins
    }
}
