import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../../lib/app';
import { FUNCTION_NAMES, type FunctionName } from '../../lib/config';
import type { RecoveryStack } from '../../lib/recovery-stack';

export const INFRA_DIR = path.resolve(__dirname, '..', '..');
export const FIXTURES_DIR = path.join(INFRA_DIR, 'test', 'fixtures');

/** Cluster name the tests configure; the ECS fixtures come from this cluster. */
export const TEST_CLUSTER = 'gpu-training';

/** Returns the folder with the four bootstrap.zip files; test.sh and the main test script set it. */
export function lambdaAssetDir(): string {
  const dir = process.env.LAMBDA_ASSET_DIR;
  if (dir === undefined || dir === '') {
    throw new Error(
      'LAMBDA_ASSET_DIR is not set: point it at a folder with <function>/bootstrap.zip for the four functions',
    );
  }
  return path.resolve(dir);
}

/** Base configuration of every test synth, without anything read from the caller's environment. */
export function testEnvironment(overrides: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { LAMBDA_ASSET_DIR: lambdaAssetDir(), ECS_CLUSTER_NAME: TEST_CLUSTER, ...overrides };
}

export interface Synthesized {
  readonly stack: RecoveryStack;
  /** Cloud assembly folder with the template, the staged assets and validation-report.json. */
  readonly outdir: string;
  readonly template: Template;
  readonly json: TemplateJson;
}

export interface TemplateJson {
  readonly Resources: Record<string, CfnResource>;
  readonly [key: string]: unknown;
}

export interface CfnResource {
  readonly Type: string;
  readonly Properties?: Record<string, unknown>;
  readonly DeletionPolicy?: string;
  readonly UpdateReplacePolicy?: string;
  readonly DependsOn?: string[];
}

const cache = new Map<string, Synthesized>();

/** Synthesizes the stack for the given configuration; results are cached per configuration. */
export function synthesize(overrides: Record<string, string> = {}): Synthesized {
  const key = JSON.stringify(overrides);
  const cached = cache.get(key);
  if (cached !== undefined) {
    return cached;
  }
  const outdir = fs.mkdtempSync(path.join(os.tmpdir(), 'recovery-synth-'));
  const { stack } = buildApp(testEnvironment(overrides), { outdir });
  const template = Template.fromStack(stack);
  const result = { stack, outdir, template, json: template.toJSON() as TemplateJson };
  cache.set(key, result);
  return result;
}

/** Returns the logical ID of the resource that a construct created. */
export function logicalId(stack: RecoveryStack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as never);
}

/** Returns resources of one type, by logical ID. */
export function resourcesOfType(json: TemplateJson, type: string): Record<string, CfnResource> {
  return Object.fromEntries(Object.entries(json.Resources).filter(([, resource]) => resource.Type === type));
}

/** Loads one ECS event sample from test/fixtures. */
export function loadFixture(name: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES_DIR, name), 'utf8')) as Record<string, unknown>;
}

export function allFunctionNames(): readonly FunctionName[] {
  return FUNCTION_NAMES;
}

/** Values for the pseudo parameters when a test resolves template expressions; they match the fixtures. */
export const FIXTURE_PSEUDO_PARAMETERS: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-west-2',
  'AWS::AccountId': '111122223333',
  'AWS::URLSuffix': 'amazonaws.com',
};

/**
 * Resolves Ref of pseudo parameters and Fn::Join in a template value. Any
 * other intrinsic raises an error, so a test never compares an unresolved value.
 */
export function resolvePseudo(value: unknown, parameters = FIXTURE_PSEUDO_PARAMETERS): unknown {
  if (Array.isArray(value)) {
    return value.map((item) => resolvePseudo(item, parameters));
  }
  if (value === null || typeof value !== 'object') {
    return value;
  }
  const object = value as Record<string, unknown>;
  if ('Ref' in object && Object.keys(object).length === 1) {
    const name = String(object.Ref);
    if (!(name in parameters)) {
      throw new Error(`Cannot resolve Ref ${name}`);
    }
    return parameters[name];
  }
  if ('Fn::Join' in object && Object.keys(object).length === 1) {
    const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
    return parts.map((part) => String(resolvePseudo(part, parameters))).join(separator);
  }
  const intrinsic = Object.keys(object).find((key) => key.startsWith('Fn::'));
  if (intrinsic !== undefined) {
    throw new Error(`Cannot resolve ${intrinsic} in ${JSON.stringify(value)}`);
  }
  return Object.fromEntries(Object.entries(object).map(([key, item]) => [key, resolvePseudo(item, parameters)]));
}

/** Path of the repository's Python virtualenv with cfn-lint and moto; VENV overrides it. */
export function venvDir(): string {
  return path.resolve(process.env.VENV ?? path.join(INFRA_DIR, '..', '.venv'));
}

/**
 * Returns the cloud assembly folder to lint and deploy: the one that
 * `cdk synth` wrote when CDK_OUT_DIR is set (test.sh sets it), otherwise an
 * in-process synth of the default test configuration.
 */
export function assemblyDir(): string {
  const fromCli = process.env.CDK_OUT_DIR;
  if (fromCli !== undefined && fromCli !== '') {
    return path.resolve(fromCli);
  }
  return synthesize().outdir;
}
