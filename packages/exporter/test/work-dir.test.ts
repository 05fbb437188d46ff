import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ExporterError } from '../src/errors.js';
import { lockWorkDir } from '../src/work-dir.js';

const work = mkdtempSync(join(tmpdir(), 'airgap-workdir-'));
after(() => rmSync(work, { recursive: true, force: true }));

describe('work dir lock', () => {
  it('a second export in the same process cannot take the work dir lock (and so cannot have it deleted under it)', async () => {
    const unlock = await lockWorkDir(work);
    await assert.rejects(lockWorkDir(work), (error: ExporterError) => error.code === 'WORK_DIR_BUSY');
    assert.ok(existsSync(join(work, 'lock')), 'the first export still holds its lock');
    await unlock();
    assert.ok(!existsSync(join(work, 'lock')));
    const again = await lockWorkDir(work);
    await again();
  });
});
