//! What the tests share: the real model (loaded once per test binary) and small datasets.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use example_related_discussions::data::Dataset;
use example_related_discussions::model::{Model, FASTEMBED_MODEL_DIR, ORT_DYLIB_PATH};

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

/// The sample's meetings `ids` and every past discussion.
pub fn sample(ids: &[&str]) -> Dataset {
    let ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    Dataset::sample().select(&ids).unwrap()
}
