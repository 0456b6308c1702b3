//! Key-based pagination: a page token is the last key of the previous page, made opaque.

use tonic::Status;

use super::status::invalid_field;

const DEFAULT_PAGE_SIZE: u32 = 100;
pub const MAX_PAGE_SIZE: u32 = 1000;

/// The page size to use for a requested size.
pub fn size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// Makes a page token from the last key of a page.
pub fn token(last_key: &str) -> String {
    hex::encode(last_key)
}

/// The key a page token stands for; `None` for the first page.
pub fn key(page_token: &str) -> Result<Option<String>, Status> {
    if page_token.is_empty() {
        return Ok(None);
    }
    hex::decode(page_token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(Some)
        .ok_or_else(|| {
            invalid_field(
                "page_token",
                format!("{page_token:?} is not a page token from this API"),
            )
        })
}

/// Splits `limit + 1` fetched rows into a page and the token for the next one.
pub fn split<T, K: std::fmt::Display>(
    mut rows: Vec<T>,
    limit: u32,
    key_of: impl Fn(&T) -> K,
) -> (Vec<T>, String) {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows
            .last()
            .map(|row| token(&key_of(row).to_string()))
            .unwrap_or_default();
        (rows, next)
    } else {
        (rows, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_garbage_is_refused() {
        assert_eq!(
            key(&token("prod-readonly")).expect("valid"),
            Some("prod-readonly".to_string())
        );
        assert_eq!(key("").expect("valid"), None);
        let err = key("zz").expect_err("invalid");
        assert!(err.message().contains(r#"page_token: "zz""#));
    }

    #[test]
    fn a_full_page_has_a_next_token() {
        let (page, next) = split(vec!["a", "b", "c"], 2, |s| *s);
        assert_eq!(page, vec!["a", "b"]);
        assert_eq!(key(&next).expect("valid"), Some("b".to_string()));
        let (page, next) = split(vec!["a"], 2, |s| *s);
        assert_eq!((page, next), (vec!["a"], String::new()));
        assert_eq!(size(0), 100);
        assert_eq!(size(5000), 1000);
    }
}
