import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { resourcesOfType, synthesize, type CfnResource } from './helpers/synth';

// The key layout the Rust code relies on, written out independently of lib/tables.ts.
const EXPECTED_TABLES: Record<string, { key: string; indexes: Record<string, string> }> = {
  ecs_task: { key: 'ecs_task_id', indexes: { 'job_id-index': 'job_id', 'container_inst_id-index': 'container_inst_id' } },
  ecs_job: { key: 'job_id', indexes: { 'job_status-index': 'job_status' } },
  ecs_node: {
    key: 'node_name',
    indexes: { 'container_instance_arn-index': 'container_instance_arn', 'node_status-index': 'node_status' },
  },
};

interface TableProperties {
  TableName: string;
  KeySchema: { AttributeName: string; KeyType: string }[];
  AttributeDefinitions: { AttributeName: string; AttributeType: string }[];
  GlobalSecondaryIndexes?: {
    IndexName: string;
    KeySchema: { AttributeName: string; KeyType: string }[];
    Projection: { ProjectionType: string };
  }[];
  BillingMode?: string;
  PointInTimeRecoverySpecification?: { PointInTimeRecoveryEnabled: boolean };
  SSESpecification?: { SSEEnabled: boolean; SSEType?: string };
  DeletionProtectionEnabled?: boolean;
}

function tablesByName(overrides: Record<string, string> = {}): Record<string, CfnResource & { props: TableProperties }> {
  const tables = resourcesOfType(synthesize(overrides).json, 'AWS::DynamoDB::Table');
  return Object.fromEntries(
    Object.values(tables).map((table) => {
      const props = table.Properties as unknown as TableProperties;
      return [props.TableName, { ...table, props }];
    }),
  );
}

describe('state tables', () => {
  test('three tables with default names', () => {
    assert.deepEqual(Object.keys(tablesByName()).sort(), ['ecs_job', 'ecs_node', 'ecs_task']);
  });

  for (const [name, expected] of Object.entries(EXPECTED_TABLES)) {
    test(`${name} partition key`, () => {
      const { props } = tablesByName()[name];
      assert.deepEqual(props.KeySchema, [{ AttributeName: expected.key, KeyType: 'HASH' }]);
    });

    test(`${name} indexes project all`, () => {
      const { props } = tablesByName()[name];
      const indexes = Object.fromEntries(
        (props.GlobalSecondaryIndexes ?? []).map((index) => [index.IndexName, index]),
      );
      assert.deepEqual(Object.keys(indexes).sort(), Object.keys(expected.indexes).sort());
      for (const [indexName, key] of Object.entries(expected.indexes)) {
        assert.deepEqual(indexes[indexName].KeySchema, [{ AttributeName: key, KeyType: 'HASH' }], indexName);
        assert.deepEqual(indexes[indexName].Projection, { ProjectionType: 'ALL' }, indexName);
      }
    });

    test(`${name} attributes are strings`, () => {
      const { props } = tablesByName()[name];
      const attributes = [expected.key, ...Object.values(expected.indexes)].sort();
      assert.deepEqual(
        props.AttributeDefinitions.map((definition) => definition.AttributeName).sort(),
        attributes,
      );
      for (const definition of props.AttributeDefinitions) {
        assert.equal(definition.AttributeType, 'S', definition.AttributeName);
      }
    });

    test(`${name} on-demand, PITR, encrypted`, () => {
      const { props } = tablesByName()[name];
      assert.equal(props.BillingMode, 'PAY_PER_REQUEST');
      assert.deepEqual(props.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
      // SSEEnabled with no key ID selects KMS with the AWS managed key aws/dynamodb.
      assert.deepEqual(props.SSESpecification, { SSEEnabled: true });
    });

    test(`${name} retained by default`, () => {
      const table = tablesByName()[name];
      assert.equal(table.DeletionPolicy, 'Retain');
      assert.equal(table.UpdateReplacePolicy, 'Retain');
      assert.equal(table.props.DeletionProtectionEnabled, true);
    });

    test(`${name} destroyed when configured`, () => {
      const table = tablesByName({ TABLE_REMOVAL_POLICY: 'destroy' })[name];
      assert.equal(table.DeletionPolicy, 'Delete');
      assert.equal(table.UpdateReplacePolicy, 'Delete');
      assert.equal(table.props.DeletionProtectionEnabled, false);
    });
  }

  test('table names are configurable', () => {
    const names = Object.keys(
      tablesByName({ TASK_TABLE_NAME: 'prod_task', JOB_TABLE_NAME: 'prod_job', NODE_TABLE_NAME: 'prod_node' }),
    ).sort();
    assert.deepEqual(names, ['prod_job', 'prod_node', 'prod_task']);
  });

});
