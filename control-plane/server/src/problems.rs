//! How a refused input is reported: every problem, one per line, under a count.

/// `2 problems found; nothing was stored:` followed by the problems, one per line.
pub fn summary<S: AsRef<str>>(problems: &[S]) -> String {
    let lines: Vec<&str> = problems.iter().map(AsRef::as_ref).collect();
    format!(
        "{} problem{} found; nothing was stored:\n{}",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" },
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_and_lists_every_problem() {
        assert_eq!(
            super::summary(&["a: bad", "b: worse"]),
            "2 problems found; nothing was stored:\na: bad\nb: worse"
        );
        assert_eq!(
            super::summary(&["a: bad"]),
            "1 problem found; nothing was stored:\na: bad"
        );
    }
}
