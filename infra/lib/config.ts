import * as fs from 'node:fs';
import * as path from 'node:path';

/** Directory of the CDK app (infra/); relative LAMBDA_ASSET_DIR values resolve against it. */
export const INFRA_DIR = path.resolve(__dirname, '..');

/** The four Lambda functions; each name is also the folder of its zip under LAMBDA_ASSET_DIR. */
export const FUNCTION_NAMES = [
  'ecs-task-handler',
  'dcgm-task-monitor',
  'ecs-instance-monitor',
  'recovery-watchdog',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/**
 * Policy knobs that the functions read from their environment. Each is passed
 * through only when configured, so the Rust defaults apply otherwise. The
 * limits below match the checks of `Policy::from_lookup` in crates/domain, so
 * a value that synth accepts also starts the functions.
 */
export const POLICY_KNOB_NAMES = [
  'MAX_RETRIES',
  'HEALTH_CHECK_EXIT_CODES',
  'HEALTH_CHECK_TIMEOUT_SECONDS',
  'REBOOT_TIMEOUT_SECONDS',
  'RESTART_TIMEOUT_SECONDS',
  'RUNNING_POLL_SECONDS',
  'MAX_CONCURRENT_REBOOTS',
  'CIRCUIT_BREAKER_FAILURES',
  'CIRCUIT_BREAKER_WINDOW_SECONDS',
  'UNFIXABLE_NODE_ACTION',
  'INCONCLUSIVE_NODE_ACTION',
  'DRY_RUN',
  'NODE_STATUS_ATTRIBUTE',
  'EFFECT_LEASE_SECONDS',
] as const;
export type PolicyKnobName = (typeof POLICY_KNOB_NAMES)[number];

/** Every configuration variable, read from CDK context or the environment. */
export const CONFIG_NAMES = [
  'TASK_TABLE_NAME',
  'JOB_TABLE_NAME',
  'NODE_TABLE_NAME',
  'ECS_CLUSTER_NAME',
  'DCGM_HEALTH_CHECK_TASK',
  'SNS_TOPIC_NAME',
  'SNS_TOPIC_DISPLAY_NAME',
  'LAMBDA_TIMEOUT_SECONDS',
  'LAMBDA_MEMORY_SIZE',
  'LAMBDA_ARCHITECTURE',
  'LOG_RETENTION_DAYS',
  'NOTIFICATION_EMAILS',
  'TASK_ROLE_ARNS',
  'REBOOT_INSTANCE_TAG',
  'HEALTH_CHECK_LOG_GROUP',
  'TABLE_REMOVAL_POLICY',
  'LAMBDA_ASSET_DIR',
  ...POLICY_KNOB_NAMES,
] as const;
export type ConfigName = (typeof CONFIG_NAMES)[number];

/** Unvalidated configuration: the text of each variable that is set and not empty. */
export type RawConfig = Partial<Record<ConfigName, string>>;

export interface TagCondition {
  readonly key: string;
  readonly value: string;
}

export interface RecoveryConfig {
  readonly taskTableName: string;
  readonly jobTableName: string;
  readonly nodeTableName: string;
  readonly clusterName: string;
  /** Task definition family of the DCGM health check, without revision. */
  readonly healthCheckFamily: string;
  readonly topicName: string;
  readonly topicDisplayName: string;
  readonly lambdaTimeoutSeconds: number;
  readonly lambdaMemorySizeMb: number;
  readonly lambdaArchitecture: 'x86_64' | 'arm64';
  readonly logRetentionDays: number;
  readonly notificationEmails: readonly string[];
  /** Roles that StartTask passes to ECS: task roles and execution roles of the started task definitions. */
  readonly taskRoleArns: readonly string[];
  /** When set, SSM SendCommand is allowed only on EC2 instances that carry this tag. */
  readonly rebootInstanceTag?: TagCondition;
  readonly healthCheckLogGroup?: string;
  readonly tableRemovalPolicy: 'retain' | 'destroy';
  /** Absolute path of the folder holding `<function name>/bootstrap.zip`. */
  readonly lambdaAssetDir: string;
  /** Policy knobs that were configured, in the normalized form the functions parse. */
  readonly policyKnobs: Partial<Record<PolicyKnobName, string>>;
}

/** Raised when one or more configuration values are missing or invalid; the message lists each. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** Folder of the zips that `cargo lambda build --release --output-format zip` writes, relative to infra/. */
export const DEFAULT_LAMBDA_ASSET_DIR = '../target/lambda';

/** Resolves LAMBDA_ASSET_DIR against the infra/ folder, whatever the working directory. */
export function resolveAssetDir(text: string | undefined): string {
  return path.resolve(INFRA_DIR, text ?? DEFAULT_LAMBDA_ASSET_DIR);
}

/** Returns the bootstrap.zip path of one function under the asset folder. */
export function assetZipPath(assetDir: string, functionName: FunctionName): string {
  return path.join(assetDir, functionName, 'bootstrap.zip');
}

/**
 * Reads every configuration variable, preferring CDK context (`-c NAME=value`
 * or cdk.json) over the environment. Empty values count as unset.
 */
export function readRawConfig(
  tryGetContext: (name: string) => unknown,
  env: NodeJS.ProcessEnv,
): RawConfig {
  const raw: RawConfig = {};
  for (const name of CONFIG_NAMES) {
    const fromContext = tryGetContext(name);
    const value = fromContext !== undefined && fromContext !== null ? String(fromContext) : env[name];
    if (value !== undefined && value.trim() !== '') {
      raw[name] = value.trim();
    }
  }
  return raw;
}

/** Lambda timeout when LAMBDA_TIMEOUT_SECONDS is unset, in seconds. */
export const DEFAULT_TIMEOUT_SECONDS = 60;

/** The functions' own default for EFFECT_LEASE_SECONDS, which must exceed the Lambda timeout. */
export const DEFAULT_EFFECT_LEASE_SECONDS = 120;

// A parser returns the normalized value, or throws a message that states the expected form.
type Parser<T> = (text: string) => T;

class InvalidValue extends Error {}

function expect(condition: boolean, expected: string): void {
  if (!condition) {
    throw new InvalidValue(expected);
  }
}

function integerIn(min: number, max: number, unit = ''): Parser<number> {
  const suffix = unit ? ` (${unit})` : '';
  const expected =
    max === Number.MAX_SAFE_INTEGER
      ? `a whole number of at least ${min}${suffix}`
      : `a whole number from ${min} to ${max}${suffix}`;
  return (text) => {
    expect(/^\d+$/.test(text), expected);
    const value = Number(text);
    expect(Number.isSafeInteger(value) && value >= min && value <= max, expected);
    return value;
  };
}

function oneOf<T extends string>(values: readonly T[], caseInsensitive = false): Parser<T> {
  return (text) => {
    const candidate = caseInsensitive ? text.toLowerCase() : text;
    expect((values as readonly string[]).includes(candidate), `one of ${values.join(', ')}`);
    return candidate as T;
  };
}

function matching(pattern: RegExp, expected: string): Parser<string> {
  return (text) => {
    expect(pattern.test(text), expected);
    return text;
  };
}

function commaSeparated<T>(item: Parser<T>, expected: string): Parser<T[]> {
  return (text) => {
    const parts = text.split(',').map((part) => part.trim());
    expect(parts.every((part) => part !== ''), expected);
    return parts.map((part) => {
      try {
        return item(part);
      } catch (error) {
        if (error instanceof InvalidValue) {
          throw new InvalidValue(expected);
        }
        throw error;
      }
    });
  };
}

// One week, the longest duration the functions accept for any policy knob.
const policySeconds = integerIn(1, 604800, 'seconds');

// DynamoDB table names: 3 to 255 of letters, digits, underscore, hyphen and period.
const tableName = matching(
  /^[A-Za-z0-9_.-]{3,255}$/,
  '3 to 255 letters, digits, underscores (_), hyphens (-) or periods (.)',
);

// ECS cluster names and task definition families share this character set and length.
const ecsName = matching(/^[A-Za-z0-9_-]{1,255}$/, '1 to 255 letters, digits, underscores (_) or hyphens (-)');

// CloudWatch Logs retention values that the PutRetentionPolicy API accepts.
const RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288,
  3653,
];

const retentionDays: Parser<number> = (text) => {
  const expected = `a number of days, one of ${RETENTION_DAYS.join(', ')}`;
  expect(/^\d+$/.test(text) && RETENTION_DAYS.includes(Number(text)), expected);
  return Number(text);
};

const email = matching(/^[^\s@,]+@[^\s@,]+\.[^\s@,]+$/, 'an email address');

const roleArn = matching(
  /^arn:aws[a-z-]*:iam::\d{12}:role\/[A-Za-z0-9+=,.@_/-]+$/,
  'an IAM role ARN (arn:PARTITION:iam::ACCOUNT:role/NAME)',
);

// EC2 tag keys: 1 to 128 characters, tag values 0 to 256; keys starting with aws: are reserved.
const tagCondition: Parser<TagCondition> = (text) => {
  const expected = 'KEY=VALUE, the EC2 tag that marks the instances the functions may reboot';
  const separator = text.indexOf('=');
  expect(separator > 0, expected);
  const key = text.slice(0, separator).trim();
  const value = text.slice(separator + 1).trim();
  expect(key.length >= 1 && key.length <= 128 && !key.toLowerCase().startsWith('aws:'), expected);
  expect(value.length <= 256, expected);
  expect(/^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u.test(key + value), expected);
  return { key, value };
};

const logGroupName = matching(
  /^[A-Za-z0-9_\-/.#]{1,512}$/,
  'a log group name: 1 to 512 letters, digits, underscores, hyphens, slashes, periods or #',
);

const topicName = matching(/^[A-Za-z0-9_-]{1,256}$/, '1 to 256 letters, digits, underscores (_) or hyphens (-)');

const displayName = matching(/^.{1,100}$/u, 'a display name of 1 to 100 characters');

const attributeName = matching(
  /^[A-Za-z0-9_./@-]{1,128}$/,
  'an ECS attribute name: 1 to 128 letters, digits, hyphens, underscores, periods, at signs or slashes',
);

// Exit 0 is a task that finished, so it can never mean a GPU fault.
const exitCodes: Parser<string> = (text) =>
  commaSeparated(integerIn(1, 255), 'comma-separated exit codes, each a whole number from 1 to 255')(text).join(',');

/** Parser of each policy knob; each returns the text handed to the functions. */
const POLICY_KNOB_PARSERS: Record<PolicyKnobName, Parser<string>> = {
  MAX_RETRIES: (text) => String(integerIn(0, 100)(text)),
  HEALTH_CHECK_EXIT_CODES: exitCodes,
  HEALTH_CHECK_TIMEOUT_SECONDS: (text) => String(policySeconds(text)),
  REBOOT_TIMEOUT_SECONDS: (text) => String(policySeconds(text)),
  RESTART_TIMEOUT_SECONDS: (text) => String(policySeconds(text)),
  RUNNING_POLL_SECONDS: (text) => String(policySeconds(text)),
  MAX_CONCURRENT_REBOOTS: (text) => String(integerIn(1, Number.MAX_SAFE_INTEGER)(text)),
  CIRCUIT_BREAKER_FAILURES: (text) => String(integerIn(1, Number.MAX_SAFE_INTEGER)(text)),
  CIRCUIT_BREAKER_WINDOW_SECONDS: (text) => String(policySeconds(text)),
  UNFIXABLE_NODE_ACTION: oneOf(['quarantine', 'mark_failed']),
  INCONCLUSIVE_NODE_ACTION: oneOf(['reboot_once', 'quarantine']),
  DRY_RUN: oneOf(['true', 'false']),
  NODE_STATUS_ATTRIBUTE: attributeName,
  EFFECT_LEASE_SECONDS: (text) => String(policySeconds(text)),
};

/**
 * Validates raw configuration and fills in defaults. Throws a ConfigError that
 * names every invalid variable with its value and expected form.
 */
export function parseConfig(raw: RawConfig): RecoveryConfig {
  const problems: string[] = [];

  function field<T>(name: ConfigName, parser: Parser<T>, fallback: T): T;
  function field<T>(name: ConfigName, parser: Parser<T>): T | undefined;
  function field<T>(name: ConfigName, parser: Parser<T>, fallback?: T): T | undefined {
    const text = raw[name];
    if (text === undefined) {
      return fallback;
    }
    try {
      return parser(text);
    } catch (error) {
      if (error instanceof InvalidValue) {
        problems.push(`${name} is ${JSON.stringify(text)}, expected ${error.message}`);
        return fallback;
      }
      throw error;
    }
  }

  const clusterName = field('ECS_CLUSTER_NAME', ecsName);
  if (raw.ECS_CLUSTER_NAME === undefined) {
    problems.push(
      'ECS_CLUSTER_NAME is missing, expected the name of the ECS cluster that runs the training jobs ' +
        '(set it with -c ECS_CLUSTER_NAME=NAME or in the environment)',
    );
  }

  const policyKnobs: Partial<Record<PolicyKnobName, string>> = {};
  for (const name of POLICY_KNOB_NAMES) {
    const value = field(name, POLICY_KNOB_PARSERS[name]);
    if (value !== undefined) {
      policyKnobs[name] = value;
    }
  }

  const assetDirText = raw.LAMBDA_ASSET_DIR ?? DEFAULT_LAMBDA_ASSET_DIR;
  const lambdaAssetDir = resolveAssetDir(raw.LAMBDA_ASSET_DIR);
  const missingZips = FUNCTION_NAMES.map((name) => assetZipPath(lambdaAssetDir, name)).filter(
    (zip) => !fs.existsSync(zip),
  );
  if (missingZips.length > 0) {
    problems.push(
      `LAMBDA_ASSET_DIR is ${JSON.stringify(assetDirText)}, expected a folder with <function>/bootstrap.zip ` +
        `for all four functions, but ${missingZips.join(', ')} not found ` +
        '(build them with: cargo lambda build --release --output-format zip --bins)',
    );
  }

  const config: RecoveryConfig = {
    taskTableName: field('TASK_TABLE_NAME', tableName, 'ecs_task'),
    jobTableName: field('JOB_TABLE_NAME', tableName, 'ecs_job'),
    nodeTableName: field('NODE_TABLE_NAME', tableName, 'ecs_node'),
    clusterName: clusterName ?? '',
    healthCheckFamily: field('DCGM_HEALTH_CHECK_TASK', ecsName, 'gpu-dcgm-health-check'),
    topicName: field('SNS_TOPIC_NAME', topicName, 'ecs-gpu-recovery-notifications'),
    topicDisplayName: field('SNS_TOPIC_DISPLAY_NAME', displayName, 'ECS GPU recovery'),
    lambdaTimeoutSeconds: field('LAMBDA_TIMEOUT_SECONDS', integerIn(1, 900, 'seconds'), DEFAULT_TIMEOUT_SECONDS),
    lambdaMemorySizeMb: field('LAMBDA_MEMORY_SIZE', integerIn(128, 10240, 'MB'), 256),
    lambdaArchitecture: field('LAMBDA_ARCHITECTURE', oneOf(['x86_64', 'arm64'] as const), 'x86_64'),
    logRetentionDays: field('LOG_RETENTION_DAYS', retentionDays, 30),
    notificationEmails: field(
      'NOTIFICATION_EMAILS',
      commaSeparated(email, 'comma-separated email addresses'),
      [],
    ),
    taskRoleArns: field(
      'TASK_ROLE_ARNS',
      commaSeparated(roleArn, 'comma-separated IAM role ARNs (arn:PARTITION:iam::ACCOUNT:role/NAME)'),
      [],
    ),
    rebootInstanceTag: field('REBOOT_INSTANCE_TAG', tagCondition),
    healthCheckLogGroup: field('HEALTH_CHECK_LOG_GROUP', logGroupName),
    tableRemovalPolicy: field('TABLE_REMOVAL_POLICY', oneOf(['retain', 'destroy'] as const, true), 'retain'),
    lambdaAssetDir,
    policyKnobs,
  };

  // Another run may retry a claimed action once its lease expires, so the lease must outlast
  // the run that claimed it. Skipped when either value was already reported as invalid.
  const lease = Number(config.policyKnobs.EFFECT_LEASE_SECONDS ?? DEFAULT_EFFECT_LEASE_SECONDS);
  const invalidTiming = problems.some((problem) => /^(LAMBDA_TIMEOUT_SECONDS|EFFECT_LEASE_SECONDS) /.test(problem));
  if (!invalidTiming && lease <= config.lambdaTimeoutSeconds) {
    problems.push(
      `EFFECT_LEASE_SECONDS is ${lease}, expected more than LAMBDA_TIMEOUT_SECONDS (${config.lambdaTimeoutSeconds}), ` +
        'because another run may retry a claimed action once its lease expires',
    );
  }

  if (problems.length > 0) {
    throw new ConfigError(problems);
  }
  return config;
}
