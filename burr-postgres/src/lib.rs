//! A PostgreSQL persister for burr-rs: checkpoints, app records and leases in a database
//! that the processes of several machines share.
//!
//! [`PostgresPersister`] implements [`Persister`](burr_core::persistence::Persister) and
//! every capability trait (leases, app records, child listing, history, prune, delete)
//! with the SQLite persister's semantics, and passes the same conformance suite. Connect
//! by URL:
//!
//! ```no_run
//! # async fn run() -> Result<(), burr_core::persistence::PersistenceError> {
//! let persister = burr_postgres::PostgresPersister::connect("postgres://burr@localhost/burr").await?;
//! # let _ = persister; Ok(()) }
//! ```
//!
//! The files here are its parts, one concept each: `database` (the URL and the errors
//! that name it), `schema` (tables, versions, migrations under an advisory lock),
//! `layout` (columns, inline values and their compaction), `read` (the state at a
//! sequence id, listings), `write` (what each write does in a transaction, what the
//! persister remembers), `commit` (group commit, pipelined), `lease` (one runner per app
//! id, fenced), `keeper` (background lease renewal), `cache` (the work cache's store, [`PgCache`]), `options`, `persister` (the type and
//! its trait implementations); `testing` (feature `testing`) starts a throwaway server
//! for tests.

mod cache;
mod commit;
mod database;
mod keeper;
mod layout;
mod lease;
mod options;
mod persister;
mod read;
mod record;
mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod write;

pub use cache::PgCache;
pub use options::PostgresOptions;
pub use persister::PostgresPersister;
pub use schema::{migrate, SCHEMA_VERSION};
