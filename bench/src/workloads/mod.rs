//! The workloads, one module each.

mod w1;
mod w3;

use serde_json::{json, Value};

/// Parsed command line.
pub struct Options {
    /// The workload's name.
    pub workload: String,
    /// Its size, when given.
    pub n: Option<u64>,
}

impl Options {
    /// Parse `<workload> [--n N]`.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut workload = None;
        let mut n = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--n" => {
                    let value = it.next().ok_or("--n needs a number")?;
                    n = Some(
                        value
                            .parse()
                            .map_err(|_| format!("--n: `{value}` is not a number"))?,
                    );
                }
                "-h" | "--help" => return Err("help".into()),
                name if workload.is_none() && !name.starts_with('-') => {
                    workload = Some(name.to_owned())
                }
                other => return Err(format!("unexpected argument `{other}`")),
            }
        }
        Ok(Options {
            workload: workload.ok_or("no workload given")?,
            n,
        })
    }
}

/// Run the workload the options name.
pub fn run(options: &Options) -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let all = options.workload == "all";
    let mut ran = false;
    if all || options.workload == "w1" {
        report(runtime.block_on(w1::step_overhead(options.n.unwrap_or(10_000), false))?);
        ran = true;
    }
    if all || options.workload == "w1-big" {
        report(runtime.block_on(w1::step_overhead(options.n.unwrap_or(10_000), true))?);
        ran = true;
    }
    if all || options.workload == "update" {
        report(w1::one_update(options.n.unwrap_or(10_000)));
        ran = true;
    }
    if all || options.workload == "w3" {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        report(rt.block_on(w3::fan_out(options.n.unwrap_or(1_000) as usize, None))?);
        ran = true;
    }
    if !ran {
        return Err(format!("unknown workload `{}`", options.workload).into());
    }
    Ok(())
}

fn report(mut line: Value) {
    if let Some(obj) = line.as_object_mut() {
        obj.entry("machine_cores")
            .or_insert(json!(std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)));
    }
    println!("{line}");
}
