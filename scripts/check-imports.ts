/**
 * The arrows ESLint cannot see: no import circles (between files, and between workspaces), and
 * every workspace declares in its package.json each workspace it imports.
 *
 *   node --import tsx scripts/check-imports.ts         exit 1 and a list when something is wrong
 *   node --import tsx scripts/check-imports.ts --fix   declare the missing workspaces ("*")
 */
import { readdirSync, readFileSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IMPORT_RE = /^\s*(?:import|export)\s[^'"]*?from\s+'([^']+)'|^\s*import\s+'([^']+)'/gm;

interface Workspace {
  name: string;
  dir: string;
  declared: Set<string>;
}

function workspaces(): Workspace[] {
  const out: Workspace[] = [];
  for (const group of ['packages', 'apps']) {
    for (const entry of readdirSync(join(ROOT, group))) {
      const pkgFile = join(ROOT, group, entry, 'package.json');
      if (!existsSync(pkgFile)) continue;
      const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
        name: string;
        dependencies?: Record<string, string>;
        devDependencies?: Record<string, string>;
      };
      const declared = new Set([
        ...Object.keys(pkg.dependencies ?? {}),
        ...Object.keys(pkg.devDependencies ?? {}),
      ]);
      out.push({ name: pkg.name, dir: join(ROOT, group, entry), declared });
    }
  }
  return out;
}

function sourceFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) return entry === 'node_modules' ? [] : sourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT_RE)].map((m) => (m[1] ?? m[2])!);
}

/** Every cycle found by a depth-first walk (each reported once, from its smallest member). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const found = new Map<string, string[]>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string) => {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') {
        const cycle = stack.slice(stack.indexOf(next));
        const start = cycle.indexOf([...cycle].sort()[0]!);
        const canonical = [...cycle.slice(start), ...cycle.slice(0, start)];
        found.set(canonical.join(' -> '), canonical);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  };
  for (const node of graph.keys()) if (!state.has(node)) visit(node);
  return [...found.values()];
}

const fix = process.argv.includes('--fix');
const problems: string[] = [];
const undeclared = new Map<Workspace, Map<string, string>>();
const all = workspaces();
const byName = new Map(all.map((w) => [w.name, w]));
const packageGraph = new Map<string, Set<string>>();
const fileGraph = new Map<string, Set<string>>();

for (const ws of all) {
  const deps = new Set<string>();
  packageGraph.set(ws.name, deps);
  for (const file of sourceFiles(join(ws.dir, 'src'))) {
    const edges = new Set<string>();
    fileGraph.set(file, edges);
    for (const spec of importsOf(file)) {
      if (spec.startsWith('.')) {
        edges.add(resolve(dirname(file), spec.replace(/\.js$/, '.ts')));
        continue;
      }
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec;
      if (!byName.has(pkg) || pkg === ws.name) continue;
      deps.add(pkg);
      if (!ws.declared.has(pkg)) {
        if (!undeclared.has(ws)) undeclared.set(ws, new Map());
        undeclared.get(ws)!.set(pkg, relative(ROOT, file));
      }
    }
  }
}
for (const [ws, missing] of undeclared) {
  const pkgFile = join(ws.dir, 'package.json');
  if (fix) {
    const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    const deps = {
      ...pkg.dependencies,
      ...Object.fromEntries([...missing.keys()].map((m) => [m, '*'])),
    };
    pkg.dependencies = Object.fromEntries(
      Object.entries(deps).sort(([a], [b]) => a.localeCompare(b)),
    );
    writeFileSync(pkgFile, `${JSON.stringify(pkg, null, 2)}\n`);
    continue;
  }
  for (const [pkg, file] of missing) {
    problems.push(`${relative(ROOT, pkgFile)} does not declare ${pkg} (imported by ${file})`);
  }
}
for (const c of cycles(packageGraph)) problems.push(`workspace import circle: ${c.join(' -> ')}`);
for (const c of cycles(fileGraph)) {
  problems.push(`file import circle: ${c.map((f) => relative(ROOT, f)).join(' -> ')}`);
}

if (problems.length) {
  for (const p of problems) process.stderr.write(`check-imports: ${p}\n`);
  process.exit(1);
}
process.stdout.write(
  `check-imports: ${all.length} workspaces, ${fileGraph.size} source files: no circles, all declared\n`,
);
