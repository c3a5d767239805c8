//! Text for messages shown to users: quoting values without echoing megabytes. Knows nothing of
//! the domain, so every layer may use it.

/// How many characters of a value an error message quotes.
pub const QUOTE_MAX: usize = 100;

/// `s` itself when short; else its first [`QUOTE_MAX`] characters and how long it was, so that a
/// bad 50 MB field gives a one-line error.
pub fn clip_quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_MAX) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}... ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// `message` with every quoted value (between backticks or double quotes) longer than
/// [`QUOTE_MAX`] characters clipped by [`clip_quote`], and then at most 2,000 characters in all.
pub fn clip_message(message: &str) -> String {
    const MAX: usize = 2_000;
    if message.len() <= MAX {
        return message.to_string();
    }
    let mut out = String::with_capacity(MAX);
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        rest = &rest[open + 1..];
        match rest.find(quote) {
            Some(close) => {
                out.push_str(&clip_quote(&rest[..close]));
                out.push(quote);
                rest = &rest[close + 1..];
            }
            None => {
                out.push_str(&clip_quote(rest));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    if out.len() > MAX {
        let cut = out.char_indices().take_while(|(i, _)| *i < MAX).last().map_or(0, |(i, c)| i + c.len_utf8());
        out.truncate(cut);
        out.push_str("... (message cut)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_quoted_values_are_cut() {
        let v = "9".repeat(5_000_000);
        let m = clip_message(&format!("f.csv line 2: `ContextTokens`: `{v}x` is not a token count >= 1"));
        assert!(m.len() < 300, "{} bytes", m.len());
        assert!(m.starts_with("f.csv line 2: `ContextTokens`: `9999"), "{m}");
        assert!(m.contains("(5000001 characters)` is not a token count"), "{m}");
        assert_eq!(clip_message("short `x`"), "short `x`");
        assert_eq!(clip_quote("abc"), "abc");
    }
}
