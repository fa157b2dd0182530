//! "Did you mean …?" suggestions for misspelt names.

/// The candidate closest to `word`, if one is close enough to be a likely typo.
///
/// Names that differ only in case, `-` or `_` always match (`web-front` and
/// `webfront`); otherwise the edit distance must be at most a third of the
/// word's length (and at least one edit is always allowed), counting
/// Levenshtein edits over characters.
pub fn closest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let normalized = normalize(word);
    let limit = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        let distance = if normalize(candidate) == normalized { 0 } else { strsim::levenshtein(word, candidate) };
        if distance <= limit && best.is_none_or(|(d, _)| distance < d) {
            best = Some((distance, candidate));
        }
    }
    best.map(|(_, candidate)| candidate)
}

fn normalize(word: &str) -> String {
    word.chars().filter(|c| *c != '-' && *c != '_').flat_map(char::to_lowercase).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_and_separator_variants() {
        let keys = ["pkg_name", "pkg_type", "pkg_dir", "depends_on"];
        assert_eq!(closest("pkg_nmae", keys), Some("pkg_name"));
        assert_eq!(closest("depend_on", keys), Some("depends_on"));
        assert_eq!(closest("webfront", ["web-front", "pet_api"]), Some("web-front"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn counts_edits_in_characters_not_bytes() {
        // `é` is two bytes but one edit from `e`; a third of 4 characters allows 1.
        assert_eq!(closest("café", ["cafe"]), Some("cafe"));
        assert_eq!(closest("cafe", ["çafé"]), None);
    }
}
