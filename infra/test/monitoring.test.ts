import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { render } from './helpers/iam';
import { allFunctionNames, resourcesOfType, synthesize, type CfnResource } from './helpers/synth';

const RECOVERY_METRICS = [
  'EpisodesOpened',
  'HealthChecks',
  'Reboots',
  'Restarts',
  'JobsFailed',
  'Quarantines',
  'TimeToRestartSeconds',
];

function alarmsByName(): Record<string, Record<string, unknown>> {
  const alarms = Object.values(resourcesOfType(synthesize().json, 'AWS::CloudWatch::Alarm'));
  return Object.fromEntries(alarms.map((alarm) => [String(alarm.Properties?.AlarmName), alarm.Properties ?? {}]));
}

function topic(): [string, CfnResource] {
  const topics = Object.entries(resourcesOfType(synthesize().json, 'AWS::SNS::Topic'));
  assert.equal(topics.length, 1);
  return topics[0];
}

describe('alarms', () => {
  test('two alarms per function', () => {
    const expected = allFunctionNames().flatMap((name) => [`${name}-errors`, `${name}-dead-letters`]);
    assert.deepEqual(Object.keys(alarmsByName()).sort(), expected.sort());
  });

  for (const name of allFunctionNames()) {
    test(`${name} errors alarm`, () => {
      const { stack } = synthesize();
      const functionId = stack.getLogicalId(stack.functions[name].function.node.defaultChild as never);
      const alarm = alarmsByName()[`${name}-errors`];
      assert.equal(alarm.Namespace, 'AWS/Lambda');
      assert.equal(alarm.MetricName, 'Errors');
      assert.deepEqual(alarm.Dimensions, [{ Name: 'FunctionName', Value: { Ref: functionId } }]);
      assert.equal(alarm.Statistic, 'Sum');
      assert.equal(alarm.Threshold, 1);
      assert.equal(alarm.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
      assert.equal(alarm.TreatMissingData, 'notBreaching');
      assert.deepEqual(alarm.AlarmActions, [{ Ref: topic()[0] }]);
    });

    test(`${name} dead-letter alarm`, () => {
      const { stack } = synthesize();
      const queueId = stack.getLogicalId(stack.functions[name].deadLetterQueue.node.defaultChild as never);
      const alarm = alarmsByName()[`${name}-dead-letters`];
      assert.equal(alarm.Namespace, 'AWS/SQS');
      assert.equal(alarm.MetricName, 'ApproximateNumberOfMessagesVisible');
      assert.deepEqual(alarm.Dimensions, [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [queueId, 'QueueName'] } }]);
      assert.equal(alarm.Statistic, 'Maximum');
      assert.equal(alarm.Threshold, 1);
      assert.equal(alarm.ComparisonOperator, 'GreaterThanOrEqualToThreshold');
      assert.deepEqual(alarm.AlarmActions, [{ Ref: topic()[0] }]);
    });
  }
});

describe('notification topic', () => {
  test('name and display name', () => {
    const [, resource] = topic();
    assert.equal(resource.Properties?.TopicName, 'ecs-gpu-recovery-notifications');
    assert.equal(resource.Properties?.DisplayName, 'ECS GPU recovery');
    const configured = Object.values(
      resourcesOfType(synthesize({ SNS_TOPIC_NAME: 'gpu-alerts', SNS_TOPIC_DISPLAY_NAME: 'GPU alerts' }).json, 'AWS::SNS::Topic'),
    )[0];
    assert.equal(configured.Properties?.TopicName, 'gpu-alerts');
    assert.equal(configured.Properties?.DisplayName, 'GPU alerts');
  });

  test('encrypted with a rotating key', () => {
    const { json } = synthesize();
    const keys = Object.entries(resourcesOfType(json, 'AWS::KMS::Key'));
    assert.equal(keys.length, 1);
    const [keyId, key] = keys[0];
    assert.deepEqual(topic()[1].Properties?.KmsMasterKeyId, { 'Fn::GetAtt': [keyId, 'Arn'] });
    assert.equal(key.Properties?.EnableKeyRotation, true);
  });

  test('key lets CloudWatch alarms publish', () => {
    const [, key] = Object.entries(resourcesOfType(synthesize().json, 'AWS::KMS::Key'))[0];
    const statements = (key.Properties?.KeyPolicy as { Statement: Record<string, unknown>[] }).Statement;
    const cloudwatch = statements.filter(
      (statement) => JSON.stringify(statement.Principal) === JSON.stringify({ Service: 'cloudwatch.amazonaws.com' }),
    );
    assert.equal(cloudwatch.length, 1);
    assert.deepEqual(cloudwatch[0].Action, ['kms:Decrypt', 'kms:GenerateDataKey*']);
    assert.equal(cloudwatch[0].Effect, 'Allow');
  });

  test('publishing requires TLS', () => {
    const policies = Object.values(resourcesOfType(synthesize().json, 'AWS::SNS::TopicPolicy'));
    assert.equal(policies.length, 1);
    const [statement] = (policies[0].Properties?.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
    assert.equal(statement.Effect, 'Deny');
    assert.deepEqual(statement.Condition, { Bool: { 'aws:SecureTransport': 'false' } });
  });

  test('no subscriptions by default', () => {
    assert.deepEqual(resourcesOfType(synthesize().json, 'AWS::SNS::Subscription'), {});
  });

  test('email subscriptions from config', () => {
    const { json } = synthesize({ NOTIFICATION_EMAILS: 'oncall@example.com,gpu-team@example.com' });
    const [topicId] = Object.keys(resourcesOfType(json, 'AWS::SNS::Topic'));
    const subscriptions = Object.values(resourcesOfType(json, 'AWS::SNS::Subscription')).map((subscription) => [
      subscription.Properties?.Protocol,
      subscription.Properties?.Endpoint,
      render(subscription.Properties?.TopicArn),
    ]);
    assert.deepEqual(subscriptions.sort(), [
      ['email', 'gpu-team@example.com', `\${${topicId}}`],
      ['email', 'oncall@example.com', `\${${topicId}}`],
    ]);
  });
});

describe('dashboard', () => {
  function dashboardWidgets(): { properties: { title: string; metrics: unknown[][] } }[] {
    const dashboards = Object.values(resourcesOfType(synthesize().json, 'AWS::CloudWatch::Dashboard'));
    assert.equal(dashboards.length, 1);
    assert.equal(dashboards[0].Properties?.DashboardName, 'ecs-gpu-recovery');
    return JSON.parse(render(dashboards[0].Properties?.DashboardBody)).widgets;
  }

  function searchExpressions(): string[] {
    return dashboardWidgets().flatMap((widget) =>
      (widget.properties.metrics ?? []).flatMap((metric) =>
        metric
          .filter((part): part is { expression: string } => typeof part === 'object' && part !== null && 'expression' in part)
          .map((part) => part.expression),
      ),
    );
  }

  for (const metricName of RECOVERY_METRICS) {
    test(`graphs ${metricName}`, () => {
      const dimensions = metricName === 'HealthChecks' ? 'Function,Verdict' : 'Function';
      const expected = `{EcsGpuRecovery,${dimensions}} MetricName="${metricName}"`;
      assert.ok(
        searchExpressions().some((expression) => expression.includes(expected)),
        `no SEARCH for ${expected} in ${JSON.stringify(searchExpressions())}`,
      );
    });
  }

  test('graphs errors and dead letters', () => {
    const titles = dashboardWidgets().map((widget) => widget.properties.title);
    assert.ok(titles.includes('Function errors'), titles.join(', '));
    assert.ok(titles.includes('Dead-letter queue messages'), titles.join(', '));
  });
});
