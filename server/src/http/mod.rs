//! The HTTP shell around the relay's core: extract and check a request,
//! make one call into [`crate::relay`] (or the accounts code), and answer
//! with a `conclave_proto` type. Status codes come only from
//! [`ApiError`](crate::ApiError).

pub(crate) mod messages;
pub(crate) mod stream;
