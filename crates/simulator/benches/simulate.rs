//! Measures how long the simulator takes to run each example scenario, and
//! how many simulated hours it covers per second of wall-clock time.
//!
//! Run with `cargo bench -p gpu-recovery-simulator`. Results are recorded in
//! docs/benchmarks.md together with the machine they came from.

use std::path::Path;
use std::time::{Duration, Instant};

use gpu_recovery_simulator::{RunOptions, Scenario, Simulation};

const RUNS: u32 = 20;

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut paths: Vec<_> = std::fs::read_dir(&examples)
        .expect("examples folder")
        .map(|entry| entry.expect("folder entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    println!(
        "{:<32} {:>10} {:>10} {:>14}",
        "scenario", "mean ms", "min ms", "sim hours/s"
    );
    for path in paths {
        let scenario = Scenario::from_file(&path).expect("valid example");
        let mut times = Vec::new();
        let mut simulated = 0_i64;
        for _ in 0..RUNS {
            let started = Instant::now();
            let report = Simulation::new(scenario.clone(), &RunOptions::default()).run();
            times.push(started.elapsed());
            simulated = report.lines.last().map_or(0, |line| line.at.0);
        }
        let total: Duration = times.iter().sum();
        let mean = total / RUNS;
        let min = times.iter().min().copied().unwrap_or_default();
        #[allow(clippy::cast_precision_loss)] // Millisecond counts stay far below 2^52.
        let hours_per_second = (simulated as f64 / 3_600_000.0) / mean.as_secs_f64();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        println!(
            "{name:<32} {:>10.2} {:>10.2} {hours_per_second:>14.0}",
            mean.as_secs_f64() * 1000.0,
            min.as_secs_f64() * 1000.0
        );
    }
}
