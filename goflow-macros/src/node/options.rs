//! `#[node(name = "...", retries = N, timeout = "5s", backoff = "100ms", crate = path)]`.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::Parser as _;
use syn::{LitInt, LitStr, Path};

use crate::duration;

/// The parsed options of one `#[node]`.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) name: Option<String>,
    pub(crate) retries: Option<u32>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) backoff: Option<Duration>,
    pub(crate) krate: Option<Path>,
}

const KNOWN: &str = "`name`, `retries`, `timeout`, `backoff` and `crate`";

impl Options {
    /// Parses the attribute's arguments; every problem is reported, not only the first.
    pub(crate) fn parse(args: TokenStream) -> (Self, Option<syn::Error>) {
        let mut options = Options::default();
        let mut errors: Option<syn::Error> = None;
        let mut push = |error: syn::Error| match &mut errors {
            Some(all) => all.combine(error),
            None => errors = Some(error),
        };
        let parser = syn::meta::parser(|meta| {
            let key = meta
                .path
                .get_ident()
                .map(ToString::to_string)
                .unwrap_or_default();
            let duplicate = || meta.error(format!("`{key}` is given twice"));
            match key.as_str() {
                "name" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let value = lit.value();
                    if value.is_empty() {
                        push(syn::Error::new(lit.span(), "a node name cannot be empty"));
                    }
                    if options.name.replace(value).is_some() {
                        push(duplicate());
                    }
                }
                "retries" => {
                    let lit: LitInt = meta.value()?.parse()?;
                    let value = lit.base10_parse::<u32>().map_err(|_| {
                        syn::Error::new(
                            lit.span(),
                            "`retries` must be a whole number from 0 to 4294967295",
                        )
                    })?;
                    if options.retries.replace(value).is_some() {
                        push(duplicate());
                    }
                }
                "timeout" | "backoff" => {
                    let lit: LitStr = meta.value()?.parse()?;
                    let value = match duration::parse(&lit.value()) {
                        Ok(value) => value,
                        Err(message) => {
                            push(syn::Error::new(lit.span(), message));
                            return Ok(());
                        }
                    };
                    if key == "timeout" && value.is_zero() {
                        push(syn::Error::new(
                            lit.span(),
                            "`timeout` must be longer than zero; leave it out for no limit",
                        ));
                    }
                    let slot = if key == "timeout" {
                        &mut options.timeout
                    } else {
                        &mut options.backoff
                    };
                    if slot.replace(value).is_some() {
                        push(duplicate());
                    }
                }
                "crate" => {
                    let path: Path = meta.value()?.parse()?;
                    if options.krate.replace(path).is_some() {
                        push(duplicate());
                    }
                }
                _ => {
                    // Consume the value so that the options after this one are still checked.
                    if meta.input.peek(syn::Token![=]) {
                        meta.value()?.parse::<syn::Expr>()?;
                    }
                    let path = &meta.path;
                    push(meta.error(format!(
                        "unknown `#[node]` option `{}`; the options are {KNOWN}",
                        quote!(#path).to_string().replace(' ', "")
                    )));
                }
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            push(error);
        }
        (options, errors)
    }
}
