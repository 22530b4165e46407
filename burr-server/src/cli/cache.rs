//! `cache`: the work cache's entries in the database (memoized steps, embeddings):
//! listed, sized and pruned.

use std::time::{Duration, SystemTime};

use burr_core::cache::{CachePrune, CacheStore};
use clap::Subcommand;

use super::CliError;

/// Cache verbs.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entries by namespace and version, with their count and size (the default).
    Summary {
        /// Only this namespace (an action's name, a model).
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Entries, newest first.
    List {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Delete the entries matching every condition given (none: all).
    Prune {
        /// Only this namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Only this version.
        #[arg(long)]
        version: Option<String>,
        /// Only versions other than this one (keep the current one).
        #[arg(long)]
        except_version: Option<String>,
        /// Only entries older than this (e.g. 720h, 90m, 30s).
        #[arg(long, value_parser = super::parse_duration)]
        older_than: Option<Duration>,
    },
}

/// Run a cache verb on `store` (the database's: `SqliteCache` or `PgCache`).
pub(super) async fn cache(
    store: &dyn CacheStore,
    command: Option<CacheCommand>,
    json: bool,
) -> Result<(), CliError> {
    let failed = |e: burr_core::cache::CacheError| CliError::Cache(Box::new(e));
    let print = |value: serde_json::Value, text: String| {
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            print!("{text}");
        }
    };
    match command.unwrap_or(CacheCommand::Summary { namespace: None }) {
        CacheCommand::Summary { namespace } => {
            let groups = store.summary(namespace.as_deref()).await.map_err(failed)?;
            let mut text = String::new();
            for g in &groups {
                text.push_str(&format!(
                    "{}@{}: {} entries, {} bytes\n",
                    g.namespace, g.version, g.entries, g.bytes
                ));
            }
            let total = store.size(namespace.as_deref()).await.map_err(failed)?;
            text.push_str(&format!(
                "total: {} entries, {} bytes\n",
                total.entries, total.bytes
            ));
            print(serde_json::json!({"groups": groups, "total": total}), text);
        }
        CacheCommand::List { namespace, limit } => {
            let entries = store
                .list(namespace.as_deref(), limit)
                .await
                .map_err(failed)?;
            let text: String = entries
                .iter()
                .map(|e| {
                    format!(
                        "{}@{} {} {} bytes\n",
                        e.namespace, e.version, e.input, e.bytes
                    )
                })
                .collect();
            print(serde_json::json!(entries), text);
        }
        CacheCommand::Prune {
            namespace,
            version,
            except_version,
            older_than,
        } => {
            let mut which = CachePrune::new();
            which.namespace = namespace;
            which.version = version;
            which.except_version = except_version;
            if let Some(age) = older_than {
                which = which.created_before(SystemTime::now() - age);
            }
            let deleted = store.prune(&which).await.map_err(failed)?;
            print(
                serde_json::json!({"deleted": deleted}),
                format!("deleted {deleted} entries\n"),
            );
        }
    }
    Ok(())
}
