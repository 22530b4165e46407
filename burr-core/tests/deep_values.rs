//! What is saved must load: a value nested deeper than a checkpoint can be read back fails
//! its step before anything is stored; one just within the limit saves and loads.

use std::sync::Arc;

use burr_core::actions::action_sync;
use burr_core::persistence::{Persister, SqlitePersister};
use burr_core::prelude::*;
use serde_json::{json, Value};

/// `[[[...[1]...]]]`, `depth` arrays deep, built without recursion.
fn nested(depth: usize) -> Value {
    let mut value = json!(1);
    for _ in 0..depth {
        value = Value::Array(vec![value]);
    }
    value
}

async fn write_nested(depth: usize, db: &Arc<SqlitePersister>, app_id: &str) -> Result<()> {
    let deep = action_sync("deep", move |s: State, _, _| {
        s.update("tree", nested(depth))
    })
    .writes(["tree"]);
    let mut app = ApplicationBuilder::new()
        .with_actions([deep])
        .with_entrypoint("deep")
        .with_app_id(app_id)
        .with_state_persister(db.clone())
        .build()
        .await?;
    app.step(Inputs::new()).await.map(drop)
}

#[tokio::test]
async fn too_deep_to_load_is_refused_before_it_is_saved() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = Arc::new(SqlitePersister::open(dir.path().join("deep.db")).expect("opens"));

    write_nested(127, &db, "deep-enough")
        .await
        .expect("127 levels save");
    let loaded = db
        .load(None, "deep-enough", None)
        .await
        .expect("loads")
        .expect("stored");
    assert_eq!(loaded.state.get_value("tree"), Some(&nested(127)));

    let err = write_nested(128, &db, "too-deep").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "action `deep` wrote state key `tree` nested 128 levels deep; a checkpoint keeps at most 127"
    );
    // The failed step is stored without the value, and loads.
    let loaded = db
        .load(None, "too-deep", None)
        .await
        .expect("loads")
        .expect("the failed step is stored");
    assert!(!loaded.state.contains("tree"));
}
