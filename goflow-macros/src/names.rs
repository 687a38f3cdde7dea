//! Naming rules shared by both macros.

/// `FraudSweep` → `fraud_sweep`, `KYCCheck` → `kyc_check`, `Flow2` → `flow2`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn converts_type_names() {
        assert_eq!(snake_case("Kyc"), "kyc");
        assert_eq!(snake_case("FraudSweep"), "fraud_sweep");
        assert_eq!(snake_case("KYCCheck"), "kyc_check");
        assert_eq!(snake_case("Flow2"), "flow2");
        assert_eq!(snake_case("Chain10Steps"), "chain10_steps");
        assert_eq!(snake_case("Already_Snake"), "already_snake");
    }
}
