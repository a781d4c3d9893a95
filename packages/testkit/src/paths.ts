import { fileURLToPath } from 'node:url';

/** The repository's root: where minicloud's processes run from and prisma/ lives. */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));
