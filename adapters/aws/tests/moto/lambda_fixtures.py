"""Set-up for the Lambda checks of scripts/test-aws.sh, against moto only.

Usage:
  python lambda_fixtures.py cluster MOTO_ENDPOINT WORK_DIR
      Creates the cluster gpu-training with two registered EC2 instances,
      the training and health-check task definitions and an SNS topic, and
      writes WORK_DIR/job.toml (a two-node job on those instances) and
      WORK_DIR/topic (the topic ARN).
  python lambda_fixtures.py events WORK_DIR FIXTURES_DIR
      Reads WORK_DIR/status.json (`gpu-recovery status JOB --output json`)
      and writes WORK_DIR/rank0-stopped.json, the sample STOPPED event with
      the real ARNs of rank 0, and WORK_DIR/malformed.json, the sample with
      detail.taskArn removed.
"""

import json
import sys

import boto3

CLUSTER = "gpu-training"


def cluster(endpoint, work):
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"refusing to set up {endpoint}: only http://127.0.0.1:PORT is allowed")
    ec2 = boto3.client("ec2", endpoint_url=endpoint)
    ecs = boto3.client("ecs", endpoint_url=endpoint)
    sns = boto3.client("sns", endpoint_url=endpoint)
    ecs.create_cluster(clusterName=CLUSTER)
    reservation = ec2.run_instances(ImageId="ami-12c6146b", MinCount=2, MaxCount=2,
                                    InstanceType="p4d.24xlarge")
    arns = []
    for instance in reservation["Instances"]:
        document = json.dumps({"instanceId": instance["InstanceId"], "region": "us-east-1"})
        registered = ecs.register_container_instance(cluster=CLUSTER,
                                                     instanceIdentityDocument=document)
        arns.append(registered["containerInstance"]["containerInstanceArn"])
    for family, container in [("llm-pretrain", "trainer"), ("gpu-dcgm-health-check", "dcgm-diag")]:
        ecs.register_task_definition(family=family, containerDefinitions=[{
            "name": container, "image": "train:1", "cpu": 256, "memory": 512, "essential": True,
        }])
    lines = ['job_id = "lambda-job"', 'task_definition = "llm-pretrain:1"']
    for rank, arn in enumerate(arns):
        lines += [
            "",
            "[[ranks]]",
            f'node_name = "gpu-node-{"ab"[rank]}"',
            f'container_instance = "{arn}"',
            "[[ranks.overrides.containerOverrides]]",
            'name = "trainer"',
            f'environment = [{{ name = "NODE_RANK", value = "{rank}" }}]',
        ]
    with open(f"{work}/job.toml", "w") as job:
        job.write("\n".join(lines) + "\n")
    with open(f"{work}/topic", "w") as topic:
        topic.write(sns.create_topic(Name="gpu-recovery-lambda")["TopicArn"])


def events(work, fixtures):
    status = json.load(open(f"{work}/status.json"))
    rank0 = next(t for t in status["tasks"] if t["node_index_in_job"] == 0)
    region_and_account = rank0["container_instance_arn"].split(":container-instance/")[0]
    event = json.load(open(f"{fixtures}/task-stopped-exit1-gpu.json"))
    detail = event["detail"]
    detail.update(
        clusterArn=f"{region_and_account}:cluster/{CLUSTER}",
        taskArn=rank0["task_arn"],
        containerInstanceArn=rank0["container_instance_arn"],
        taskDefinitionArn=rank0["task_def_arn"],
        group="family:llm-pretrain",
    )
    for container in detail["containers"]:
        container["taskArn"] = rank0["task_arn"]
    json.dump(event, open(f"{work}/rank0-stopped.json", "w"))
    malformed = json.load(open(f"{fixtures}/task-stopped-exit1-gpu.json"))
    del malformed["detail"]["taskArn"]
    json.dump(malformed, open(f"{work}/malformed.json", "w"))


if __name__ == "__main__":
    if sys.argv[1] == "cluster":
        cluster(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "events":
        events(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}: expected cluster or events")
