//! Inputs (required, optional, defaulted), the context, names and tags, keys as string
//! literals and keywords, bindings, `blocking`, `cfg`, visibility. Compiles without a
//! single warning.
#![deny(warnings)]

use burr_core::{action, ApplicationContext, State};

use burr_core::actions::{Action, ActionExt};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
pub struct Filter {
    pub min_score: f64,
}

pub mod actions {
    use super::*;

    /// Documented function, documented action.
    #[action(reads = [query, "documents"], writes = [answer, r#type], name = "answer_question", tags = ["llm"])]
    pub fn answer(
        state: State,
        model: String,
        top_k: Option<usize>,
        #[input(default = Filter { min_score: 0.5 })] filter: Filter,
        ctx: &ApplicationContext,
    ) -> (Value, State) {
        let line = format!("{model} {top_k:?} {} {}", filter.min_score, ctx.app_id());
        (
            json!({ "line": line }),
            state.update("answer", line).update("type", "text"),
        )
    }

    #[action(writes = [n], blocking)]
    pub(crate) fn heavy(state: State, rounds: u64, ctx: ApplicationContext) -> State {
        state.update("n", rounds + ctx.sequence_id())
    }

    #[cfg(any())]
    #[action(writes = [never])]
    fn compiled_out(state: State) -> State {
        state
    }
}

fn main() {
    use actions::{Answer, Heavy};
    assert_eq!(Answer.name(), "answer_question");
    assert_eq!(Answer.declaration().reads, ["query", "documents"]);
    assert_eq!(Answer.declaration().writes, ["answer", "type"]);
    assert_eq!(Answer.declaration().inputs, ["model"]);
    assert_eq!(Answer.declaration().optional_inputs, ["top_k", "filter"]);
    let small = Answer.bind("model", "small").named("answer_small");
    assert_eq!(small.declaration().name, "answer_small");
    assert!(small.declaration().inputs.is_empty());
    assert_eq!(Heavy.declaration().inputs, ["rounds"]);
}
