//! `prune` and `delete` on the tracker's tables of a PostgreSQL database: the statements
//! of the SQLite store's, each operation one transaction on a connection of its own.

use tokio_postgres::Client;

use super::super::PgSource;
use crate::TrackerError;

/// Run `work` in a transaction on a connection of its own (not the reader's shared one,
/// on which other queries could land inside the transaction).
fn in_transaction<T: Send + 'static>(
    source: &PgSource,
    operation: &'static str,
    work: impl for<'c> FnOnce(
            &'c Client,
        ) -> futures::future::BoxFuture<'c, Result<T, tokio_postgres::Error>>
        + Send
        + 'static,
) -> Result<T, TrackerError> {
    let target = source.target().clone();
    source.run(async move {
        let client = target.connect_here().await?;
        let failed = |e| target.error(operation, e);
        client.batch_execute("BEGIN").await.map_err(failed)?;
        match work(&client).await {
            Ok(out) => {
                client.batch_execute("COMMIT").await.map_err(failed)?;
                Ok(out)
            }
            Err(error) => {
                let _ = client.batch_execute("ROLLBACK").await;
                Err(failed(error))
            }
        }
    })
}

/// Keep an application's tracked steps from sequence id `cut` on: a snapshot of `base`
/// (the state after step `base_seq`, the last one removed) replaces the older ones. How
/// many step attempts were removed.
pub(super) fn prune(
    source: &PgSource,
    app: i64,
    base_seq: i64,
    base: String,
    cut: i64,
) -> Result<usize, TrackerError> {
    in_transaction(source, "prune the tracked steps", move |tx| {
        Box::pin(async move {
            tx.execute(
                "INSERT INTO burr_tracker_snapshots (app, sequence_id, at_us, state) \
                 VALUES ($1, $2, (SELECT coalesce(max(ended_at_us), 0) FROM burr_tracker_steps \
                 WHERE app = $1 AND sequence_id = $2), $3) \
                 ON CONFLICT (app, sequence_id) DO UPDATE SET at_us = excluded.at_us, state = excluded.state",
                &[&app, &base_seq, &base],
            )
            .await?;
            tx.execute(
                "DELETE FROM burr_tracker_snapshots WHERE app = $1 AND sequence_id < $2",
                &[&app, &base_seq],
            )
            .await?;
            let removed = tx
                .execute(
                    "DELETE FROM burr_tracker_steps WHERE app = $1 AND sequence_id < $2",
                    &[&app, &cut],
                )
                .await?;
            tx.execute(
                "DELETE FROM burr_tracker_events WHERE app = $1 AND sequence_id < $2",
                &[&app, &cut],
            )
            .await?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    })
}

/// Delete the tracking data of `apps` ((partition key, app id) each), in one
/// transaction; for each, whether it had any.
pub(super) fn delete(
    source: &PgSource,
    apps: Vec<(Option<String>, String)>,
) -> Result<Vec<bool>, TrackerError> {
    in_transaction(source, "delete tracking data", move |tx| {
        Box::pin(async move {
            let mut found = Vec::with_capacity(apps.len());
            for (partition_key, app_id) in &apps {
                let row = tx
                    .query_opt(
                        "DELETE FROM burr_tracker_apps WHERE partition_key = $1 AND app_id = $2 \
                         RETURNING id",
                        &[&partition_key.as_deref().unwrap_or(""), app_id],
                    )
                    .await?;
                let Some(row) = row else {
                    found.push(false);
                    continue;
                };
                let id: i64 = row.get(0);
                for table in [
                    "burr_tracker_events",
                    "burr_tracker_steps",
                    "burr_tracker_snapshots",
                ] {
                    tx.execute(&format!("DELETE FROM {table} WHERE app = $1"), &[&id])
                        .await?;
                }
                found.push(true);
            }
            Ok(found)
        })
    })
}
