//! Which repository a run belongs to, as GitHub names it: `owner/repo`.

/// `owner/repo` of a repository URL — `https://host/owner/repo(.git)`,
/// `ssh://git@host/owner/repo`, `git@host:owner/repo(.git)`; the last two
/// path segments when a host nests groups — or `None` when the URL names no
/// repository.
pub fn repository_slug(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.split_once(':')?.1,
    };
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let (owner, repo) = path.rsplit_once('/')?;
    let owner = owner.rsplit('/').next()?;
    (!owner.is_empty() && !repo.is_empty()).then(|| format!("{owner}/{repo}"))
}

/// The web address of repository `slug` on the GitHub whose REST API is at
/// `api_url` (`https://api.github.com`, or `https://<host>/api/v3` for
/// GitHub Enterprise).
pub fn repository_url(api_url: &str, slug: &str) -> String {
    let api = api_url.trim_end_matches('/');
    let web = match api.strip_suffix("/api/v3") {
        Some(enterprise) => enterprise.to_string(),
        None if api == "https://api.github.com" => "https://github.com".to_string(),
        None => api.to_string(),
    };
    format!("{web}/{slug}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_come_from_every_kind_of_remote() {
        let slug = |url| repository_slug(url);
        assert_eq!(slug("https://github.com/acme/monorepo.git").as_deref(), Some("acme/monorepo"));
        assert_eq!(slug("git@github.com:acme/monorepo.git").as_deref(), Some("acme/monorepo"));
        assert_eq!(slug("ssh://git@github.com/acme/monorepo").as_deref(), Some("acme/monorepo"));
        assert_eq!(slug("https://ghe.example.com/acme/monorepo/").as_deref(), Some("acme/monorepo"));
        assert_eq!(slug("https://gitlab.example.com/group/sub/monorepo").as_deref(), Some("sub/monorepo"));
        assert_eq!(slug("https://github.com/"), None);
        assert_eq!(slug("https://github.com/acme"), None);
        assert_eq!(slug("/srv/git/monorepo"), None);
    }

    #[test]
    fn a_slug_becomes_the_web_address_of_its_github() {
        assert_eq!(repository_url("https://api.github.com", "acme/x"), "https://github.com/acme/x");
        assert_eq!(repository_url("https://ghe.example.com/api/v3/", "acme/x"), "https://ghe.example.com/acme/x");
        assert_eq!(repository_slug(&repository_url("http://127.0.0.1:9/", "acme/x")).as_deref(), Some("acme/x"));
    }
}
