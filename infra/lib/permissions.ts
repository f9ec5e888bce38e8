import { ArnFormat, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { RecoveryConfig, FunctionName } from './config';
import { JOB_TABLE, NODE_TABLE, TASK_TABLE, type StateTables, type TableSpec } from './tables';

/**
 * ECS, IAM, SSM, SNS and CloudWatch Logs actions that each function's code
 * calls. DynamoDB and the function's own log group are granted to all four
 * separately (see `stateTableStatements`).
 */
export const FUNCTION_ACTIONS: Readonly<Record<FunctionName, readonly string[]>> = {
  'ecs-task-handler': [
    'ecs:DescribeTasks',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:StopTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'iam:PassRole',
    'sns:Publish',
  ],
  'dcgm-task-monitor': [
    'ecs:DescribeTasks',
    'ecs:DescribeContainerInstances',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:PutAttributes',
    'ecs:UpdateContainerInstancesState',
    'iam:PassRole',
    'ssm:SendCommand',
    'ssm:ListCommands',
    'ssm:DescribeInstanceInformation',
    'sns:Publish',
    'logs:GetLogEvents',
  ],
  'ecs-instance-monitor': [
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'iam:PassRole',
    'sns:Publish',
  ],
  'recovery-watchdog': [
    'ecs:DescribeTasks',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:StopTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'ecs:UpdateContainerInstancesState',
    'iam:PassRole',
    'ssm:SendCommand',
    'ssm:ListCommands',
    'ssm:GetCommandInvocation',
    'ssm:DescribeInstanceInformation',
    'sns:Publish',
  ],
};

/** The item-level DynamoDB actions; writes go through TransactWriteItems, which IAM authorizes per contained action. */
export const TABLE_ITEM_ACTIONS = [
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:ConditionCheckItem',
] as const;

/** Grants the item actions on the three tables and Query on each of their indexes. */
export function stateTableStatements(tables: StateTables): iam.PolicyStatement[] {
  const pairs: [TableSpec, string][] = [
    [TASK_TABLE, tables.task.tableArn],
    [JOB_TABLE, tables.job.tableArn],
    [NODE_TABLE, tables.node.tableArn],
  ];
  return [
    new iam.PolicyStatement({
      sid: 'StateTableItems',
      actions: [...TABLE_ITEM_ACTIONS],
      resources: pairs.map(([, arn]) => arn),
    }),
    new iam.PolicyStatement({
      sid: 'StateTableIndexQueries',
      actions: ['dynamodb:Query'],
      resources: pairs.flatMap(([spec, arn]) => Object.keys(spec.indexes).map((index) => `${arn}/index/${index}`)),
    }),
  ];
}

export interface PermissionTargets {
  readonly config: RecoveryConfig;
  readonly topicArn: string;
}

/** Document that the reboot sends through SSM Run Command. */
export const REBOOT_DOCUMENT = 'AWS-RunShellScript';

interface ScopeRule {
  readonly sid: string;
  readonly actions: readonly string[];
  /** Returns the statements for the given subset of its actions; none when nothing may be granted. */
  readonly build: (actions: string[]) => iam.PolicyStatement[];
}

/*
 * Resource types and condition keys below follow the Service Authorization
 * Reference, "Actions, resources, and condition keys for Amazon Elastic
 * Container Service" and "... for AWS Systems Manager"
 * (docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html
 * and list_awssystemsmanager.html):
 *
 * - ecs:DescribeTasks, ecs:StopTask: resource type task*
 *   (arn:${Partition}:ecs:${Region}:${Account}:task/${ClusterName}/${TaskId}), condition key ecs:cluster.
 * - ecs:DescribeContainerInstances, ecs:PutAttributes, ecs:UpdateContainerInstancesState:
 *   resource type container-instance*
 *   (arn:${Partition}:ecs:${Region}:${Account}:container-instance/${ClusterName}/${ContainerInstanceId}),
 *   condition key ecs:cluster.
 * - ecs:ListTasks: resource type container-instance*, condition key ecs:cluster. A ListTasks call
 *   that names only the cluster has no container instance to authorize against, so, as in the ECS
 *   developer guide's "list tasks for a specified cluster" example, it is granted on "*" with the
 *   ecs:cluster condition.
 * - ecs:StartTask: resource type task-definition*
 *   (arn:${Partition}:ecs:${Region}:${Account}:task-definition/${Family}:${Revision}), condition keys
 *   ecs:cluster and ecs:container-instances. Restarted jobs use task definitions of any family, so the
 *   resource is every task definition and ecs:cluster pins the cluster.
 * - ssm:SendCommand: resource types document and instance (EC2,
 *   arn:${Partition}:ec2:${Region}:${Account}:instance/${InstanceId}, condition key
 *   ssm:resourceTag/${TagKey}); both are authorized on every call. AWS-owned documents have no
 *   account in their ARN.
 * - ssm:ListCommands, ssm:GetCommandInvocation, ssm:DescribeInstanceInformation: no resource type,
 *   so "*" is the only valid resource.
 */

/** Builds the runtime statements of one function for the given stack. */
export function runtimeStatements(
  scope: Stack,
  targets: PermissionTargets,
  functionName: FunctionName,
): iam.PolicyStatement[] {
  const { config, topicArn } = targets;
  const clusterArn = scope.formatArn({ service: 'ecs', resource: 'cluster', resourceName: config.clusterName });
  const inCluster = { ArnEquals: { 'ecs:cluster': clusterArn } };

  const rules: ScopeRule[] = [
    {
      sid: 'EcsTasksInCluster',
      actions: ['ecs:DescribeTasks', 'ecs:StopTask'],
      build: (actions) => [
        new iam.PolicyStatement({
          actions,
          resources: [
            scope.formatArn({ service: 'ecs', resource: 'task', resourceName: `${config.clusterName}/*` }),
          ],
          conditions: inCluster,
        }),
      ],
    },
    {
      sid: 'EcsContainerInstancesInCluster',
      actions: ['ecs:DescribeContainerInstances', 'ecs:PutAttributes', 'ecs:UpdateContainerInstancesState'],
      build: (actions) => [
        new iam.PolicyStatement({
          actions,
          resources: [
            scope.formatArn({
              service: 'ecs',
              resource: 'container-instance',
              resourceName: `${config.clusterName}/*`,
            }),
          ],
          conditions: inCluster,
        }),
      ],
    },
    {
      sid: 'EcsListTasksInCluster',
      actions: ['ecs:ListTasks'],
      build: (actions) => [new iam.PolicyStatement({ actions, resources: ['*'], conditions: inCluster })],
    },
    {
      sid: 'EcsStartTaskInCluster',
      actions: ['ecs:StartTask'],
      build: (actions) => [
        new iam.PolicyStatement({
          actions,
          resources: [scope.formatArn({ service: 'ecs', resource: 'task-definition', resourceName: '*' })],
          conditions: inCluster,
        }),
      ],
    },
    {
      sid: 'PassTaskRolesToEcs',
      actions: ['iam:PassRole'],
      // Without configured roles there is nothing to pass, and a PassRole grant on "*" would be far too wide.
      build: (actions) =>
        config.taskRoleArns.length === 0
          ? []
          : [
              new iam.PolicyStatement({
                actions,
                resources: [...config.taskRoleArns],
                conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
              }),
            ],
    },
    {
      sid: 'SsmSendRebootCommand',
      actions: ['ssm:SendCommand'],
      build: (actions) => [
        new iam.PolicyStatement({
          actions,
          resources: [
            scope.formatArn({ service: 'ssm', account: '', resource: 'document', resourceName: REBOOT_DOCUMENT }),
          ],
        }),
        new iam.PolicyStatement({
          actions,
          resources: [scope.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
          conditions: config.rebootInstanceTag
            ? {
                StringEquals: {
                  [`ssm:resourceTag/${config.rebootInstanceTag.key}`]: config.rebootInstanceTag.value,
                },
              }
            : undefined,
        }),
      ],
    },
    {
      sid: 'SsmReadCommands',
      actions: ['ssm:ListCommands', 'ssm:GetCommandInvocation', 'ssm:DescribeInstanceInformation'],
      build: (actions) => [new iam.PolicyStatement({ actions, resources: ['*'] })],
    },
    {
      sid: 'PublishNotifications',
      actions: ['sns:Publish'],
      build: (actions) => [new iam.PolicyStatement({ actions, resources: [topicArn] })],
    },
    {
      sid: 'ReadHealthCheckLogs',
      actions: ['logs:GetLogEvents'],
      build: (actions) =>
        config.healthCheckLogGroup === undefined
          ? []
          : [
              new iam.PolicyStatement({
                actions,
                resources: [
                  scope.formatArn({
                    service: 'logs',
                    resource: 'log-group',
                    resourceName: `${config.healthCheckLogGroup}:log-stream:*`,
                    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
                  }),
                ],
              }),
            ],
    },
  ];

  const wanted = new Set(FUNCTION_ACTIONS[functionName]);
  const statements: iam.PolicyStatement[] = [];
  for (const rule of rules) {
    const actions = rule.actions.filter((action) => wanted.has(action));
    for (const action of actions) {
      wanted.delete(action);
    }
    if (actions.length === 0) {
      continue;
    }
    rule.build(actions).forEach((statement, index) => {
      statement.sid = index === 0 ? rule.sid : `${rule.sid}${index + 1}`;
      statements.push(statement);
    });
  }
  if (wanted.size > 0) {
    throw new Error(`No resource scope is defined for ${[...wanted].join(', ')} of ${functionName}`);
  }
  return statements;
}
