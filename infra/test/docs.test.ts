import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import { actionsOf, grantsToRole, roleOfFunction } from './helpers/iam';
import { INFRA_DIR, allFunctionNames, synthesize } from './helpers/synth';

const PERMISSIONS_DOC = path.join(INFRA_DIR, '..', 'docs', 'permissions.md');

// Every option that adds a grant, so the template grants everything the tables may list.
const FULL_CONFIG = {
  TASK_ROLE_ARNS: 'arn:aws:iam::111122223333:role/llm-pretrain-task',
  HEALTH_CHECK_LOG_GROUP: '/ecs/gpu-dcgm-health-check',
  REBOOT_INSTANCE_TAG: 'gpu-recovery=enabled',
};

interface DocRow {
  readonly action: string;
  readonly resource: string;
}

/** Parses the runtime table under each `### <function>` heading of docs/permissions.md. */
function documentedRows(): Record<string, DocRow[]> {
  const rows: Record<string, DocRow[]> = {};
  let section: string | undefined;
  for (const line of fs.readFileSync(PERMISSIONS_DOC, 'utf8').split('\n')) {
    const heading = /^#{1,3} (.+)$/.exec(line);
    if (heading !== null) {
      section = line.startsWith('### ') ? heading[1].trim() : undefined;
      continue;
    }
    const row = /^\| `([a-z0-9-]+:[A-Za-z*]+)` \| ([^|]+) \|/.exec(line);
    if (section !== undefined && row !== null) {
      (rows[section] ??= []).push({ action: row[1], resource: row[2].trim() });
    }
  }
  return rows;
}

function grantedActions(functionName: string, overrides: Record<string, string>): string[] {
  const { json } = synthesize(overrides);
  return actionsOf(grantsToRole(json, roleOfFunction(json, functionName)));
}

describe('docs/permissions.md', () => {
  test('has a table per function', () => {
    assert.deepEqual(Object.keys(documentedRows()).sort(), [...allFunctionNames()].sort());
  });

  for (const name of allFunctionNames()) {
    test(`${name} table lists each grant`, () => {
      const documented = new Set(documentedRows()[name].map((row) => row.action));
      const missing = grantedActions(name, FULL_CONFIG).filter((action) => !documented.has(action));
      assert.deepEqual(missing, [], `granted to ${name} but not in its table`);
    });

    test(`${name} table lists only grants`, () => {
      const granted = new Set(grantedActions(name, FULL_CONFIG));
      const extra = documentedRows()[name]
        .map((row) => row.action)
        .filter((action) => !granted.has(action));
      assert.deepEqual(extra, [], `in the ${name} table but not granted`);
    });

    test(`${name} table has no duplicates`, () => {
      const actions = documentedRows()[name].map((row) => row.action);
      assert.deepEqual(actions.filter((action, index) => actions.indexOf(action) !== index), []);
    });

    test(`${name} optional grants marked`, () => {
      const always = new Set(grantedActions(name, {}));
      for (const row of documentedRows()[name]) {
        const optional = !always.has(row.action);
        assert.equal(
          row.resource.includes('only when set'),
          optional,
          `${row.action}: ${optional ? 'granted only with configuration' : 'always granted'}, resource "${row.resource}"`,
        );
      }
    });
  }
});
