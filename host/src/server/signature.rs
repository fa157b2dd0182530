//! GitHub's webhook signature: `X-Hub-Signature-256: sha256=<hex>`, the
//! HMAC-SHA256 of the raw body keyed with the webhook's secret. Compared in
//! constant time (`hmac`'s `verify_slice`), so that a caller learns nothing
//! from how long a wrong guess takes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Whether `header` (the `X-Hub-Signature-256` value) signs `body` with `secret`.
pub(crate) fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(signature) = header.strip_prefix("sha256=").and_then(|hex| hex::decode(hex).ok()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

/// The header GitHub would send for `body`: for tests and the demo script.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // A key of any length is accepted by HMAC.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of GitHub's "Validating webhook deliveries".
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const EXPECTED: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_s_published_example_verifies() {
        assert_eq!(sign(SECRET, b"Hello, World!"), EXPECTED);
        assert!(verify(SECRET, b"Hello, World!", EXPECTED));
    }

    #[test]
    fn anything_else_is_refused() {
        assert!(!verify(SECRET, b"Hello, World?", EXPECTED), "another body");
        assert!(!verify(b"another secret", b"Hello, World!", EXPECTED), "another secret");
        assert!(!verify(SECRET, b"Hello, World!", &EXPECTED.replace("sha256=", "sha1=")), "another algorithm");
        assert!(!verify(SECRET, b"Hello, World!", &EXPECTED[..EXPECTED.len() - 2]), "a shorter signature");
        assert!(!verify(SECRET, b"Hello, World!", "sha256=zz"), "not hex");
        assert!(!verify(SECRET, b"Hello, World!", ""), "empty");
    }
}
