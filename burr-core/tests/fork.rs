//! Forks, as Burr records them: a fork of a stored application points at it; a fork of an
//! application with nothing stored records no fork parent (Burr records null) and starts
//! fresh.

use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::persistence::{AppRecords, SqlitePersister};
use burr_core::prelude::*;

fn counter() -> ApplicationBuilder {
    let increment = action_sync("increment", |s: State, _, _| s.increment("count", 1))
        .reads(["count"])
        .writes(["count"]);
    ApplicationBuilder::new()
        .with_actions([increment])
        .with_transitions([("increment", "increment")])
        .with_state(State::new().update("count", 0))
        .with_entrypoint("increment")
}

#[tokio::test]
async fn a_fork_records_its_parent_only_when_there_was_something_to_fork() -> Result<()> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = Arc::new(SqlitePersister::open(dir.path().join("fork.db")).expect("opens"));

    // Nothing stored under "ghost": the fork starts from the default state, no parent.
    let mut fresh = counter()
        .with_app_id("from-nothing")
        .with_state_persister(db.clone())
        .initialize_from(db.clone())
        .fork_from_app_id("ghost")
        .build()
        .await?;
    assert_eq!(fresh.fork_parent(), None);
    assert_eq!(fresh.sequence_id(), None);
    let record = db
        .app(None, "from-nothing")
        .await
        .expect("reads")
        .expect("registered");
    assert_eq!(record.fork_parent, None);
    fresh.step(Inputs::new()).await?;
    assert_eq!(fresh.state().get::<i64>("count")?, 1);
    drop(fresh);

    // "orig" has two steps: a fork of it points at it and continues from its state.
    let mut orig = counter()
        .with_app_id("orig")
        .with_state_persister(db.clone())
        .build()
        .await?;
    orig.step(Inputs::new()).await?;
    orig.step(Inputs::new()).await?;
    drop(orig);
    let forked = counter()
        .with_app_id("forked")
        .with_state_persister(db.clone())
        .initialize_from(db.clone())
        .fork_from_app_id("orig")
        .build()
        .await?;
    let parent = forked.fork_parent().expect("a fork parent");
    assert_eq!((parent.app_id.as_str(), parent.sequence_id), ("orig", None));
    assert_eq!(forked.state().get::<i64>("count")?, 2);
    let record = db
        .app(None, "forked")
        .await
        .expect("reads")
        .expect("registered");
    assert_eq!(
        record.fork_parent.map(|p| p.app_id),
        Some("orig".to_owned())
    );
    Ok(())
}
