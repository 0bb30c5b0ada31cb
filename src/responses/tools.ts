import { array, invalid, isObject, object, oneOf, string, unsupported, type Json } from "./invalid.js";

/** Tools and tool_choice in both shapes: as the Response echoes them, and as chat completions take them. */
export interface MappedTools {
  readonly echoTools: Json[];
  readonly echoChoice: unknown;
  readonly chatTools: Json[] | undefined;
  readonly chatChoice: unknown;
}

const CHOICE_MODES = ["none", "auto", "required"] as const;
const NAME = /^[a-zA-Z0-9_-]{1,64}$/;

/**
 * Responses function tools are flat (`{type, name, parameters, strict}`),
 * chat's are nested under `function`. Built-in tools (web search, file
 * search, computer use, code interpreter, MCP...) run on OpenAI's side and
 * have no chat equivalent: a 400 naming the tool, never silently dropped.
 */
export function mapTools(tools: unknown, choice: unknown): MappedTools {
  const list = tools === undefined ? [] : array(tools, "tools");
  const echoTools: Json[] = [];
  let chatTools: Json[] = [];
  list.forEach((raw, i) => {
    const t = object(raw, `tools[${i}]`);
    const type = string(t.type, `tools[${i}].type`);
    if (type !== "function") throw unsupported(`tools[${i}].type`, `The '${type.slice(0, 64)}' tool`);
    const name = string(t.name, `tools[${i}].name`);
    if (!NAME.test(name)) throw invalid(`tools[${i}].name`, `Invalid 'tools[${i}].name': '${name.slice(0, 100)}' does not match '^[a-zA-Z0-9_-]{1,64}$'.`);
    const description = t.description ?? null;
    if (description !== null) string(description, `tools[${i}].description`);
    const parameters = t.parameters ?? null;
    if (parameters !== null) object(parameters, `tools[${i}].parameters`);
    const strict = t.strict ?? null;
    if (strict !== null && typeof strict !== "boolean") throw invalid(`tools[${i}].strict`, `Invalid type for 'tools[${i}].strict': expected a boolean.`);
    // OpenAI's Responses default is strict; chat's is not, so strict goes upstream only when asked for.
    echoTools.push({ type: "function", name, description, parameters, strict: strict ?? true });
    const fn: Json = { name };
    if (description !== null) fn.description = description;
    if (parameters !== null) fn.parameters = parameters;
    if (strict !== null) fn.strict = strict;
    chatTools.push({ type: "function", function: fn });
  });

  let chatChoice: unknown;
  const echoChoice = choice ?? "auto";
  if (typeof choice === "string") {
    chatChoice = oneOf(choice, "tool_choice", CHOICE_MODES);
  } else if (choice !== undefined) {
    const c = object(choice, "tool_choice");
    const type = string(c.type, "tool_choice.type");
    if (type === "function") {
      chatChoice = { type: "function", function: { name: string(c.name, "tool_choice.name") } };
    } else if (type === "allowed_tools") {
      // The subset the model may call this turn: chat has no such field, so only those tools are sent.
      chatChoice = oneOf(c.mode, "tool_choice.mode", ["auto", "required"] as const);
      const allowed = new Set(array(c.tools, "tool_choice.tools").map((a, i) => {
        if (!isObject(a) || a.type !== "function") throw unsupported(`tool_choice.tools[${i}].type`, "Allowing a tool other than a function");
        return string(a.name, `tool_choice.tools[${i}].name`);
      }));
      chatTools = chatTools.filter((t) => allowed.has((t.function as Json).name as string));
    } else {
      throw unsupported("tool_choice.type", `tool_choice '${type.slice(0, 64)}'`);
    }
  }
  return { echoTools, echoChoice, chatTools: list.length ? chatTools : undefined, chatChoice };
}
