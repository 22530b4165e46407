//! `related-discussions-bench`: the flagship's figures, one JSON line.
//!
//! - `pipeline_texts_per_s`: `--n` generated discussions through the whole pipeline
//!   (every meeting at once, a child application per discussion checkpointed to a fresh
//!   SQLite file, every text through the store and the shared batcher), texts the model
//!   embedded per second of the run;
//! - `raw_texts_per_s`: the same texts straight to fastembed in length-sorted batches of
//!   `--model-batch`, in the same process, on the same model (run before and after the
//!   pipeline; the mean of the two, since this machine's speed drifts);
//! - `ratio`: the first over the second (the goal: at least 0.9);
//! - `search_ms_100k`: one query over `--search-rows` (100,000) past discussions'
//!   vectors, contiguous, dot product and a top-k heap per core (median of 21 queries).
//!
//! ```text
//! source .fe-assets/env.sh
//! cargo run --release -p example-related-discussions --bin related-discussions-bench -- --n 1000
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use example_related_discussions::batcher::BatchConfig;
use example_related_discussions::data::{body_text, document_text};
use example_related_discussions::generate::generate;
use example_related_discussions::index::{search, top_k};
use example_related_discussions::model::{Model, DIMENSIONS};
use example_related_discussions::run::{self, Options};

/// Measure the pipeline against raw fastembed, and search over 100,000 vectors.
#[derive(Parser, Debug)]
#[command(name = "related-discussions-bench")]
struct Cli {
    /// Generated discussions run through the pipeline (at least 10).
    #[arg(long, default_value_t = 1000)]
    n: usize,
    /// The generator's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows of the search benchmark.
    #[arg(long, default_value_t = 100_000)]
    search_rows: usize,
    /// Texts the pipeline's batcher takes from its queue at once (sorted by length).
    #[arg(long, default_value_t = 1024)]
    max_batch: usize,
    /// Texts per model call, in the pipeline and in the raw run.
    #[arg(long, default_value_t = 64)]
    model_batch: usize,
    /// The batcher's wait for more texts, in ms.
    #[arg(long, default_value_t = 20)]
    max_wait_ms: u64,
    /// Child steps at once.
    #[arg(long, default_value_t = 1024)]
    executor_concurrency: usize,
    /// ONNX Runtime threads per model call.
    #[arg(long, default_value_t = 1)]
    model_threads: usize,
    /// Run the pipeline without the tracker (it records every step by default, as the
    /// example does).
    #[arg(long)]
    no_track: bool,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    if cli.n < 10 {
        return Err("--n must be at least 10".into());
    }
    let model = Arc::new(Model::from_env(cli.model_threads)?);
    let data = generate(cli.n, cli.seed);
    // Warm the model up (first calls allocate).
    model.embed(&vec!["warm up".to_owned(); 8])?;

    let dir = tempfile_dir()?;
    let db = dir.join("bench.db");
    let options = Options {
        executor_concurrency: cli.executor_concurrency,
        batch: BatchConfig {
            max_batch: cli.max_batch,
            model_batch: cli.model_batch,
            max_wait: Duration::from_millis(cli.max_wait_ms),
        },
        track: !cli.no_track,
        ..Options::default()
    };
    // The texts the pipeline embeds: every discussion's document and body, sorted by
    // length for the raw runs.
    let mut texts: Vec<String> = Vec::with_capacity(cli.n * 2);
    for m in &data.meetings {
        for d in &m.discussions {
            texts.push(document_text(&m.header(), &d.title, &d.notes));
            texts.push(body_text(&d.title, &d.notes));
        }
    }
    texts.sort_by_key(String::len);
    // Raw fastembed before and after the pipeline: this machine's speed drifts, and the
    // mean of the two brackets the pipeline's run.
    let raw_before = raw(&model, &texts, cli.model_batch)?;

    let runtime = tokio::runtime::Runtime::new()?;
    let start = Instant::now();
    let report = runtime.block_on(run::run(&data, Arc::clone(&model), &db, &options))?;
    let pipeline_s = start.elapsed().as_secs_f64();

    let raw_after = raw(&model, &texts, cli.model_batch)?;
    let raw_s = (raw_before + raw_after) / 2.0;

    let pipeline = report.embedded as f64 / pipeline_s;
    let raw = texts.len() as f64 / raw_s;
    let (search_ms, one_thread_ms) = search_ms(cli.search_rows);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "n": cli.n,
            "texts": report.embedded,
            "batches": report.batches,
            "pipeline_s": round(pipeline_s),
            "pipeline_model_s": round(report.model_ms as f64 / 1000.0),
            "pipeline_texts_per_s": round(pipeline),
            "raw_s": round(raw_s),
            "raw_s_before": round(raw_before),
            "raw_s_after": round(raw_after),
            "raw_texts_per_s": round(raw),
            "ratio": round(pipeline / raw),
            "search_rows": cli.search_rows,
            "search_ms_100k": round(search_ms),
            "search_ms_100k_one_thread": round(one_thread_ms),
            "tracked": !cli.no_track,
            "quality": report.quality,
        })
    );
    Ok(())
}

/// Seconds to embed `texts` (sorted by length) in batches of `batch`.
fn raw(model: &Model, texts: &[String], batch: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let start = Instant::now();
    for chunk in texts.chunks(batch.max(1)) {
        model.embed_batch(chunk, chunk.len())?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Median time of a top-8 query over `rows` pseudo-random unit vectors: as the index
/// searches (split across cores), and on one thread.
fn search_ms(rows: usize) -> (f64, f64) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let mut matrix = Vec::with_capacity(rows * DIMENSIONS);
    for _ in 0..rows {
        let v: Vec<f32> = (0..DIMENSIONS).map(|_| next()).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        matrix.extend(v.iter().map(|x| x / norm));
    }
    let (mut split, mut one) = (Vec::new(), Vec::new());
    for _ in 0..21 {
        let query: Vec<f32> = (0..DIMENSIONS).map(|_| next()).collect();
        let start = Instant::now();
        let best = search(&matrix, DIMENSIONS, &query, 8);
        split.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let same = top_k(&matrix, DIMENSIONS, &query, 8);
        one.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(best.len(), 8.min(rows));
        assert_eq!(best, same);
    }
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    (median(split), median(one))
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "related-discussions-bench-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
