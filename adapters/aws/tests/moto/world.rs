//! A cluster in moto for one test: EC2 instances registered as container
//! instances, a training task definition and a health-check task definition.

use aws_sdk_ecs::types::ContainerDefinition;
use gpu_recovery_aws::Clients;

use crate::support::{EventScope, clients, run_ec2_instances, unique};

/// One GPU node of the test cluster.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub container_instance_arn: String,
    pub ec2_instance_id: String,
}

/// The test's cluster and task definitions.
pub struct World {
    pub clients: Clients,
    pub cluster_name: String,
    pub cluster_arn: String,
    pub nodes: Vec<Node>,
    pub training_arn: String,
    pub check_family: String,
    pub check_arn: String,
}

impl World {
    pub async fn new(prefix: &str, node_count: usize) -> World {
        let clients = clients().await;
        let cluster_name = unique(prefix);
        let created = clients
            .ecs
            .create_cluster()
            .cluster_name(&cluster_name)
            .send()
            .await
            .expect("CreateCluster");
        let cluster_arn = created
            .cluster()
            .and_then(|c| c.cluster_arn())
            .expect("cluster ARN")
            .to_owned();

        let mut nodes = Vec::new();
        for (index, instance_id) in run_ec2_instances(node_count).into_iter().enumerate() {
            let document = serde_json::json!({
                "instanceId": instance_id,
                "region": "us-east-1",
                "instanceType": "p4d.24xlarge",
                "accountId": "123456789012",
            });
            let registered = clients
                .ecs
                .register_container_instance()
                .cluster(&cluster_name)
                .instance_identity_document(document.to_string())
                .send()
                .await
                .expect("RegisterContainerInstance");
            let arn = registered
                .container_instance()
                .and_then(|c| c.container_instance_arn())
                .expect("container instance ARN")
                .to_owned();
            let letter = char::from(b'a' + u8::try_from(index).expect("few nodes"));
            nodes.push(Node {
                name: format!("gpu-node-{letter}"),
                container_instance_arn: arn,
                ec2_instance_id: instance_id,
            });
        }

        let training_arn = register(&clients, &unique("llm-pretrain"), "trainer").await;
        let check_family = unique("gpu-dcgm-health-check");
        let check_arn = register(&clients, &check_family, "dcgm-diag").await;
        World {
            clients,
            cluster_name,
            cluster_arn,
            nodes,
            training_arn,
            check_family,
            check_arn,
        }
    }

    pub fn events(&self) -> EventScope {
        EventScope {
            cluster_arn: self.cluster_arn.clone(),
        }
    }
}

async fn register(clients: &Clients, family: &str, container: &str) -> String {
    let definition = ContainerDefinition::builder()
        .name(container)
        .image("111122223333.dkr.ecr.us-east-1.amazonaws.com/train:1")
        .cpu(256)
        .memory(512)
        .essential(true)
        .build();
    clients
        .ecs
        .register_task_definition()
        .family(family)
        .container_definitions(definition)
        .send()
        .await
        .expect("RegisterTaskDefinition")
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .expect("task definition ARN")
        .to_owned()
}
