// RESULTS.md is rewritten whole by every `npm run bench`. A section that another kind of run
// writes (the --against comparison) sits between two markers, so that it can be replaced on
// its own, and carried over when a run that did not measure it rewrites the file.

const begin = (name: string) => `<!-- ${name}:begin -->`;
const end = (name: string) => `<!-- ${name}:end -->`;

/** The section `name` of `doc`, markers included, or undefined. */
export function findSection(doc: string, name: string): string | undefined {
  const from = doc.indexOf(begin(name));
  const to = doc.indexOf(end(name), from);
  return from < 0 || to < 0 ? undefined : doc.slice(from, to + end(name).length);
}

/** `body` between the markers of `name`. */
export function section(name: string, body: string): string {
  return `${begin(name)}\n${body.trim()}\n${end(name)}`;
}

/**
 * `doc` with the section `name` replaced by `marked` (a `section()`), or inserted before the
 * Method section (which ends the file), or appended.
 */
export function spliceSection(doc: string, name: string, marked: string): string {
  const old = findSection(doc, name);
  if (old) return doc.replace(old, () => marked);
  const method = doc.indexOf("\n## Method");
  return method < 0 ? `${doc.trimEnd()}\n\n${marked}\n` : `${doc.slice(0, method).trimEnd()}\n\n${marked}\n${doc.slice(method)}`;
}
