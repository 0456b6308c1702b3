//! Templates that turn a Latch user's email into a login in the target system (`role_template`
//! for databases, `iam_user_template` for AWS): `{local}` is the part before `@`, `{email}` the
//! whole address, anything else is literal text.

/// The placeholders a template may use.
const PLACEHOLDERS: &[&str] = &["local", "email"];

/// The template configured under `field` in an integration's settings, checked, or `{local}` when
/// it is not set. Problems go to `problems` (and `{local}` is returned in their place).
pub(crate) fn setting(settings: &toml::Table, field: &str, problems: &mut Vec<String>) -> String {
    match settings.get(field) {
        None => "{local}".to_string(),
        Some(toml::Value::String(text)) => {
            check(field, text, problems);
            text.clone()
        }
        Some(other) => {
            problems.push(format!("{field} {other} must be a string"));
            "{local}".to_string()
        }
    }
}

/// Reports an empty template and `{name}` placeholders other than `{local}` and `{email}`,
/// naming `field` and the template.
pub(crate) fn check(field: &str, template: &str, problems: &mut Vec<String>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            problems.push(format!(
                "{field} {template:?}: unknown placeholder {{{name}}} (known: {{local}}, {{email}})"
            ));
        }
        rest = &after[close + 1..];
    }
    if template.is_empty() {
        problems.push(format!("{field} \"\" must not be empty"));
    }
}

/// The login for `email`. Placeholders are replaced in one pass, so text coming from the email is
/// never expanded again.
pub(crate) fn render(template: &str, email: &str) -> String {
    let local = email.rsplit_once('@').map_or(email, |(local, _)| local);
    let mut out = String::with_capacity(template.len() + email.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        if let Some(tail) = after.strip_prefix("{local}") {
            out.push_str(local);
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("{email}") {
            out.push_str(email);
            rest = tail;
        } else {
            out.push('{');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_once_and_unknown_ones_are_named() {
        assert_eq!(render("{local}", "ada@example.com"), "ada");
        assert_eq!(render("u-{email}", "ada@example.com"), "u-ada@example.com");
        assert_eq!(render("a{b", "ada@example.com"), "a{b");
        assert_eq!(render("{local}", "{email}@x"), "{email}");
        assert_eq!(render("{local}-{email}", "{email}@y"), "{email}-{email}@y");
        let mut problems = Vec::new();
        check("role_template", "{first}.{local}", &mut problems);
        check("iam_user_template", "", &mut problems);
        assert_eq!(
            problems,
            [
                "role_template \"{first}.{local}\": unknown placeholder {first} (known: {local}, {email})",
                "iam_user_template \"\" must not be empty",
            ]
        );
    }
}
