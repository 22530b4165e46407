//! [`PostgresOptions`]: how a [`PostgresPersister`](crate::PostgresPersister) connects and
//! commits.

use std::sync::Arc;
use std::time::Duration;

use burr_core::persistence::{Clock, SystemClock};

/// How to connect a [`PostgresPersister`](crate::PostgresPersister).
///
/// ```
/// use burr_postgres::PostgresOptions;
///
/// let options = PostgresOptions::new().pool_size(16).writers(4);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    pub(crate) pool_size: usize,
    pub(crate) writers: usize,
    pub(crate) connect_timeout: Duration,
    pub(crate) statement_timeout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        PostgresOptions {
            pool_size: 8,
            writers: 2,
            connect_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }
}

impl PostgresOptions {
    /// The defaults: a pool of 8 connections, 2 of them committing at once, a connect
    /// timeout of 10 s.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most connections the persister opens (commits and reads share them; one more,
    /// outside the pool, renews leases in the background). Every process connected to the
    /// database opens up to this many: keep `processes x pool_size` under the server's
    /// `max_connections` (100 by default).
    pub fn pool_size(mut self, size: usize) -> Self {
        self.pool_size = size.max(1);
        self
    }

    /// How many transactions of saves may be in flight at once. Saves queued while they
    /// are go together in the next one (group commit), so a few are enough; more help
    /// only when the server has cores to spare.
    pub fn writers(mut self, writers: usize) -> Self {
        self.writers = writers.max(1);
        self
    }

    /// How long connecting to the server may take before it is an error (when the URL
    /// does not say: its `connect_timeout` wins).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one statement may run (or wait for a lock held by another connection)
    /// before the server cancels it and the operation fails with
    /// [`PersistenceError::Database`](burr_core::persistence::PersistenceError::Database)
    /// instead of hanging. Default 30 s; a URL whose `options` already set
    /// `statement_timeout` wins.
    pub fn statement_timeout(mut self, timeout: Duration) -> Self {
        self.statement_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The clock leases are judged by. Default: [`SystemClock`]; a test gives a
    /// [`ManualClock`](burr_core::persistence::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How long one statement may run ([`statement_timeout`](Self::statement_timeout)).
    pub fn get_statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// The most connections the persister opens ([`pool_size`](Self::pool_size)).
    pub fn get_pool_size(&self) -> usize {
        self.pool_size
    }

    /// How long connecting may take ([`connect_timeout`](Self::connect_timeout)).
    pub fn get_connect_timeout(&self) -> Duration {
        self.connect_timeout
    }
}
