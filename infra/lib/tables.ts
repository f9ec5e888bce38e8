import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import type { RecoveryConfig } from './config';

/** Key layout of one state table; every attribute is a string and every index projects ALL. */
export interface TableSpec {
  readonly id: string;
  readonly partitionKey: string;
  /** Global secondary indexes by name, each with its partition key attribute. */
  readonly indexes: Readonly<Record<string, string>>;
}

export const TASK_TABLE: TableSpec = {
  id: 'TaskTable',
  partitionKey: 'ecs_task_id',
  indexes: { 'job_id-index': 'job_id', 'container_inst_id-index': 'container_inst_id' },
};

export const JOB_TABLE: TableSpec = {
  id: 'JobTable',
  partitionKey: 'job_id',
  indexes: { 'job_status-index': 'job_status' },
};

export const NODE_TABLE: TableSpec = {
  id: 'NodeTable',
  partitionKey: 'node_name',
  indexes: {
    'container_instance_arn-index': 'container_instance_arn',
    'node_status-index': 'node_status',
  },
};

export interface StateTables {
  readonly task: dynamodb.Table;
  readonly job: dynamodb.Table;
  readonly node: dynamodb.Table;
}

/**
 * Creates the three state tables. They hold the state of running jobs, so by
 * default they survive stack deletion and carry deletion protection.
 */
export function createStateTables(scope: Construct, config: RecoveryConfig): StateTables {
  const retain = config.tableRemovalPolicy === 'retain';

  // dynamodb.Table rather than TableV2: the local CloudFormation emulator the tests use rejects TableV2.
  const create = (spec: TableSpec, tableName: string): dynamodb.Table => {
    const table = new dynamodb.Table(scope, spec.id, {
      tableName,
      partitionKey: { name: spec.partitionKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: dynamodb.TableEncryption.AWS_MANAGED,
      deletionProtection: retain,
      removalPolicy: retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY,
    });
    for (const [indexName, key] of Object.entries(spec.indexes)) {
      table.addGlobalSecondaryIndex({
        indexName,
        partitionKey: { name: key, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    return table;
  };

  return {
    task: create(TASK_TABLE, config.taskTableName),
    job: create(JOB_TABLE, config.jobTableName),
    node: create(NODE_TABLE, config.nodeTableName),
  };
}
