import { rollback } from '@trivy-airgap/importer';
import type { Argv } from 'yargs';
import type { CommandContext } from '../context.js';
import { setExamples } from '../help.js';
import { resolveCache } from '../locations.js';

interface RollbackArgs {
  'cache-dir': string | undefined;
  component: string[] | undefined;
}

export function rollbackCommand(context: CommandContext) {
  return {
    command: 'rollback',
    describe: 'Put back what the last import replaced (atomically per component); run again to undo',
    builder: (yargs: Argv) => {
      setExamples('rollback', [
        ['$0 rollback', 'every component back to the previous generation'],
        ['$0 rollback --component db --cache-dir /srv/trivy', 'only the vulnerability DB'],
      ]);
      return yargs
        .option('cache-dir', { type: 'string', describe: "Trivy's cache dir (default as Trivy resolves it)" })
        .option('component', {
          type: 'string',
          array: true,
          describe:
            'only these: db, java-db, checks, vex/<name> (default: every component that has a previous one)',
        });
    },
    handler: async (args: RollbackArgs) => {
      const result = await rollback({
        cacheDir: resolveCache(context, args['cache-dir']).path,
        ...(args.component === undefined ? {} : { components: args.component }),
      });
      context.out.result(result, [
        `rolled back in ${result.cacheDir}:`,
        ...result.rolledBack.map(
          (entry) =>
            `  ${entry.key.padEnd(14)} now ${entry.restored.generation ?? entry.restored.target} (bundle ${entry.restored.bundleId ?? 'pre-existing'}${entry.restored.updatedAt === undefined ? '' : `, built ${entry.restored.updatedAt}`})`,
        ),
        'run `trivy-airgap rollback` again to go forward again',
      ]);
    },
  };
}
