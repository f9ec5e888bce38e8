//! The recovery domain: records, statuses, policy, observations and the pure
//! decision function. Nothing here performs I/O or knows about AWS types;
//! the ports and adapters around it do.

pub mod decide;
pub mod effect;
mod legacy;
pub mod observation;
pub mod policy;
pub mod records;
pub mod status;
pub mod time;
pub mod verdict;

pub use decide::{Context, Decision, Env, Record, Write, decide};
pub use effect::{
    ClaimedEffect, Effect, EffectKind, EffectResult, Intent, MetricEvent, Notification,
    NotificationKind,
};
pub use observation::Observation;
pub use policy::Policy;
pub use records::{JobRecord, NodeRecord, SafetyRecord, TaskRecord};
pub use status::{JobStatus, NodeStatus, TaskStatus};
pub use time::{Span, Timestamp};
pub use verdict::Verdict;
