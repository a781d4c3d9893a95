import { HostCommandError, type CommandRunner, type RunResult } from '@minicloud/host';

/** A scripted CommandRunner: records every call; `respond` decides each result. */
export function fakeRunner(
  respond: (cmd: string, args: readonly string[], input?: string) => Partial<RunResult> | Error,
) {
  const calls: { cmd: string; args: string[]; input?: string }[] = [];
  const run: CommandRunner = async (cmd, args, options = {}) => {
    const input = options.input === undefined ? undefined : String(options.input);
    calls.push({ cmd, args: [...args], input });
    const r = respond(cmd, args, input);
    if (r instanceof Error) throw r;
    return { stdout: '', stderr: '', exitCode: 0, ...r };
  };
  return { run, calls, line: () => calls.map((c) => [c.cmd, ...c.args].join(' ')) };
}

/** What a runner reports when the program is not installed. */
export const missing = (cmd: string) => new HostCommandError(cmd, [], null, 'ENOENT ', false);
