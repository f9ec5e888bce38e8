import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import type { FunctionName } from './config';

/** Namespace of the embedded-metric-format lines that the functions print. */
export const METRIC_NAMESPACE = 'EcsGpuRecovery';

/** Recovery metrics, each with dimension Function; HealthChecks also has dimension Verdict. */
export const RECOVERY_METRICS = [
  'EpisodesOpened',
  'HealthChecks',
  'Reboots',
  'Restarts',
  'JobsFailed',
  'Quarantines',
  'TimeToRestartSeconds',
] as const;

export const DASHBOARD_NAME = 'ecs-gpu-recovery';

export interface MonitoredFunction {
  readonly name: FunctionName;
  readonly function: lambda.IFunction;
  readonly deadLetterQueue: sqs.IQueue;
}

/**
 * Creates an alarm on each function's errors and on each dead-letter queue's
 * visible messages, all notifying the topic, and the recovery dashboard.
 */
export function createMonitoring(scope: Construct, functions: MonitoredFunction[], topic: sns.ITopic): void {
  const notify = new actions.SnsAction(topic);
  const period = Duration.minutes(5);

  for (const monitored of functions) {
    const errors = new cloudwatch.Alarm(scope, `${monitored.name}-errors`, {
      alarmName: `${monitored.name}-errors`,
      alarmDescription: `${monitored.name} returned errors; check its log group for the failed events.`,
      metric: monitored.function.metricErrors({ period, statistic: cloudwatch.Stats.SUM }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    errors.addAlarmAction(notify);

    const deadLetters = new cloudwatch.Alarm(scope, `${monitored.name}-dead-letters`, {
      alarmName: `${monitored.name}-dead-letters`,
      alarmDescription:
        `Events for ${monitored.name} reached its dead-letter queue: EventBridge could not deliver them ` +
        'or the function failed on them after its retries.',
      metric: monitored.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period,
        statistic: cloudwatch.Stats.MAXIMUM,
      }),
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    deadLetters.addAlarmAction(notify);
  }

  createDashboard(scope, functions);
}

// A SEARCH expression picks up every dimension value the functions emit, including
// verdicts that appear only after deployment.
function recoverySearch(metricName: string, dimensions: string, statistic: string, label?: string) {
  return new cloudwatch.MathExpression({
    expression: `SEARCH('{${METRIC_NAMESPACE},${dimensions}} MetricName="${metricName}"', '${statistic}', 300)`,
    label,
    period: Duration.minutes(5),
  });
}

function createDashboard(scope: Construct, functions: MonitoredFunction[]): void {
  const dashboard = new cloudwatch.Dashboard(scope, 'Dashboard', {
    dashboardName: DASHBOARD_NAME,
    defaultInterval: Duration.days(1),
  });

  const counted = ['EpisodesOpened', 'Reboots', 'Restarts', 'Quarantines', 'JobsFailed'];
  dashboard.addWidgets(
    ...counted.map(
      (metricName) =>
        new cloudwatch.GraphWidget({
          title: metricName,
          left: [recoverySearch(metricName, 'Function', 'Sum')],
          width: 8,
          height: 6,
        }),
    ),
    new cloudwatch.GraphWidget({
      title: 'HealthChecks by verdict',
      left: [recoverySearch('HealthChecks', 'Function,Verdict', 'Sum')],
      width: 8,
      height: 6,
    }),
    new cloudwatch.GraphWidget({
      title: 'TimeToRestartSeconds',
      left: [
        recoverySearch('TimeToRestartSeconds', 'Function', 'Average', 'average'),
        recoverySearch('TimeToRestartSeconds', 'Function', 'Maximum', 'maximum'),
      ],
      width: 8,
      height: 6,
    }),
  );

  dashboard.addWidgets(
    new cloudwatch.GraphWidget({
      title: 'Function errors',
      left: functions.map((f) => f.function.metricErrors({ statistic: cloudwatch.Stats.SUM, label: f.name })),
      width: 8,
      height: 6,
    }),
    new cloudwatch.GraphWidget({
      title: 'Function duration (p99)',
      left: functions.map((f) => f.function.metricDuration({ statistic: cloudwatch.Stats.p(99), label: f.name })),
      width: 8,
      height: 6,
    }),
    new cloudwatch.GraphWidget({
      title: 'Dead-letter queue messages',
      left: functions.map((f) =>
        f.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
          statistic: cloudwatch.Stats.MAXIMUM,
          label: f.name,
        }),
      ),
      width: 8,
      height: 6,
    }),
  );
}
