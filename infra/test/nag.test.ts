import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { Validations } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { buildApp } from '../lib/app';
import { synthesize, testEnvironment } from './helpers/synth';

interface ValidationReport {
  pluginReports: {
    pluginName: string;
    conclusion: string;
    violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
  }[];
}

function readReport(outdir: string): ValidationReport {
  return JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as ValidationReport;
}

function findings(report: ValidationReport): string[] {
  return report.pluginReports.flatMap((plugin) =>
    plugin.violations.flatMap((violation) =>
      violation.violatingConstructs.map((construct) => `${violation.ruleName} on ${construct.constructPath}`),
    ),
  );
}

const FULL_CONFIG = {
  TASK_ROLE_ARNS: 'arn:aws:iam::111122223333:role/llm-pretrain-task',
  REBOOT_INSTANCE_TAG: 'gpu-recovery=enabled',
  HEALTH_CHECK_LOG_GROUP: '/ecs/gpu-dcgm-health-check',
  NOTIFICATION_EMAILS: 'oncall@example.com',
  DRY_RUN: 'true',
};

describe('cdk-nag', () => {
  for (const [description, overrides] of [
    ['default config', {}],
    ['every option set', FULL_CONFIG],
  ] as const) {
    test(`no findings with ${description}`, (t) => {
      const report = readReport(synthesize(overrides).outdir);
      const solutions = report.pluginReports.find((plugin) => plugin.pluginName === 'AwsSolutions');
      assert.ok(solutions !== undefined, `AwsSolutions did not run: ${JSON.stringify(report)}`);
      assert.deepEqual(findings(report), []);
      assert.equal(solutions.conclusion, 'success');
      t.diagnostic(`cdk-nag AwsSolutions (${description}): 0 unacknowledged findings`);
    });
  }

  test('acknowledgements name rule and reason', (t) => {
    const { stack } = synthesize(FULL_CONFIG);
    const acknowledged: [string, string, string][] = [];
    const visit = (construct: IConstruct) => {
      for (const entry of construct.node.metadata) {
        if (entry.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) {
          for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
            acknowledged.push([construct.node.path, id, reason]);
          }
        }
      }
      construct.node.children.forEach(visit);
    };
    visit(stack);
    assert.ok(acknowledged.length > 0);
    for (const [constructPath, id, reason] of acknowledged) {
      assert.match(constructPath, /^EcsGpuRecovery\/[a-z-]+-role\/DefaultPolicy$/);
      assert.match(id, /^AwsSolutions::AwsSolutions-IAM5\[Resource::.+\]$/, `${constructPath}: ${id}`);
      assert.ok(reason.length >= 40, `${constructPath} ${id}: reason "${reason}" is too short to explain`);
    }
    t.diagnostic(`cdk-nag acknowledged findings: ${acknowledged.length}`);
  });

  test('unacknowledged wildcard is reported', (t) => {
    // Proves that the plugin runs and that the report above would list a finding. The failure
    // report that synth prints for this deliberate finding is muted.
    t.mock.method(console, 'error', () => undefined);
    t.mock.method(console, 'log', () => undefined);
    t.mock.method(console, 'warn', () => undefined);
    const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-nag-'));
    const { app, stack } = buildApp(testEnvironment(), { outdir });
    stack.functions['ecs-task-handler'].role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: ['arn:aws:s3:::training-data/*'] }),
    );
    assert.throws(() => app.synth(), /Validation failed/);
    assert.deepEqual(findings(readReport(outdir)), [
      'AwsSolutions-IAM5[Resource::arn:aws:s3:::training-data/*] on EcsGpuRecovery/ecs-task-handler-role/DefaultPolicy/Resource',
    ]);
  });
});
