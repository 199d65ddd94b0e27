//! The response body type and small constructors; capped collection for the token endpoint.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Incoming;

/// Every response body: either one of ours (full) or an upstream's, streamed.
pub type Body = BoxBody<Bytes, hyper::Error>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Reads a whole request body of at most `limit` bytes.
pub async fn collect_capped(body: Incoming, limit: usize) -> Result<Bytes, CollectError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(CollectError::TooLarge),
        Err(_) => Err(CollectError::Read),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("request body too large")]
    TooLarge,
    #[error("request body could not be read")]
    Read,
}
