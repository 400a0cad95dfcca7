//! gzip in memory, as actix-web's `Compress` makes it (flate2's `GzEncoder`, level 1), so
//! that a body gzipped here is byte for byte what `Compress` would have sent: a cached
//! product page's copy (`service::product_cache`) and the bodies the compression
//! middleware gzips on the worker (`http::middleware::compress`).

use std::io::Write;

use bytes::Bytes;

/// `body` gzipped; `None` if it could not be (writing to memory does not fail; a caller
/// sends the body as it is then).
pub fn gzip(body: &[u8]) -> Option<Bytes> {
    let mut enc = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::fast(),
    );
    enc.write_all(body).ok()?;
    enc.finish().ok().map(Bytes::from)
}
