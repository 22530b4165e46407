//! [`Declaration`]: what an action declares — its name, the state keys it reads and
//! writes, its inputs and tags, its form, and how it is retried and timed — as one value
//! every kind of action holds.

use std::time::Duration;

use super::RetryPolicy;

/// An action's declared interface: the one thing the framework reads about an action
/// before it runs it.
///
/// ```
/// use burr_core::actions::Declaration;
///
/// let declared = Declaration::new("summarize")
///     .reads(["notes"])
///     .writes(["summary"])
///     .inputs(["model"])
///     .optional_inputs(["max_words"]);
/// assert_eq!(declared.name, "summarize");
/// assert!(declared.takes_input("max_words"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Declaration {
    /// The action's name, unique within an application.
    pub name: String,
    /// The state keys it reads: the only keys it sees.
    pub reads: Vec<String>,
    /// The state keys it writes: exactly these must be set after it runs.
    pub writes: Vec<String>,
    /// The inputs it requires.
    pub inputs: Vec<String>,
    /// The inputs it takes when given.
    pub optional_inputs: Vec<String>,
    /// Tags, for `@tag:<tag>` halt lists and the tracker.
    pub tags: Vec<String>,
    /// Single-step form ([`Action::run_and_update`](super::Action::run_and_update)) rather
    /// than two-step ([`Action::run`](super::Action::run) then
    /// [`Action::update`](super::Action::update)).
    pub single_step: bool,
    /// Streaming form ([`Action::stream_run`](super::Action::stream_run)).
    pub streaming: bool,
    /// How a failed run is retried (default: it is not; the application fails, or takes
    /// an error transition).
    pub retry: Option<RetryPolicy>,
    /// How long one run may take (default: no limit). Past it the run is dropped (a
    /// blocking action sees [`is_cancelled`](crate::ApplicationContext::is_cancelled)) and
    /// the attempt fails with [`ErrorKind::Timeout`](super::ErrorKind::Timeout).
    pub timeout: Option<Duration>,
    /// The version of its code, as its author declares it (default: none). Part of the
    /// graph's fingerprint: an application checkpointed under one version of an action
    /// is not resumed under another without a migration, and a memoized action's cached
    /// results are kept per version.
    pub version: Option<String>,
    /// Memoized: with a step cache
    /// ([`ApplicationBuilder::with_step_cache`](crate::ApplicationBuilder::with_step_cache)),
    /// a run is stored under (name, version, hash of its inputs and of the values of the
    /// keys it reads) and reused instead of running it again, across applications and
    /// processes. For actions whose outcome depends on nothing else.
    pub memoize: bool,
}

impl Declaration {
    /// An action named `name` that reads, writes and takes nothing yet, in two-step form.
    pub fn new(name: impl Into<String>) -> Self {
        Declaration {
            name: name.into(),
            ..Declaration::default()
        }
    }

    /// The state keys it reads.
    pub fn reads<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.reads = names(keys);
        self
    }

    /// The state keys it writes.
    pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
        self.writes = names(keys);
        self
    }

    /// The inputs it requires.
    pub fn inputs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, inputs: I) -> Self {
        self.inputs = names(inputs);
        self
    }

    /// The inputs it takes when given.
    pub fn optional_inputs<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        inputs: I,
    ) -> Self {
        self.optional_inputs = names(inputs);
        self
    }

    /// Its tags.
    pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
        self.tags = names(tags);
        self
    }

    /// Single-step form.
    pub fn single_step(mut self) -> Self {
        self.single_step = true;
        self
    }

    /// Streaming form.
    pub fn streaming(mut self) -> Self {
        self.streaming = true;
        self
    }

    /// Retry failed runs by `policy`.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Fail a run that takes longer than `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The version of its code (see [`version`](Self::version)).
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Memoized (see [`memoize`](Self::memoize)).
    pub fn memoize(mut self) -> Self {
        self.memoize = true;
        self
    }

    /// Under another name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Whether it takes the input `name`, required or optional.
    pub fn takes_input(&self, name: &str) -> bool {
        self.inputs
            .iter()
            .chain(&self.optional_inputs)
            .any(|i| i == name)
    }
}

/// Names from anything iterable over strings.
fn names<I, S>(items: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items.into_iter().map(Into::into).collect()
}

/// The builder methods (`reads`, `writes`, `inputs`, `optional_inputs`, `tags`) of an
/// action type with a `declaration: Declaration` field.
macro_rules! declaration_builders {
    () => {
        /// The state keys it reads: the only keys it sees.
        pub fn reads<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).reads(keys);
            self
        }

        /// The state keys it writes: exactly these must be set after it runs.
        pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).writes(keys);
            self
        }

        /// The inputs it requires.
        pub fn inputs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, inputs: I) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).inputs(inputs);
            self
        }

        /// The inputs it takes when given.
        pub fn optional_inputs<I: IntoIterator<Item = S>, S: Into<String>>(
            mut self,
            inputs: I,
        ) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).optional_inputs(inputs);
            self
        }

        /// Its tags (for `@tag:<tag>` halts and the tracker).
        pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).tags(tags);
            self
        }

        /// The version of its code: part of the graph's fingerprint (a resume under
        /// another version needs a migration) and of a memoized action's cache keys.
        pub fn version(mut self, version: impl Into<String>) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).version(version);
            self
        }

        /// Memoize it: with a step cache, a run with the same inputs and read values (and
        /// the same version) is reused instead of run again.
        pub fn memoize(mut self) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).memoize();
            self
        }

        /// Retry a failed run of the step by `policy` (the builder's
        /// [`with_retry`](crate::ApplicationBuilder::with_retry) overrides it).
        pub fn retry(mut self, policy: $crate::actions::RetryPolicy) -> Self {
            self.declaration = std::mem::take(&mut self.declaration).retry(policy);
            self
        }
    };
}

pub(crate) use declaration_builders;
