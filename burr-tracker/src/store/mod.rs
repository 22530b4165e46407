//! The tracker's tables: their schema, the writer that fills them, and the queries that
//! read them back.

pub(crate) mod event;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod read;
pub(crate) mod schema;
pub(crate) mod writer;
