//! How people are compared. Emails compare case-insensitively everywhere (and ignoring surrounding
//! blanks), so that nobody becomes a different person, or the same one, by changing case: that would
//! be a way around "no self-approval".

pub(crate) use crate::text::email_key;

/// Whether two email addresses name the same mailbox, ignoring case and surrounding blanks.
/// Compares without allocating: this runs for every user principal a decision checks.
pub fn same_email(a: &str, b: &str) -> bool {
    let a = a.trim();
    let b = b.trim();
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_and_blanks_do_not_make_another_person() {
        assert!(same_email("Alice@Example.com", "alice@example.com"));
        assert!(same_email(" alice@example.com", "alice@example.com "));
        assert!(same_email("ÉVA@example.com", "éva@example.com"));
        assert!(!same_email("alice@example.com", "alice2@example.com"));
        assert_eq!(email_key(" Bob@X.org "), "bob@x.org");
    }
}
