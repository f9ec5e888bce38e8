import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { FunctionName } from '../lib/config';
import { matchesPattern } from './helpers/event-pattern';
import { render } from './helpers/iam';
import { EVENT_CASES, OTHER_CLUSTER, withDetail } from './helpers/event-cases';
import { resolvePseudo, resourcesOfType, synthesize, type CfnResource } from './helpers/synth';

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

describe('event patterns', () => {
  for (const { description, event, expected } of EVENT_CASES) {
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
