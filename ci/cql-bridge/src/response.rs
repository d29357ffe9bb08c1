//! Response-body rewrites (server v3 -> client v4) that are not RESULT surgery: the SUPPORTED
//! options, whose COMPRESSION list is emptied so clients never ask for compression.

use crate::wire::{ParseResult, Reader, put_string_multimap};

/// Rewrites a SUPPORTED body: the `COMPRESSION` key stays, its list becomes empty; everything
/// else is copied in order.
pub fn rewrite_supported(body: &[u8]) -> ParseResult<Vec<u8>> {
    let mut r = Reader::new(body);
    let mut options = r.string_multimap("SUPPORTED options")?;
    r.expect_end("trailing bytes after SUPPORTED options")?;
    for (key, values) in &mut options {
        if *key == "COMPRESSION" {
            values.clear();
        }
    }
    let mut out = Vec::with_capacity(body.len());
    put_string_multimap(&mut out, &options)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_compression_keeps_the_rest() {
        let mut v3 = Vec::new();
        put_string_multimap(
            &mut v3,
            &[
                ("CQL_VERSION", vec!["3.2.0"]),
                ("COMPRESSION", vec!["snappy", "lz4"]),
            ],
        )
        .unwrap();
        let v4 = rewrite_supported(&v3).unwrap();
        let mut r = Reader::new(&v4);
        assert_eq!(
            r.string_multimap("m").unwrap(),
            vec![("CQL_VERSION", vec!["3.2.0"]), ("COMPRESSION", vec![])]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn truncated_supported_is_an_error() {
        let mut v3 = Vec::new();
        put_string_multimap(&mut v3, &[("COMPRESSION", vec!["lz4"])]).unwrap();
        for cut in 0..v3.len() {
            assert!(rewrite_supported(&v3[..cut]).is_err());
        }
    }
}
