/**
 * EventBridge event pattern matching for the operators the rules use: exact
 * values, prefix, anything-but (a value, a list or a prefix), exists and
 * numeric. The semantics follow the EventBridge user guide page "Comparison
 * operators for use in event patterns in Amazon EventBridge". Every field that
 * the pattern names must match, except that `exists: false` matches a missing
 * field. A field matches when its value equals any listed value, and an array
 * in the event matches when any of its elements does. An operator this module
 * does not know raises an error, so no pattern matches by accident.
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

const MISSING = Symbol('missing');
type FieldValue = Json | typeof MISSING;

/** Returns true when the event matches the pattern. */
export function matchesPattern(pattern: Record<string, unknown>, event: unknown): boolean {
  return matchObject(pattern, event as Json);
}

function matchObject(pattern: Record<string, unknown>, value: Json): boolean {
  return Object.entries(pattern).every(([key, subPattern]) => {
    const field: FieldValue =
      value !== null && typeof value === 'object' && !Array.isArray(value) && key in value ? value[key] : MISSING;
    if (Array.isArray(subPattern)) {
      return matchField(subPattern, field);
    }
    if (subPattern !== null && typeof subPattern === 'object') {
      if (field === MISSING || field === null || typeof field !== 'object' || Array.isArray(field)) {
        return false;
      }
      return matchObject(subPattern as Record<string, unknown>, field);
    }
    throw new Error(`Pattern field ${key} must be an array or an object, got ${JSON.stringify(subPattern)}`);
  });
}

function matchField(matchers: unknown[], field: FieldValue): boolean {
  // exists: false is the only matcher that a missing field can satisfy.
  if (field === MISSING) {
    return matchers.some((matcher) => isOperator(matcher, 'exists') && (matcher as { exists: boolean }).exists === false);
  }
  const candidates: Json[] = Array.isArray(field) ? field : [field];
  return matchers.some((matcher) => candidates.some((candidate) => matchValue(matcher, candidate)));
}

function isOperator(matcher: unknown, name: string): boolean {
  return matcher !== null && typeof matcher === 'object' && !Array.isArray(matcher) && name in matcher;
}

function matchValue(matcher: unknown, value: Json): boolean {
  if (matcher === null || typeof matcher !== 'object') {
    return matcher === value;
  }
  const operators = Object.keys(matcher);
  if (operators.length !== 1) {
    throw new Error(`A matcher must have exactly one operator, got ${JSON.stringify(matcher)}`);
  }
  const [operator] = operators;
  const argument = (matcher as Record<string, unknown>)[operator];
  switch (operator) {
    case 'prefix':
      return typeof value === 'string' && value.startsWith(String(argument));
    case 'exists':
      return argument === true;
    case 'anything-but':
      return matchAnythingBut(argument, value);
    case 'numeric':
      return typeof value === 'number' && matchNumeric(argument as unknown[], value);
    default:
      throw new Error(`Unsupported event pattern operator ${operator}`);
  }
}

function matchAnythingBut(argument: unknown, value: Json): boolean {
  if (typeof value !== 'string' && typeof value !== 'number') {
    return false;
  }
  if (Array.isArray(argument)) {
    return !argument.includes(value);
  }
  if (argument !== null && typeof argument === 'object') {
    if ('prefix' in argument) {
      return typeof value === 'string' && !value.startsWith(String((argument as { prefix: unknown }).prefix));
    }
    throw new Error(`Unsupported anything-but argument ${JSON.stringify(argument)}`);
  }
  return value !== argument;
}

function matchNumeric(conditions: unknown[], value: number): boolean {
  for (let i = 0; i < conditions.length; i += 2) {
    const operator = conditions[i];
    const bound = Number(conditions[i + 1]);
    const satisfied =
      operator === '=' ? value === bound
      : operator === '<' ? value < bound
      : operator === '<=' ? value <= bound
      : operator === '>' ? value > bound
      : operator === '>=' ? value >= bound
      : undefined;
    if (satisfied === undefined) {
      throw new Error(`Unsupported numeric operator ${String(operator)}`);
    }
    if (!satisfied) {
      return false;
    }
  }
  return true;
}
