import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FunctionName } from '../lib/config';
import { matchesPattern } from './helpers/event-pattern';
import { render } from './helpers/iam';
import { loadFixture, resolvePseudo, resourcesOfType, synthesize, type CfnResource } from './helpers/synth';

interface RuleTarget {
  Arn: unknown;
  Id: string;
  RetryPolicy?: { MaximumEventAgeInSeconds: number; MaximumRetryAttempts: number };
  DeadLetterConfig?: { Arn: unknown };
}

/** Returns the rule whose only target is the named function, checking there is exactly one. */
function ruleOf(functionName: string, overrides: Record<string, string> = {}): CfnResource {
  const { json, stack } = synthesize(overrides);
  const functionId = stack.getLogicalId(stack.functions[functionName as FunctionName].function.node.defaultChild as never);
  const rules = Object.values(resourcesOfType(json, 'AWS::Events::Rule')).filter((rule) =>
    (rule.Properties?.Targets as RuleTarget[]).some((target) => render(target.Arn) === `\${${functionId}.Arn}`),
  );
  assert.equal(rules.length, 1, `${functionName} is the target of ${rules.length} rules`);
  return rules[0];
}

function patternOf(functionName: string, overrides: Record<string, string> = {}): Record<string, unknown> {
  const pattern = ruleOf(functionName, overrides).Properties?.EventPattern;
  assert.ok(pattern !== undefined, `${functionName} has no event pattern`);
  return resolvePseudo(pattern) as Record<string, unknown>;
}

/** Returns a copy of a fixture with fields of `detail` replaced. */
function withDetail(name: string, detail: Record<string, unknown>): Record<string, unknown> {
  const event = structuredClone(loadFixture(name));
  Object.assign(event.detail as Record<string, unknown>, detail);
  return event;
}

const OTHER_CLUSTER = 'arn:aws:ecs:us-west-2:111122223333:cluster/cpu-batch';

// Each case: a description, the event, and whether each function's rule must match it.
const CASES: [string, () => Record<string, unknown>, Record<string, boolean>][] = [
  [
    'training task exits 1',
    () => loadFixture('task-stopped-exit1-gpu.json'),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'sibling stopped by StopTask',
    () => loadFixture('task-stopped-sibling-after-stoptask.json'),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'rank finishes with 0',
    () => loadFixture('task-stopped-exit0-complete.json'),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'task failed to start',
    () => loadFixture('task-stopped-failed-to-start-nvml.json'),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'training task running',
    () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'training task deprovisioning',
    () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'DEPROVISIONING' }),
    { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'training task pending',
    () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'PENDING', desiredStatus: 'RUNNING' }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'training task in another cluster',
    () => withDetail('task-stopped-exit1-gpu.json', { clusterArn: OTHER_CLUSTER }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'Fargate task elsewhere',
    () => loadFixture('task-running-fargate-docs.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'service task elsewhere',
    () => loadFixture('task-stopped-user-initiated.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'health check exits 1',
    () => loadFixture('healthcheck-stopped-exit1-node-a.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  ],
  [
    'health check exits 0',
    () => loadFixture('healthcheck-stopped-exit0-node-b.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  ],
  [
    'health check of a new revision',
    () =>
      withDetail('healthcheck-stopped-exit1-node-a.json', {
        taskDefinitionArn: 'arn:aws:ecs:us-west-2:111122223333:task-definition/gpu-dcgm-health-check:42',
      }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  ],
  [
    'health check running',
    () => withDetail('healthcheck-stopped-exit1-node-a.json', { lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'health check deprovisioning',
    () => withDetail('healthcheck-stopped-exit1-node-a.json', { lastStatus: 'DEPROVISIONING' }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'health check in another cluster',
    () => withDetail('healthcheck-stopped-exit1-node-a.json', { clusterArn: OTHER_CLUSTER }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'agent disconnects',
    () => loadFixture('container-instance-agent-disconnected-node-a.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': true },
  ],
  [
    'agent reconnects',
    () => loadFixture('container-instance-agent-reconnected-node-a.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': true },
  ],
  [
    'instance change without agentConnected',
    () => {
      const event = structuredClone(loadFixture('container-instance-agent-reconnected-node-a.json'));
      delete (event.detail as Record<string, unknown>).agentConnected;
      return event;
    },
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'instance in another cluster',
    () => loadFixture('container-instance-change-docs.json'),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
  [
    'event from another source',
    () => ({ ...loadFixture('task-stopped-exit1-gpu.json'), source: 'custom.ecs' }),
    { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  ],
];

describe('event patterns', () => {
  for (const [description, event, expected] of CASES) {
    for (const [functionName, shouldMatch] of Object.entries(expected)) {
      test(`${functionName} ${shouldMatch ? 'matches' : 'skips'} ${description}`, () => {
        const pattern = patternOf(functionName);
        assert.equal(
          matchesPattern(pattern, event()),
          shouldMatch,
          `pattern ${JSON.stringify(pattern)} ${shouldMatch ? 'did not match' : 'matched'} the event`,
        );
      });
    }
  }

  test('other health-check family follows config', () => {
    const event = withDetail('task-stopped-exit1-gpu.json', { group: 'family:dcgm-diag-r2' });
    assert.equal(matchesPattern(patternOf('dcgm-task-monitor', { DCGM_HEALTH_CHECK_TASK: 'dcgm-diag-r2' }), event), true);
    assert.equal(matchesPattern(patternOf('ecs-task-handler', { DCGM_HEALTH_CHECK_TASK: 'dcgm-diag-r2' }), event), false);
    assert.equal(matchesPattern(patternOf('ecs-task-handler'), event), true);
  });

  test('cluster follows config', () => {
    const event = withDetail('task-stopped-exit1-gpu.json', { clusterArn: OTHER_CLUSTER });
    assert.equal(matchesPattern(patternOf('ecs-task-handler', { ECS_CLUSTER_NAME: 'cpu-batch' }), event), true);
  });
});

describe('event pattern matcher', () => {
  // Checks of the matcher itself, so a pattern test cannot pass because the matcher accepts everything.
  test('exact values and missing fields', () => {
    assert.equal(matchesPattern({ a: ['x'] }, { a: 'x' }), true);
    assert.equal(matchesPattern({ a: ['x'] }, { a: 'y' }), false);
    assert.equal(matchesPattern({ a: ['x'] }, {}), false);
    assert.equal(matchesPattern({ a: [true, false] }, { a: false }), true);
    assert.equal(matchesPattern({ a: [true, false] }, { a: 'false' }), false);
    assert.equal(matchesPattern({ a: { b: ['x'] } }, { a: { b: ['y', 'x'] } }), true);
  });

  test('prefix and anything-but', () => {
    assert.equal(matchesPattern({ g: [{ prefix: 'family:h' }] }, { g: 'family:hc' }), true);
    assert.equal(matchesPattern({ g: [{ prefix: 'family:h' }] }, { g: 'service:h' }), false);
    assert.equal(matchesPattern({ g: [{ 'anything-but': { prefix: 'family:h' } }] }, { g: 'family:hc' }), false);
    assert.equal(matchesPattern({ g: [{ 'anything-but': { prefix: 'family:h' } }] }, { g: 'family:t' }), true);
    assert.equal(matchesPattern({ g: [{ 'anything-but': { prefix: 'family:h' } }] }, {}), false);
    assert.equal(matchesPattern({ g: [{ 'anything-but': ['a', 'b'] }] }, { g: 'b' }), false);
  });

  test('exists and unknown operators', () => {
    assert.equal(matchesPattern({ a: [{ exists: false }] }, {}), true);
    assert.equal(matchesPattern({ a: [{ exists: true }] }, {}), false);
    assert.throws(() => matchesPattern({ a: [{ suffix: 'x' }] }, { a: 'x' }), /Unsupported event pattern operator suffix/);
  });
});

describe('rule targets', () => {
  for (const functionName of ['ecs-task-handler', 'dcgm-task-monitor', 'ecs-instance-monitor', 'recovery-watchdog']) {
    test(`${functionName} target retries and dead letters`, () => {
      const { stack } = synthesize();
      const queueId = stack.getLogicalId(stack.functions[functionName as FunctionName].deadLetterQueue.node.defaultChild as never);
      const targets = ruleOf(functionName).Properties?.Targets as RuleTarget[];
      assert.equal(targets.length, 1);
      const [target] = targets;
      assert.ok(target.RetryPolicy !== undefined, 'no retry policy');
      assert.ok(target.RetryPolicy.MaximumRetryAttempts >= 1, JSON.stringify(target.RetryPolicy));
      assert.ok(target.RetryPolicy.MaximumEventAgeInSeconds >= 60, JSON.stringify(target.RetryPolicy));
      assert.equal(render(target.DeadLetterConfig?.Arn), `\${${queueId}.Arn}`);
    });
  }

  test('watchdog runs every 5 minutes', () => {
    const rule = ruleOf('recovery-watchdog');
    assert.equal(rule.Properties?.ScheduleExpression, 'rate(5 minutes)');
    assert.equal(rule.Properties?.EventPattern, undefined);
    // A tick that waited longer than the interval is superseded by the next one.
    const [target] = rule.Properties?.Targets as RuleTarget[];
    assert.ok(target.RetryPolicy!.MaximumEventAgeInSeconds < 300, JSON.stringify(target.RetryPolicy));
  });

  test('rules are enabled', () => {
    for (const rule of Object.values(resourcesOfType(synthesize().json, 'AWS::Events::Rule'))) {
      assert.equal(rule.Properties?.State, 'ENABLED');
    }
  });

  test('EventBridge may invoke each function', () => {
    const { json, stack } = synthesize();
    const permissions = Object.values(resourcesOfType(json, 'AWS::Lambda::Permission'));
    for (const recoveryFunction of Object.values(stack.functions)) {
      const functionId = stack.getLogicalId(recoveryFunction.function.node.defaultChild as never);
      const ruleId = stack.getLogicalId(recoveryFunction.rule.node.defaultChild as never);
      const granted = permissions.filter(
        (permission) =>
          render(permission.Properties?.FunctionName) === `\${${functionId}.Arn}` &&
          permission.Properties?.Principal === 'events.amazonaws.com' &&
          render(permission.Properties?.SourceArn) === `\${${ruleId}.Arn}`,
      );
      assert.equal(granted.length, 1, recoveryFunction.name);
    }
  });
});

describe('dead-letter queues', () => {
  test('four encrypted queues', () => {
    const queues = Object.values(resourcesOfType(synthesize().json, 'AWS::SQS::Queue'));
    assert.equal(queues.length, 4);
    for (const queue of queues) {
      assert.equal(queue.Properties?.SqsManagedSseEnabled, true);
      assert.equal(queue.Properties?.MessageRetentionPeriod, 14 * 24 * 3600);
    }
  });

  test('queues accept EventBridge from their rule', () => {
    const { json, stack } = synthesize();
    const policies = Object.values(resourcesOfType(json, 'AWS::SQS::QueuePolicy'));
    for (const recoveryFunction of Object.values(stack.functions)) {
      const queueId = stack.getLogicalId(recoveryFunction.deadLetterQueue.node.defaultChild as never);
      const ruleId = stack.getLogicalId(recoveryFunction.rule.node.defaultChild as never);
      const policy = policies.find((candidate) =>
        (candidate.Properties?.Queues as unknown[]).map(render).includes(`\${${queueId}}`),
      );
      assert.ok(policy !== undefined, `no queue policy for ${recoveryFunction.name}`);
      const statements = (policy.Properties?.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement;
      const fromRule = statements.find(
        (statement) =>
          statement.Effect === 'Allow' &&
          JSON.stringify(statement.Principal) === JSON.stringify({ Service: 'events.amazonaws.com' }),
      );
      assert.ok(fromRule !== undefined, `${recoveryFunction.name}: no Allow for events.amazonaws.com`);
      assert.equal(
        render((fromRule.Condition as { ArnEquals: Record<string, unknown> }).ArnEquals['aws:SourceArn']),
        `\${${ruleId}.Arn}`,
      );
      const denyInsecure = statements.find((statement) => statement.Effect === 'Deny');
      assert.deepEqual(denyInsecure?.Condition, { Bool: { 'aws:SecureTransport': 'false' } }, recoveryFunction.name);
    }
  });
});
