/**
 * Examples for `--help`, printed after yargs' help rather than through `.example()`: yargs lays
 * examples out in columns and wraps them to the terminal width, which cuts a long command into
 * lines that no longer paste. Here each example is a `#` comment line and the whole command on one
 * line, never wrapped.
 */
export type Example = readonly [command: string, what: string];

const examplesByCommand = new Map<string, readonly Example[]>();

/** Records a command's examples (`$0` stands for the program name, as in yargs). */
export function setExamples(command: string, examples: readonly Example[]): void {
  examplesByCommand.set(command, examples);
}

/** The "Examples:" section of a command's help, or nothing when it has none. */
export function examplesSection(command: string, programName: string): string[] {
  const examples = examplesByCommand.get(command) ?? [];
  if (examples.length === 0) return [];
  return [
    '',
    'Examples:',
    ...examples.flatMap(([line, what]) => [`  # ${what}`, `  ${line.replaceAll('$0', programName)}`]),
  ];
}
