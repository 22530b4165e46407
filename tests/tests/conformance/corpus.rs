//! Finding and reading the corpus: `scenarios.json` and `golden.json`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

/// The environment variable that overrides where the corpus is.
pub const DIR_VAR: &str = "BURR_CONFORMANCE_DIR";

/// The format of `scenarios.json` this interpreter reads.
const FORMAT_VERSION: u64 = 1;

/// One scenario of `scenarios.json` (SCENARIOS.md §2). Actions, ops, conditions and calls
/// stay JSON here: they are parsed by the modules that interpret them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Unique id; also the default app id.
    pub name: String,
    /// `state`, `conditions`, `application`, `graph` or `persistence`.
    pub category: String,
    /// What is tested.
    #[allow(dead_code)]
    pub description: String,
    /// The initial state.
    #[serde(default)]
    pub state: Map<String, Value>,
    /// Action specs: an object, or an array of groups (objects).
    pub actions: Option<Value>,
    /// `[from, to]` or `[from, to, condition]`.
    #[serde(default)]
    pub transitions: Vec<Value>,
    /// The first action.
    pub entrypoint: Option<String>,
    /// `{app_id?, partition_key?, sequence_id?}`.
    #[serde(default)]
    pub identifiers: Identifiers,
    /// `{backend, initialize_from?}`.
    pub persistence: Option<Persistence>,
    /// The calls to make, in order.
    pub calls: Vec<Value>,
}

/// `identifiers` of a scenario (SCENARIOS.md §6.1).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identifiers {
    /// Defaults to the scenario name.
    pub app_id: Option<String>,
    /// Defaults to null.
    pub partition_key: Option<String>,
    /// The sequence id before the first step, when given.
    pub sequence_id: Option<u64>,
}

/// `persistence` of a scenario (SCENARIOS.md §6.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persistence {
    /// `sqlite` or `memory` (each `sqlite` scenario also runs on PostgreSQL).
    pub backend: Backend,
    /// Load through the persister on the initial build.
    pub initialize_from: Option<InitializeFrom>,
}

/// Which persister a scenario uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A SQLite file, opened anew by every build.
    Sqlite,
    /// One in-memory persister for the whole scenario.
    Memory,
    /// A fresh PostgreSQL database, connected to anew by every build: never in the
    /// corpus, the backend the `postgres::` trials run each `sqlite` scenario on.
    Postgres,
}

/// `persistence.initialize_from` (SCENARIOS.md §6.2).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitializeFrom {
    /// Default true.
    pub resume_at_next_action: Option<bool>,
    /// Fork from this app id.
    pub fork_from_app_id: Option<String>,
    /// The fork source's partition key (null: the null partition key).
    pub fork_from_partition_key: Option<String>,
    /// The fork source's sequence id (absent: the latest).
    pub fork_from_sequence_id: Option<u64>,
    /// Upserted over the loaded state.
    pub override_state_values: Option<Map<String, Value>>,
}

impl Scenario {
    /// Whether this is a state scenario (no actions: only `state_ops` calls).
    pub fn is_state_scenario(&self) -> bool {
        self.actions.is_none()
    }
}

/// The corpus: every scenario with its golden outcome.
pub struct Corpus {
    /// Where it was read from.
    pub dir: PathBuf,
    /// Scenarios with their golden outcome, in file order.
    pub cases: Vec<(Scenario, Value)>,
    /// Golden entries without a scenario, and other inconsistencies between the files.
    pub problems: Vec<String>,
}

/// The corpus directory: `$BURR_CONFORMANCE_DIR`, or `shared/conformance` beside the repo.
pub fn locate() -> PathBuf {
    match std::env::var_os(DIR_VAR) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance"),
    }
}

/// The cases the shared corpus lacks, in its format: `supplement/` beside this file.
pub fn supplement() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/supplement")
}

/// Read and cross-check the corpus in `dir`. A missing or malformed file is an error that
/// names it.
pub fn load(dir: &Path) -> Result<Corpus, String> {
    let scenarios_path = dir.join("scenarios.json");
    let golden_path = dir.join("golden.json");
    let scenarios = read_json(&scenarios_path)?;
    let golden = read_json(&golden_path)?;

    let version = scenarios.get("format_version").and_then(Value::as_u64);
    if version != Some(FORMAT_VERSION) {
        return Err(format!(
            "{}: format_version is {version:?}, this interpreter reads version {FORMAT_VERSION}",
            scenarios_path.display()
        ));
    }
    let list = scenarios
        .get("scenarios")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{}: no `scenarios` array", scenarios_path.display()))?;
    let Value::Object(mut golden) = golden else {
        return Err(format!("{}: not a JSON object", golden_path.display()));
    };
    let meta = golden.remove("_meta");

    let mut cases = Vec::with_capacity(list.len());
    let mut problems = Vec::new();
    for (i, raw) in list.iter().enumerate() {
        let scenario: Scenario = serde_json::from_value(raw.clone()).map_err(|e| {
            format!(
                "{}: scenario #{i} is malformed: {e}",
                scenarios_path.display()
            )
        })?;
        let expected = golden.remove(&scenario.name).unwrap_or_else(|| {
            problems.push(format!(
                "scenario `{}` has no outcome in {}",
                scenario.name,
                golden_path.display()
            ));
            Value::Null
        });
        cases.push((scenario, expected));
    }
    for name in golden.keys().filter(|k| !k.starts_with('_')) {
        problems.push(format!(
            "{} has an outcome for `{name}`, which is not a scenario of {}",
            golden_path.display(),
            scenarios_path.display()
        ));
    }
    let count = meta
        .as_ref()
        .and_then(|m| m.get("scenario_count"))
        .and_then(Value::as_u64);
    if count != Some(cases.len() as u64) {
        problems.push(format!(
            "{}: _meta.scenario_count is {count:?} but {} has {} scenarios",
            golden_path.display(),
            scenarios_path.display(),
            cases.len()
        ));
    }
    Ok(Corpus {
        dir: dir.to_owned(),
        cases,
        problems,
    })
}

fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the conformance corpus file {}: {e} (set {DIR_VAR} to the \
             directory holding scenarios.json and golden.json, or put shared/ beside the repo)",
            path.display()
        )
    })?;
    serde_json::from_str(&text).map_err(|e| format!("{} is not valid JSON: {e}", path.display()))
}
