import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { parseConfig, readRawConfig } from './config';
import { acknowledgeNagFindings } from './nag';
import { RecoveryStack } from './recovery-stack';

export const STACK_NAME = 'EcsGpuRecovery';

export interface RecoveryApp {
  readonly app: App;
  readonly stack: RecoveryStack;
}

/**
 * Builds the CDK app with the recovery stack and the cdk-nag AwsSolutions
 * checks. Configuration comes from the app's context, then from `env`.
 * Throws ConfigError when a value is missing or invalid.
 */
export function buildApp(env: NodeJS.ProcessEnv = process.env, props: AppProps = {}): RecoveryApp {
  const app = new App(props);
  const config = parseConfig(readRawConfig((name) => app.node.tryGetContext(name), env));
  // No env: the stack is environment-agnostic, so synth needs no AWS account or credentials.
  const stack = new RecoveryStack(app, STACK_NAME, {
    config,
    description: 'ECS GPU recovery: health checks, reboots and restarts of multi-node GPU training jobs',
  });
  acknowledgeNagFindings(stack);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stack };
}
