//! The shared batcher: every embedding request of the process (from concurrently running
//! child applications, from filling the past index) goes through one dedicated thread that
//! owns the model, takes the queued requests (up to [`BatchConfig::max_batch`] texts,
//! waiting at most [`BatchConfig::max_wait`] for more), sorts them by length, runs them in
//! model batches of [`BatchConfig::model_batch`], and answers each request on its own
//! channel as soon as its model batch is done. The async threads never run the model.
//!
//! Length-sorted batches pad little: a batch's cost follows its longest text, so mixing a
//! ten-word title with a hundred-word note wastes most of the batch.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::model::{Model, ModelError};

/// How requests are coalesced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// At most this many texts taken from the queue at once (at least 1): sorted by
    /// length, then run in model batches of [`model_batch`](Self::model_batch), so a
    /// bigger window pads less.
    pub max_batch: usize,
    /// Texts per model batch within a window (at least 1).
    pub model_batch: usize,
    /// After the first request of a batch, wait at most this long for more.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 1024,
            model_batch: 64,
            max_wait: Duration::from_millis(20),
        }
    }
}

/// A batch ran (its texts, and their vectors or why the model failed): called on the
/// batcher thread before the requests are answered (the store writes the vectors down
/// there, in one transaction per batch).
pub type OnBatch = Box<dyn Fn(&[String], Result<&[Vec<f32>], &Arc<ModelError>>) + Send>;

/// What a request gets back: a vector, or why the batch failed (shared by every request of
/// the batch).
pub type Reply = Result<Vec<f32>, Arc<ModelError>>;

struct Request {
    priority: i32,
    text: String,
    reply: oneshot::Sender<Reply>,
}

/// Counts of what the batcher did.
#[derive(Debug, Default)]
pub struct BatchStats {
    /// Texts embedded.
    pub texts: AtomicUsize,
    /// Model calls.
    pub batches: AtomicUsize,
    /// Microseconds spent in the model.
    pub model_us: AtomicUsize,
}

/// The handle requests go through; cloning it shares the thread.
#[derive(Clone)]
pub struct Batcher {
    sender: mpsc::Sender<Request>,
    stats: Arc<BatchStats>,
    _thread: Arc<ThreadGuard>,
}

struct ThreadGuard(Option<JoinHandle<()>>);

impl Drop for ThreadGuard {
    fn drop(&mut self) {
        // The thread ends when every sender is gone; it is not joined here (the last
        // handle may be dropped on the batcher thread's own reply path).
        self.0.take();
    }
}

impl Batcher {
    /// Start the batcher thread on `model`.
    pub fn start(model: Arc<Model>, config: BatchConfig, on_batch: OnBatch) -> Batcher {
        let (sender, receiver) = mpsc::channel::<Request>();
        let stats = Arc::new(BatchStats::default());
        let thread_stats = Arc::clone(&stats);
        let config = BatchConfig {
            max_batch: config.max_batch.max(1),
            model_batch: config.model_batch.max(1),
            ..config
        };
        let handle = std::thread::Builder::new()
            .name("embedding-batcher".to_owned())
            .spawn(move || run(&model, config, &receiver, &on_batch, &thread_stats))
            .expect("the OS starts a thread");
        Batcher {
            sender,
            stats,
            _thread: Arc::new(ThreadGuard(Some(handle))),
        }
    }

    /// Queue `text` at priority 0; the receiver gets its vector once its batch ran.
    pub fn submit(&self, text: String) -> oneshot::Receiver<Reply> {
        self.submit_at(text, 0)
    }

    /// Queue `text` at `priority`: within what the batcher takes at once, higher
    /// priorities run first (then shorter texts). Use a few coarse levels (urgent,
    /// normal, backfill): each level is length-sorted on its own.
    pub fn submit_at(&self, text: String, priority: i32) -> oneshot::Receiver<Reply> {
        let (reply, receiver) = oneshot::channel();
        // A send fails only when the thread is gone (it panicked): the receiver then
        // reports a closed channel, which callers turn into an error.
        let _ = self.sender.send(Request {
            priority,
            text,
            reply,
        });
        receiver
    }

    /// What the batcher did so far.
    pub fn stats(&self) -> &BatchStats {
        &self.stats
    }
}

fn run(
    model: &Model,
    config: BatchConfig,
    receiver: &mpsc::Receiver<Request>,
    on_batch: &OnBatch,
    stats: &BatchStats,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        let deadline = Instant::now() + config.max_wait;
        while batch.len() < config.max_batch {
            // Whatever is queued already joins without waiting.
            match receiver.try_recv() {
                Ok(request) => {
                    batch.push(request);
                    continue;
                }
                Err(mpsc::TryRecvError::Disconnected) => break,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match receiver.recv_timeout(left) {
                Ok(request) => batch.push(request),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        batch.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.text.len()));
        // Model batches of similar lengths, the most urgent first; each answered as soon
        // as it is done.
        let mut requests = batch.into_iter().peekable();
        while requests.peek().is_some() {
            let chunk: Vec<Request> = requests.by_ref().take(config.model_batch).collect();
            embed_chunk(model, chunk, on_batch, stats);
        }
    }
}

fn embed_chunk(model: &Model, chunk: Vec<Request>, on_batch: &OnBatch, stats: &BatchStats) {
    let texts: Vec<String> = chunk.iter().map(|r| r.text.clone()).collect();
    let start = Instant::now();
    let result = model.embed_batch(&texts, texts.len());
    let elapsed = start.elapsed();
    stats
        .model_us
        .fetch_add(elapsed.as_micros() as usize, Ordering::Relaxed);
    stats.batches.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(vectors) => {
            stats.texts.fetch_add(texts.len(), Ordering::Relaxed);
            on_batch(&texts, Ok(vectors.as_slice()));
            for (request, vector) in chunk.into_iter().zip(vectors) {
                let _ = request.reply.send(Ok(vector));
            }
        }
        Err(error) => {
            let error = Arc::new(error);
            on_batch(&texts, Err(&error));
            for request in chunk {
                let _ = request.reply.send(Err(Arc::clone(&error)));
            }
        }
    }
}
