//! A checkpointed fan-out for the crash tests: one child application per item; each child
//! logs its run, sleeps a little and returns the item's length; the parent reduces the
//! lengths in item order.
//!
//! `fanout-app --db PATH --app-id ID --items N --log FILE`: appends `ran <child app id>`
//! to FILE when a child's action runs; prints the reduced lengths as JSON at the end.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use burr_core::actions::action_fn;
use burr_core::parallel::{Executor, MapAction, SubGraph};
use burr_core::persistence::{Persister, SqlitePersister};
use burr_core::RunOptions;
use burr_core::{ActionError, ApplicationBuilder, ApplicationContext, Inputs, State};

fn arg(args: &[String], name: &str) -> Result<String, String> {
    args.windows(2)
        .find(|w| w[0] == name)
        .map(|w| w[1].clone())
        .ok_or_else(|| format!("missing {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = PathBuf::from(arg(&args, "--db")?);
    let app_id = arg(&args, "--app-id")?;
    let items: usize = arg(&args, "--items")?.parse()?;
    let log = Arc::new(Mutex::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(arg(&args, "--log")?)?,
    ));
    let measure = action_fn("measure", move |s: State, _, ctx: ApplicationContext| {
        let log = Arc::clone(&log);
        async move {
            log.lock()
                .unwrap_or_else(|p| p.into_inner())
                .write_all(format!("ran {}\n", ctx.app_id()).as_bytes())?;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            let text: String = s.get("text")?;
            Ok::<_, ActionError>(s.update("length", text.len()))
        }
    })
    .reads(["text"])
    .writes(["length"]);
    let fan_out = MapAction::keyed_states(
        "measure_all",
        SubGraph::action(measure),
        |s: &State, _: &Inputs| {
            let items: Vec<String> = s.get("items")?;
            Ok::<_, ActionError>(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, item)| (format!("item-{i}"), State::new().update("text", item)))
                    .collect(),
            )
        },
    )
    .reduce(|state: State, children: Vec<State>| {
        let lengths: Vec<i64> = children
            .iter()
            .map(|c| c.get("length"))
            .collect::<Result<_, _>>()?;
        Ok::<_, ActionError>(state.update("lengths", lengths))
    })
    .reads(["items"])
    .writes(["lengths"]);
    let persister: Arc<dyn Persister> = Arc::new(SqlitePersister::open(&db)?);
    let initial = State::new().update(
        "items",
        (0..items)
            .map(|i| "x".repeat(i % 5 + 1))
            .collect::<Vec<_>>(),
    );
    let mut app = ApplicationBuilder::new()
        .with_actions([fan_out])
        .with_app_id(app_id)
        .with_state_persister(Arc::clone(&persister))
        .with_state(initial)
        .with_entrypoint("measure_all")
        .initialize_from(persister)
        .with_executor(Executor::new(4))
        .build()
        .await?;
    let outcome = app
        .run(RunOptions::new().halt_after(["measure_all"]))
        .await?;
    println!(
        "{}",
        outcome
            .state
            .get_value("lengths")
            .cloned()
            .unwrap_or_default()
    );
    Ok(())
}
