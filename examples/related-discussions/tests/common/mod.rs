//! What the tests share: the real model (loaded once per test binary) and small datasets.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use example_related_discussions::data::Dataset;
use example_related_discussions::model::{Model, FASTEMBED_MODEL_DIR, ORT_DYLIB_PATH};
use example_related_discussions::run::Options;

/// Fails the test, naming the fix, unless the model files are there.
pub fn require_model_files() {
    for var in [ORT_DYLIB_PATH, FASTEMBED_MODEL_DIR] {
        match std::env::var_os(var) {
            None => panic!(
                "{var} is not set: these tests need the real model; run scripts/fetch-models.sh, \
                 then `source .fe-assets/env.sh` (scripts/test.sh does both)"
            ),
            Some(path) if !Path::new(&path).exists() => panic!(
                "{var}={} does not exist: run scripts/fetch-models.sh, then `source .fe-assets/env.sh`",
                Path::new(&path).display()
            ),
            Some(_) => {}
        }
    }
}

/// The model, loaded once for every test of this binary.
pub fn model() -> Arc<Model> {
    require_model_files();
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL
        .get_or_init(|| Arc::new(Model::from_env(1).unwrap_or_else(|e| panic!("{e}"))))
        .clone()
}

/// Options running only the meetings `ids`, without progress.
pub fn only(ids: &[&str]) -> Options {
    Options {
        meetings: ids.iter().map(|s| (*s).to_owned()).collect(),
        ..Options::default()
    }
}

/// The first sample (`data/sample.json`): 3 meetings, 40 past discussions.
pub fn sample() -> Dataset {
    Dataset::sample()
}

/// Vectors stored in the database `db`.
pub fn stored_vectors(db: &Path) -> usize {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        &format!(
            "SELECT count(*) FROM {}",
            example_related_discussions::store::TABLE
        ),
        [],
        |row| row.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .unwrap_or(0)
}
