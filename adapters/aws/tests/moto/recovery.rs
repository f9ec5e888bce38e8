//! A whole recovery on the AWS adapters against moto: submit a two-node job,
//! fail a rank, run the health checks, reboot the faulty node through SSM,
//! bring it back, restart the job, then fail it past its retry budget.
//!
//! Events are built from the sample shapes with the real ARNs, because moto
//! emits none. Each step is checked in the tables, in ECS, in SSM's command
//! list and in the messages SNS received.

use aws_sdk_ecs::types::TaskField;
use gpu_recovery_aws::dynamodb::tables::create_tables;
use gpu_recovery_aws::submit::{JobSpec, SubmitContext, submit};
use gpu_recovery_aws::{DynamoStore, EcsCluster, EmfMetrics, SnsNotifier, SsmHostControl};
use gpu_recovery_domain::records::{CheckPhase, NodeAction, TaskKind, TaskRecord};
use gpu_recovery_domain::{JobRecord, JobStatus, NodeRecord, NodeStatus, Policy, Timestamp};
use gpu_recovery_ports::RecordStore;
use gpu_recovery_service::functions::EntryPoint;
use gpu_recovery_service::{Engine, EngineConfig, Ports};
use serde_json::{Value, json};

use crate::support::{published, table_names, unique};
use crate::world::World;

type AwsEngine = Engine<DynamoStore, EcsCluster, SsmHostControl, SnsNotifier, EmfMetrics>;

/// How the events of a run are delivered.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    /// Each event is handled this many times, as EventBridge may deliver it.
    copies: usize,
    /// Both ranks fail at once, in two concurrent invocations.
    both_ranks_fail: bool,
}

struct Recovery {
    world: World,
    store: DynamoStore,
    topic_arn: String,
    job_id: String,
    delivery: Delivery,
}

impl Recovery {
    async fn new(prefix: &str, delivery: Delivery) -> Recovery {
        let world = World::new(prefix, 2).await;
        let names = table_names(prefix);
        create_tables(&world.clients.dynamodb, &names)
            .await
            .expect("tables created");
        let topic_arn = world
            .clients
            .sns
            .create_topic()
            .name(unique("gpu-recovery"))
            .send()
            .await
            .unwrap()
            .topic_arn()
            .unwrap()
            .to_owned();
        Recovery {
            store: DynamoStore::new(world.clients.dynamodb.clone(), names),
            world,
            topic_arn,
            job_id: unique("llm-pretrain"),
            delivery,
        }
    }

    fn engine(&self, entry: EntryPoint) -> AwsEngine {
        let clients = &self.world.clients;
        Engine::new(
            Ports {
                store: self.store.clone(),
                cluster: EcsCluster::new(clients.ecs.clone(), &self.world.cluster_name),
                host: SsmHostControl::new(clients.ssm.clone()),
                notifier: SnsNotifier::new(clients.sns.clone(), &self.topic_arn),
                metrics: EmfMetrics::with_writer(Box::new(std::io::sink())),
            },
            Policy::default(),
            EngineConfig {
                cluster_name: self.world.cluster_name.clone(),
                health_check_task: self.world.check_family.clone(),
                function: entry.name().to_owned(),
                scope: entry.scope(),
            },
        )
    }

    /// Hands an event to a function, once per copy, as separate invocations.
    async fn deliver(&self, entry: EntryPoint, event: &Value) {
        for copy in 0..self.delivery.copies {
            self.engine(entry)
                .handle_event(event, Timestamp::now())
                .await
                .unwrap_or_else(|e| panic!("{} failed on copy {copy}: {e}", entry.name()));
        }
    }

    fn job_file(&self) -> String {
        let mut text = format!(
            "job_id = \"{}\"\ntask_definition = \"{}\"\n\n[tags]\nteam = \"research\"\n",
            self.job_id, self.world.training_arn
        );
        for (rank, node) in self.world.nodes.iter().enumerate() {
            text.push_str(&format!(
                "\n[[ranks]]\nnode_name = \"{}\"\ncontainer_instance = \"{}\"\n\
                 [[ranks.overrides.containerOverrides]]\nname = \"trainer\"\n\
                 environment = [{{ name = \"NODE_RANK\", value = \"{rank}\" }}, \
                 {{ name = \"NNODES\", value = \"2\" }}]\n",
                node.name, node.container_instance_arn
            ));
        }
        text
    }

    fn expected_overrides(rank: usize) -> Value {
        json!({"containerOverrides": [{
            "name": "trainer",
            "environment": [
                {"name": "NODE_RANK", "value": rank.to_string()},
                {"name": "NNODES", "value": "2"}
            ]
        }]})
    }

    async fn job(&self) -> JobRecord {
        self.store
            .get_job(&self.job_id)
            .await
            .unwrap()
            .expect("job record")
    }

    async fn node(&self, index: usize) -> NodeRecord {
        self.store
            .get_node(&self.world.nodes[index].name)
            .await
            .unwrap()
            .expect("node record")
    }

    async fn tasks(&self) -> Vec<TaskRecord> {
        self.store.tasks_by_job(&self.job_id).await.unwrap()
    }

    /// Returns the training task record of a rank in one attempt.
    async fn rank_task(&self, retry: u32, rank: u32) -> TaskRecord {
        self.tasks()
            .await
            .into_iter()
            .find(|t| {
                t.kind == TaskKind::Training && t.retry == retry && t.node_index_in_job == rank
            })
            .unwrap_or_else(|| panic!("no task for rank {rank} of attempt {retry}"))
    }

    /// Returns the health-check task records of an episode and phase, by node index.
    async fn checks(&self, episode: &str, phase: CheckPhase) -> Vec<Option<TaskRecord>> {
        let tasks = self.tasks().await;
        self.world
            .nodes
            .iter()
            .map(|node| {
                tasks
                    .iter()
                    .find(|t| {
                        t.kind == TaskKind::HealthCheck
                            && t.node_name == node.name
                            && t.episode_id.as_deref() == Some(episode)
                            && t.phase == Some(phase)
                    })
                    .cloned()
            })
            .collect()
    }

    async fn ecs_task(&self, arn: &str) -> aws_sdk_ecs::types::Task {
        self.world
            .clients
            .ecs
            .describe_tasks()
            .cluster(&self.world.cluster_name)
            .tasks(arn)
            .include(TaskField::Tags)
            .send()
            .await
            .unwrap()
            .tasks()
            .first()
            .cloned()
            .unwrap_or_else(|| panic!("ECS does not know task {arn}"))
    }

    async fn tag(&self, arn: &str, key: &str) -> Option<String> {
        self.ecs_task(arn)
            .await
            .tags()
            .iter()
            .find(|t| t.key() == Some(key))
            .and_then(|t| t.value().map(str::to_owned))
    }

    async fn attribute(&self, index: usize) -> Option<String> {
        let described = self
            .world
            .clients
            .ecs
            .describe_container_instances()
            .cluster(&self.world.cluster_name)
            .container_instances(&self.world.nodes[index].container_instance_arn)
            .send()
            .await
            .unwrap();
        described.container_instances()[0]
            .attributes()
            .iter()
            .find(|a| a.name() == "status")
            .and_then(|a| a.value().map(str::to_owned))
    }

    /// Lists the SSM commands sent to a node's instance.
    async fn commands(&self, index: usize) -> Vec<aws_sdk_ssm::types::Command> {
        self.world
            .clients
            .ssm
            .list_commands()
            .instance_id(&self.world.nodes[index].ec2_instance_id)
            .send()
            .await
            .unwrap()
            .commands()
            .to_vec()
    }

    fn stop_event(
        &self,
        file: &str,
        task: &TaskRecord,
        task_definition: &str,
        exit: i64,
        version: u64,
    ) -> Value {
        self.world.events().task_stopped(
            file,
            &task.task_arn,
            &task.container_instance_arn,
            task_definition,
            exit,
            version,
            Timestamp::now(),
        )
    }

    async fn submit(&self) {
        let spec = JobSpec::parse(&self.job_file(), "job.toml", &self.world.cluster_name)
            .expect("valid job file");
        let cluster = EcsCluster::new(self.world.clients.ecs.clone(), &self.world.cluster_name);
        let submitted = submit(
            &SubmitContext {
                store: &self.store,
                cluster: &cluster,
                cluster_name: &self.world.cluster_name,
                policy: &Policy::default(),
                now: Timestamp::now(),
            },
            &spec,
        )
        .await
        .expect("submit");
        assert_eq!(submitted.task_arns.len(), 2);
        assert!(submitted.warnings.is_empty(), "{:?}", submitted.warnings);
    }

    /// Delivers RUNNING for every rank of an attempt.
    async fn ranks_running(&self, retry: u32, version: u64) {
        for rank in 0..2 {
            let task = self.rank_task(retry, rank).await;
            let event = self.world.events().task_running(
                &task.task_arn,
                &task.container_instance_arn,
                &self.world.training_arn,
                version,
                Timestamp::now(),
            );
            self.deliver(EntryPoint::EcsTaskHandler, &event).await;
        }
    }
}

async fn whole_recovery(prefix: &str, delivery: Delivery) {
    let run = Recovery::new(prefix, delivery).await;
    let (a, b) = (0, 1);

    // 1. Submit: records, tasks with the job's tags, node attributes.
    run.submit().await;
    let job = run.job().await;
    assert_eq!(job.job_status, JobStatus::InProgress);
    assert_eq!(job.retry, 0);
    assert_eq!(
        job.assigned_nodes,
        [
            run.world.nodes[a].name.clone(),
            run.world.nodes[b].name.clone()
        ]
    );
    for rank in 0..2_u32 {
        let task = run.rank_task(0, rank).await;
        let index = rank as usize;
        assert_eq!(task.node_name, run.world.nodes[index].name);
        assert_eq!(
            run.ecs_task(&task.task_arn).await.last_status(),
            Some("RUNNING")
        );
        assert_eq!(
            run.tag(&task.task_arn, "jobtype").await.as_deref(),
            Some("training_job")
        );
        assert_eq!(
            run.tag(&task.task_arn, "job_id").await.as_deref(),
            Some(run.job_id.as_str())
        );
        assert_eq!(
            run.tag(&task.task_arn, "node_index_in_job").await,
            Some(rank.to_string())
        );
        assert_eq!(
            run.tag(&task.task_arn, "team").await.as_deref(),
            Some("research")
        );
        assert_eq!(run.node(index).await.node_status, NodeStatus::InProgress);
        assert_eq!(run.attribute(index).await.as_deref(), Some("IN_PROGRESS"));
    }
    run.ranks_running(0, 2).await;

    // 2. Rank 0 exits 1: one episode, rank 1 stopped, a check on each node.
    let rank0 = run.rank_task(0, 0).await;
    let rank1 = run.rank_task(0, 1).await;
    let failed0 = run.stop_event(
        "task-stopped-exit1-gpu.json",
        &rank0,
        &run.world.training_arn,
        1,
        6,
    );
    if delivery.both_ranks_fail {
        let failed1 = run.stop_event(
            "task-stopped-exit1-gpu.json",
            &rank1,
            &run.world.training_arn,
            1,
            6,
        );
        let (left, right) = (
            run.engine(EntryPoint::EcsTaskHandler),
            run.engine(EntryPoint::EcsTaskHandler),
        );
        let (first, second) = tokio::join!(
            left.handle_event(&failed0, Timestamp::now()),
            right.handle_event(&failed1, Timestamp::now())
        );
        first.expect("rank 0 stop handled");
        second.expect("rank 1 stop handled");
        run.deliver(EntryPoint::EcsTaskHandler, &failed0).await;
        run.deliver(EntryPoint::EcsTaskHandler, &failed1).await;
    } else {
        run.deliver(EntryPoint::EcsTaskHandler, &failed0).await;
    }
    let job = run.job().await;
    let episode = format!("{}-e1", run.job_id);
    assert_eq!(job.job_status, JobStatus::PendingHealthcheck);
    assert_eq!(
        job.episodes_opened, 1,
        "duplicate or concurrent stops opened a second episode"
    );
    assert_eq!(
        job.episode.as_ref().map(|e| e.id.as_str()),
        Some(episode.as_str())
    );
    // The rank whose stop opened the episode stopped by itself; the engine
    // stopped the other one, once.
    let stopped: Vec<TaskRecord> = run
        .tasks()
        .await
        .into_iter()
        .filter(|t| t.kind == TaskKind::Training && t.stop_requested.is_some())
        .collect();
    assert_eq!(
        stopped.len(),
        1,
        "the engine stops exactly one sibling: {stopped:?}"
    );
    assert_eq!(
        run.ecs_task(&stopped[0].task_arn).await.last_status(),
        Some("STOPPED")
    );
    if !delivery.both_ranks_fail {
        assert_eq!(stopped[0].ecs_task_id, rank1.ecs_task_id);
    }
    // The sibling's own UserInitiated stop opens no second episode, and
    // frees its node for the health check, which waits for it.
    if !delivery.both_ranks_fail {
        let waiting = run.checks(&episode, CheckPhase::Initial).await;
        assert!(
            waiting[a].is_some(),
            "node A's task stopped, so its check starts"
        );
        assert!(
            waiting[b].is_none(),
            "node B's check waits for its task to stop"
        );
        let sibling = run.stop_event(
            "task-stopped-sibling-after-stoptask.json",
            &rank1,
            &run.world.training_arn,
            137,
            7,
        );
        run.deliver(EntryPoint::EcsTaskHandler, &sibling).await;
        assert_eq!(run.job().await.episodes_opened, 1);
    }

    let checks = run.checks(&episode, CheckPhase::Initial).await;
    for (index, check) in checks.iter().enumerate() {
        let check = check
            .as_ref()
            .unwrap_or_else(|| panic!("no check on node {index}"));
        assert_eq!(
            run.ecs_task(&check.task_arn).await.last_status(),
            Some("RUNNING")
        );
        assert_eq!(
            run.tag(&check.task_arn, "recovery_episode")
                .await
                .as_deref(),
            Some(episode.as_str())
        );
        assert_eq!(
            run.tag(&check.task_arn, "recovery_phase").await.as_deref(),
            Some("initial")
        );
        assert_eq!(
            run.node(index).await.node_status,
            NodeStatus::PendingHealthcheck
        );
        assert_eq!(
            run.attribute(index).await.as_deref(),
            Some("PENDING_HEALTHCHECK")
        );
    }
    let check_count = run
        .tasks()
        .await
        .iter()
        .filter(|t| t.kind == TaskKind::HealthCheck)
        .count();
    assert_eq!(check_count, 2, "one health check per node");

    // 3. Node A's check finds a fault a reboot clears, node B is healthy:
    //    one reboot command to A's instance, none to B's.
    let checks: Vec<TaskRecord> = checks.into_iter().map(Option::unwrap).collect();
    let fault = run.stop_event(
        "healthcheck-stopped-exit1-node-a.json",
        &checks[a],
        &run.world.check_arn,
        1,
        5,
    );
    let healthy = run.stop_event(
        "healthcheck-stopped-exit0-node-b.json",
        &checks[b],
        &run.world.check_arn,
        0,
        5,
    );
    run.deliver(EntryPoint::DcgmTaskMonitor, &fault).await;
    assert_eq!(run.job().await.job_status, JobStatus::PendingHealthcheck);
    run.deliver(EntryPoint::DcgmTaskMonitor, &healthy).await;
    let job = run.job().await;
    assert_eq!(job.job_status, JobStatus::PendingRestart);
    let actions: Vec<Option<NodeAction>> = job
        .episode
        .as_ref()
        .unwrap()
        .nodes
        .values()
        .map(|n| n.action)
        .collect();
    assert_eq!(actions, [Some(NodeAction::Reboot), Some(NodeAction::Keep)]);
    let node_a = run.node(a).await;
    assert_eq!(node_a.node_status, NodeStatus::Rebooting);
    let command_id = node_a
        .reboot
        .as_ref()
        .and_then(|r| r.command_id.clone())
        .expect("command id recorded");
    let commands = run.commands(a).await;
    assert_eq!(
        commands.len(),
        1,
        "one reboot command to node A: {commands:?}"
    );
    assert_eq!(commands[0].command_id(), Some(command_id.as_str()));
    assert_eq!(commands[0].document_name(), Some("AWS-RunShellScript"));
    let to_b = run.commands(b).await;
    assert!(
        to_b.is_empty(),
        "node B was not to be rebooted: {to_b:?}; A: {commands:?}"
    );
    assert_eq!(run.node(b).await.node_status, NodeStatus::Pending);
    assert_eq!(run.attribute(a).await.as_deref(), Some("REBOOTING"));

    // 4. Node A's agent disconnects and reconnects: a post-reboot check.
    let node = &run.world.nodes[a];
    let down = run.world.events().instance_changed(
        "container-instance-agent-disconnected-node-a.json",
        &node.container_instance_arn,
        &node.ec2_instance_id,
        101,
        Timestamp::now(),
    );
    run.deliver(EntryPoint::EcsInstanceMonitor, &down).await;
    assert_eq!(run.node(a).await.node_status, NodeStatus::Rebooting);
    let up = run.world.events().instance_changed(
        "container-instance-agent-reconnected-node-a.json",
        &node.container_instance_arn,
        &node.ec2_instance_id,
        103,
        Timestamp::now(),
    );
    run.deliver(EntryPoint::EcsInstanceMonitor, &up).await;
    assert_eq!(
        run.node(a).await.node_status,
        NodeStatus::PendingHealthcheck
    );
    let post = run.checks(&episode, CheckPhase::PostReboot).await;
    let post_a = post[a].clone().expect("post-reboot check on node A");
    assert!(post[b].is_none(), "node B needs no post-reboot check");
    assert_eq!(
        run.tag(&post_a.task_arn, "recovery_phase").await.as_deref(),
        Some("post_reboot")
    );
    assert_eq!(run.job().await.job_status, JobStatus::PendingRestart);

    // 5. The post-reboot check passes: the job restarts with the same task
    //    definition, overrides and ranks, and retry 1.
    let passed = run.stop_event(
        "healthcheck-stopped-exit0-node-b.json",
        &post_a,
        &run.world.check_arn,
        0,
        5,
    );
    run.deliver(EntryPoint::DcgmTaskMonitor, &passed).await;
    let job = run.job().await;
    assert_eq!(job.job_status, JobStatus::Restarting);
    assert_eq!(job.retry, 1);
    for rank in 0..2_u32 {
        let task = run.rank_task(1, rank).await;
        let index = rank as usize;
        let described = run.ecs_task(&task.task_arn).await;
        assert_eq!(
            described.task_definition_arn(),
            Some(run.world.training_arn.as_str())
        );
        assert_eq!(
            described.container_instance_arn(),
            Some(run.world.nodes[index].container_instance_arn.as_str())
        );
        assert_eq!(
            gpu_recovery_aws::ecs::overrides::to_json(described.overrides()),
            Recovery::expected_overrides(index)
        );
        assert_eq!(
            run.tag(&task.task_arn, "node_index_in_job").await,
            Some(rank.to_string())
        );
        assert_eq!(
            run.tag(&task.task_arn, "team").await.as_deref(),
            Some("research")
        );
    }
    assert_eq!(run.commands(a).await.len(), 1, "still one reboot command");
    run.ranks_running(1, 2).await;
    assert_eq!(run.job().await.job_status, JobStatus::InProgress);
    assert!(
        published(&run.topic_arn).is_empty(),
        "a recovered job notifies no one"
    );

    // 6. A second failure past the retry budget ends the job FAILED with one
    //    notification, and retry stays at 1.
    let second = run.rank_task(1, 1).await;
    let failed = run.stop_event(
        "task-stopped-exit1-gpu.json",
        &second,
        &run.world.training_arn,
        1,
        6,
    );
    run.deliver(EntryPoint::EcsTaskHandler, &failed).await;
    let episode2 = format!("{}-e2", run.job_id);
    assert_eq!(run.job().await.job_status, JobStatus::PendingHealthcheck);
    let sibling = run.rank_task(1, 0).await;
    let sibling_stop = run.stop_event(
        "task-stopped-sibling-after-stoptask.json",
        &sibling,
        &run.world.training_arn,
        137,
        7,
    );
    run.deliver(EntryPoint::EcsTaskHandler, &sibling_stop).await;
    let checks2: Vec<TaskRecord> = run
        .checks(&episode2, CheckPhase::Initial)
        .await
        .into_iter()
        .map(|c| c.expect("second-episode check"))
        .collect();
    let fault = run.stop_event(
        "healthcheck-stopped-exit1-node-a.json",
        &checks2[a],
        &run.world.check_arn,
        1,
        5,
    );
    let healthy = run.stop_event(
        "healthcheck-stopped-exit0-node-b.json",
        &checks2[b],
        &run.world.check_arn,
        0,
        5,
    );
    run.deliver(EntryPoint::DcgmTaskMonitor, &fault).await;
    run.deliver(EntryPoint::DcgmTaskMonitor, &healthy).await;
    let job = run.job().await;
    assert_eq!(job.job_status, JobStatus::Failed);
    assert_eq!(job.retry, 1);
    let sent = published(&run.topic_arn);
    assert_eq!(sent.len(), 1, "one notification: {sent:?}");
    let (subject, message, attributes) = &sent[0];
    assert!(subject.contains(&run.job_id), "{subject}");
    assert!(message.contains("retry budget"), "{message}");
    assert_eq!(attributes["kind"]["Value"], "gave_up");
    assert_eq!(attributes["job_id"]["Value"], run.job_id.as_str());
    let commands = run.commands(a).await;
    assert_eq!(commands.len(), 2, "one reboot of node A per episode");
    assert_ne!(commands[0].comment(), commands[1].comment());
    assert!(run.commands(b).await.is_empty());
}

#[tokio::test]
async fn recovery_reboots_and_restarts() {
    whole_recovery(
        "recovery",
        Delivery {
            copies: 1,
            both_ranks_fail: false,
        },
    )
    .await;
}

#[tokio::test]
async fn recovery_with_duplicate_events() {
    whole_recovery(
        "recovery-twice",
        Delivery {
            copies: 2,
            both_ranks_fail: false,
        },
    )
    .await;
}

#[tokio::test]
async fn recovery_with_concurrent_failures() {
    whole_recovery(
        "recovery-both",
        Delivery {
            copies: 2,
            both_ranks_fail: true,
        },
    )
    .await;
}
