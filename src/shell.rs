//! Shell text that runs exactly what it shows. Values templated into a command are quoted as one
//! word each; secrets are never put in shell text at all: commands name environment variables
//! (below) that mqlab sets for the run. A leaf: it imports nothing from the app.

/// The management API's user for a lesson command (`curl -u "$MQLAB_MGMT_USER:…"`).
pub const MGMT_USER_VAR: &str = "MQLAB_MGMT_USER";
/// The management API's password for a lesson command; set in the command's environment only.
pub const MGMT_PASSWORD_VAR: &str = "MQLAB_MGMT_PASSWORD";

/// The shell lesson commands run in: bash where there is one (what the lessons are written for,
/// `source venv/bin/activate` included: macOS and Linux both have it), else `sh`.
pub fn program() -> &'static str {
    static FOUND: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    FOUND.get_or_init(|| {
        let path = std::env::var_os("PATH").unwrap_or_default();
        if std::env::split_paths(&path).any(|d| d.join("bash").is_file()) { "bash" } else { "sh" }
    })
}

/// `value` as one shell word: unchanged when it needs no quoting (`messaging`,
/// `http://localhost:15672`), otherwise quoted so that `;`, `$`, backquotes, quotes, spaces and
/// the like are literal. A NUL (which no argument can carry) is dropped.
pub fn quote(value: &str) -> String {
    let clean: String = value.chars().filter(|c| *c != '\0').collect();
    match shlex::try_quote(&clean) {
        Ok(q) => q.into_owned(),
        Err(_) => "''".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn plain_words_stay_as_they_are_and_the_rest_is_one_literal_word() {
        assert_eq!(quote("messaging"), "messaging");
        assert_eq!(quote("http://localhost:15672"), "http://localhost:15672");
        for hostile in ["a;touch FILE;b", "$(id)", "`id`", "it's", "a\"b", "x y", "a|b&c", "back\\slash", "!bang", ""] {
            let q = quote(hostile);
            assert_eq!(shlex::split(&q), Some(vec![hostile.to_string()]), "{hostile:?} → {q}");
        }
    }
}
