//! The embedding model: all-MiniLM-L6-v2 (int8) through fastembed and ONNX Runtime, loaded
//! from the files `scripts/fetch-models.sh` fetches, one instance shared behind a mutex.
//!
//! Two environment variables point at them (`source .fe-assets/env.sh` sets both):
//! `ORT_DYLIB_PATH`, the ONNX Runtime shared library (≥ 1.24), and `FASTEMBED_MODEL_DIR`,
//! the directory with `model.onnx` and the tokenizer files.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use sha2::Digest;

/// The variable naming the ONNX Runtime shared library.
pub const ORT_DYLIB_PATH: &str = "ORT_DYLIB_PATH";
/// The variable naming the model directory.
pub const FASTEMBED_MODEL_DIR: &str = "FASTEMBED_MODEL_DIR";
/// The dimension of the embeddings.
pub const DIMENSIONS: usize = 384;

const FETCH_HINT: &str = "run scripts/fetch-models.sh, then `source .fe-assets/env.sh`";
/// The files fastembed needs in the model directory.
const MODEL_FILES: [&str; 5] = [
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// Why the model cannot be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// An environment variable is not set.
    #[error("{var} is not set: {FETCH_HINT}")]
    NotSet {
        /// The variable.
        var: &'static str,
    },
    /// An environment variable names a path that is not there.
    #[error("{var}={} does not exist: {FETCH_HINT}", path.display())]
    Missing {
        /// The variable.
        var: &'static str,
        /// The path it names.
        path: PathBuf,
    },
    /// `ORT_DYLIB_PATH` is relative (ONNX Runtime would look next to the executable first).
    #[error("{ORT_DYLIB_PATH}={} is relative: give an absolute path", path.display())]
    Relative {
        /// The path.
        path: PathBuf,
    },
    /// A model file is missing or unreadable.
    #[error("cannot read model file {}: {FETCH_HINT}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// ONNX Runtime refused to load (a wrong file, or a version below 1.24).
    #[error("ONNX Runtime at {} cannot be used ({message}): {FETCH_HINT}", path.display())]
    Runtime {
        /// The library.
        path: PathBuf,
        /// What it said.
        message: String,
    },
    /// fastembed could not build the model from the files.
    #[error("cannot load the embedding model from {}", dir.display())]
    Load {
        /// The model directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: fastembed::Error,
    },
    /// Embedding failed.
    #[error("embedding {count} texts failed")]
    Embed {
        /// How many texts.
        count: usize,
        /// Why.
        #[source]
        source: fastembed::Error,
    },
}

/// The embedding model, shared by every action of the process.
///
/// fastembed's `embed` takes `&mut self`, so calls are serialised by a mutex; each call
/// runs on `threads` ONNX Runtime threads that do not spin while idle (spinning threads
/// steal the CPU from the other work of the process).
pub struct Model {
    embedding: Mutex<TextEmbedding>,
    dir: PathBuf,
    version: String,
}

/// The model's id in the embedding store's keys.
pub const MODEL_ID: &str = "all-MiniLM-L6-v2-int8";
/// Longest input, in tokens (longer texts are truncated): part of the model's version.
pub const MAX_LENGTH: usize = 256;

impl Model {
    /// Load the model named by `FASTEMBED_MODEL_DIR` with the ONNX Runtime named by
    /// `ORT_DYLIB_PATH`, after checking both exist (a missing runtime would make ONNX
    /// Runtime panic, not fail).
    pub fn from_env(threads: usize) -> Result<Model, ModelError> {
        let ort = env_path(ORT_DYLIB_PATH)?;
        if ort.is_relative() {
            return Err(ModelError::Relative { path: ort });
        }
        let dir = env_path(FASTEMBED_MODEL_DIR)?;
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path).map_err(|source| ModelError::Read { path, source })
        };
        let [onnx, tokenizer, config, special_tokens, tokenizer_config] = MODEL_FILES.map(read);
        let onnx = onnx?;
        let tokenizer = tokenizer?;
        // Another model file, tokenizer, pooling or truncation gives other vectors: all
        // of them name the version the store keys vectors by.
        let mut hasher = sha2::Sha256::new();
        hasher.update(&onnx);
        hasher.update(&tokenizer);
        let digest = crate::store::hex(&hasher.finalize()[..8]);
        let version = format!("{digest}-mean-{MAX_LENGTH}");
        let files = TokenizerFiles {
            tokenizer_file: tokenizer,
            config_file: config?,
            special_tokens_map_file: special_tokens?,
            tokenizer_config_file: tokenizer_config?,
        };
        // MiniLM was trained with mean pooling; fastembed defaults to CLS for
        // user-defined models, which gives wrong embeddings without an error.
        let model = UserDefinedEmbeddingModel::new(onnx, files).with_pooling(Pooling::Mean);
        let options = InitOptionsUserDefined::new()
            .with_max_length(MAX_LENGTH)
            .with_intra_threads(threads.max(1))
            .with_session_config("session.intra_op.allow_spinning", "0");
        // ONNX Runtime reports a library it cannot load (or one too old) by panicking.
        let built = catch_unwind(AssertUnwindSafe(|| {
            TextEmbedding::try_new_from_user_defined(model, options)
        }))
        .map_err(|panic| ModelError::Runtime {
            path: ort.clone(),
            message: panic_message(&*panic),
        })?;
        let embedding = built.map_err(|source| ModelError::Load {
            dir: dir.clone(),
            source,
        })?;
        Ok(Model {
            embedding: Mutex::new(embedding),
            dir,
            version,
        })
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its id in the store's keys.
    pub fn id(&self) -> &str {
        MODEL_ID
    }

    /// Its version in the store's keys: the model and tokenizer files' SHA-256 (first 8
    /// bytes), the pooling and the truncation length.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Embed `texts` (L2-normalised vectors of [`DIMENSIONS`] floats) in model calls of
    /// 32. CPU-bound: call it from a blocking thread, not from async code.
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, ModelError> {
        self.embed_batch(texts, 32)
    }

    /// [`embed`](Self::embed) in model calls of `batch` texts (the whole of `texts` when
    /// it is that long: sort them by length first, so little is padded).
    pub fn embed_batch(&self, texts: &[String], batch: usize) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut embedding = self.embedding.lock().unwrap_or_else(|p| p.into_inner());
        let start = std::time::Instant::now();
        let vectors = embedding
            .embed(texts, Some(batch.max(1)))
            .map_err(|source| ModelError::Embed {
                count: texts.len(),
                source,
            })?;
        tracing::debug!(texts = texts.len(), elapsed = ?start.elapsed(), "embedded");
        Ok(vectors)
    }
}

fn env_path(var: &'static str) -> Result<PathBuf, ModelError> {
    let value = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .ok_or(ModelError::NotSet { var })?;
    let path = PathBuf::from(value);
    if !path.exists() {
        return Err(ModelError::Missing { var, path });
    }
    Ok(path)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_else(|| "it panicked".to_owned())
}

/// The cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f32, 0.0f32, 0.0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_known_vectors() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-6);
        assert!((cosine(&[1.0, 1.0], &[-1.0, -1.0]) + 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }
}
