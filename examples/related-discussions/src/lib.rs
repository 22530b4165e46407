//! # Related discussions: the burr-rs flagship example
//!
//! When a retrospective meeting's voting ends, relate every discussion to similar past
//! discussions and publish them, so the team sees what it said about the same problem
//! before:
//!
//! ```text
//! meeting-<id>-<fp>  voting_ended ─► embed_discussions ─► index_past ─► relate ─► publish
//!                                      │ a child per discussion          │ a child per discussion
//!                                      └► embed                          └► find_similar ─► rerank
//! ```
//!
//! - [`model`]: all-MiniLM-L6-v2 (int8) through fastembed, loaded from the files
//!   `scripts/fetch-models.sh` fetches.
//! - [`batcher`]: one thread owning the model, coalescing every child's embedding
//!   requests into length-sorted batches.
//! - [`store`]: the per-text embedding store on `burr_core::cache`, in the checkpoint
//!   database (f32 blobs keyed by model, version and text hash), with in-flight
//!   coalescing.
//! - [`index`]: the timeline of past discussions and their vectors, contiguous, searched
//!   by dot product with a top-k heap.
//! - [`rerank`]: the second stage, a trait; the default re-embeds without the meeting
//!   header.
//! - [`data`]: meetings and past discussions (the labelled dataset, the first sample, or
//!   a JSON file); [`generate`]: large synthetic sets for benchmarks.
//! - [`discussion`]: the child applications' sub-graphs; [`app`]: the meeting
//!   application; [`run`]: every meeting at once on one shared, prioritised executor,
//!   resumed from SQLite, and what a run reports (with theme hit rates); [`service`]:
//!   the same as kinds of run on the run queue, served over HTTP (`serve`).

pub mod app;
pub mod batcher;
pub mod data;
pub mod discussion;
pub mod generate;
pub mod index;
pub mod model;
pub mod rerank;
pub mod run;
pub mod service;
pub mod store;
