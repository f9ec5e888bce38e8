import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { actionsOf, grantsToRole, roleOfFunction, type Grant } from './helpers/iam';
import { allFunctionNames, resourcesOfType, synthesize } from './helpers/synth';

// Granted to every function: state tables, its own log group, and its dead-letter queue (Lambda sends
// failed asynchronous events there with the function's role).
const COMMON_ACTIONS = [
  'dynamodb:ConditionCheckItem',
  'dynamodb:GetItem',
  'dynamodb:PutItem',
  'dynamodb:Query',
  'dynamodb:UpdateItem',
  'logs:CreateLogStream',
  'logs:PutLogEvents',
  'sqs:SendMessage',
];

// SNS encrypts with the topic key on behalf of each publisher; the key policy grants this.
const TOPIC_KEY_ACTIONS = ['kms:Decrypt', 'kms:GenerateDataKey*'];

// Runtime actions each function's code calls, with iam:PassRole and logs:GetLogEvents left to the
// tests of the configuration that enables them.
const RUNTIME_ACTIONS: Record<string, string[]> = {
  'ecs-task-handler': [
    'ecs:DescribeTasks',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:StopTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'sns:Publish',
  ],
  'dcgm-task-monitor': [
    'ecs:DescribeTasks',
    'ecs:DescribeContainerInstances',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:PutAttributes',
    'ecs:UpdateContainerInstancesState',
    'ssm:SendCommand',
    'ssm:ListCommands',
    'ssm:DescribeInstanceInformation',
    'sns:Publish',
  ],
  'ecs-instance-monitor': [
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'sns:Publish',
  ],
  'recovery-watchdog': [
    'ecs:DescribeTasks',
    'ecs:ListTasks',
    'ecs:StartTask',
    'ecs:StopTask',
    'ecs:PutAttributes',
    'ecs:DescribeContainerInstances',
    'ecs:UpdateContainerInstancesState',
    'ssm:SendCommand',
    'ssm:ListCommands',
    'ssm:GetCommandInvocation',
    'ssm:DescribeInstanceInformation',
    'sns:Publish',
  ],
};

const CLUSTER_ARN = 'arn:aws:ecs:us-west-2:111122223333:cluster/gpu-training';
const IN_CLUSTER = { ArnEquals: { 'ecs:cluster': CLUSTER_ARN } };

// Resources and condition expected for each action; ${...} stands for a resource of the stack.
const ECS_SCOPES: Record<string, { resources: string[]; condition: unknown }> = {
  'ecs:DescribeTasks': { resources: ['arn:aws:ecs:us-west-2:111122223333:task/gpu-training/*'], condition: IN_CLUSTER },
  'ecs:StopTask': { resources: ['arn:aws:ecs:us-west-2:111122223333:task/gpu-training/*'], condition: IN_CLUSTER },
  'ecs:DescribeContainerInstances': {
    resources: ['arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/*'],
    condition: IN_CLUSTER,
  },
  'ecs:PutAttributes': {
    resources: ['arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/*'],
    condition: IN_CLUSTER,
  },
  'ecs:UpdateContainerInstancesState': {
    resources: ['arn:aws:ecs:us-west-2:111122223333:container-instance/gpu-training/*'],
    condition: IN_CLUSTER,
  },
  'ecs:ListTasks': { resources: ['*'], condition: IN_CLUSTER },
  'ecs:StartTask': { resources: ['arn:aws:ecs:us-west-2:111122223333:task-definition/*'], condition: IN_CLUSTER },
  'ssm:ListCommands': { resources: ['*'], condition: undefined },
  'ssm:GetCommandInvocation': { resources: ['*'], condition: undefined },
  'ssm:DescribeInstanceInformation': { resources: ['*'], condition: undefined },
};

function grantsOf(functionName: string, overrides: Record<string, string> = {}): Grant[] {
  const { json } = synthesize(overrides);
  return grantsToRole(json, roleOfFunction(json, functionName));
}

function grantsFor(grants: Grant[], action: string): Grant[] {
  return grants.filter((grant) => grant.actions.includes(action));
}

describe('function roles', () => {
  test('one role per function', () => {
    const { json } = synthesize();
    const roles = allFunctionNames().map((name) => roleOfFunction(json, name));
    assert.equal(new Set(roles).size, 4, `roles: ${roles.join(', ')}`);
    assert.deepEqual(Object.keys(resourcesOfType(json, 'AWS::IAM::Role')).sort(), [...roles].sort());
  });

  test('roles trust Lambda only', () => {
    const { json } = synthesize();
    for (const role of Object.values(resourcesOfType(json, 'AWS::IAM::Role'))) {
      assert.deepEqual(role.Properties?.AssumeRolePolicyDocument, {
        Statement: [{ Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } }],
        Version: '2012-10-17',
      });
    }
  });

  test('no managed policies', () => {
    const { json } = synthesize();
    for (const [id, role] of Object.entries(resourcesOfType(json, 'AWS::IAM::Role'))) {
      assert.equal(role.Properties?.ManagedPolicyArns, undefined, id);
      assert.equal(role.Properties?.Policies, undefined, id);
    }
  });

  for (const name of allFunctionNames()) {
    test(`${name} has exactly its actions`, () => {
      const expected = [...COMMON_ACTIONS, ...TOPIC_KEY_ACTIONS, ...RUNTIME_ACTIONS[name]].sort();
      assert.deepEqual(actionsOf(grantsOf(name)), expected);
    });

    test(`${name} ECS and SSM scoping`, () => {
      const grants = grantsOf(name);
      for (const action of RUNTIME_ACTIONS[name].filter((candidate) => candidate in ECS_SCOPES)) {
        const matching = grantsFor(grants, action);
        assert.equal(matching.length, 1, `${action} is granted by ${matching.length} statements`);
        assert.deepEqual(matching[0].resources, ECS_SCOPES[action].resources, action);
        assert.deepEqual(matching[0].condition, ECS_SCOPES[action].condition, action);
      }
    });

    test(`${name} tables and logs scoping`, () => {
      const { json, stack } = synthesize();
      const grants = grantsOf(name);
      const tables = Object.keys(resourcesOfType(json, 'AWS::DynamoDB::Table')).sort();
      for (const action of ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:ConditionCheckItem']) {
        const matching = grantsFor(grants, action);
        assert.equal(matching.length, 1, action);
        assert.deepEqual([...matching[0].resources].sort(), tables.map((id) => `\${${id}.Arn}`), action);
      }
      const query = grantsFor(grants, 'dynamodb:Query');
      assert.equal(query.length, 1);
      assert.equal(query[0].resources.length, 5);
      for (const resource of query[0].resources) {
        assert.match(resource, /^\$\{(Task|Job|Node)Table[0-9A-F]+\.Arn\}\/index\/[a-z_]+-index$/);
      }
      const logGroupId = stack.getLogicalId(stack.functions[name].logGroup.node.defaultChild as never);
      const logs = grantsFor(grants, 'logs:PutLogEvents');
      assert.equal(logs.length, 1);
      assert.deepEqual(logs[0].resources, [`\${${logGroupId}.Arn}`]);
      assert.deepEqual(logs[0].actions.sort(), ['logs:CreateLogStream', 'logs:PutLogEvents']);
    });

    test(`${name} publishes to the topic only`, () => {
      const { json } = synthesize();
      const [topicId] = Object.keys(resourcesOfType(json, 'AWS::SNS::Topic'));
      const publish = grantsFor(grantsOf(name), 'sns:Publish');
      assert.equal(publish.length, 1);
      assert.deepEqual(publish[0].resources, [`\${${topicId}}`]);
    });

    test(`${name} topic key only via SNS`, () => {
      const key = grantsOf(name).filter((grant) => grant.source.endsWith('key policy'));
      assert.equal(key.length, 1);
      assert.deepEqual(key[0].actions, TOPIC_KEY_ACTIONS);
      assert.deepEqual(key[0].condition, { StringEquals: { 'kms:ViaService': 'sns.us-west-2.amazonaws.com' } });
    });

    test(`${name} dead letters to its own queue`, () => {
      const { json, stack } = synthesize();
      const queueId = stack.getLogicalId(stack.functions[name].deadLetterQueue.node.defaultChild as never);
      assert.ok(queueId in json.Resources);
      const send = grantsFor(grantsOf(name), 'sqs:SendMessage');
      assert.equal(send.length, 1);
      assert.deepEqual(send[0].resources, [`\${${queueId}.Arn}`]);
    });

    test(`${name} has no PassRole by default`, () => {
      assert.deepEqual(grantsFor(grantsOf(name), 'iam:PassRole'), []);
    });
  }

  test('reboot command on the document and instances', () => {
    for (const name of ['dcgm-task-monitor', 'recovery-watchdog']) {
      const send = grantsFor(grantsOf(name), 'ssm:SendCommand');
      assert.deepEqual(
        send.map((grant) => [grant.resources, grant.condition]),
        [
          [['arn:aws:ssm:us-west-2::document/AWS-RunShellScript'], undefined],
          [['arn:aws:ec2:us-west-2:111122223333:instance/*'], undefined],
        ],
        name,
      );
    }
  });

  test('reboot tag narrows the instances', () => {
    for (const name of ['dcgm-task-monitor', 'recovery-watchdog']) {
      const send = grantsFor(grantsOf(name, { REBOOT_INSTANCE_TAG: 'gpu-recovery=enabled' }), 'ssm:SendCommand');
      const instances = send.find((grant) => grant.resources[0].includes(':instance/'));
      assert.deepEqual(instances?.condition, { StringEquals: { 'ssm:resourceTag/gpu-recovery': 'enabled' } }, name);
      const document = send.find((grant) => grant.resources[0].includes(':document/'));
      assert.equal(document?.condition, undefined, name);
    }
  });

  test('PassRole only for configured roles', () => {
    const roles = ['arn:aws:iam::111122223333:role/llm-pretrain-task', 'arn:aws:iam::111122223333:role/ecsTaskExecutionRole'];
    for (const name of allFunctionNames()) {
      const pass = grantsFor(grantsOf(name, { TASK_ROLE_ARNS: roles.join(',') }), 'iam:PassRole');
      assert.equal(pass.length, 1, name);
      assert.deepEqual(pass[0].actions, ['iam:PassRole'], name);
      assert.deepEqual(pass[0].resources, roles, name);
      assert.deepEqual(pass[0].condition, { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } }, name);
    }
  });

  test('health-check logs readable when configured', () => {
    const overrides = { HEALTH_CHECK_LOG_GROUP: '/ecs/gpu-dcgm-health-check' };
    const read = grantsFor(grantsOf('dcgm-task-monitor', overrides), 'logs:GetLogEvents');
    assert.equal(read.length, 1);
    assert.deepEqual(read[0].resources, [
      'arn:aws:logs:us-west-2:111122223333:log-group:/ecs/gpu-dcgm-health-check:log-stream:*',
    ]);
    for (const name of allFunctionNames().filter((candidate) => candidate !== 'dcgm-task-monitor')) {
      assert.deepEqual(grantsFor(grantsOf(name, overrides), 'logs:GetLogEvents'), [], name);
    }
  });

  test('no health-check log access by default', () => {
    assert.deepEqual(grantsFor(grantsOf('dcgm-task-monitor'), 'logs:GetLogEvents'), []);
  });
});
