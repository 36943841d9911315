/**
 * `/proc/<pid>/stat` (Linux only; callers say what they do elsewhere): its fields after the
 * command name, from field 3 (state) on, so field N of proc(5) is at index N - 3. The command
 * name, in parentheses, may itself hold spaces and parentheses: fields are counted from the last ')'.
 */
export function procStatFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
