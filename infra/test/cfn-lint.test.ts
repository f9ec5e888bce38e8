import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import { STACK_NAME } from '../lib/app';
import { assemblyDir, venvDir } from './helpers/synth';

interface LintMatch {
  Level: string;
  Message: string;
  Rule: { Id: string };
  Location: { Path: (string | number)[] };
}

test('cfn-lint finds no errors', (t) => {
  const cfnLint = path.join(venvDir(), 'bin', 'cfn-lint');
  assert.ok(fs.existsSync(cfnLint), `${cfnLint} not found: create the virtualenv with scripts/lib.sh ensure_venv`);
  const template = path.join(assemblyDir(), `${STACK_NAME}.template.json`);
  const result = spawnSync(cfnLint, ['--format', 'json', template], { encoding: 'utf8', timeout: 300_000 });
  // cfn-lint exits with a bit mask: 2 errors, 4 warnings, 8 informational; 1 means it failed to run.
  assert.notEqual(result.status, null, `cfn-lint did not finish: ${result.error}`);
  assert.equal(result.status! & 1, 0, `cfn-lint failed to run: ${result.stderr}`);
  const matches = JSON.parse(result.stdout) as LintMatch[];
  const describe = (match: LintMatch) => `${match.Rule.Id} at ${match.Location.Path.join('/')}: ${match.Message}`;
  const errors = matches.filter((match) => match.Level === 'Error');
  const warnings = matches.filter((match) => match.Level === 'Warning');
  for (const warning of warnings) {
    t.diagnostic(`cfn-lint warning ${describe(warning)}`);
  }
  t.diagnostic(`cfn-lint: ${errors.length} errors, ${warnings.length} warnings on ${template}`);
  assert.deepEqual(errors.map(describe), []);
  assert.equal(result.status! & 2, 0, 'cfn-lint exit status reports errors');
});
