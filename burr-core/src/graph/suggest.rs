//! The nearest action name to a mistyped one, for "did you mean" in graph errors.

/// The name among `known` closest to `typed` by edit distance, when it is close enough to be
/// a likely typo: at most a third of the longer name's length, and at least one edit.
pub(crate) fn nearest<'a, I>(typed: &str, known: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let typed_lower = typed.to_lowercase();
    known
        .into_iter()
        .filter(|name| *name != typed)
        .map(|name| (distance(&typed_lower, &name.to_lowercase()), name))
        .filter(|(d, name)| *d <= (typed.chars().count().max(name.chars().count()) / 3).max(1))
        .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)))
        .map(|(_, name)| name.to_owned())
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::nearest;

    #[test]
    fn a_typo_finds_the_action_and_a_stranger_finds_none() {
        let known = ["load_discussions", "relate", "publish"];
        assert_eq!(nearest("relte", known).as_deref(), Some("relate"));
        assert_eq!(nearest("Publish", known).as_deref(), Some("publish"));
        assert_eq!(
            nearest("load_discusions", known).as_deref(),
            Some("load_discussions")
        );
        assert_eq!(nearest("summarize", known), None);
        assert_eq!(nearest("x", known), None);
    }
}
