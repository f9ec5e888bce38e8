import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { before, describe, test } from 'node:test';
import { STACK_NAME } from '../lib/app';
import { EVENT_CASES } from './helpers/event-cases';
import { actionsOf, grantsToRole, roleOfFunction } from './helpers/iam';
import { INFRA_DIR, allFunctionNames, assemblyDir, venvDir, type TemplateJson } from './helpers/synth';

// Deploys the synthesized template to the moto server at MOTO_ENDPOINT and checks what
// its CloudFormation created through the service APIs. moto 5.2.5 reports CREATE_COMPLETE
// while it drops table TTL, function Architectures and DeadLetterConfig, role
// ManagedPolicyArns and CloudWatch alarms, and it reports neither a table's
// point-in-time recovery nor its SSESpecification without a key, so the assertion
// tests check those instead.
//
// The stack goes to its own region of moto's default account, apart from anything else
// that shares the moto server.
const MOTO_REGION = 'eu-west-1';

interface MotoReport {
  account: string;
  region: string;
  stackStatus: string;
  outputs: Record<string, string>;
  resourceTypes: Record<string, number>;
  tables: {
    name: string;
    keySchema: { AttributeName: string; KeyType: string }[];
    indexes: { name: string; keySchema: { AttributeName: string; KeyType: string }[]; projection: { ProjectionType: string } }[];
    billingMode: string;
    deletionProtection: boolean;
  }[];
  rules: {
    name: string;
    state: string;
    scheduleExpression: string | null;
    eventPattern: Record<string, unknown> | null;
    targets: { arn: string; retryPolicy: { MaximumEventAgeInSeconds: number; MaximumRetryAttempts: number } | null; deadLetterArn: string | null }[];
  }[];
  matches: Record<string, Record<string, boolean>>;
  functions: {
    name: string;
    arn: string;
    runtime: string;
    handler: string;
    role: string;
    environment: Record<string, string>;
    reservedConcurrency: number | null;
  }[];
  roles: { name: string; arn: string; statements: { Action: string | string[] }[] }[];
}

const EXPECTED_TABLES: Record<string, { key: string; indexes: Record<string, string> }> = {
  ecs_task: { key: 'ecs_task_id', indexes: { 'job_id-index': 'job_id', 'container_inst_id-index': 'container_inst_id' } },
  ecs_job: { key: 'job_id', indexes: { 'job_status-index': 'job_status' } },
  ecs_node: {
    key: 'node_name',
    indexes: { 'container_instance_arn-index': 'container_instance_arn', 'node_status-index': 'node_status' },
  },
};

const endpoint = process.env.MOTO_ENDPOINT;

describe('deployment to moto', { skip: endpoint ? false : 'MOTO_ENDPOINT is not set; scripts/test.sh starts moto' }, () => {
  let report: MotoReport;
  let template: TemplateJson;

  before(() => {
    const assembly = assemblyDir();
    template = JSON.parse(fs.readFileSync(path.join(assembly, `${STACK_NAME}.template.json`), 'utf8')) as TemplateJson;
    const casesFile = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-moto-')), 'cases.json');
    fs.writeFileSync(
      casesFile,
      JSON.stringify(EVENT_CASES.map((eventCase) => ({ id: eventCase.description, event: eventCase.event() }))),
    );
    const result = spawnSync(
      path.join(venvDir(), 'bin', 'python'),
      [
        path.join(INFRA_DIR, 'test', 'moto_deploy.py'),
        '--assembly', assembly,
        '--stack', STACK_NAME,
        '--endpoint', endpoint!,
        '--cases', casesFile,
        '--region', MOTO_REGION,
      ],
      { encoding: 'utf8', timeout: 300_000, env: { PATH: process.env.PATH, AWS_EC2_METADATA_DISABLED: 'true' } },
    );
    assert.equal(result.status, 0, `moto_deploy.py failed (status ${result.status}):\n${result.stderr}`);
    report = JSON.parse(result.stdout) as MotoReport;
  });

  test('stack created', () => {
    assert.equal(report.stackStatus, 'CREATE_COMPLETE');
    assert.equal(report.region, MOTO_REGION);
    assert.equal(report.outputs.TaskTableName, 'ecs_task');
    assert.equal(report.outputs.NotificationTopicArn, `arn:aws:sns:${report.region}:${report.account}:ecs-gpu-recovery-notifications`);
  });

  test('resources created', () => {
    const expected: Record<string, number> = {
      'AWS::DynamoDB::Table': 3,
      'AWS::Lambda::Function': 4,
      'AWS::Lambda::Permission': 4,
      'AWS::IAM::Role': 4,
      'AWS::IAM::Policy': 4,
      'AWS::Events::Rule': 4,
      'AWS::SQS::Queue': 4,
      'AWS::Logs::LogGroup': 4,
      'AWS::SNS::Topic': 1,
      'AWS::KMS::Key': 1,
      'AWS::CloudWatch::Dashboard': 1,
    };
    for (const [type, count] of Object.entries(expected)) {
      assert.equal(report.resourceTypes[type], count, type);
    }
  });

  for (const [name, expected] of Object.entries(EXPECTED_TABLES)) {
    test(`table ${name} keys and indexes`, () => {
      const table = report.tables.find((candidate) => candidate.name === name);
      assert.ok(table !== undefined, `no table ${name}; tables: ${report.tables.map((t) => t.name).join(', ')}`);
      assert.deepEqual(table.keySchema, [{ AttributeName: expected.key, KeyType: 'HASH' }]);
      const indexes = Object.fromEntries(table.indexes.map((index) => [index.name, index]));
      assert.deepEqual(Object.keys(indexes).sort(), Object.keys(expected.indexes).sort());
      for (const [indexName, key] of Object.entries(expected.indexes)) {
        assert.deepEqual(indexes[indexName].keySchema, [{ AttributeName: key, KeyType: 'HASH' }], indexName);
        assert.deepEqual(indexes[indexName].projection, { ProjectionType: 'ALL' }, indexName);
      }
    });

    test(`table ${name} billing and protection`, () => {
      const table = report.tables.find((candidate) => candidate.name === name)!;
      assert.equal(table.billingMode, 'PAY_PER_REQUEST');
      assert.equal(table.deletionProtection, true);
    });
  }

  function ruleTargeting(functionName: string) {
    const rules = report.rules.filter((rule) => rule.targets.some((target) => target.arn.endsWith(`:function:${functionName}`)));
    assert.equal(rules.length, 1, `${functionName} is the target of ${rules.length} rules`);
    return rules[0];
  }

  for (const name of allFunctionNames()) {
    test(`rule of ${name} has retries and DLQ`, () => {
      const rule = ruleTargeting(name);
      assert.equal(rule.state, 'ENABLED');
      assert.equal(rule.targets.length, 1);
      const [target] = rule.targets;
      assert.ok(target.retryPolicy !== null, 'no retry policy');
      assert.ok(target.retryPolicy.MaximumRetryAttempts >= 1);
      assert.match(target.deadLetterArn ?? '', new RegExp(`^arn:aws:sqs:${report.region}:${report.account}:`));
    });
  }

  test('watchdog rule is the schedule', () => {
    const rule = ruleTargeting('recovery-watchdog');
    assert.equal(rule.scheduleExpression, 'rate(5 minutes)');
    assert.equal(rule.eventPattern, null);
  });

  for (const eventCase of EVENT_CASES) {
    for (const [functionName, shouldMatch] of Object.entries(eventCase.expected)) {
      test(`moto: ${functionName} ${shouldMatch ? 'matches' : 'skips'} ${eventCase.description}`, () => {
        const rule = ruleTargeting(functionName);
        const matched = report.matches[rule.name]?.[eventCase.description];
        assert.equal(matched, shouldMatch, `rule pattern ${JSON.stringify(rule.eventPattern)}`);
      });
    }
  }

  for (const name of allFunctionNames()) {
    test(`function ${name} configuration`, () => {
      const fn = report.functions.find((candidate) => candidate.name === name);
      assert.ok(fn !== undefined, `no function ${name}`);
      assert.equal(fn.runtime, 'provided.al2023');
      assert.equal(fn.handler, 'bootstrap');
      assert.equal(fn.environment.ECS_CLUSTER_NAME, 'gpu-training');
      assert.equal(fn.environment.TASK_TABLE_NAME, 'ecs_task');
      assert.equal(fn.environment.JOB_TABLE_NAME, 'ecs_job');
      assert.equal(fn.environment.NODE_TABLE_NAME, 'ecs_node');
      assert.equal(fn.environment.DCGM_HEALTH_CHECK_TASK, 'gpu-dcgm-health-check');
      assert.equal(fn.environment.SNS_TOPIC_ARN, report.outputs.NotificationTopicArn);
    });

    test(`role of ${name} has the template's actions`, () => {
      const fn = report.functions.find((candidate) => candidate.name === name)!;
      const role = report.roles.find((candidate) => candidate.arn === fn.role);
      assert.ok(role !== undefined, `role ${fn.role} of ${name} not found`);
      const deployed = [...new Set(role.statements.flatMap((statement) => [statement.Action].flat()))].sort();
      const inTemplate = actionsOf(
        grantsToRole(template, roleOfFunction(template, name)).filter((grant) => !grant.source.endsWith('key policy')),
      );
      assert.deepEqual(deployed, inTemplate);
    });
  }

  test('watchdog concurrency reserved', () => {
    for (const fn of report.functions) {
      assert.equal(fn.reservedConcurrency, fn.name === 'recovery-watchdog' ? 1 : null, fn.name);
    }
  });

  test('functions have distinct roles', () => {
    assert.equal(new Set(report.functions.map((fn) => fn.role)).size, 4);
  });
});
