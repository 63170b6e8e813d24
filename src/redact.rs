//! The one place that hides passwords in URLs, for everything shown, logged or exported. A leaf:
//! it imports nothing from the app, so the Celery engine uses it too.

/// `scheme://user:password@host/…` → `scheme://user:**@host/…`, whatever characters the password
/// holds (`/`, `#`, `?` and `@` included, even unencoded: the last `@` ends the user info).
pub fn mask_url(raw: &str) -> String {
    let Some(scheme_end) = raw.find("://") else {
        return raw.to_string();
    };
    let rest_start = scheme_end + 3;
    let rest = &raw[rest_start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = match rest[..authority_end].rfind('@') {
        Some(at) => at,
        // An unencoded `/`, `?` or `#` in the password cuts the authority short: take the last
        // `@` when what comes before it looks like `user:secret`.
        None => match rest.rfind('@') {
            Some(at) if rest[..at].contains(':') && !rest[..at].contains("://") => at,
            _ => return raw.to_string(),
        },
    };
    let userinfo = &rest[..at];
    let masked = match userinfo.find(':') {
        Some(colon) => format!("{}:**", &userinfo[..colon]),
        None => userinfo.to_string(),
    };
    format!("{}{}{}", &raw[..rest_start], masked, &rest[at..])
}

/// An error chain on one line (`a: b: c`), with any password masked.
pub fn one_line(e: &anyhow::Error) -> String {
    mask_urls_in(&format!("{e:#}").replace('\n', " "))
}

/// An error and its causes on one line, each cause once (`a: b: c`), with any password masked.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    mask_urls_in(&s.replace('\n', " "))
}

/// Every URL in a text, masked.
pub fn mask_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let start = rest[..i].rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.')).map(|j| j + 1).unwrap_or(0);
        let end = rest[i..]
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | ']' | '`' | '"' | '\'' | '>' | ','))
            .map(|j| i + j)
            .unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        out.push_str(&mask_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_whatever_they_hold() {
        for (raw, want) in [
            ("amqp://admin:admin123@localhost:5672//", "amqp://admin:**@localhost:5672//"),
            ("amqp://u:pa/ss@host:5672//", "amqp://u:**@host:5672//"),
            ("amqp://u:pa#ss@host/", "amqp://u:**@host/"),
            ("amqp://u:p?a@ss@host/v", "amqp://u:**@host/v"),
            ("redis://:secret@h:6379/0", "redis://:**@h:6379/0"),
            ("http://localhost:15672", "http://localhost:15672"),
            ("amqp://guest@localhost//", "amqp://guest@localhost//"),
        ] {
            assert_eq!(mask_url(raw), want, "{raw}");
            assert!(!mask_url(raw).contains("pa/ss") && !mask_url(raw).contains("secret"));
        }
        assert_eq!(
            mask_urls_in("use amqp://admin:admin123@localhost:5672// and (redis://:pw@h:6379/0)."),
            "use amqp://admin:**@localhost:5672// and (redis://:**@h:6379/0)."
        );
    }
}
