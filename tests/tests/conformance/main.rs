//! Conformance with Apache Burr 0.43: runs every scenario of `shared/conformance/`
//! (`scenarios.json`) through burr-rs's public API and compares each outcome with the
//! golden one (`golden.json`).
//!
//! One named trial per scenario (`cargo test -p burr-tests --test conformance -- <name>`),
//! so a failure names the behaviour that broke and its first difference. The corpus is
//! `../shared/conformance` beside the repository, or `$BURR_CONFORMANCE_DIR`; a missing
//! corpus fails the run.
//!
//! Every scenario with a persister (SQLite or in memory) runs on PostgreSQL too (trials named
//! `postgres::<scenario>`), on a fresh database of the test server of
//! `burr_postgres::testing` (`BURR_TEST_PG_URL`, or a throwaway server).
//!
//! `supplement/` beside this file holds cases the corpus lacks, in its format and run the
//! same way (trials named `supplement::<scenario>`). Their outcomes are written by hand
//! from Burr 0.43's source, not recorded from a Burr run; its `golden.json` says where
//! each comes from.

mod action;
mod compare;
mod condition;
mod corpus;
mod kinds;
mod ops;
mod runner;
mod store;

use libtest_mimic::{Arguments, Failed, Trial};
use serde_json::Value;

fn main() {
    let args = Arguments::from_args();
    let dir = corpus::locate();
    let mut trials: Vec<Trial> = compare::self_checks()
        .into_iter()
        .map(|(name, check)| Trial::test(name, move || check().map_err(Failed::from)))
        .collect();
    add_corpus(&mut trials, "", &dir);
    add_corpus(&mut trials, "supplement::", &corpus::supplement());
    add_on_postgres(&mut trials, "postgres::", &dir);
    add_on_postgres(&mut trials, "postgres::supplement::", &corpus::supplement());
    libtest_mimic::run(&args, trials).exit();
}

/// One trial per scenario of the corpus in `dir`, named `<prefix><scenario>`; a corpus
/// that is missing, unreadable or inconsistent is a failing trial too.
fn add_corpus(trials: &mut Vec<Trial>, prefix: &str, dir: &std::path::Path) {
    match corpus::load(dir) {
        Ok(corpus) => {
            if !corpus.problems.is_empty() {
                let problems = corpus.problems.join("\n");
                trials.push(Trial::test(
                    format!("{prefix}corpus::consistent"),
                    move || Err(problems.into()),
                ));
            }
            let dir = corpus.dir.display().to_string();
            for (scenario, golden) in corpus.cases {
                let name = format!("{prefix}{}", scenario.name);
                let kind = scenario.category.clone();
                let dir = dir.clone();
                trials.push(
                    Trial::test(name, move || check_scenario(&scenario, &golden, &dir))
                        .with_kind(kind),
                );
            }
        }
        Err(problem) => {
            trials.push(Trial::test(format!("{prefix}corpus::present"), move || {
                Err(format!("the conformance corpus is missing or unreadable: {problem}").into())
            }));
        }
    }
}

/// One trial per scenario of the corpus in `dir` with a persister (SQLite or in memory),
/// named `<prefix><scenario>`, run on a fresh PostgreSQL database instead (the test server of
/// `burr_postgres::testing`: a missing server fails these trials, saying how to get one).
/// A corpus that does not load is reported by [`add_corpus`].
fn add_on_postgres(trials: &mut Vec<Trial>, prefix: &str, dir: &std::path::Path) {
    let Ok(corpus) = corpus::load(dir) else {
        return;
    };
    let dir = corpus.dir.display().to_string();
    for (mut scenario, golden) in corpus.cases {
        match scenario.persistence.as_mut() {
            Some(persistence) => persistence.backend = corpus::Backend::Postgres,
            None => continue,
        }
        let name = format!("{prefix}{}", scenario.name);
        let kind = scenario.category.clone();
        let dir = dir.clone();
        trials.push(
            Trial::test(name, move || check_scenario(&scenario, &golden, &dir)).with_kind(kind),
        );
    }
}

/// Run one scenario and compare its records with the golden ones.
fn check_scenario(scenario: &corpus::Scenario, golden: &Value, dir: &str) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))?;
    let ours = runtime
        .block_on(runner::run(scenario))
        .map_err(|e| format!("scenario `{}` could not be interpreted: {e}", scenario.name))?;
    match compare::first_difference("$", golden, &ours) {
        None => Ok(()),
        Some(difference) => Err(report(scenario, golden, &ours, &difference, dir).into()),
    }
}

/// The failure message: the first difference, the call it is in, and both records of it.
fn report(
    scenario: &corpus::Scenario,
    golden: &Value,
    ours: &Value,
    difference: &str,
    dir: &str,
) -> String {
    let mut text = format!(
        "scenario `{}` ({dir}/scenarios.json) differs from golden.json\n  first difference: {difference}\n",
        scenario.name
    );
    let call = difference
        .strip_prefix("$.calls[")
        .and_then(|rest| rest.split(']').next())
        .and_then(|i| i.parse::<usize>().ok());
    let (what, expected, actual) = match call {
        Some(i) => (
            format!(
                "call #{i}: {}",
                scenario
                    .calls
                    .get(i)
                    .map_or(String::new(), Value::to_string)
            ),
            &golden["calls"][i],
            &ours["calls"][i],
        ),
        None if difference.starts_with("$.build") => {
            ("build".to_owned(), &golden["build"], &ours["build"])
        }
        None => ("scenario".to_owned(), golden, ours),
    };
    text.push_str(&format!(
        "  in {what}\n  golden:  {expected}\n  burr-rs: {actual}"
    ));
    text
}
