//! The simulated ECS cluster: container instances, tasks, SSM commands, and
//! the ECS events that real ECS would emit for each change.
//!
//! It serves the engine's calls through the same ports as the AWS adapters.
//! Like real ECS, it emits container instance events for task placement,
//! task stops and attribute changes, which must never read as a node coming
//! back from a reboot. Changes that take time (a task starting, a reboot)
//! are scheduled as [`Internal`] events for the simulation loop.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gpu_recovery_domain::observation::CommandStatus;
use gpu_recovery_domain::{Span, Timestamp};
use gpu_recovery_eventbridge::family_of;
use gpu_recovery_memory::MemoryStore;
use gpu_recovery_ports::{
    CallError, Cluster, ContainerInstance, HostControl, RebootOutcome, StartTaskOutcome,
    StartTaskRequest, TaskDescription,
};
use serde_json::Value;

use crate::events;
use crate::scenario::{NodeSpec, Scenario};

pub const ACCOUNT: &str = "111122223333";
pub const REGION: &str = "us-west-2";
pub const CLUSTER: &str = "gpu-training";
pub const HEALTH_CHECK_FAMILY: &str = "gpu-dcgm-health-check";

/// Time ECS takes from StartTask to RUNNING in the simulation.
const START_DELAY: Span = Span::seconds(10);
/// Time from StopTask to STOPPED.
const STOP_DELAY: Span = Span::seconds(5);
/// Time from the reboot command to the agent disconnecting.
const SHUTDOWN_DELAY: Span = Span::seconds(5);

#[derive(Debug, Clone)]
pub struct SimInstance {
    pub index: usize,
    pub node: String,
    pub arn: String,
    pub ec2_instance_id: String,
    pub agent_connected: bool,
    pub status: String,
    pub version: u64,
    pub attributes: BTreeMap<String, String>,
    /// Whether the node has completed a reboot, so checks report `after_reboot`.
    pub rebooted: bool,
    /// A reboot is under way: the command was sent and the node is not back.
    pub reboot_pending: bool,
    pub completed_reboots: Vec<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct SimTask {
    pub arn: String,
    pub family: String,
    pub task_definition_arn: String,
    pub container_name: String,
    pub image: String,
    pub container_instance_arn: String,
    pub node: String,
    pub started_by: String,
    pub tags: BTreeMap<String, String>,
    pub overrides: Value,
    pub last_status: String,
    pub desired_status: String,
    pub version: u64,
    pub exit_code: Option<i32>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
}

#[derive(Debug, Clone)]
pub struct SimCommand {
    pub command_id: String,
    pub instance_id: String,
    pub node: String,
    pub token: String,
    pub requested_at: Timestamp,
    pub status: CommandStatus,
}

/// A change the cluster makes on its own after a delay.
#[derive(Debug, Clone, PartialEq)]
pub enum Internal {
    TaskRunning {
        arn: String,
    },
    TaskStopped {
        arn: String,
        exit_code: Option<i32>,
        stop_code: String,
        reason: String,
    },
    AgentDown {
        node: String,
        reboot: bool,
    },
    AgentUp {
        node: String,
        reboot: bool,
    },
}

#[derive(Debug)]
pub struct ClusterState {
    pub now: Timestamp,
    pub nodes: Vec<NodeSpec>,
    pub runs_for: Span,
    pub instances: BTreeMap<String, SimInstance>,
    pub tasks: BTreeMap<String, SimTask>,
    pub commands: Vec<SimCommand>,
    /// Changes to schedule, drained by the simulation loop.
    pub scheduled: Vec<(Timestamp, Internal)>,
    /// Documents to deliver, drained by the simulation loop.
    pub emitted: Vec<Value>,
    next_id: u64,
    /// Mutating calls left before the engine "crashes"; `None` never.
    pub crash_countdown: Option<u32>,
    pub crashed: bool,
    store: MemoryStore,
}

/// Shared handle to the simulated cluster; clones share the state.
#[derive(Debug, Clone)]
pub struct SimCluster {
    state: Arc<Mutex<ClusterState>>,
}

#[must_use]
pub fn cluster_arn() -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{CLUSTER}")
}

impl SimCluster {
    #[must_use]
    pub fn new(scenario: &Scenario, store: MemoryStore, start: Timestamp) -> SimCluster {
        let mut instances = BTreeMap::new();
        for (index, node) in scenario.nodes.iter().enumerate() {
            let arn = format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:container-instance/{CLUSTER}/{:032x}",
                0x0f1e_2d3c_u64 * 1000 + index as u64
            );
            let instance = SimInstance {
                index,
                node: node.name.clone(),
                arn,
                ec2_instance_id: format!("i-0a1b2c3d4e5f{:05x}", index + 0x60718),
                agent_connected: true,
                status: "ACTIVE".to_owned(),
                version: 48_200 + 10 * index as u64,
                attributes: BTreeMap::new(),
                rebooted: false,
                reboot_pending: false,
                completed_reboots: Vec::new(),
            };
            instances.insert(node.name.clone(), instance);
        }
        SimCluster {
            state: Arc::new(Mutex::new(ClusterState {
                now: start,
                nodes: scenario.nodes.clone(),
                runs_for: scenario.job.runs_for,
                instances,
                tasks: BTreeMap::new(),
                commands: Vec::new(),
                scheduled: Vec::new(),
                emitted: Vec::new(),
                next_id: 1,
                crash_countdown: None,
                crashed: false,
                store,
            })),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, ClusterState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl ClusterState {
    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn spec(&self, node: &str) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == node)
    }

    fn instance_by_arn(&self, arn: &str) -> Option<&SimInstance> {
        self.instances.values().find(|i| i.arn == arn)
    }

    /// Emits a container instance event for a change of the instance.
    pub fn touch_instance(&mut self, node: &str, emit: bool) {
        let now = self.now;
        let id = self.next_id();
        let Some(instance) = self.instances.get_mut(node) else {
            return;
        };
        instance.version += 1;
        if emit {
            let event = events::instance_event(id, &cluster_arn(), instance, now);
            self.emitted.push(event);
        }
    }

    /// Emits a task event for the task as it is now.
    pub fn touch_task(&mut self, arn: &str) {
        let now = self.now;
        let id = self.next_id();
        if let Some(task) = self.tasks.get_mut(arn) {
            task.version += 1;
            let event = events::task_event(id, &cluster_arn(), task, now);
            self.emitted.push(event);
        }
    }

    /// Refuses a mutating call once the engine has "crashed".
    fn before_change(&self, operation: &str) -> Result<(), CallError> {
        if self.crashed {
            return Err(CallError::transient(
                operation,
                "the effect runner crashed before this call",
            ));
        }
        Ok(())
    }

    /// Counts a mutating call towards the planned crash.
    fn after_change(&mut self) {
        if let Some(left) = self.crash_countdown.as_mut() {
            *left = left.saturating_sub(1);
            if *left == 0 {
                self.crash_countdown = None;
                self.crashed = true;
                self.store.set_unavailable(true);
            }
        }
    }

    /// Ends the crash: the runner restarts with the store reachable again.
    pub fn recover(&mut self) {
        self.crashed = false;
        self.store.set_unavailable(false);
    }

    /// Applies a scheduled change and emits the events it causes.
    pub fn apply(&mut self, change: &Internal) {
        match change {
            Internal::TaskRunning { arn } => {
                let now = self.now;
                let Some(task) = self.tasks.get_mut(arn) else {
                    return;
                };
                if task.last_status != "PENDING" {
                    return;
                }
                "RUNNING".clone_into(&mut task.last_status);
                task.started_at = Some(now);
                self.touch_task(arn);
            }
            Internal::TaskStopped {
                arn,
                exit_code,
                stop_code,
                reason,
            } => {
                let Some(task) = self.tasks.get_mut(arn) else {
                    return;
                };
                if task.last_status == "STOPPED" {
                    return;
                }
                let never_ran = task.last_status == "PENDING";
                "STOPPED".clone_into(&mut task.last_status);
                "STOPPED".clone_into(&mut task.desired_status);
                task.exit_code = if never_ran && stop_code != "TaskFailedToStart" {
                    None
                } else {
                    *exit_code
                };
                task.stop_code = Some(stop_code.clone());
                task.stopped_reason = Some(reason.clone());
                let node = task.node.clone();
                self.touch_task(arn);
                self.touch_instance(&node, true);
            }
            Internal::AgentDown { node, reboot } => {
                let lose = *reboot && self.spec(node).is_some_and(|s| s.lose_disconnect_event);
                let Some(instance) = self.instances.get_mut(node) else {
                    return;
                };
                // Once the reboot command runs, only the reboot moves the agent.
                if !instance.agent_connected || (instance.reboot_pending && !*reboot) {
                    return;
                }
                instance.agent_connected = false;
                self.touch_instance(node, !lose);
            }
            Internal::AgentUp { node, reboot } => {
                let now = self.now;
                let Some(instance) = self.instances.get_mut(node) else {
                    return;
                };
                if instance.reboot_pending && !*reboot {
                    return;
                }
                instance.agent_connected = true;
                if *reboot {
                    instance.rebooted = true;
                    instance.reboot_pending = false;
                    instance.completed_reboots.push(now);
                    let instance_id = instance.ec2_instance_id.clone();
                    for command in self.commands.iter_mut().filter(|c| {
                        c.instance_id == instance_id && c.status == CommandStatus::InProgress
                    }) {
                        command.status = CommandStatus::Success;
                    }
                }
                self.touch_instance(node, true);
            }
        }
    }

    /// Returns the running training task on a node, if any.
    #[must_use]
    pub fn running_training_task(&self, node: &str) -> Option<String> {
        self.tasks
            .values()
            .find(|t| {
                t.node == node && t.family != HEALTH_CHECK_FAMILY && t.last_status != "STOPPED"
            })
            .map(|t| t.arn.clone())
    }

    // One StartTask call, step by step: placement checks, the task, its events
    // and its scheduled end. Splitting it would scatter one ECS call.
    #[allow(clippy::too_many_lines)]
    fn start(&mut self, request: &StartTaskRequest) -> Result<StartTaskOutcome, CallError> {
        let Some(instance) = self
            .instance_by_arn(&request.container_instance_arn)
            .cloned()
        else {
            return Err(CallError::rejected(
                "StartTask",
                format!(
                    "container instance {} is not in cluster {CLUSTER}",
                    request.container_instance_arn
                ),
            ));
        };
        if !instance.agent_connected {
            return Ok(StartTaskOutcome::Rejected {
                reason: format!("AGENT: the agent on {} is disconnected", instance.arn),
            });
        }
        if instance.status != "ACTIVE" {
            return Ok(StartTaskOutcome::Rejected {
                reason: format!(
                    "the container instance {} is {}",
                    instance.arn, instance.status
                ),
            });
        }
        if let Some(busy) = self
            .tasks
            .values()
            .find(|t| t.node == instance.node && t.last_status != "STOPPED")
        {
            return Ok(StartTaskOutcome::Rejected {
                reason: format!("RESOURCE:GPU: task {} holds the node's GPUs", busy.arn),
            });
        }
        let now = self.now;
        let id = self.next_id();
        let arn = format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT}:task/{CLUSTER}/{:032x}",
            id * 0x9e37_79b9 + 0xb4e7
        );
        let family = family_of(&request.task_definition);
        let health_check = family == HEALTH_CHECK_FAMILY;
        let task_definition_arn = if request.task_definition.starts_with("arn:") {
            request.task_definition.clone()
        } else if request.task_definition.contains(':') {
            format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}",
                request.task_definition
            )
        } else {
            format!(
                "arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{}:1",
                request.task_definition
            )
        };
        let task = SimTask {
            arn: arn.clone(),
            family,
            task_definition_arn,
            container_name: if health_check {
                "dcgm-diag".to_owned()
            } else {
                "trainer".to_owned()
            },
            image: if health_check {
                format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/gpu-health-check:1.2.0")
            } else {
                format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/llm-pretrain:2026.11.3")
            },
            container_instance_arn: instance.arn.clone(),
            node: instance.node.clone(),
            started_by: request.started_by.clone(),
            tags: request.tags.clone(),
            overrides: request.overrides.clone(),
            last_status: "PENDING".to_owned(),
            desired_status: "RUNNING".to_owned(),
            version: 0,
            exit_code: None,
            stop_code: None,
            stopped_reason: None,
            created_at: now,
            started_at: None,
        };
        self.tasks.insert(arn.clone(), task);
        self.touch_task(&arn);
        self.touch_instance(&instance.node, true);
        self.scheduled.push((
            now + START_DELAY,
            Internal::TaskRunning { arn: arn.clone() },
        ));
        let spec = self.spec(&instance.node).cloned();
        if health_check {
            let spec = spec.expect("every instance has a node spec");
            let health = if instance.rebooted {
                &spec.after_reboot
            } else {
                &spec.health
            };
            self.scheduled.push((
                now + START_DELAY + spec.health_check,
                Internal::TaskStopped {
                    arn: arn.clone(),
                    exit_code: Some(health.verdict.exit_code()),
                    stop_code: "EssentialContainerExited".to_owned(),
                    reason: "Essential container in task exited".to_owned(),
                },
            ));
        } else {
            self.scheduled.push((
                now + START_DELAY + self.runs_for,
                Internal::TaskStopped {
                    arn: arn.clone(),
                    exit_code: Some(0),
                    stop_code: "EssentialContainerExited".to_owned(),
                    reason: "Essential container in task exited".to_owned(),
                },
            ));
        }
        Ok(StartTaskOutcome::Started { task_arn: arn })
    }
}

impl Cluster for SimCluster {
    async fn describe_task(
        &self,
        task_arn: &str,
        include_tags: bool,
    ) -> Result<Option<TaskDescription>, CallError> {
        let state = self.lock();
        Ok(state.tasks.get(task_arn).map(|t| TaskDescription {
            task_arn: t.arn.clone(),
            last_status: t.last_status.clone(),
            container_instance_arn: t.container_instance_arn.clone(),
            task_definition_arn: t.task_definition_arn.clone(),
            started_by: Some(t.started_by.clone()),
            tags: if include_tags {
                t.tags.clone()
            } else {
                BTreeMap::new()
            },
            stop_code: t.stop_code.clone(),
            exit_codes: t.exit_code.into_iter().collect(),
            stopped_reason: t.stopped_reason.clone(),
            version: t.version,
            overrides: t.overrides.clone(),
        }))
    }

    async fn tasks_started_by(
        &self,
        container_instance_arn: &str,
        started_by: &str,
    ) -> Result<Vec<String>, CallError> {
        let state = self.lock();
        Ok(state
            .tasks
            .values()
            .filter(|t| {
                t.container_instance_arn == container_instance_arn && t.started_by == started_by
            })
            .map(|t| t.arn.clone())
            .collect())
    }

    async fn start_task(&self, request: &StartTaskRequest) -> Result<StartTaskOutcome, CallError> {
        let mut state = self.lock();
        state.before_change("StartTask")?;
        let outcome = state.start(request);
        state.after_change();
        outcome
    }

    async fn stop_task(&self, task_arn: &str, reason: &str) -> Result<(), CallError> {
        let mut state = self.lock();
        state.before_change("StopTask")?;
        let now = state.now;
        let Some(task) = state.tasks.get_mut(task_arn) else {
            return Err(CallError::rejected(
                "StopTask",
                format!("task {task_arn} not found"),
            ));
        };
        if task.last_status != "STOPPED" && task.desired_status != "STOPPED" {
            "STOPPED".clone_into(&mut task.desired_status);
            let exit_code = if task.last_status == "RUNNING" {
                Some(137)
            } else {
                None
            };
            state.scheduled.push((
                now + STOP_DELAY,
                Internal::TaskStopped {
                    arn: task_arn.to_owned(),
                    exit_code,
                    stop_code: "UserInitiated".to_owned(),
                    reason: reason.to_owned(),
                },
            ));
        }
        state.after_change();
        Ok(())
    }

    async fn put_attribute(
        &self,
        container_instance_arn: &str,
        name: &str,
        value: &str,
    ) -> Result<(), CallError> {
        let mut state = self.lock();
        state.before_change("PutAttributes")?;
        let Some(node) = state
            .instance_by_arn(container_instance_arn)
            .map(|i| i.node.clone())
        else {
            return Err(CallError::rejected(
                "PutAttributes",
                format!("container instance {container_instance_arn} not found"),
            ));
        };
        let instance = state.instances.get_mut(&node).expect("instance present");
        instance
            .attributes
            .insert(name.to_owned(), value.to_owned());
        state.touch_instance(&node, true);
        state.after_change();
        Ok(())
    }

    async fn drain(&self, container_instance_arn: &str) -> Result<(), CallError> {
        let mut state = self.lock();
        state.before_change("UpdateContainerInstancesState")?;
        let Some(node) = state
            .instance_by_arn(container_instance_arn)
            .map(|i| i.node.clone())
        else {
            return Err(CallError::rejected(
                "UpdateContainerInstancesState",
                format!("container instance {container_instance_arn} not found"),
            ));
        };
        let instance = state.instances.get_mut(&node).expect("instance present");
        "DRAINING".clone_into(&mut instance.status);
        state.touch_instance(&node, true);
        state.after_change();
        Ok(())
    }

    async fn describe_container_instance(
        &self,
        container_instance_arn: &str,
    ) -> Result<Option<ContainerInstance>, CallError> {
        let state = self.lock();
        Ok(state
            .instance_by_arn(container_instance_arn)
            .map(|i| ContainerInstance {
                container_instance_arn: i.arn.clone(),
                ec2_instance_id: i.ec2_instance_id.clone(),
                agent_connected: i.agent_connected,
                status: i.status.clone(),
                version: i.version,
            }))
    }
}

impl HostControl for SimCluster {
    async fn is_reachable(&self, instance_id: &str) -> Result<bool, CallError> {
        let state = self.lock();
        Ok(state
            .instances
            .values()
            .any(|i| i.ec2_instance_id == instance_id && i.agent_connected))
    }

    async fn find_reboot(
        &self,
        instance_id: &str,
        token: &str,
    ) -> Result<Option<String>, CallError> {
        let state = self.lock();
        Ok(state
            .commands
            .iter()
            .find(|c| c.instance_id == instance_id && c.token == token)
            .map(|c| c.command_id.clone()))
    }

    async fn reboot(&self, instance_id: &str, token: &str) -> Result<RebootOutcome, CallError> {
        let mut state = self.lock();
        state.before_change("SendCommand")?;
        let Some(node) = state
            .instances
            .values()
            .find(|i| i.ec2_instance_id == instance_id)
            .map(|i| i.node.clone())
        else {
            return Ok(RebootOutcome::Rejected {
                reason: format!("InvalidInstanceId: {instance_id}"),
            });
        };
        let now = state.now;
        let id = state.next_id();
        let command_id = format!("{:08x}-1c2d-4e3f-8a9b-{:012x}", id, id * 7919);
        state.commands.push(SimCommand {
            command_id: command_id.clone(),
            instance_id: instance_id.to_owned(),
            node: node.clone(),
            token: token.to_owned(),
            requested_at: now,
            status: CommandStatus::InProgress,
        });
        state
            .instances
            .get_mut(&node)
            .expect("instance present")
            .reboot_pending = true;
        state.scheduled.push((
            now + SHUTDOWN_DELAY,
            Internal::AgentDown {
                node: node.clone(),
                reboot: true,
            },
        ));
        if let Some(takes) = state.spec(&node).and_then(|s| s.reboot) {
            state
                .scheduled
                .push((now + takes, Internal::AgentUp { node, reboot: true }));
        }
        state.after_change();
        Ok(RebootOutcome::Sent { command_id })
    }

    async fn reboot_status(
        &self,
        instance_id: &str,
        command_id: &str,
    ) -> Result<Option<CommandStatus>, CallError> {
        let state = self.lock();
        Ok(state
            .commands
            .iter()
            .find(|c| c.instance_id == instance_id && c.command_id == command_id)
            .map(|c| c.status))
    }
}
