"""Deploy a synthesized CDK stack to a moto server and report what it created.

Usage: moto_deploy.py --assembly DIR --stack NAME --endpoint URL --cases FILE

The script plays the part of `cdk bootstrap` and `cdk deploy`: it creates the
bootstrap bucket and version parameter, uploads the file assets named in the
assets manifest, and creates the stack from the template. It then reads back
the tables, rules, targets, functions and role policies through the service
APIs, puts each event in FILE on the bus to see which rules match it, and
prints one JSON document on stdout. On a failed
deployment it prints the stack events to stderr and exits 1.

Every client is pointed at --endpoint, which must be a moto server on this
machine; the script never contacts AWS.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import urlparse

import boto3
from botocore.config import Config

BOOTSTRAP_QUALIFIER = "hnb659fds"
# The version `cdk bootstrap` writes today; the template only requires 6 or more.
BOOTSTRAP_VERSION = "30"
# The fixtures' account and region, replaced by moto's before the events are put.
FIXTURE_ACCOUNT = "111122223333"
FIXTURE_REGION = "us-west-2"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assembly", required=True, type=Path, help="cloud assembly folder (cdk.out)")
    parser.add_argument("--stack", required=True, help="stack name, also the template file's stem")
    parser.add_argument("--endpoint", required=True, help="moto server URL on 127.0.0.1")
    parser.add_argument("--region", default="us-east-1", help="region to deploy to in moto")
    parser.add_argument("--cases", required=True, type=Path, help="JSON list of {id, event} to test against each rule")
    return parser.parse_args()


def check_local(endpoint: str) -> None:
    host = urlparse(endpoint).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit(f"--endpoint {endpoint} is not on this machine; refusing to send AWS calls there")


class Moto:
    """boto3 clients for the moto endpoint, with moto's fixed test credentials."""

    def __init__(self, endpoint: str, region: str) -> None:
        self.endpoint = endpoint
        self.region = region
        self.config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)

    def client(self, service: str):
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_session_token="testing",
            config=self.config,
        )


def substitute(text: str, account: str, region: str) -> str:
    return text.replace("${AWS::AccountId}", account).replace("${AWS::Region}", region).replace(
        "${AWS::Partition}", "aws"
    )


def check_no_stack(moto: Moto, stack: str) -> None:
    summaries = moto.client("cloudformation").list_stacks()["StackSummaries"]
    if any(summary["StackName"] == stack for summary in summaries):
        sys.exit(f"stack {stack} already exists in {moto.region} on {moto.endpoint}; deploy to a fresh moto server")


def bootstrap_and_upload(moto: Moto, assembly: Path, stack: str, account: str) -> None:
    """Creates what `cdk bootstrap` would and uploads the file assets, as `cdk deploy` would."""
    moto.client("ssm").put_parameter(
        Name=f"/cdk-bootstrap/{BOOTSTRAP_QUALIFIER}/version", Value=BOOTSTRAP_VERSION, Type="String", Overwrite=True
    )
    s3 = moto.client("s3")
    manifest = json.loads((assembly / f"{stack}.assets.json").read_text())
    created: set[str] = set()
    for asset in manifest.get("files", {}).values():
        source = assembly / asset["source"]["path"]
        if asset["source"].get("packaging", "file") != "file" or not source.is_file():
            sys.exit(f"asset {source} is not a single file; this script uploads file assets only")
        for destination in asset["destinations"].values():
            bucket = substitute(destination["bucketName"], account, moto.region)
            if bucket not in created:
                create_bucket(s3, bucket, moto.region)
                created.add(bucket)
            s3.put_object(Bucket=bucket, Key=substitute(destination["objectKey"], account, moto.region), Body=source.read_bytes())


def create_bucket(s3, bucket: str, region: str) -> None:
    """Creates the bootstrap bucket unless an earlier deployment to this moto server did."""
    try:
        if region == "us-east-1":
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass


def deploy(moto: Moto, assembly: Path, stack: str) -> dict:
    cloudformation = moto.client("cloudformation")
    template = (assembly / f"{stack}.template.json").read_text()
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=template,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    description = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    if description["StackStatus"] != "CREATE_COMPLETE":
        print(f"stack {stack} ended in {description['StackStatus']}; its events follow:", file=sys.stderr)
        for event in cloudformation.describe_stack_events(StackName=stack)["StackEvents"]:
            print(
                f"  {event['LogicalResourceId']} {event['ResourceType']} {event['ResourceStatus']}: "
                f"{event.get('ResourceStatusReason', '')}",
                file=sys.stderr,
            )
        sys.exit(1)
    return description


def physical_ids(moto: Moto, stack: str) -> dict[str, list[dict]]:
    by_type: dict[str, list[dict]] = {}
    paginator = moto.client("cloudformation").get_paginator("list_stack_resources")
    for page in paginator.paginate(StackName=stack):
        for resource in page["StackResourceSummaries"]:
            by_type.setdefault(resource["ResourceType"], []).append(
                {"logicalId": resource["LogicalResourceId"], "physicalId": resource["PhysicalResourceId"]}
            )
    return by_type


def read_tables(moto: Moto, resources: list[dict]) -> list[dict]:
    dynamodb = moto.client("dynamodb")
    tables = []
    for resource in resources:
        table = dynamodb.describe_table(TableName=resource["physicalId"])["Table"]
        tables.append(
            {
                "name": table["TableName"],
                "keySchema": table["KeySchema"],
                "attributes": table["AttributeDefinitions"],
                "indexes": [
                    {"name": index["IndexName"], "keySchema": index["KeySchema"], "projection": index["Projection"]}
                    for index in table.get("GlobalSecondaryIndexes", [])
                ],
                "billingMode": table.get("BillingModeSummary", {}).get("BillingMode"),
                "deletionProtection": table.get("DeletionProtectionEnabled"),
            }
        )
    return tables


def read_rules(moto: Moto, resources: list[dict]) -> list[dict]:
    events = moto.client("events")
    rules = []
    for resource in resources:
        # The physical ID of AWS::Events::Rule is the rule name (on the default bus).
        name = resource["physicalId"].split("|")[-1]
        rule = events.describe_rule(Name=name)
        targets = events.list_targets_by_rule(Rule=name)["Targets"]
        rules.append(
            {
                "name": name,
                "state": rule.get("State"),
                "scheduleExpression": rule.get("ScheduleExpression"),
                "eventPattern": json.loads(rule["EventPattern"]) if "EventPattern" in rule else None,
                "targets": [
                    {
                        "arn": target["Arn"],
                        "retryPolicy": target.get("RetryPolicy"),
                        "deadLetterArn": target.get("DeadLetterConfig", {}).get("Arn"),
                    }
                    for target in targets
                ],
            }
        )
    return rules


def probe_rules(moto: Moto, rules: list[dict], cases: list[dict], account: str) -> dict[str, dict[str, bool]]:
    """Puts each case on the default bus and returns, per rule name, which cases the rule matched.

    moto 5.2.5 does not implement TestEventPattern, and PutEvents fails on a rule that has
    a Lambda target. So the targets, already read into the report, are removed, each rule
    with a pattern gets one SQS queue as its target, and a case matched a rule when that
    queue received the event.
    """
    events = moto.client("events")
    sqs = moto.client("sqs")
    probes: dict[str, str] = {}
    for rule in rules:
        # moto treats a scheduled rule as matching every event, so its Lambda target goes too.
        stack_targets = events.list_targets_by_rule(Rule=rule["name"])["Targets"]
        events.remove_targets(Rule=rule["name"], Ids=[target["Id"] for target in stack_targets])
        if rule["eventPattern"] is None:
            continue
        queue_url = sqs.create_queue(QueueName=f"probe-{rule['name']}"[:80])["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_targets(Rule=rule["name"], Targets=[{"Id": "probe", "Arn": queue_arn}])
        probes[rule["name"]] = queue_url

    matches: dict[str, dict[str, bool]] = {name: {} for name in probes}
    for case in cases:
        text = json.dumps(case["event"]).replace(FIXTURE_ACCOUNT, account).replace(FIXTURE_REGION, moto.region)
        event = json.loads(text)
        result = events.put_events(
            Entries=[
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event.get("resources", []),
                }
            ]
        )
        if result["FailedEntryCount"] != 0:
            sys.exit(f"PutEvents rejected case {case['id']}: {result['Entries']}")
        for name, queue_url in probes.items():
            received = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = received.get("Messages", [])
            for message in messages:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
            matches[name][case["id"]] = len(messages) > 0
    return matches


def read_functions(moto: Moto, resources: list[dict]) -> list[dict]:
    lambda_client = moto.client("lambda")
    functions = []
    for resource in resources:
        configuration = lambda_client.get_function_configuration(FunctionName=resource["physicalId"])
        concurrency = lambda_client.get_function_concurrency(FunctionName=resource["physicalId"])
        functions.append(
            {
                "name": configuration["FunctionName"],
                "arn": configuration["FunctionArn"],
                "runtime": configuration.get("Runtime"),
                "handler": configuration.get("Handler"),
                "role": configuration.get("Role"),
                "timeout": configuration.get("Timeout"),
                "memorySize": configuration.get("MemorySize"),
                "environment": configuration.get("Environment", {}).get("Variables", {}),
                "reservedConcurrency": concurrency.get("ReservedConcurrentExecutions"),
            }
        )
    return functions


def read_roles(moto: Moto, resources: list[dict]) -> list[dict]:
    iam = moto.client("iam")
    roles = []
    for resource in resources:
        name = resource["physicalId"]
        role = iam.get_role(RoleName=name)["Role"]
        statements = []
        for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
            if isinstance(document, str):
                document = json.loads(document)
            statements.extend(document["Statement"])
        roles.append({"name": name, "arn": role["Arn"], "statements": statements})
    return roles


def main() -> None:
    args = parse_args()
    check_local(args.endpoint)
    moto = Moto(args.endpoint, args.region)
    account = moto.client("sts").get_caller_identity()["Account"]
    cases = json.loads(args.cases.read_text())

    check_no_stack(moto, args.stack)
    bootstrap_and_upload(moto, args.assembly, args.stack, account)
    stack = deploy(moto, args.assembly, args.stack)
    resources = physical_ids(moto, args.stack)
    rules = read_rules(moto, resources.get("AWS::Events::Rule", []))

    report = {
        "account": account,
        "region": args.region,
        "stackStatus": stack["StackStatus"],
        "outputs": {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])},
        "resourceTypes": {kind: len(items) for kind, items in sorted(resources.items())},
        "tables": read_tables(moto, resources.get("AWS::DynamoDB::Table", [])),
        "rules": rules,
        "matches": probe_rules(moto, rules, cases, account),
        "functions": read_functions(moto, resources.get("AWS::Lambda::Function", [])),
        "roles": read_roles(moto, resources.get("AWS::IAM::Role", [])),
    }
    json.dump(report, sys.stdout, indent=1, sort_keys=True, default=str)


if __name__ == "__main__":
    main()
