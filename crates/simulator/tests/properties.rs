//! Property tests over generated scenarios: duplicated and reordered
//! delivery, and a crash of the effect runner between any two side effects
//! followed by the same observation delivered again. In every run the
//! engine's invariants hold and the job ends finished or with a deadline.

use gpu_recovery_domain::{JobStatus, Policy, Span, Verdict};
use gpu_recovery_simulator::scenario::{
    DeliverySpec, FaultKind, FaultSpec, HealthSpec, JobSpec, NodeSpec,
};
use gpu_recovery_simulator::{RunOptions, Scenario, Simulation};
use proptest::prelude::*;

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        4 => Just(Verdict::Healthy),
        3 => Just(Verdict::Reboot),
        1 => Just(Verdict::Replace),
        1 => Just(Verdict::Inconclusive),
    ]
}

fn health(verdict: Verdict) -> HealthSpec {
    HealthSpec {
        verdict,
        summary: format!("generated verdict {verdict}"),
        source: verdict.to_string(),
    }
}

fn node(index: usize) -> impl Strategy<Value = NodeSpec> {
    (
        verdict(),
        verdict(),
        prop_oneof![4 => (60_i64..900).prop_map(Some), 1 => Just(None)],
        30_i64..400,
        any::<bool>(),
    )
        .prop_map(move |(first, after, reboot, check, lose)| NodeSpec {
            name: format!("node-{}", char::from(b'a' + u8::try_from(index).unwrap())),
            health: health(first),
            after_reboot: health(after),
            reboot: reboot.map(Span::seconds),
            health_check: Span::seconds(check),
            lose_disconnect_event: lose,
        })
}

fn fault(nodes: usize) -> impl Strategy<Value = FaultSpec> {
    let kind = prop_oneof![
        6 => Just(FaultKind::TaskExit { code: Some(1), stop_code: None, stopped_reason: None }),
        1 => Just(FaultKind::TaskExit { code: Some(2), stop_code: None, stopped_reason: None }),
        1 => Just(FaultKind::TaskExit { code: Some(143), stop_code: Some("SpotInterruption".to_owned()), stopped_reason: None }),
        1 => Just(FaultKind::TaskExit { code: None, stop_code: Some("TaskFailedToStart".to_owned()), stopped_reason: Some("nvml error: unknown error".to_owned()) }),
        1 => Just(FaultKind::UserStop),
        2 => Just(FaultKind::AgentReconnect),
    ];
    (1_i64..600, 0..nodes, kind).prop_map(|(minutes, node, kind)| FaultSpec {
        at: Span::minutes(minutes),
        node: format!("node-{}", char::from(b'a' + u8::try_from(node).unwrap())),
        kind,
    })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2_usize..=3)
        .prop_flat_map(|count| {
            let nodes: Vec<_> = (0..count).map(node).collect();
            (
                nodes,
                proptest::collection::vec(fault(count), 1..=3),
                0_u32..=2,
                1_u32..=3,
                0_u32..=4,
                0_i64..=60,
                any::<u64>(),
                2_i64..=12,
            )
        })
        .prop_map(
            |(nodes, faults, max_retries, max_reboots, duplicate_every, reorder, seed, hours)| {
                let policy = Policy {
                    max_retries,
                    max_concurrent_reboots: max_reboots,
                    ..Policy::default()
                };
                let names = nodes.iter().map(|n| n.name.clone()).collect();
                Scenario {
                    file: "generated".to_owned(),
                    description: String::new(),
                    policy,
                    nodes,
                    job: JobSpec {
                        id: "prop-job".to_owned(),
                        nodes: names,
                        runs_for: Span::minutes(hours * 60),
                        task_definition: "llm-pretrain:7".to_owned(),
                    },
                    faults,
                    delivery: DeliverySpec {
                        duplicate_every,
                        reorder_within: Span::seconds(reorder),
                        seed,
                    },
                    expect: None,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_chaos(scenario in scenario(), crash in proptest::option::of(0_u32..40)) {
        let options = RunOptions { seed: None, crash_after_calls: crash.map(|c| c + 1) };
        let report = Simulation::new(scenario.clone(), &options).run();
        prop_assert!(report.violations.is_empty(), "violations {:?}\n{}", report.violations, report.render_text());
        let job = report.jobs.iter().find(|j| j.job_id == "prop-job").expect("job record");
        prop_assert!(job.job_status.is_terminal() || job.deadline.is_some(), "job {} has no deadline\n{}", job.job_status, report.render_text());
        prop_assert!(job.retry <= scenario.policy.max_retries, "retry {} above {}", job.retry, scenario.policy.max_retries);
        if job.job_status == JobStatus::Failed {
            prop_assert!(!report.notifications.is_empty(), "FAILED without a notification\n{}", report.render_text());
        }
    }

    #[test]
    fn simultaneous_failures_open_one_episode(scenario in scenario(), seed in any::<u64>()) {
        let mut scenario = scenario;
        scenario.faults = scenario.job.nodes.iter().map(|name| FaultSpec {
            at: Span::minutes(90),
            node: name.clone(),
            kind: FaultKind::TaskExit { code: Some(1), stop_code: None, stopped_reason: None },
        }).collect();
        let report = Simulation::new(scenario, &RunOptions { seed: Some(seed), crash_after_calls: None }).run();
        let job = report.jobs.iter().find(|j| j.job_id == "prop-job").expect("job record");
        prop_assert!(report.violations.is_empty(), "violations {:?}\n{}", report.violations, report.render_text());
        prop_assert_eq!(job.episodes_opened, 1, "episodes\n{}", report.render_text());
    }
}
