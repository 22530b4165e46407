//! The tracker's tables: their schema, the writer that fills them, and the queries that
//! read them back.

pub(crate) mod event;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod read;
#[cfg(feature = "postgres")]
pub(crate) mod read_postgres;
pub(crate) mod schema;
pub(crate) mod writer;

/// `url` without its password (`postgres://user:secret@host/db` -> `postgres://user@host/db`).
#[cfg(feature = "postgres")]
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_owned(),
    }
}
