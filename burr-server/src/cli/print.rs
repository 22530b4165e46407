//! Output: tables for people, JSON for scripts.

use serde::Serialize;

use super::CliError;
use crate::kind::KindInfo;
use crate::run::{now_us, Backlog, Explanation, Run, Submitted};
use crate::schedule::Schedule;

fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    Ok(())
}

/// A time as `2026-12-04T10:00:00Z` (seconds), or `-`.
pub(super) fn time(at_us: Option<i64>) -> String {
    at_us
        .and_then(|us| jiff::Timestamp::from_microsecond(us).ok())
        .map_or_else(|| "-".to_owned(), |t| format!("{:.0}", t))
}

/// How long ago, or until, `at_us`: `3.2s ago`, `in 10.0s`.
fn age(at_us: i64) -> String {
    let seconds = (now_us() - at_us) as f64 / 1e6;
    if seconds >= 0.0 {
        format!("{seconds:.1}s ago")
    } else {
        format!("in {:.1}s", -seconds)
    }
}

/// Rows as an aligned table (nothing cut: ids can be pasted back).
fn table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_uppercase()).collect());
    for row in rows {
        line(row);
    }
}

pub(super) fn submitted(submitted: &Submitted, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(submitted);
    }
    let run = &submitted.run;
    if submitted.created {
        println!(
            "{} queued ({} at priority {})",
            run.id, run.kind, run.priority
        );
    } else {
        println!(
            "{} already exists for this key ({}, {})",
            run.id, run.kind, run.status
        );
    }
    Ok(())
}

pub(super) fn run(run: &Run, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(run);
    }
    let mut lines = vec![
        ("run", run.id.clone()),
        (
            "kind",
            format!("{} (version {})", run.kind, run.kind_version),
        ),
        ("status", run.status.to_string()),
        ("queue", run.queue.clone()),
        ("priority", run.priority.to_string()),
        (
            "flow",
            format!(
                "{} (started {})",
                run.flow,
                time(Some(run.flow_started_at_us))
            ),
        ),
        (
            "attempt",
            format!("{} of at most {}", run.attempt, run.max_attempts),
        ),
        ("submitted", time(Some(run.submitted_at_us))),
        ("started", time(run.started_at_us)),
        ("finished", time(run.finished_at_us)),
        ("inputs", run.inputs.to_string()),
    ];
    if run.not_before_us > run.submitted_at_us {
        lines.push(("not before", time(Some(run.not_before_us))));
    }
    if let Some(key) = &run.idempotency_key {
        lines.push(("key", key.clone()));
    }
    if let (Some(key), Some(limit)) = (&run.concurrency_key, run.concurrency_limit) {
        lines.push(("concurrency", format!("at most {limit} with `{key}`")));
    }
    if let Some(holder) = &run.lease_holder {
        lines.push((
            "worker",
            format!("{holder} (lease until {})", time(run.lease_expires_at_us)),
        ));
    }
    if let Some(code) = &run.code {
        lines.push((
            "code",
            format!(
                "version {}, graph {}",
                code.version.as_deref().unwrap_or("(none)"),
                code.fingerprint
            ),
        ));
    }
    if run.cancel_requested {
        lines.push(("cancel", "requested".to_owned()));
    }
    if let Some(error) = &run.error {
        lines.push(("error", error.join(": ")));
    }
    if let Some(result) = &run.result {
        lines.push(("result", result.to_string()));
    }
    for (name, value) in lines {
        println!("{name:<11} {value}");
    }
    Ok(())
}

pub(super) fn runs(runs: &[Run], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(runs);
    }
    table(
        &[
            "run",
            "kind",
            "status",
            "priority",
            "attempt",
            "flow",
            "submitted",
        ],
        runs.iter()
            .map(|r| {
                vec![
                    r.id.clone(),
                    r.kind.clone(),
                    r.status.to_string(),
                    r.priority.to_string(),
                    r.attempt.to_string(),
                    r.flow.clone(),
                    age(r.submitted_at_us),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub(super) fn backlog(backlog: &Backlog, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(backlog);
    }
    table(
        &["kind", "queue", "priority", "status", "runs"],
        backlog
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.kind.clone(),
                    r.queue.clone(),
                    r.priority.to_string(),
                    r.status.to_string(),
                    r.count.to_string(),
                ]
            })
            .collect(),
    );
    println!(
        "oldest ready run waits for {:.1}s",
        backlog.oldest_waiting_us as f64 / 1e6
    );
    Ok(())
}

pub(super) fn explanation(explanation: &Explanation, as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(explanation);
    }
    let run = &explanation.run;
    println!(
        "{} ({}, {}, priority {})",
        run.id, run.kind, run.status, run.priority
    );
    if let Some(position) = explanation.position {
        println!("position: {position} ready run(s) ahead");
    }
    println!(
        "queue `{}`: {} running, {} worker slot(s)",
        run.queue, explanation.running_in_queue, explanation.worker_slots
    );
    for reason in &explanation.reasons {
        println!("- {reason}");
    }
    if !explanation.ahead.is_empty() {
        println!("ahead of it:");
        for r in &explanation.ahead {
            println!(
                "  {} ({}, priority {}, flow {})",
                r.id, r.kind, r.priority, r.flow
            );
        }
    }
    Ok(())
}

pub(super) fn schedules(schedules: &[Schedule], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(schedules);
    }
    table(
        &["schedule", "kind", "when", "next", "last fired"],
        schedules
            .iter()
            .map(|s| {
                vec![
                    s.name.clone(),
                    s.run.kind.clone(),
                    s.spec.to_string(),
                    time(Some(s.next_due_us)),
                    time(s.last_fired_us),
                ]
            })
            .collect(),
    );
    Ok(())
}

pub(super) fn kinds(kinds: &[KindInfo], as_json: bool) -> Result<(), CliError> {
    if as_json {
        return json(kinds);
    }
    table(
        &["kind", "version", "queue", "inputs"],
        kinds
            .iter()
            .map(|k| {
                let fields = k
                    .input_schema
                    .get("properties")
                    .and_then(|p| p.as_object())
                    .map(|p| p.keys().cloned().collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                vec![
                    k.name.clone(),
                    k.version.to_string(),
                    k.queue.clone(),
                    fields,
                ]
            })
            .collect(),
    );
    Ok(())
}
