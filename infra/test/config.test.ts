import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { buildApp } from '../lib/app';
import { CONFIG_NAMES, ConfigError, parseConfig, readRawConfig, resolveAssetDir, type RawConfig } from '../lib/config';
import { INFRA_DIR, lambdaAssetDir, testEnvironment } from './helpers/synth';

function parse(overrides: RawConfig) {
  return parseConfig({ LAMBDA_ASSET_DIR: lambdaAssetDir(), ECS_CLUSTER_NAME: 'gpu-training', ...overrides });
}

function problemsOf(overrides: RawConfig): readonly string[] {
  try {
    parse(overrides);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail(`configuration ${JSON.stringify(overrides)} was accepted`);
}

describe('configuration defaults', () => {
  test('defaults match the original deployment', () => {
    const config = parse({});
    assert.equal(config.taskTableName, 'ecs_task');
    assert.equal(config.jobTableName, 'ecs_job');
    assert.equal(config.nodeTableName, 'ecs_node');
    assert.equal(config.healthCheckFamily, 'gpu-dcgm-health-check');
    assert.equal(config.lambdaArchitecture, 'x86_64');
    assert.equal(config.tableRemovalPolicy, 'retain');
    assert.deepEqual(config.notificationEmails, []);
    assert.deepEqual(config.taskRoleArns, []);
    assert.equal(config.rebootInstanceTag, undefined);
    assert.equal(config.healthCheckLogGroup, undefined);
  });

  test('policy knobs absent unless configured', () => {
    assert.deepEqual(parse({}).policyKnobs, {});
  });

  test('asset folder defaults to target/lambda', () => {
    assert.equal(resolveAssetDir(undefined), path.resolve(INFRA_DIR, '..', 'target', 'lambda'));
  });

  test('relative asset folder resolves against infra', () => {
    assert.equal(resolveAssetDir('build/zips'), path.join(INFRA_DIR, 'build', 'zips'));
    assert.equal(resolveAssetDir('/opt/zips'), '/opt/zips');
  });
});

describe('configuration parsing', () => {
  test('lists and tag parse into parts', () => {
    const config = parse({
      NOTIFICATION_EMAILS: 'oncall@example.com, gpu-team@example.com',
      TASK_ROLE_ARNS: 'arn:aws:iam::111122223333:role/train,arn:aws:iam::111122223333:role/ecsTaskExecution',
      REBOOT_INSTANCE_TAG: 'gpu-recovery=enabled',
    });
    assert.deepEqual(config.notificationEmails, ['oncall@example.com', 'gpu-team@example.com']);
    assert.deepEqual(config.taskRoleArns, [
      'arn:aws:iam::111122223333:role/train',
      'arn:aws:iam::111122223333:role/ecsTaskExecution',
    ]);
    assert.deepEqual(config.rebootInstanceTag, { key: 'gpu-recovery', value: 'enabled' });
  });

  test('knobs pass through normalized', () => {
    const config = parse({
      MAX_RETRIES: '0',
      HEALTH_CHECK_EXIT_CODES: '1, 3,4',
      DRY_RUN: 'true',
      UNFIXABLE_NODE_ACTION: 'mark_failed',
      NODE_STATUS_ATTRIBUTE: 'gpu.recovery/status@v1',
    });
    assert.deepEqual(config.policyKnobs, {
      MAX_RETRIES: '0',
      HEALTH_CHECK_EXIT_CODES: '1,3,4',
      DRY_RUN: 'true',
      UNFIXABLE_NODE_ACTION: 'mark_failed',
      NODE_STATUS_ATTRIBUTE: 'gpu.recovery/status@v1',
    });
  });

  test('removal policy ignores case', () => {
    assert.equal(parse({ TABLE_REMOVAL_POLICY: 'DESTROY' }).tableRemovalPolicy, 'destroy');
  });

  test('context wins over environment', () => {
    const context: Record<string, unknown> = { LAMBDA_MEMORY_SIZE: 1024 };
    const raw = readRawConfig((name) => context[name], { LAMBDA_MEMORY_SIZE: '512', JOB_TABLE_NAME: 'jobs' });
    assert.equal(raw.LAMBDA_MEMORY_SIZE, '1024');
    assert.equal(raw.JOB_TABLE_NAME, 'jobs');
  });

  test('empty values count as unset', () => {
    const raw = readRawConfig(() => undefined, { DRY_RUN: '  ', MAX_RETRIES: '' });
    assert.deepEqual(raw, {});
  });
});

// Each case: the variable, an invalid value, and a fragment of the expected form in the message.
const INVALID_VALUES: [string, string, string][] = [
  ['TASK_TABLE_NAME', 'a', '3 to 255 letters'],
  ['JOB_TABLE_NAME', 'jobs table', '3 to 255 letters'],
  ['NODE_TABLE_NAME', 'x'.repeat(256), '3 to 255 letters'],
  ['ECS_CLUSTER_NAME', 'gpu/training', '1 to 255 letters'],
  ['DCGM_HEALTH_CHECK_TASK', 'health:3', '1 to 255 letters'],
  ['SNS_TOPIC_NAME', 'alerts.fifo', '1 to 256 letters'],
  ['SNS_TOPIC_DISPLAY_NAME', 'x'.repeat(101), '1 to 100 characters'],
  ['LAMBDA_TIMEOUT_SECONDS', '901', 'a whole number from 1 to 900 (seconds)'],
  ['LAMBDA_TIMEOUT_SECONDS', '0', 'a whole number from 1 to 900 (seconds)'],
  ['LAMBDA_TIMEOUT_SECONDS', '1.5', 'a whole number from 1 to 900 (seconds)'],
  ['LAMBDA_MEMORY_SIZE', '64', 'a whole number from 128 to 10240 (MB)'],
  ['LAMBDA_ARCHITECTURE', 'aarch64', 'one of x86_64, arm64'],
  ['LOG_RETENTION_DAYS', '10', 'one of 1, 3, 5, 7, 14, 30'],
  ['NOTIFICATION_EMAILS', 'oncall@example.com,,', 'comma-separated email addresses'],
  ['NOTIFICATION_EMAILS', 'oncall', 'comma-separated email addresses'],
  ['TASK_ROLE_ARNS', 'arn:aws:iam::111122223333:user/bob', 'comma-separated IAM role ARNs'],
  ['REBOOT_INSTANCE_TAG', 'gpu-recovery', 'KEY=VALUE'],
  ['REBOOT_INSTANCE_TAG', 'aws:owner=me', 'KEY=VALUE'],
  ['HEALTH_CHECK_LOG_GROUP', 'logs with spaces', 'a log group name'],
  ['TABLE_REMOVAL_POLICY', 'snapshot', 'one of retain, destroy'],
  ['MAX_RETRIES', '-1', 'a whole number from 0 to 100'],
  ['MAX_RETRIES', '101', 'a whole number from 0 to 100'],
  ['HEALTH_CHECK_EXIT_CODES', '1,256', 'comma-separated exit codes'],
  ['HEALTH_CHECK_EXIT_CODES', '0', 'each a whole number from 1 to 255'],
  ['HEALTH_CHECK_EXIT_CODES', 'one', 'comma-separated exit codes'],
  ['HEALTH_CHECK_TIMEOUT_SECONDS', '0', 'a whole number from 1 to 604800 (seconds)'],
  ['REBOOT_TIMEOUT_SECONDS', '20m', 'a whole number from 1 to 604800 (seconds)'],
  ['RESTART_TIMEOUT_SECONDS', '-5', 'a whole number from 1 to 604800 (seconds)'],
  ['RUNNING_POLL_SECONDS', '604801', 'a whole number from 1 to 604800 (seconds)'],
  ['MAX_CONCURRENT_REBOOTS', '0', 'a whole number of at least 1'],
  ['CIRCUIT_BREAKER_FAILURES', 'five', 'a whole number of at least 1'],
  ['CIRCUIT_BREAKER_WINDOW_SECONDS', '3600.0', 'a whole number from 1 to 604800 (seconds)'],
  ['UNFIXABLE_NODE_ACTION', 'drain', 'one of quarantine, mark_failed'],
  ['INCONCLUSIVE_NODE_ACTION', 'reboot', 'one of reboot_once, quarantine'],
  ['DRY_RUN', 'yes', 'one of true, false'],
  ['NODE_STATUS_ATTRIBUTE', 'status attribute', 'an ECS attribute name'],
  ['EFFECT_LEASE_SECONDS', '99999999999999999999', 'a whole number from 1 to 604800 (seconds)'],
];

describe('invalid configuration', () => {
  for (const [name, value, expected] of INVALID_VALUES) {
    test(`${name} rejects ${value.length > 20 ? `${value.slice(0, 20)}...` : value}`, () => {
      const problems = problemsOf({ [name]: value } as RawConfig);
      assert.equal(problems.length, 1, problems.join('\n'));
      assert.ok(problems[0].startsWith(`${name} is ${JSON.stringify(value)}, expected `), problems[0]);
      assert.ok(problems[0].includes(expected), `"${problems[0]}" does not name the form "${expected}"`);
    });
  }

  test('every variable has an invalid case', () => {
    const covered = new Set(INVALID_VALUES.map(([name]) => name));
    const untested = CONFIG_NAMES.filter((name) => !covered.has(name));
    assert.deepEqual(untested, ['LAMBDA_ASSET_DIR']);
  });

  test('missing cluster name is rejected', () => {
    const problems = problemsOf({ ECS_CLUSTER_NAME: undefined });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^ECS_CLUSTER_NAME is missing/);
  });

  test('asset folder without zips is rejected', () => {
    const problems = problemsOf({ LAMBDA_ASSET_DIR: '/nonexistent/lambda' });
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^LAMBDA_ASSET_DIR is "\/nonexistent\/lambda", expected a folder/);
    assert.ok(problems[0].includes('/nonexistent/lambda/recovery-watchdog/bootstrap.zip'), problems[0]);
  });

  test('lease must outlast the timeout', () => {
    const problems = problemsOf({ LAMBDA_TIMEOUT_SECONDS: '300' });
    assert.deepEqual(problems, [
      'EFFECT_LEASE_SECONDS is 120, expected more than LAMBDA_TIMEOUT_SECONDS (300), ' +
        'because another run may retry a claimed action once its lease expires',
    ]);
    assert.equal(parse({ LAMBDA_TIMEOUT_SECONDS: '300', EFFECT_LEASE_SECONDS: '301' }).lambdaTimeoutSeconds, 300);
    assert.equal(problemsOf({ LAMBDA_TIMEOUT_SECONDS: '90', EFFECT_LEASE_SECONDS: '90' }).length, 1);
  });

  test('all problems are reported together', () => {
    const problems = problemsOf({ DRY_RUN: 'maybe', LAMBDA_MEMORY_SIZE: '1' });
    assert.deepEqual(
      problems.map((problem) => problem.split(' ')[0]),
      ['DRY_RUN', 'LAMBDA_MEMORY_SIZE'],
    );
  });
});

describe('synth with invalid configuration', () => {
  test('buildApp throws naming the variable', () => {
    assert.throws(
      () => buildApp(testEnvironment({ LAMBDA_MEMORY_SIZE: '64' })),
      (error: unknown) =>
        error instanceof ConfigError && error.message.includes('LAMBDA_MEMORY_SIZE is "64", expected a whole number'),
    );
  });

  test('app exits with the message', () => {
    // Runs the same command as cdk.json's "app", which is what `cdk synth` executes.
    const result = spawnSync(process.execPath, ['--import', 'tsx', path.join(INFRA_DIR, 'bin', 'app.ts')], {
      cwd: INFRA_DIR,
      env: { PATH: process.env.PATH, ...testEnvironment({ LAMBDA_ARCHITECTURE: 'sparc' }) },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(result.status, 1, `exit status ${result.status}, stderr: ${result.stderr}`);
    assert.match(result.stderr, /LAMBDA_ARCHITECTURE is "sparc", expected one of x86_64, arm64/);
  });
});
