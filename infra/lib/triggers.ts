import { Duration } from 'aws-cdk-lib';
import * as events from 'aws-cdk-lib/aws-events';
import type { FunctionName, RecoveryConfig } from './config';

/** What starts one function: an ECS event pattern or a schedule, with the delivery limits of its target. */
export interface Trigger {
  readonly description: string;
  readonly eventPattern?: events.EventPattern;
  readonly schedule?: events.Schedule;
  /** How long EventBridge keeps retrying delivery of one event to the function. */
  readonly maxEventAge: Duration;
  readonly retryAttempts: number;
}

/**
 * Returns the trigger of each function. `clusterArn` is the ARN of the
 * configured cluster; the patterns match `detail.clusterArn` against it.
 */
export function triggers(config: RecoveryConfig, clusterArn: string): Record<FunctionName, Trigger> {
  // Task events carry detail.group = "family:NAME" (no revision), so a prefix match on it
  // covers every revision of the health-check task definition without a redeploy.
  // NOTE: the prefix also covers any other family whose name starts with the health-check
  // family name; training task definitions must not be named that way.
  const healthCheckGroup = `family:${config.healthCheckFamily}`;
  const taskEvent = { source: ['aws.ecs'], detailType: ['ECS Task State Change'] };
  const eventDelivery = { maxEventAge: Duration.hours(1), retryAttempts: 8 };

  return {
    'ecs-task-handler': {
      description: 'Training task state changes in the cluster, except the DCGM health check',
      eventPattern: {
        ...taskEvent,
        detail: {
          clusterArn: [clusterArn],
          lastStatus: ['RUNNING', 'DEPROVISIONING', 'STOPPED'],
          group: events.Match.anythingButPrefix(healthCheckGroup),
        },
      },
      ...eventDelivery,
    },
    'dcgm-task-monitor': {
      description: 'DCGM health-check tasks that stopped in the cluster',
      eventPattern: {
        ...taskEvent,
        detail: {
          clusterArn: [clusterArn],
          lastStatus: ['STOPPED'],
          group: events.Match.prefix(healthCheckGroup),
        },
      },
      ...eventDelivery,
    },
    'ecs-instance-monitor': {
      description: 'Container instance agent connection changes in the cluster',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Container Instance State Change'],
        detail: {
          clusterArn: [clusterArn],
          agentConnected: [true, false],
        },
      },
      ...eventDelivery,
    },
    'recovery-watchdog': {
      description: 'Every 5 minutes: check open recovery episodes for timeouts and missed events',
      schedule: events.Schedule.rate(Duration.minutes(5)),
      // A tick older than the interval is replaced by the next one, so stale ticks are dropped.
      maxEventAge: Duration.minutes(4),
      retryAttempts: 2,
    },
  };
}
