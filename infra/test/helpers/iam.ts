import { FIXTURE_PSEUDO_PARAMETERS, resourcesOfType, type TemplateJson } from './synth';

/** One Allow statement as granted, with its resources and condition rendered to strings. */
export interface Grant {
  readonly source: string;
  readonly sid?: string;
  readonly actions: string[];
  readonly resources: string[];
  readonly condition?: unknown;
}

interface StatementJson {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource?: unknown;
  Principal?: { AWS?: unknown; Service?: unknown };
  Condition?: unknown;
}

/**
 * Renders a template value to a string: pseudo parameters take the fixture
 * values, `{Ref: X}` of a resource becomes `${X}`, `{Fn::GetAtt: [X, A]}`
 * becomes `${X.A}` and Fn::Join concatenates.
 */
export function render(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const object = value as Record<string, unknown>;
    if ('Ref' in object) {
      const name = String(object.Ref);
      return FIXTURE_PSEUDO_PARAMETERS[name] ?? `\${${name}}`;
    }
    if ('Fn::GetAtt' in object) {
      return `\${${(object['Fn::GetAtt'] as string[]).join('.')}}`;
    }
    if ('Fn::Join' in object) {
      const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
  }
  throw new Error(`Cannot render ${JSON.stringify(value)}`);
}

function renderDeep(value: unknown): unknown {
  if (Array.isArray(value)) {
    return value.map(renderDeep);
  }
  if (value !== null && typeof value === 'object') {
    const object = value as Record<string, unknown>;
    if ('Ref' in object || 'Fn::GetAtt' in object || 'Fn::Join' in object) {
      return render(value);
    }
    return Object.fromEntries(Object.entries(object).map(([key, item]) => [key, renderDeep(item)]));
  }
  return value;
}

function toArray<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) {
    return [];
  }
  return Array.isArray(value) ? value : [value];
}

function toGrant(source: string, statement: StatementJson): Grant {
  if (statement.Effect !== 'Allow') {
    throw new Error(`Unexpected ${statement.Effect} statement in ${source}`);
  }
  return {
    source,
    sid: statement.Sid,
    actions: toArray(statement.Action),
    resources: toArray(statement.Resource).map(render),
    condition: statement.Condition === undefined ? undefined : renderDeep(statement.Condition),
  };
}

/**
 * Collects everything the template grants to one role: its inline policies,
 * the AWS::IAM::Policy resources attached to it, and key policy statements
 * whose principal is the role.
 */
export function grantsToRole(json: TemplateJson, roleId: string): Grant[] {
  const grants: Grant[] = [];
  const role = json.Resources[roleId];
  for (const inline of toArray(role.Properties?.Policies as { PolicyDocument: { Statement: StatementJson[] } }[])) {
    grants.push(...inline.PolicyDocument.Statement.map((statement) => toGrant(`${roleId} inline`, statement)));
  }
  for (const [policyId, policy] of Object.entries(resourcesOfType(json, 'AWS::IAM::Policy'))) {
    const roles = toArray(policy.Properties?.Roles as unknown[]).map(render);
    if (roles.includes(`\${${roleId}}`)) {
      const document = policy.Properties?.PolicyDocument as { Statement: StatementJson[] };
      grants.push(...document.Statement.map((statement) => toGrant(policyId, statement)));
    }
  }
  for (const [keyId, key] of Object.entries(resourcesOfType(json, 'AWS::KMS::Key'))) {
    const document = key.Properties?.KeyPolicy as { Statement: StatementJson[] };
    for (const statement of document.Statement) {
      const principals = toArray(statement.Principal?.AWS).map(render);
      if (principals.includes(`\${${roleId}.Arn}`)) {
        grants.push(toGrant(`${keyId} key policy`, statement));
      }
    }
  }
  return grants;
}

/** Returns the sorted, distinct actions of a list of grants. */
export function actionsOf(grants: Grant[]): string[] {
  return [...new Set(grants.flatMap((grant) => grant.actions))].sort();
}

/** Returns the logical ID of the role that a function's Role property points at. */
export function roleOfFunction(json: TemplateJson, functionName: string): string {
  const [, fn] = functionResource(json, functionName);
  const role = fn.Properties?.Role as { 'Fn::GetAtt': [string, string] };
  return role['Fn::GetAtt'][0];
}

/** Returns [logical ID, resource] of the Lambda function with the given FunctionName. */
export function functionResource(json: TemplateJson, functionName: string) {
  const match = Object.entries(resourcesOfType(json, 'AWS::Lambda::Function')).find(
    ([, fn]) => fn.Properties?.FunctionName === functionName,
  );
  if (match === undefined) {
    throw new Error(`No Lambda function named ${functionName} in the template`);
  }
  return match;
}
