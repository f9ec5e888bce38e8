import { Stack, Token, Validations } from 'aws-cdk-lib';
import type * as iam from 'aws-cdk-lib/aws-iam';
import type { RecoveryStack } from './recovery-stack';

/**
 * Reason, per statement Sid, that each wildcard resource of the runtime
 * statements is as narrow as IAM allows. cdk-nag reports each wildcard
 * resource as one AwsSolutions-IAM5 finding on the role's policy.
 */
const WILDCARD_REASONS: Record<string, string> = {
  EcsTasksInCluster:
    'Task IDs are assigned by ECS at run time; the resource covers the tasks of the configured cluster only ' +
    'and the ecs:cluster condition pins the cluster.',
  EcsContainerInstancesInCluster:
    'Container instance IDs are assigned when a node registers; the resource covers the container instances ' +
    'of the configured cluster only and the ecs:cluster condition pins the cluster.',
  EcsListTasksInCluster:
    'ListTasks names only the cluster, so no container instance ARN can be authorized; the ecs:cluster ' +
    'condition restricts it to the configured cluster.',
  EcsStartTaskInCluster:
    'Restarted jobs run task definitions of any family and revision; the ecs:cluster condition restricts ' +
    'StartTask to the configured cluster.',
  SsmSendRebootCommand2:
    'The GPU nodes to reboot are EC2 instances known only at run time; set REBOOT_INSTANCE_TAG to narrow ' +
    'SendCommand to tagged instances. The document is fixed to AWS-RunShellScript.',
  SsmReadCommands:
    'ssm:ListCommands, ssm:GetCommandInvocation and ssm:DescribeInstanceInformation support no resource ' +
    'type in the Service Authorization Reference, so "*" is the only valid resource.',
  ReadHealthCheckLogs:
    'Each health-check task writes its own log stream, named at run time, in the configured log group.',
};

/** Acknowledges the cdk-nag findings that this design accepts, each on its resource with the reason. */
export function acknowledgeNagFindings(stack: RecoveryStack): void {
  for (const recoveryFunction of Object.values(stack.functions)) {
    const policy = recoveryFunction.role.node.tryFindChild('DefaultPolicy') as iam.Policy | undefined;
    if (policy === undefined) {
      continue;
    }
    for (const statement of policy.document.toJSON().Statement as StatementJson[]) {
      const reason = statement.Sid === undefined ? undefined : WILDCARD_REASONS[statement.Sid];
      for (const resource of toArray(statement.Resource)) {
        const id = nagResourceId(stack, resource);
        if (!id.includes('*')) {
          continue;
        }
        if (reason === undefined) {
          throw new Error(
            `Statement ${statement.Sid ?? '(no Sid)'} of ${recoveryFunction.name} grants the wildcard ` +
              `resource ${id} but has no reason in WILDCARD_REASONS`,
          );
        }
        Validations.of(policy).acknowledge({ id: `AwsSolutions::AwsSolutions-IAM5[Resource::${id}]`, reason });
      }
    }
  }
}

interface StatementJson {
  readonly Sid?: string;
  readonly Resource?: unknown;
}

function toArray(value: unknown): unknown[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

/**
 * Renders a resource the way cdk-nag names it in a finding: Fn::Join parts
 * concatenated, `{Ref: X}` as `<X>` and `{Fn::GetAtt: [A, B]}` as `<A.B>`.
 */
export function nagResourceId(stack: Stack, resource: unknown): string {
  const resolved = Token.isUnresolved(resource) ? stack.resolve(resource) : resource;
  return render(resolved);
}

function render(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if ('Ref' in object) {
      return `<${String(object.Ref)}>`;
    }
    if ('Fn::GetAtt' in object) {
      return `<${(object['Fn::GetAtt'] as string[]).join('.')}>`;
    }
    if ('Fn::Join' in object) {
      const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
  }
  return JSON.stringify(value);
}
