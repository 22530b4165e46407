//! [`Declaration`]: what an action declares — its name, the state keys it reads and
//! writes, its inputs and tags — shared by the action types burr-core builds from closures.

/// An action's declared interface.
#[derive(Clone, Debug, Default)]
pub(crate) struct Declaration {
    pub(crate) name: String,
    pub(crate) reads: Vec<String>,
    pub(crate) writes: Vec<String>,
    pub(crate) inputs: Vec<String>,
    pub(crate) optional_inputs: Vec<String>,
    pub(crate) tags: Vec<String>,
}

impl Declaration {
    /// A declaration of `name` with nothing else declared yet.
    pub(crate) fn named(name: String) -> Self {
        Declaration {
            name,
            ..Declaration::default()
        }
    }
}

/// Names from anything iterable over strings.
pub(crate) fn names<I, S>(items: I) -> Vec<String>
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
            self.declaration.reads = $crate::action::declaration::names(keys);
            self
        }

        /// The state keys it writes: exactly these must be set after it runs.
        pub fn writes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, keys: I) -> Self {
            self.declaration.writes = $crate::action::declaration::names(keys);
            self
        }

        /// The inputs it requires.
        pub fn inputs<I: IntoIterator<Item = S>, S: Into<String>>(mut self, inputs: I) -> Self {
            self.declaration.inputs = $crate::action::declaration::names(inputs);
            self
        }

        /// The inputs it takes when given.
        pub fn optional_inputs<I: IntoIterator<Item = S>, S: Into<String>>(
            mut self,
            inputs: I,
        ) -> Self {
            self.declaration.optional_inputs = $crate::action::declaration::names(inputs);
            self
        }

        /// Its tags (for `@tag:<tag>` halts and the tracker).
        pub fn tags<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tags: I) -> Self {
            self.declaration.tags = $crate::action::declaration::names(tags);
            self
        }
    };
}

/// The [`Action`](crate::action::Action) methods that read a `declaration: Declaration` field.
macro_rules! declared_interface {
    () => {
        fn name(&self) -> &str {
            &self.declaration.name
        }
        fn reads(&self) -> &[String] {
            &self.declaration.reads
        }
        fn writes(&self) -> &[String] {
            &self.declaration.writes
        }
        fn inputs(&self) -> &[String] {
            &self.declaration.inputs
        }
        fn optional_inputs(&self) -> &[String] {
            &self.declaration.optional_inputs
        }
        fn tags(&self) -> &[String] {
            &self.declaration.tags
        }
    };
}

pub(crate) use {declaration_builders, declared_interface};
