//! # Related discussions: the burr-rs flagship example
//!
//! When a retrospective meeting's voting ends, relate every discussion to similar past
//! discussions and publish them, so the team sees what it said about the same problem
//! before:
//!
//! ```text
//! meeting-<id>  voting_ended ─► relate ─────────────────────────────► publish
//!                                 │  one child application per discussion (MapStates::keyed)
//!                                 └► embed ─► find_similar ─► rerank
//! ```
//!
//! - [`model`]: all-MiniLM-L6-v2 (int8) through fastembed, loaded from the files
//!   `scripts/fetch-models.sh` fetches; one model shared behind a mutex.
//! - [`data`]: meetings and past discussions (a built-in sample, or a JSON file).
//! - [`past`]: the past discussions' embeddings, kept in the checkpoint of their own
//!   application, so they are computed once per database.
//! - [`discussion`]: the child application's sub-graph.
//! - [`app`]: the meeting application.
//! - [`run`]: every meeting at once on one shared, prioritised executor, resumed from
//!   SQLite; what a run reports (including the embeddings this process computed).

pub mod app;
pub mod data;
pub mod discussion;
pub mod model;
pub mod past;
pub mod run;
