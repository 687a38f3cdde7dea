//! Keeping secrets out of logs and error messages: the password of a Redis URL and the
//! service's bearer tokens are shown as `***` wherever a setting is printed.

/// `url` with the password of its user info (`scheme://user:password@host`) replaced by
/// `***`; anything without one is returned as it is.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|at| at + 3) else {
        return url.to_owned();
    };
    let authority_end = url[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |at| scheme_end + at);
    let Some(at) = url[scheme_end..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &url[scheme_end..scheme_end + at];
    match user_info.split_once(':') {
        Some((user, _password)) => format!(
            "{}{user}:***{}",
            &url[..scheme_end],
            &url[scheme_end + at..]
        ),
        // `user@host`: a name, no password.
        None => url.to_owned(),
    }
}

/// Shows a secret as `***` (`None` when absent) in a `Debug` output.
#[cfg(feature = "http")]
pub(crate) struct Hidden<'a, T>(pub(crate) &'a Option<T>);

#[cfg(feature = "http")]
impl<T> std::fmt::Debug for Hidden<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(_) => f.write_str("Some(***)"),
            None => f.write_str("None"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_hidden_and_nothing_else() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
            ("redis://:pw@h:6379", "redis://:***@h:6379"),
            ("rediss://user:p@ss@h/0", "rediss://user:***@h/0"),
            ("redis://name@h", "redis://name@h"),
            ("redis://h/0?x=a@b", "redis://h/0?x=a@b"),
            ("notaurl", "notaurl"),
            ("http://user:pw@h", "http://user:***@h"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }
}
