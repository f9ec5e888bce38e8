import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { assetZipPath, type FunctionName } from '../lib/config';
import { functionResource, render } from './helpers/iam';
import { allFunctionNames, lambdaAssetDir, resourcesOfType, synthesize } from './helpers/synth';

function propertiesOf(name: string, overrides: Record<string, string> = {}): Record<string, unknown> {
  const [, fn] = functionResource(synthesize(overrides).json, name);
  return fn.Properties ?? {};
}

function environmentOf(name: string, overrides: Record<string, string> = {}): Record<string, string> {
  const variables = (propertiesOf(name, overrides).Environment as { Variables: Record<string, unknown> }).Variables;
  return Object.fromEntries(Object.entries(variables).map(([key, value]) => [key, render(value)]));
}

const BASE_ENVIRONMENT = [
  'DCGM_HEALTH_CHECK_TASK',
  'ECS_CLUSTER_NAME',
  'JOB_TABLE_NAME',
  'NODE_TABLE_NAME',
  'RUST_LOG',
  'SNS_TOPIC_ARN',
  'TASK_TABLE_NAME',
];

// One valid value for every policy knob; each must reach every function unchanged.
const ALL_KNOBS: Record<string, string> = {
  MAX_RETRIES: '3',
  HEALTH_CHECK_EXIT_CODES: '1,2',
  HEALTH_CHECK_TIMEOUT_SECONDS: '900',
  REBOOT_TIMEOUT_SECONDS: '600',
  RESTART_TIMEOUT_SECONDS: '300',
  RUNNING_POLL_SECONDS: '900',
  MAX_CONCURRENT_REBOOTS: '2',
  CIRCUIT_BREAKER_FAILURES: '10',
  CIRCUIT_BREAKER_WINDOW_SECONDS: '7200',
  UNFIXABLE_NODE_ACTION: 'mark_failed',
  INCONCLUSIVE_NODE_ACTION: 'quarantine',
  DRY_RUN: 'true',
  NODE_STATUS_ATTRIBUTE: 'gpu-recovery.status',
  EFFECT_LEASE_SECONDS: '90',
};

describe('functions', () => {
  test('four functions with fixed names', () => {
    const names = Object.values(resourcesOfType(synthesize().json, 'AWS::Lambda::Function'))
      .map((fn) => fn.Properties?.FunctionName)
      .sort();
    assert.deepEqual(names, [...allFunctionNames()].sort());
  });

  for (const name of allFunctionNames()) {
    test(`${name} runtime and handler`, () => {
      const props = propertiesOf(name);
      assert.equal(props.Runtime, 'provided.al2023');
      assert.equal(props.Handler, 'bootstrap');
      assert.deepEqual(props.Architectures, ['x86_64']);
      assert.equal(props.Timeout, 60);
      assert.equal(props.MemorySize, 256);
    });

    test(`${name} code from its zip asset`, () => {
      const { json, outdir } = synthesize();
      const [, fn] = functionResource(json, name);
      const code = fn.Properties?.Code as { S3Bucket: unknown; S3Key: string };
      assert.deepEqual(code.S3Bucket, { 'Fn::Sub': 'cdk-hnb659fds-assets-${AWS::AccountId}-${AWS::Region}' });
      assert.match(code.S3Key, /^[0-9a-f]{64}\.zip$/);
      const staged = fs.readFileSync(path.join(outdir, `asset.${code.S3Key}`));
      const source = fs.readFileSync(assetZipPath(lambdaAssetDir(), name));
      assert.ok(staged.equals(source), `asset.${code.S3Key} differs from the ${name} bootstrap.zip`);
    });

    test(`${name} base environment`, () => {
      const { json } = synthesize();
      const environment = environmentOf(name);
      const tables = resourcesOfType(json, 'AWS::DynamoDB::Table');
      const tableRef = (tableName: string) =>
        `\${${Object.entries(tables).find(([, table]) => table.Properties?.TableName === tableName)![0]}}`;
      const [topicId] = Object.keys(resourcesOfType(json, 'AWS::SNS::Topic'));
      assert.deepEqual(environment, {
        TASK_TABLE_NAME: tableRef('ecs_task'),
        JOB_TABLE_NAME: tableRef('ecs_job'),
        NODE_TABLE_NAME: tableRef('ecs_node'),
        ECS_CLUSTER_NAME: 'gpu-training',
        DCGM_HEALTH_CHECK_TASK: 'gpu-dcgm-health-check',
        SNS_TOPIC_ARN: `\${${topicId}}`,
        RUST_LOG: 'info',
      });
    });

    test(`${name} gets every configured knob`, () => {
      const environment = environmentOf(name, ALL_KNOBS);
      for (const [knob, value] of Object.entries(ALL_KNOBS)) {
        assert.equal(environment[knob], value, knob);
      }
      const expectedKeys = [...BASE_ENVIRONMENT, ...Object.keys(ALL_KNOBS)].sort();
      assert.deepEqual(Object.keys(environment).sort(), expectedKeys);
    });

    test(`${name} JSON logs in its own group`, () => {
      const { json, stack } = synthesize();
      const logGroupId = stack.getLogicalId(stack.functions[name].logGroup.node.defaultChild as never);
      assert.deepEqual(propertiesOf(name).LoggingConfig, {
        ApplicationLogLevel: 'INFO',
        LogFormat: 'JSON',
        LogGroup: { Ref: logGroupId },
        SystemLogLevel: 'INFO',
      });
      assert.deepEqual(json.Resources[logGroupId].Properties, {
        LogGroupName: `/aws/lambda/${name}`,
        RetentionInDays: 30,
      });
    });

    test(`${name} dead-letter config`, () => {
      const { stack } = synthesize();
      const queueId = stack.getLogicalId(stack.functions[name].deadLetterQueue.node.defaultChild as never);
      assert.deepEqual(propertiesOf(name).DeadLetterConfig, { TargetArn: { 'Fn::GetAtt': [queueId, 'Arn'] } });
    });
  }

  test('health-check log group to dcgm-task-monitor only', () => {
    const overrides = { HEALTH_CHECK_LOG_GROUP: '/ecs/gpu-dcgm-health-check' };
    assert.equal(environmentOf('dcgm-task-monitor', overrides).HEALTH_CHECK_LOG_GROUP, '/ecs/gpu-dcgm-health-check');
    for (const name of allFunctionNames().filter((candidate) => candidate !== 'dcgm-task-monitor')) {
      assert.equal(environmentOf(name, overrides).HEALTH_CHECK_LOG_GROUP, undefined, name);
    }
  });

  test('sizing and architecture from config', () => {
    const overrides = {
      LAMBDA_TIMEOUT_SECONDS: '300',
      EFFECT_LEASE_SECONDS: '600',
      LAMBDA_MEMORY_SIZE: '1024',
      LAMBDA_ARCHITECTURE: 'arm64',
    };
    for (const name of allFunctionNames()) {
      const props = propertiesOf(name, overrides);
      assert.equal(props.Timeout, 300, name);
      assert.equal(props.MemorySize, 1024, name);
      assert.deepEqual(props.Architectures, ['arm64'], name);
    }
  });

  test('log retention from config', () => {
    const groups = Object.values(resourcesOfType(synthesize({ LOG_RETENTION_DAYS: '365' }).json, 'AWS::Logs::LogGroup'));
    assert.equal(groups.length, 4);
    for (const group of groups) {
      assert.equal(group.Properties?.RetentionInDays, 365);
    }
  });

  test('only the watchdog reserves concurrency', () => {
    for (const name of allFunctionNames()) {
      const expected = name === 'recovery-watchdog' ? 1 : undefined;
      assert.equal(propertiesOf(name).ReservedConcurrentExecutions, expected, name);
    }
  });

  test('asynchronous retries per function', () => {
    const { json, stack } = synthesize();
    const configs = Object.values(resourcesOfType(json, 'AWS::Lambda::EventInvokeConfig'));
    const expected: Record<string, [number, number]> = {
      'ecs-task-handler': [2, 21600],
      'dcgm-task-monitor': [2, 21600],
      'ecs-instance-monitor': [2, 21600],
      'recovery-watchdog': [0, 240],
    };
    for (const [name, [retries, maxAge]] of Object.entries(expected)) {
      const functionId = stack.getLogicalId(stack.functions[name as FunctionName].function.node.defaultChild as never);
      const config = configs.find((candidate) => render(candidate.Properties?.FunctionName) === `\${${functionId}}`);
      assert.ok(config !== undefined, `${name} has no EventInvokeConfig`);
      assert.equal(config.Properties?.MaximumRetryAttempts, retries, name);
      assert.equal(config.Properties?.MaximumEventAgeInSeconds, maxAge, name);
    }
  });
});
