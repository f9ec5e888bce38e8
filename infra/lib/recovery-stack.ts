import { CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { FUNCTION_NAMES, assetZipPath, type FunctionName, type RecoveryConfig } from './config';
import { DASHBOARD_NAME, createMonitoring, type MonitoredFunction } from './monitoring';
import { runtimeStatements, stateTableStatements } from './permissions';
import { createStateTables, type StateTables } from './tables';
import { triggers, type Trigger } from './triggers';

export interface RecoveryStackProps extends StackProps {
  readonly config: RecoveryConfig;
}

/** One deployed function with the resources made for it alone. */
export interface RecoveryFunction extends MonitoredFunction {
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;
  readonly deadLetterQueue: sqs.Queue;
  readonly rule: events.Rule;
}

const FUNCTION_DESCRIPTIONS: Record<FunctionName, string> = {
  'ecs-task-handler': 'Opens a recovery episode when a training task dies and stops the rest of its job',
  'dcgm-task-monitor': 'Reads DCGM health-check results and reboots or quarantines each node',
  'ecs-instance-monitor': 'Follows container instance agent reconnects after reboots and restarts jobs',
  'recovery-watchdog': 'Times out stuck recovery steps and catches missed events',
};

/** The whole recovery system: state tables, the four functions with their triggers, notifications and alarms. */
export class RecoveryStack extends Stack {
  readonly tables: StateTables;
  readonly topic: sns.Topic;
  readonly topicKey: kms.Key;
  readonly functions: Record<FunctionName, RecoveryFunction>;

  constructor(scope: Construct, id: string, props: RecoveryStackProps) {
    super(scope, id, props);
    const { config } = props;

    this.tables = createStateTables(this, config);
    this.topicKey = this.createTopicKey();
    this.topic = new sns.Topic(this, 'NotificationTopic', {
      topicName: config.topicName,
      displayName: config.topicDisplayName,
      masterKey: this.topicKey,
      enforceSSL: true,
    });
    for (const email of config.notificationEmails) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(email));
    }

    const clusterArn = this.formatArn({ service: 'ecs', resource: 'cluster', resourceName: config.clusterName });
    const functionTriggers = triggers(config, clusterArn);
    const created = {} as Record<FunctionName, RecoveryFunction>;
    for (const name of FUNCTION_NAMES) {
      created[name] = this.createFunction(name, config, functionTriggers[name]);
    }
    this.functions = created;

    createMonitoring(this, Object.values(this.functions), this.topic);

    new CfnOutput(this, 'NotificationTopicArn', { value: this.topic.topicArn });
    new CfnOutput(this, 'TaskTableName', { value: this.tables.task.tableName });
    new CfnOutput(this, 'JobTableName', { value: this.tables.job.tableName });
    new CfnOutput(this, 'NodeTableName', { value: this.tables.node.tableName });
    new CfnOutput(this, 'DashboardName', { value: DASHBOARD_NAME });
  }

  // CloudWatch alarms can publish to an encrypted topic only when the key policy lets CloudWatch
  // use the key. The AWS managed SNS key (alias/aws/sns) does not, so the topic has its own key.
  private createTopicKey(): kms.Key {
    const key = new kms.Key(this, 'NotificationKey', {
      description: 'Encrypts the ECS GPU recovery notification topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
      pendingWindow: Duration.days(7),
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'AllowCloudWatchAlarmsToPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    return key;
  }

  private createFunction(name: FunctionName, config: RecoveryConfig, trigger: Trigger): RecoveryFunction {
    const logGroup = new logs.LogGroup(this, `${name}-logs`, {
      logGroupName: `/aws/lambda/${name}`,
      retention: config.logRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const role = new iam.Role(this, `${name}-role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Runtime role of the ${name} function`,
    });
    for (const statement of [
      ...stateTableStatements(this.tables),
      ...runtimeStatements(this, { config, topicArn: this.topic.topicArn }, name),
    ]) {
      role.addToPrincipalPolicy(statement);
    }
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'WriteOwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );

    // Publishing to a KMS-encrypted topic needs the key as well. The key policy grants it to this
    // role for calls that SNS makes only, so the role's own policy names SNS alone.
    this.topicKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: `AllowPublishFrom${pascalCase(name)}`,
        principals: [new iam.ArnPrincipal(role.roleArn)],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
        conditions: { StringEquals: { 'kms:ViaService': `sns.${this.region}.amazonaws.com` } },
      }),
    );

    // One queue per function collects both the events EventBridge could not deliver and the
    // events the function still failed on after Lambda's asynchronous retries.
    const deadLetterQueue = new sqs.Queue(this, `${name}-dlq`, {
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });

    const isWatchdog = name === 'recovery-watchdog';
    const fn = new lambda.Function(this, name, {
      functionName: name,
      description: FUNCTION_DESCRIPTIONS[name],
      runtime: lambda.Runtime.PROVIDED_AL2023,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(assetZipPath(config.lambdaAssetDir, name)),
      architecture: config.lambdaArchitecture === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64,
      memorySize: config.lambdaMemorySizeMb,
      timeout: Duration.seconds(config.lambdaTimeoutSeconds),
      role,
      logGroup,
      loggingFormat: lambda.LoggingFormat.JSON,
      applicationLogLevelV2: lambda.ApplicationLogLevel.INFO,
      systemLogLevelV2: lambda.SystemLogLevel.INFO,
      environment: functionEnvironment(name, config, this.tables, this.topic.topicArn),
      deadLetterQueue,
      // Two watchdog runs must never overlap, because both would act on the same timed-out
      // episodes. With one reserved instance, a tick that arrives while a run is still going
      // waits instead of starting a second run. The event-driven functions serialize their
      // effects through conditional writes in DynamoDB, so they run concurrently.
      reservedConcurrentExecutions: isWatchdog ? 1 : undefined,
      // A waiting watchdog tick is dropped once the next one is due. A failed tick is not
      // retried, because the next tick repeats the same checks.
      retryAttempts: isWatchdog ? 0 : 2,
      maxEventAge: isWatchdog ? Duration.minutes(4) : Duration.hours(6),
    });

    const target = new targets.LambdaFunction(fn, {
      deadLetterQueue,
      maxEventAge: trigger.maxEventAge,
      retryAttempts: trigger.retryAttempts,
    });
    const rule = new events.Rule(this, `${name}-trigger`, {
      description: trigger.description,
      eventPattern: trigger.eventPattern,
      schedule: trigger.schedule,
      targets: [target],
    });

    return { name, function: fn, role, logGroup, deadLetterQueue, rule };
  }
}

/** Builds the environment of one function: table, cluster and topic names, and the configured policy knobs. */
export function functionEnvironment(
  name: FunctionName,
  config: RecoveryConfig,
  tables: StateTables,
  topicArn: string,
): Record<string, string> {
  const environment: Record<string, string> = {
    TASK_TABLE_NAME: tables.task.tableName,
    JOB_TABLE_NAME: tables.job.tableName,
    NODE_TABLE_NAME: tables.node.tableName,
    ECS_CLUSTER_NAME: config.clusterName,
    DCGM_HEALTH_CHECK_TASK: config.healthCheckFamily,
    SNS_TOPIC_ARN: topicArn,
    RUST_LOG: 'info',
    ...config.policyKnobs,
  };
  if (name === 'dcgm-task-monitor' && config.healthCheckLogGroup !== undefined) {
    environment.HEALTH_CHECK_LOG_GROUP = config.healthCheckLogGroup;
  }
  return environment;
}

function pascalCase(name: string): string {
  return name
    .split('-')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}
