import assert from 'node:assert/strict';
import type { TrivyErrorCode } from '../src/index.js';
import { TrivyError } from '../src/index.js';

/** Asserts that `fn` throws (or rejects with) a TrivyError with this code; returns it. */
export async function rejectsWithCode(fn: () => unknown, code: TrivyErrorCode): Promise<TrivyError> {
  let caught: unknown;
  try {
    await fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof TrivyError, `expected TrivyError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}

export function throwsCode(fn: () => unknown, code: TrivyErrorCode): TrivyError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught instanceof TrivyError, `expected TrivyError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}
