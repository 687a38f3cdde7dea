//! The `workflow!` grammar:
//!
//! ```text
//! invocation := ("crate" "=" tokens ";")? flow+
//! flow       := attribute* visibility Ident "=" (chain | "{" (chain ";")* "}") ";"
//! chain      := term link*
//! link       := "->" term | "=>" term | "?" "{" arm ("," arm)* ","? "}"
//! term       := path ("as" Ident)? | "[" chain ("," chain)* ","? "]" | "each" "{" chain "}"
//! arm        := Ident "=>" (chain | "{" "}")
//! ```
//!
//! `each` is a keyword only when a `{` follows it: a node named `each` stays usable.
//! Where the conditional and the for-each may stand (`?` after a single vertex and before
//! `-> vertex`, `each` after `->` and before `=> vertex`) is checked during lowering, which
//! can say more than a parse error.

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, token, Attribute, Ident, Path, Token, Visibility};

mod kw {
    syn::custom_keyword!(each);
}

/// One `workflow!` invocation.
pub(crate) struct Invocation {
    /// The path of the `goflow` crate, passed by the facade's `macro_rules!` as `$crate`.
    pub(crate) krate: Option<TokenStream>,
    pub(crate) flows: Vec<FlowDef>,
}

/// `pub Kyc = ...;`
pub(crate) struct FlowDef {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) body: Vec<Chain>,
}

/// `a -> [b, c] => d`
pub(crate) struct Chain {
    pub(crate) first: Term,
    pub(crate) rest: Vec<Link>,
}

/// What follows a term in a chain.
pub(crate) enum Link {
    /// `-> term`: the term takes this one's single output.
    Then(Token![->], Term),
    /// `=> term`: the term (a single vertex) joins this group's outputs, or gathers the
    /// outputs of the `each` body before it.
    Join(Token![=>], Term),
    /// `? { Variant => arm, ... }`: the vertex before picks one arm by its output's variant.
    Branch(Token![?], Arms),
}

/// A vertex, a group of branches, or a for-each body.
pub(crate) enum Term {
    Vertex(VertexRef),
    Group {
        bracket: token::Bracket,
        branches: Punctuated<Chain, Token![,]>,
    },
    /// `each { chain }`
    Each {
        each: Ident,
        brace: token::Brace,
        body: Box<Chain>,
    },
}

/// The braced arms of a conditional.
pub(crate) struct Arms {
    pub(crate) brace: token::Brace,
    pub(crate) arms: Punctuated<Arm, Token![,]>,
}

/// `Variant => chain` or `Variant => {}`.
pub(crate) struct Arm {
    pub(crate) variant: Ident,
    pub(crate) arrow: Token![=>],
    /// `None` for `{}`: the payload passes straight to the vertex after the conditional.
    pub(crate) chain: Option<Chain>,
    /// The tokens of the arm's target: the chain, or the empty braces.
    pub(crate) target: TokenStream,
}

/// `face_detect`, `nodes::face_detect`, `face_detect as detect_again`, `Kyc`.
pub(crate) struct VertexRef {
    pub(crate) path: Path,
    pub(crate) alias: Option<Ident>,
}

impl VertexRef {
    /// The vertex name: the alias, else the path's last segment.
    pub(crate) fn name(&self) -> &Ident {
        self.alias.as_ref().unwrap_or_else(|| {
            &self
                .path
                .segments
                .last()
                .expect("paths have a segment")
                .ident
        })
    }
}

impl Parse for Invocation {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let krate = if input.peek(Token![crate]) && input.peek2(Token![=]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            let mut path = TokenStream::new();
            while !input.peek(Token![;]) {
                path.extend([input.parse::<TokenTree>()?]);
            }
            input.parse::<Token![;]>()?;
            Some(path)
        } else {
            None
        };
        let mut flows = Vec::new();
        while !input.is_empty() {
            flows.push(input.parse()?);
        }
        if flows.is_empty() {
            return Err(input.error(
                "expected a workflow declaration, like `pub Kyc = get_image -> [detect, matched] => mark;`",
            ));
        }
        Ok(Self { krate, flows })
    }
}

impl Parse for FlowDef {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let ident: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a workflow name, like `pub Kyc = get_image -> mark;`",
            )
        })?;
        input.parse::<Token![=]>()?;
        let body = if input.peek(token::Brace) {
            let content;
            braced!(content in input);
            let mut chains = Vec::new();
            while !content.is_empty() {
                chains.push(content.parse()?);
                if content.is_empty() {
                    break;
                }
                content.parse::<Token![;]>()?;
            }
            if chains.is_empty() {
                return Err(syn::Error::new(
                    ident.span(),
                    format!("workflow `{ident}` has no vertices"),
                ));
            }
            chains
        } else {
            vec![input.parse()?]
        };
        input.parse::<Token![;]>()?;
        Ok(Self {
            attrs,
            vis,
            ident,
            body,
        })
    }
}

impl Parse for Chain {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let first = input.parse()?;
        let mut rest = Vec::new();
        loop {
            if input.peek(Token![->]) {
                rest.push(Link::Then(input.parse()?, input.parse()?));
            } else if input.peek(Token![=>]) {
                rest.push(Link::Join(input.parse()?, input.parse()?));
            } else if input.peek(Token![?]) {
                let question: Token![?] = input.parse()?;
                if !input.peek(token::Brace) {
                    return Err(syn::Error::new(
                        question.spans[0],
                        "expected the arms of a conditional after `?`, as in `check ? { Pass => a, Fail => b } -> c`",
                    ));
                }
                rest.push(Link::Branch(question, input.parse()?));
            } else {
                break;
            }
        }
        Ok(Self { first, rest })
    }
}

impl Parse for Term {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        if input.peek(token::Bracket) {
            let content;
            let bracket = bracketed!(content in input);
            let branches = content.parse_terminated(Chain::parse, Token![,])?;
            if branches.is_empty() {
                return Err(syn::Error::new(
                    bracket.span.join(),
                    "an empty group `[]` has no branches",
                ));
            }
            return Ok(Term::Group { bracket, branches });
        }
        if input.peek(kw::each) && input.peek2(token::Brace) {
            let each = input.parse::<kw::each>()?;
            let content;
            let brace = braced!(content in input);
            if content.is_empty() {
                return Err(syn::Error::new(
                    brace.span.join(),
                    "an empty `each {}` has no body; write the vertices to run for each item, as in `each { check }`",
                ));
            }
            let body = content.parse()?;
            if !content.is_empty() {
                return Err(content.error(
                    "expected the end of the `each` body: it holds one chain, as in `each { a -> [b, c] => d }`",
                ));
            }
            return Ok(Term::Each {
                each: Ident::new("each", each.span),
                brace,
                body: Box::new(body),
            });
        }
        let lookahead = input.lookahead1();
        if lookahead.peek(Ident)
            || lookahead.peek(Token![::])
            || lookahead.peek(Token![crate])
            || lookahead.peek(Token![super])
            || lookahead.peek(Token![self])
        {
            let path = Path::parse_mod_style(input)?;
            let alias = if input.peek(Token![as]) {
                input.parse::<Token![as]>()?;
                Some(input.parse()?)
            } else {
                None
            };
            Ok(Term::Vertex(VertexRef { path, alias }))
        } else {
            Err(input.error("expected a node or workflow name, or a `[...]` group of branches"))
        }
    }
}

impl Parse for Arms {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let content;
        let brace = braced!(content in input);
        let arms = content.parse_terminated(Arm::parse, Token![,])?;
        if arms.is_empty() {
            return Err(syn::Error::new(
                brace.span.join(),
                "a conditional needs an arm for each variant, as in `{ Pass => a, Fail => b }`",
            ));
        }
        Ok(Self { brace, arms })
    }
}

impl Parse for Arm {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let variant: Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected an arm: a variant of the output's enum, `=>`, then a chain or `{}`, as in `Pass => face_match`",
            )
        })?;
        let arrow = input.parse()?;
        if input.peek(token::Brace) {
            let content;
            let brace = braced!(content in input);
            if !content.is_empty() {
                return Err(syn::Error::new(
                    brace.span.join(),
                    "write an arm's chain without braces (`Pass => a -> b`), or `{}` for an arm that passes the payload straight on",
                ));
            }
            let mut target = TokenStream::new();
            brace.surround(&mut target, |_| {});
            return Ok(Self {
                variant,
                arrow,
                chain: None,
                target,
            });
        }
        let chain: Chain = input.parse()?;
        let target = chain.to_token_stream();
        Ok(Self {
            variant,
            arrow,
            chain: Some(chain),
            target,
        })
    }
}

impl ToTokens for Link {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Link::Then(arrow, term) => {
                arrow.to_tokens(tokens);
                term.to_tokens(tokens);
            }
            Link::Join(arrow, term) => {
                arrow.to_tokens(tokens);
                term.to_tokens(tokens);
            }
            Link::Branch(question, arms) => {
                question.to_tokens(tokens);
                arms.to_tokens(tokens);
            }
        }
    }
}

impl ToTokens for Arms {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.brace.surround(tokens, |t| {
            for pair in self.arms.pairs() {
                let arm = pair.value();
                arm.variant.to_tokens(t);
                arm.arrow.to_tokens(t);
                arm.target.to_tokens(t);
                pair.punct().to_tokens(t);
            }
        });
    }
}

impl ToTokens for VertexRef {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.path.to_tokens(tokens);
        if let Some(alias) = &self.alias {
            <Token![as]>::default().to_tokens(tokens);
            alias.to_tokens(tokens);
        }
    }
}

impl ToTokens for Chain {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.first.to_tokens(tokens);
        for link in &self.rest {
            link.to_tokens(tokens);
        }
    }
}

impl ToTokens for Term {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Term::Vertex(vertex) => vertex.to_tokens(tokens),
            Term::Group { bracket, branches } => {
                bracket.surround(tokens, |t| branches.to_tokens(t))
            }
            Term::Each { each, brace, body } => {
                each.to_tokens(tokens);
                brace.surround(tokens, |t| body.to_tokens(t));
            }
        }
    }
}
