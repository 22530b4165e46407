//! What persistence adds to the [`ApplicationContext`]: the persister the application
//! saves to.

use std::sync::Arc;

use super::Persister;
use crate::ids::ApplicationContext;

/// The application's persister, as the context keeps it.
struct PersisterHandle(Arc<dyn Persister>);

impl ApplicationContext {
    /// Give the context the persister the application saves to.
    pub(crate) fn set_persister(&mut self, persister: Option<Arc<dyn Persister>>) {
        if let Some(persister) = persister {
            self.handles.insert(Arc::new(PersisterHandle(persister)));
        }
    }

    /// The persister the application saves to, if any.
    pub fn persister(&self) -> Option<&Arc<dyn Persister>> {
        self.handles.get_ref::<PersisterHandle>().map(|p| &p.0)
    }
}
