import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Golden-file checks for the test file at `testFileUrl` (its import.meta.url): `golden(name,
 * actual)` compares `actual` with golden/NAME next to that file; UPDATE_GOLDEN=1 rewrites the
 * file instead.
 */
export function goldenFiles(testFileUrl: string): (name: string, actual: string) => void {
  const dir = join(dirname(fileURLToPath(testFileUrl)), 'golden');
  return (name, actual) => {
    const file = join(dir, name);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
    expect(actual).toBe(readFileSync(file, 'utf8'));
  };
}
