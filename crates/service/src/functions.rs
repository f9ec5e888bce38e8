//! The four Lambda functions as entry points of the engine, with the side
//! effects each may run. The scopes match the IAM grants of the CDK stack:
//! an effect outside a function's scope stays in the outbox for the watchdog,
//! which may run them all.

use std::collections::BTreeSet;

use gpu_recovery_domain::EffectKind;

/// One of the four Lambda functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryPoint {
    /// Training task STOPPED and RUNNING events.
    EcsTaskHandler,
    /// Health-check task STOPPED events.
    DcgmTaskMonitor,
    /// Container instance changes with `agentConnected`.
    EcsInstanceMonitor,
    /// The five-minute schedule.
    RecoveryWatchdog,
}

impl EntryPoint {
    pub const ALL: [EntryPoint; 4] = [
        EntryPoint::EcsTaskHandler,
        EntryPoint::DcgmTaskMonitor,
        EntryPoint::EcsInstanceMonitor,
        EntryPoint::RecoveryWatchdog,
    ];

    /// The function's name, which is also its binary's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            EntryPoint::EcsTaskHandler => "ecs-task-handler",
            EntryPoint::DcgmTaskMonitor => "dcgm-task-monitor",
            EntryPoint::EcsInstanceMonitor => "ecs-instance-monitor",
            EntryPoint::RecoveryWatchdog => "recovery-watchdog",
        }
    }

    /// The side effects this function may run.
    #[must_use]
    pub fn scope(self) -> BTreeSet<EffectKind> {
        use EffectKind::{Drain, Notify, Reboot, SetNodeAttribute, StartTask, StopTask};
        match self {
            EntryPoint::EcsTaskHandler => {
                BTreeSet::from([StopTask, StartTask, SetNodeAttribute, Notify])
            }
            EntryPoint::DcgmTaskMonitor => {
                BTreeSet::from([StartTask, Reboot, SetNodeAttribute, Drain, Notify])
            }
            EntryPoint::EcsInstanceMonitor => BTreeSet::from([StartTask, SetNodeAttribute, Notify]),
            EntryPoint::RecoveryWatchdog => EffectKind::ALL.into_iter().collect(),
        }
    }
}
