//! The `workflow!` grammar:
//!
//! ```text
//! invocation := ("crate" "=" tokens ";")? flow+
//! flow       := attribute* visibility Ident "=" (chain | "{" (chain ";")* "}") ";"
//! chain      := term (("->" | "=>") term)*
//! term       := path ("as" Ident)? | "[" chain ("," chain)* ","? "]"
//! ```

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{braced, bracketed, token, Attribute, Ident, Path, Token, Visibility};

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
    pub(crate) rest: Vec<(Op, Term)>,
}

/// The operators between terms.
pub(crate) enum Op {
    /// `->`: the next term takes this one's single output.
    Then(Token![->]),
    /// `=>`: the next vertex joins this group's outputs.
    Join(Token![=>]),
}

/// A vertex or a group of branches.
pub(crate) enum Term {
    Vertex(VertexRef),
    Group {
        bracket: token::Bracket,
        branches: Punctuated<Chain, Token![,]>,
    },
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
            let op = if input.peek(Token![->]) {
                Op::Then(input.parse()?)
            } else if input.peek(Token![=>]) {
                Op::Join(input.parse()?)
            } else {
                break;
            };
            rest.push((op, input.parse()?));
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

impl ToTokens for Op {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Op::Then(arrow) => arrow.to_tokens(tokens),
            Op::Join(arrow) => arrow.to_tokens(tokens),
        }
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
        for (op, term) in &self.rest {
            op.to_tokens(tokens);
            term.to_tokens(tokens);
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
        }
    }
}
