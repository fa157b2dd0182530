//! Links: the `Link` header of a paginated HTTP answer (RFC 8288), as
//! registries and GitHub send it — where the next page is — and URL
//! components escaped.

use hyper::header::{self, HeaderMap};

/// The target of `rel="next"` (`</v2/…?last=x&n=100>; rel="next"`), if any.
pub fn next_page(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::LINK).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|link| {
        let (target, params) = link.split_once(';')?;
        params.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

/// What a URL component keeps as it is: RFC 3986's unreserved characters.
const UNRESERVED: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `text` escaped as one URL component (a path segment, a query value).
pub fn encode_component(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::LINK,
            header::HeaderValue::from_static(
                r#"<https://api.github.com/repositories/1/pulls/7/files?page=2>; rel="next", <https://api.github.com/repositories/1/pulls/7/files?page=3>; rel="last""#,
            ),
        );
        assert_eq!(next_page(&headers).as_deref(), Some("https://api.github.com/repositories/1/pulls/7/files?page=2"));
        headers.insert(
            header::LINK,
            header::HeaderValue::from_static(r#"</v2/org/app/tags/list?last=b&n=100>; rel="next""#),
        );
        assert_eq!(next_page(&headers).as_deref(), Some("/v2/org/app/tags/list?last=b&n=100"));
        headers.remove(header::LINK);
        assert_eq!(next_page(&headers), None);
    }
}
