//! `#[node(name = "...", retries = N, timeout = "5s", backoff = "100ms", crate = path)]`.

use std::time::Duration;

use proc_macro2::TokenStream;
use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::parse::{Parse, ParseStream, Parser as _};
use syn::{LitInt, LitStr, Path, Token};

use crate::duration;
use crate::errors::Errors;

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
    /// Parses the attribute's arguments. Every problem goes to `errors`, not only the first:
    /// an option whose value is malformed is skipped, and the options after it are checked.
    pub(crate) fn parse(args: TokenStream, errors: &mut Errors) -> Self {
        let mut options = Options::default();
        let parser = syn::meta::parser(|meta| {
            if let Err(error) = options.option(&meta, errors) {
                errors.push(error);
                skip_value(meta.input)?;
            }
            Ok(())
        });
        if let Err(error) = parser.parse2(args) {
            errors.push(error);
        }
        options
    }

    /// Reads one option. A value that cannot be read is returned as the error; other problems
    /// with the option go to `errors`.
    fn option(&mut self, meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let duplicate = || meta.error(format!("`{key}` is given twice"));
        match key.as_str() {
            "name" => {
                let lit: LitStr = value(meta, "a string, as in `name = \"resize\"`")?;
                let value = lit.value();
                if value.is_empty() {
                    errors.push(syn::Error::new(lit.span(), "a node name cannot be empty"));
                }
                if self.name.replace(value).is_some() {
                    errors.push(duplicate());
                }
            }
            "retries" => {
                let lit: LitInt = value(meta, "a whole number, as in `retries = 3`")?;
                let value = lit.base10_parse::<u32>().map_err(|_| {
                    syn::Error::new(
                        lit.span(),
                        "`retries` must be a whole number from 0 to 4294967295",
                    )
                })?;
                if self.retries.replace(value).is_some() {
                    errors.push(duplicate());
                }
            }
            "timeout" | "backoff" => {
                let lit: LitStr =
                    value(meta, &format!("a duration string, as in `{key} = \"5s\"`"))?;
                let value = duration::parse(&lit.value())
                    .map_err(|message| syn::Error::new(lit.span(), message))?;
                if key == "timeout" && value.is_zero() {
                    errors.push(syn::Error::new(
                        lit.span(),
                        "`timeout` must be longer than zero; leave it out for no limit",
                    ));
                }
                let slot = if key == "timeout" {
                    &mut self.timeout
                } else {
                    &mut self.backoff
                };
                if slot.replace(value).is_some() {
                    errors.push(duplicate());
                }
            }
            "crate" => {
                let path: Path = value(meta, "a path, as in `crate = ::goflow`")?;
                if self.krate.replace(path).is_some() {
                    errors.push(duplicate());
                }
            }
            _ => {
                // Skipped first, so that the error covers the option and its value, and the
                // options after it are still checked.
                skip_value(meta.input)?;
                let path = &meta.path;
                errors.push(meta.error(format!(
                    "unknown `#[node]` option `{}`; the options are {KNOWN}",
                    quote!(#path).to_string().replace(' ', "")
                )));
            }
        }
        Ok(())
    }
}

/// The option's value after `=`, or an error saying what the option takes.
fn value<T: Parse>(meta: &ParseNestedMeta<'_>, takes: &str) -> syn::Result<T> {
    let key = meta
        .path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_default();
    let takes = |error: syn::Error| syn::Error::new(error.span(), format!("`{key}` takes {takes}"));
    meta.value().map_err(takes)?.parse().map_err(takes)
}

/// Skips what is left of an option, up to the comma before the next one.
fn skip_value(input: ParseStream<'_>) -> syn::Result<()> {
    while !input.is_empty() && !input.peek(Token![,]) {
        input.parse::<proc_macro2::TokenTree>()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(args: &str) -> Vec<String> {
        let mut errors = Errors::default();
        Options::parse(args.parse().unwrap(), &mut errors);
        match errors.finish() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn reads_every_option() {
        let mut errors = Errors::default();
        let options = Options::parse(
            r#"name = "n", retries = 2, timeout = "1s", backoff = "5ms", crate = ::g"#
                .parse()
                .unwrap(),
            &mut errors,
        );
        assert!(errors.is_empty());
        assert_eq!(options.name.as_deref(), Some("n"));
        assert_eq!(options.retries, Some(2));
        assert_eq!(options.timeout, Some(Duration::from_secs(1)));
        assert_eq!(options.backoff, Some(Duration::from_millis(5)));
        assert!(options.krate.is_some());
    }

    #[test]
    fn a_malformed_value_does_not_hide_the_options_after_it() {
        let problems = problems(
            r#"retries = "3", name = 7, timout = x + 1, crate, backoff = "fast", retries = 1, retries = 2"#,
        );
        assert_eq!(problems.len(), 6, "{problems:#?}");
        assert!(problems[0].contains("`retries` takes a whole number"));
        assert!(problems[1].contains("`name` takes a string"));
        assert!(problems[2].contains("unknown `#[node]` option `timout`"));
        assert!(problems[3].contains("`crate` takes a path"));
        assert!(problems[4].contains("invalid duration `fast`"));
        assert!(problems[5].contains("`retries` is given twice"));
    }
}
