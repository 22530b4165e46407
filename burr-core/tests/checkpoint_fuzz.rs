//! The `checkpoint` fuzz target: checkpoint decoding on a real SQLite file whose rows (or
//! bytes) are damaged. A file holds the application `victim` (snapshot, deltas, a failed
//! attempt and its retry, values inline and in `burr_values`, a deep value), a child it
//! spawned, a fork of it, and the application `intact`. Each case damages a copy: a cell
//! of one of victim's rows (or its child's, or its fork's) set to random or mutated text,
//! a blob, a number or NULL; or bytes of the file itself overwritten; or the file cut
//! short. Then every read the persister offers (open, read-only open, list, load at
//! every sequence id, records, checkpoint lists) must return a value or a typed error
//! with a message — never panic or hang — and when only victim's rows were damaged,
//! `intact` still loads exactly what was saved.
//!
//! The corpus `fuzz/corpus/checkpoint/` (bytes written, in turn, into each text column of
//! victim's rows) is replayed on every run; `fuzz_checkpoint_decoding` is the random
//! part, which `scripts/fuzz.sh` runs time-boxed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use burr_core::ids::ParentPointer;
use burr_core::persistence::{
    AppRecord, AppRecords, History, PersistenceError, Persister, SqlitePersister,
};
use burr_core::state::Wipe;
use burr_core::State;
use futures::executor::block_on;
use proptest::prelude::*;
use proptest::sample::Index;
use rusqlite::types::Value as Sql;
use rusqlite::Connection;
use serde_json::json;

#[path = "../../fuzz/harness.rs"]
mod harness;

mod common;
use common::{failed, step};

/// The database every case starts from: its files' bytes, and what `intact` holds.
struct Base {
    files: Vec<(String, Vec<u8>)>,
    intact: Vec<State>,
}

fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("burr.db");
        let intact = block_on(fill(&path));
        let files = std::fs::read_dir(dir.path())
            .expect("the files")
            .map(|entry| {
                let path = entry.expect("a file").path();
                let name = path.file_name().expect("a name").to_string_lossy().into();
                (name, std::fs::read(&path).expect("its bytes"))
            })
            .collect();
        Base { files, intact }
    })
}

/// Write the applications; `intact`'s states.
async fn fill(path: &Path) -> Vec<State> {
    let store = SqlitePersister::open(path).expect("opens");
    let mut deep = json!(1);
    for _ in 0..120 {
        deep = json!([deep]);
    }
    let s0 = State::new()
        .update("count", 0)
        .update("small", "x")
        .update("big", "y".repeat(5_000))
        .update("nested", json!({"a": [1, {"b": null}], "f": 0.1}))
        .update("list", json!([1, 2.5, "three", [4]]));
    let s1 = s0.update("count", 1).update("f", 1.0386479989478402e-227);
    let s2 = s1.update("list", json!([])).update("deep", deep);
    let s3 = s2.wipe(Wipe::delete(["small"])).expect("wipes");
    let s4 = s3.update("big", "z".repeat(3_000)).update("count", 4);
    let victim = [
        step("victim", 0, &State::new(), &s0),
        step("victim", 1, &s0, &s1),
        failed("victim", 2, 1, &s1),
        burr_core::persistence::Checkpoint {
            attempt: 2,
            ..step("victim", 2, &s1, &s2)
        },
        step("victim", 3, &s2, &s3),
        step("victim", 4, &s3, &s4),
    ];
    for checkpoint in &victim {
        store.save(checkpoint).await.expect("saves");
    }
    let pointer = |seq| ParentPointer {
        app_id: "victim".to_owned(),
        partition_key: None,
        sequence_id: Some(seq),
    };
    for (app_id, fork, spawn) in [
        ("victim/1/0", None, Some(pointer(1))),
        ("victim-fork", Some(pointer(3)), None),
    ] {
        store
            .register_app(&AppRecord {
                partition_key: None,
                app_id: app_id.to_owned(),
                created_at_us: 1,
                fork_parent: fork,
                spawning_parent: spawn,
                code: None,
            })
            .await
            .expect("registers");
        store
            .save(&step(app_id, 0, &State::new(), &s1.update("child", true)))
            .await
            .expect("saves");
    }
    let i0 = State::new()
        .update("n", 0)
        .update("text", "t".repeat(2_000));
    let i1 = i0.update("n", 1);
    let i2 = i1.update("f", 0.30000000000000004);
    let mut before = State::new();
    for (seq, state) in [&i0, &i1, &i2].into_iter().enumerate() {
        store
            .save(&step("intact", seq as u64, &before, state))
            .await
            .expect("saves");
        before = state.clone();
    }
    vec![i0, i1, i2]
}

/// The tables a case may damage, their key columns and the columns it may set.
const TABLES: &[(&str, &[&str], &[&str])] = &[
    (
        "burr_checkpoints",
        &["app", "sequence_id", "attempt"],
        &[
            "sequence_id",
            "attempt",
            "position",
            "status",
            "prior_step",
            "created_at_us",
            "changed_keys",
            "error",
            "inline_values",
        ],
    ),
    (
        "burr_values",
        &["app", "key", "sequence_id"],
        &["key", "sequence_id", "value"],
    ),
    (
        "burr_apps",
        &["id"],
        &[
            "partition_key",
            "app_id",
            "created_at_us",
            "fork_parent",
            "spawning_parent",
        ],
    ),
];

/// The applications a case may damage (never `intact`).
const DAMAGED: &str = "SELECT id FROM burr_apps WHERE app_id != 'intact'";

/// What is written into a cell.
#[derive(Clone, Debug)]
enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
    /// The cell's text with bytes changed, cut out or inserted.
    Mutated(Vec<(Index, u8, u8)>),
}

/// One way to damage the file.
#[derive(Clone, Debug)]
enum Damage {
    /// Set a cell of a row that is not `intact`'s.
    Cell {
        table: Index,
        row: Index,
        column: Index,
        cell: Cell,
    },
    /// Overwrite bytes of the file (past its 100-byte header, or anywhere).
    Bytes {
        header_too: bool,
        bytes: Vec<(Index, u8)>,
    },
    /// Cut the file short.
    Truncate(Index),
}

fn cell() -> impl Strategy<Value = Cell> {
    prop_oneof![
        1 => Just(Cell::Null),
        1 => prop_oneof![any::<i64>(), -3..10i64].prop_map(Cell::Integer),
        1 => any::<f64>().prop_map(Cell::Real),
        2 => prop_oneof![
            "\\PC{0,30}",
            prop::sample::select(vec![
                "", "{}", "[]", "null", "\"\"", "[\"count\"]", "{\"count\": 1}", "completed",
                "failed", "cancelled", "{\"app_id\": 1}", "[[[[[[", "{\"a\":",
            ])
            .prop_map(str::to_owned),
        ]
        .prop_map(Cell::Text),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Cell::Blob),
        4 => prop::collection::vec((any::<Index>(), any::<u8>(), 0..3u8), 1..5)
            .prop_map(Cell::Mutated),
    ]
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        8 => (any::<Index>(), any::<Index>(), any::<Index>(), cell()).prop_map(
            |(table, row, column, cell)| Damage::Cell { table, row, column, cell }
        ),
        2 => (any::<bool>(), prop::collection::vec((any::<Index>(), any::<u8>()), 1..16))
            .prop_map(|(header_too, bytes)| Damage::Bytes { header_too, bytes }),
        1 => any::<Index>().prop_map(Damage::Truncate),
    ]
}

/// A fresh copy of the base database in `dir`; its path.
fn copy(dir: &Path) -> PathBuf {
    for (name, bytes) in &base().files {
        std::fs::write(dir.join(name), bytes).expect("copies");
    }
    dir.join("burr.db")
}

/// The rows of `table` that a case may damage: their key values and current cells.
fn rows(conn: &Connection, table: &str, keys: &[&str], columns: &[&str]) -> Vec<Vec<Sql>> {
    let owner = if table == "burr_apps" { "id" } else { "app" };
    let wanted: Vec<&str> = keys.iter().chain(columns).copied().collect();
    let sql = format!(
        "SELECT {} FROM {table} WHERE {owner} IN ({DAMAGED}) ORDER BY {}",
        wanted.join(", "),
        keys.join(", ")
    );
    let mut statement = conn.prepare(&sql).expect("selects");
    statement
        .query_map([], |row| {
            (0..wanted.len())
                .map(|i| row.get::<_, Sql>(i))
                .collect::<rusqlite::Result<Vec<Sql>>>()
        })
        .expect("queries")
        .map(|row| row.expect("a row"))
        .collect()
}

/// Write `value` into `column` of the row of `table` whose keys are `key_values`. A
/// write SQLite refuses (a duplicate key, NOT NULL) damages nothing: false.
fn set(
    conn: &Connection,
    table: &str,
    keys: &[&str],
    key_values: &[Sql],
    column: &str,
    value: Sql,
) -> bool {
    let filter: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| format!("{k} = ?{}", i + 2))
        .collect();
    let sql = format!(
        "UPDATE {table} SET {column} = ?1 WHERE {}",
        filter.join(" AND ")
    );
    let mut params: Vec<Sql> = vec![value];
    params.extend(key_values.iter().cloned());
    conn.execute(&sql, rusqlite::params_from_iter(params))
        .is_ok_and(|changed| changed == 1)
}

/// `bytes` with edits: (where, byte, how: 0 replace, 1 cut, 2 insert).
fn mutate(mut bytes: Vec<u8>, edits: &[(Index, u8, u8)]) -> Vec<u8> {
    for (at, byte, how) in edits {
        let i = at.index(bytes.len() + 1);
        match how {
            0 if i < bytes.len() => bytes[i] = *byte,
            1 if i < bytes.len() => {
                bytes.remove(i);
            }
            _ => bytes.insert(i, *byte),
        }
    }
    bytes
}

/// Text when the bytes are UTF-8, a blob otherwise.
fn sql_of(bytes: Vec<u8>) -> Sql {
    match String::from_utf8(bytes) {
        Ok(text) => Sql::Text(text),
        Err(bytes) => Sql::Blob(bytes.into_bytes()),
    }
}

/// Apply `damage` to the database at `path`; whether only rows of applications other
/// than `intact` changed.
fn apply(path: &Path, damage: &Damage) -> bool {
    match damage {
        Damage::Cell {
            table,
            row,
            column,
            cell,
        } => {
            let conn = Connection::open(path).expect("opens");
            let (table, keys, columns) = TABLES[table.index(TABLES.len())];
            let found = rows(&conn, table, keys, columns);
            if found.is_empty() {
                return true;
            }
            let row = &found[row.index(found.len())];
            let c = column.index(columns.len());
            let value = match cell {
                Cell::Null => Sql::Null,
                Cell::Integer(i) => Sql::Integer(*i),
                Cell::Real(f) => Sql::Real(*f),
                Cell::Text(text) => Sql::Text(text.clone()),
                Cell::Blob(bytes) => Sql::Blob(bytes.clone()),
                Cell::Mutated(edits) => {
                    let current = match &row[keys.len() + c] {
                        Sql::Text(text) => text.clone().into_bytes(),
                        Sql::Blob(bytes) => bytes.clone(),
                        Sql::Integer(i) => i.to_string().into_bytes(),
                        Sql::Real(f) => f.to_string().into_bytes(),
                        Sql::Null => Vec::new(),
                    };
                    sql_of(mutate(current, edits))
                }
            };
            set(&conn, table, keys, &row[..keys.len()], columns[c], value);
            true
        }
        Damage::Bytes { header_too, bytes } => {
            let mut file = std::fs::read(path).expect("reads");
            let start = if *header_too { 0 } else { 100.min(file.len()) };
            for (at, byte) in bytes {
                let i = start + at.index(file.len() - start);
                file[i] = *byte;
            }
            std::fs::write(path, file).expect("writes");
            false
        }
        Damage::Truncate(at) => {
            let file = std::fs::read(path).expect("reads");
            std::fs::write(path, &file[..at.index(file.len())]).expect("writes");
            false
        }
    }
}

/// An error must say what is wrong.
fn said(error: &PersistenceError) -> Result<(), TestCaseError> {
    prop_assert!(!error.to_string().is_empty());
    Ok(())
}

/// Every read of the damaged database at `path`: values or typed errors; `intact`
/// exactly as saved when `confined`.
fn read_all(path: &Path, confined: bool) -> Result<(), TestCaseError> {
    if let Err(error) = SqlitePersister::open_read_only(path) {
        said(&error)?;
    }
    let store = match SqlitePersister::open(path) {
        Ok(store) => store,
        Err(error) => return said(&error),
    };
    block_on(async {
        if let Err(error) = store.list_apps() {
            said(&error)?;
        }
        if let Err(error) = store.list_app_ids(None).await {
            said(&error)?;
        }
        for app_id in ["victim", "victim/1/0", "victim-fork", "intact"] {
            if let Err(error) = store.app(None, app_id).await {
                said(&error)?;
            }
            if let Err(error) = store.list_checkpoints(None, app_id).await {
                said(&error)?;
            }
            for seq in [None, Some(0), Some(1), Some(2), Some(3), Some(4), Some(5)] {
                match store.load(None, app_id, seq).await {
                    Ok(Some(loaded)) => {
                        let _ = loaded.state.to_json();
                    }
                    Ok(None) => {}
                    Err(error) => said(&error)?,
                }
            }
        }
        if confined {
            for (seq, expected) in base().intact.iter().enumerate() {
                let loaded = store.load(None, "intact", Some(seq as u64)).await;
                match loaded {
                    Ok(Some(loaded)) => prop_assert_eq!(&loaded.state, expected),
                    other => prop_assert!(
                        false,
                        "intact at {} after damage elsewhere: {:?}",
                        seq,
                        other.map(|c| c.map(|c| c.state))
                    ),
                }
            }
        }
        Ok(())
    })
}

fn check(damage: &Damage) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = copy(dir.path());
    let confined = apply(&path, damage);
    read_all(&path, confined)
}

#[test]
fn the_undamaged_base_reads_back() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = copy(dir.path());
    read_all(&path, true).expect("reads");
    let store = SqlitePersister::open(&path).expect("opens");
    let victim = block_on(store.load(None, "victim", None))
        .expect("loads")
        .expect("stored");
    assert_eq!(victim.state.get::<i64>("count").expect("a count"), 4);
    assert_eq!(
        block_on(store.list_checkpoints(None, "victim"))
            .expect("lists")
            .len(),
        6
    );
}

/// The columns holding text that is decoded (JSON, names, statuses): where the corpus
/// goes. (The random cases also put text into the number columns.)
const TEXT_COLUMNS: &[&str] = &[
    "position",
    "status",
    "changed_keys",
    "error",
    "inline_values",
    "key",
    "value",
    "fork_parent",
    "spawning_parent",
];

/// Every corpus file, written into each text column (in turn) of every damageable row.
/// The files are spread over a few threads (each case is a file of its own).
#[test]
fn the_checkpoint_corpus_loads_or_fails_typed() {
    let files = harness::corpus("checkpoint");
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    std::thread::scope(|scope| {
        for chunk in files.chunks(files.len().div_ceil(threads)) {
            scope.spawn(move || {
                for (name, bytes) in chunk {
                    replay(name, bytes);
                }
            });
        }
    });
}

/// Corpus file `name` (`bytes`) in each text column, in turn.
fn replay(name: &str, bytes: &[u8]) {
    for (table, keys, columns) in TABLES {
        for column in columns.iter().filter(|c| TEXT_COLUMNS.contains(c)) {
            let dir = tempfile::tempdir().expect("a temp dir");
            let path = copy(dir.path());
            let conn = Connection::open(&path).expect("opens");
            for row in rows(&conn, table, keys, columns) {
                set(
                    &conn,
                    table,
                    keys,
                    &row[..keys.len()],
                    column,
                    sql_of(bytes.to_vec()),
                );
            }
            drop(conn);
            if let Err(error) = read_all(&path, true) {
                panic!("fuzz/corpus/checkpoint/{name} in {table}.{column}: {error}");
            }
        }
    }
}

#[test]
fn fuzz_checkpoint_decoding() {
    harness::fuzz("checkpoint", file!(), 48, damage(), |damage| check(&damage));
}
