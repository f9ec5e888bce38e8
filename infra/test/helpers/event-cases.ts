import { loadFixture } from './synth';

/** Returns a copy of a fixture with fields of `detail` replaced. */
export function withDetail(name: string, detail: Record<string, unknown>): Record<string, unknown> {
  const event = structuredClone(loadFixture(name));
  Object.assign(event.detail as Record<string, unknown>, detail);
  return event;
}

export const OTHER_CLUSTER = 'arn:aws:ecs:us-west-2:111122223333:cluster/cpu-batch';

/** One event and whether each event-triggered function's rule must match it. */
export interface EventCase {
  readonly description: string;
  readonly event: () => Record<string, unknown>;
  readonly expected: Readonly<Record<'ecs-task-handler' | 'dcgm-task-monitor' | 'ecs-instance-monitor', boolean>>;
}

/** Recorded and constructed ECS events in the fixtures' account (111122223333) and region (us-west-2). */
export const EVENT_CASES: EventCase[] = [
  {
    description: 'training task exits 1',
    event: () => loadFixture('task-stopped-exit1-gpu.json'),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'sibling stopped by StopTask',
    event: () => loadFixture('task-stopped-sibling-after-stoptask.json'),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'rank finishes with 0',
    event: () => loadFixture('task-stopped-exit0-complete.json'),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'task failed to start',
    event: () => loadFixture('task-stopped-failed-to-start-nvml.json'),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'training task running',
    event: () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'training task deprovisioning',
    event: () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'DEPROVISIONING' }),
    expected: { 'ecs-task-handler': true, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'training task pending',
    event: () => withDetail('task-stopped-exit1-gpu.json', { lastStatus: 'PENDING', desiredStatus: 'RUNNING' }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'training task in another cluster',
    event: () => withDetail('task-stopped-exit1-gpu.json', { clusterArn: OTHER_CLUSTER }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'Fargate task elsewhere',
    event: () => loadFixture('task-running-fargate-docs.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'service task elsewhere',
    event: () => loadFixture('task-stopped-user-initiated.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check exits 1',
    event: () => loadFixture('healthcheck-stopped-exit1-node-a.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check exits 0',
    event: () => loadFixture('healthcheck-stopped-exit0-node-b.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check of a new revision',
    event: () =>
      withDetail('healthcheck-stopped-exit1-node-a.json', {
        taskDefinitionArn: 'arn:aws:ecs:us-west-2:111122223333:task-definition/gpu-dcgm-health-check:42',
      }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': true, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check running',
    event: () => withDetail('healthcheck-stopped-exit1-node-a.json', { lastStatus: 'RUNNING', desiredStatus: 'RUNNING' }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check deprovisioning',
    event: () => withDetail('healthcheck-stopped-exit1-node-a.json', { lastStatus: 'DEPROVISIONING' }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'health check in another cluster',
    event: () => withDetail('healthcheck-stopped-exit1-node-a.json', { clusterArn: OTHER_CLUSTER }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'agent disconnects',
    event: () => loadFixture('container-instance-agent-disconnected-node-a.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': true },
  },
  {
    description: 'agent reconnects',
    event: () => loadFixture('container-instance-agent-reconnected-node-a.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': true },
  },
  {
    description: 'instance change without agentConnected',
    event: () => {
      const event = structuredClone(loadFixture('container-instance-agent-reconnected-node-a.json'));
      delete (event.detail as Record<string, unknown>).agentConnected;
      return event;
    },
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'instance in another cluster',
    event: () => loadFixture('container-instance-change-docs.json'),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
  {
    description: 'event from another source',
    event: () => ({ ...loadFixture('task-stopped-exit1-gpu.json'), source: 'custom.ecs' }),
    expected: { 'ecs-task-handler': false, 'dcgm-task-monitor': false, 'ecs-instance-monitor': false },
  },
];
