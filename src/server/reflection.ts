// gRPC server reflection (grpc.reflection.v1, and v1alpha for older clients)
// for a Connect router. No npm package does this for Connect (connect-es
// #507), but protoc-gen-es embeds every file descriptor, so we can answer from
// those. With this, `buf curl --list-services` and grpcurl work without a
// local copy of the protos.

import { create, createRegistry, fromBinary, toBinary } from "@bufbuild/protobuf";
import type { DescFile, MessageInitShape, Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code } from "@connectrpc/connect";
import type { ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionRequestSchema,
  ServerReflectionResponseSchema,
  file_grpc_reflection_v1_reflection,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import type {
  ServerReflectionRequest,
  ServerReflectionResponse,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";

/** Everything the answers need, computed once per router rather than per request. */
interface Index {
  /** Every file by its proto name ("google/protobuf/struct.proto"), dependencies included. */
  files: Map<string, DescFile>;
  /** Fully-qualified symbol (types and their members) to the file that defines it. */
  symbols: Map<string, DescFile>;
  /** Types, for extension lookups. */
  registry: Registry;
  /** Services to advertise: only those of the files the caller passed. */
  services: string[];
}

function buildIndex(roots: readonly DescFile[]): Index {
  // Walk imports so dependencies (e.g. struct.proto) can be served by name.
  const files = new Map<string, DescFile>();
  const visit = (f: DescFile): void => {
    if (files.has(f.proto.name)) return;
    files.set(f.proto.name, f);
    f.dependencies.forEach(visit);
  };
  roots.forEach(visit);

  const registry = createRegistry(...files.values());
  // The registry knows types only; clients also ask for members such as
  // "pkg.Service.Method" or "pkg.Message.field", so index those as well.
  const symbols = new Map<string, DescFile>();
  for (const desc of registry) {
    symbols.set(desc.typeName, desc.file);
    switch (desc.kind) {
      case "message":
        for (const m of desc.members) symbols.set(`${desc.typeName}.${m.name}`, desc.file);
        break;
      case "service":
        for (const m of desc.methods) symbols.set(`${desc.typeName}.${m.name}`, desc.file);
        break;
      case "enum": {
        // Enum values live in the enum's enclosing scope, not inside the enum (C++ scoping).
        const scope = desc.parent?.typeName ?? desc.file.proto.package;
        for (const v of desc.values) symbols.set(scope ? `${scope}.${v.name}` : v.name, desc.file);
        break;
      }
      case "extension":
        break;
    }
  }

  const services = roots.flatMap((f) => f.services.map((s) => s.typeName));
  return { files, symbols, registry, services: [...new Set(services)] };
}

/**
 * Register grpc.reflection.v1.ServerReflection and its older name,
 * grpc.reflection.v1alpha.ServerReflection, answering for `files` (pass every
 * file whose services the router serves, health included; both reflection
 * files are added here). Older grpcurl, grpcui and several GUI clients ask
 * only for v1alpha.
 */
export function registerReflection(router: ConnectRouter, files: readonly DescFile[]): void {
  const index = buildIndex([...files, file_grpc_reflection_v1_reflection, v1alpha.file_grpc_reflection_v1alpha_reflection]);
  router.service(ServerReflection, {
    serverReflectionInfo: (requests) => reflect(index, requests),
  });
  // v1alpha is v1 under another package name, field for field, so its
  // messages are read and written as v1's through their (identical) bytes.
  router.service(v1alpha.ServerReflection, {
    async *serverReflectionInfo(requests) {
      async function* asV1() {
        for await (const req of requests) yield fromBinary(ServerReflectionRequestSchema, toBinary(v1alpha.ServerReflectionRequestSchema, req));
      }
      for await (const res of reflect(index, asV1())) {
        yield fromBinary(v1alpha.ServerReflectionResponseSchema, toBinary(ServerReflectionResponseSchema, res));
      }
    },
  });
}

async function* reflect(index: Index, requests: AsyncIterable<ServerReflectionRequest>): AsyncGenerator<ServerReflectionResponse> {
  // Like grpc-go, send each dependency at most once per stream: the client
  // already has what it was sent earlier on this stream.
  const sent = new Set<string>();
  for await (const req of requests) {
    yield answer(index, req, sent);
  }
}

function answer(index: Index, req: ServerReflectionRequest, sent: Set<string>): ServerReflectionResponse {
  // The spec asks us to echo the host and the request in every response.
  const base = { validHost: req.host, originalRequest: req };
  const ok = (messageResponse: MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"]) =>
    create(ServerReflectionResponseSchema, { ...base, messageResponse });
  const notFound = (errorMessage: string) =>
    ok({ case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage } });
  const withDeps = (file: DescFile | undefined, what: string) =>
    file
      ? ok({ case: "fileDescriptorResponse", value: { fileDescriptorProto: serialize(file, sent) } })
      : notFound(`${what} not found`);

  try {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        // The request's value is unused by the spec: always list everything.
        return ok({
          case: "listServicesResponse",
          value: { service: index.services.map((name) => ({ name })) },
        });
      case "fileByFilename":
        return withDeps(index.files.get(r.value), `file "${r.value}"`);
      case "fileContainingSymbol":
        return withDeps(index.symbols.get(r.value.replace(/^\./, "")), `symbol "${r.value}"`);
      case "fileContainingExtension": {
        const msg = index.registry.getMessage(r.value.containingType);
        const ext = msg && index.registry.getExtensionFor(msg, r.value.extensionNumber);
        return withDeps(ext?.file, `extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
      }
      case "allExtensionNumbersOfType": {
        // Unknown type is NOT_FOUND; a known type with no extensions gets an
        // empty list, as in grpc-go.
        const msg = index.registry.getMessage(r.value);
        if (!msg) return notFound(`message type "${r.value}" not found`);
        const numbers: number[] = [];
        for (const d of index.registry) {
          if (d.kind === "extension" && d.extendee.typeName === msg.typeName) numbers.push(d.number);
        }
        return ok({
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: msg.typeName, extensionNumber: numbers.sort((a, b) => a - b) },
        });
      }
      default:
        return notFound("empty or unsupported reflection request");
    }
  } catch (err) {
    // An exception would kill the whole stream; report it on this request only.
    return ok({
      case: "errorResponse",
      value: { errorCode: Code.Internal, errorMessage: String(err) },
    });
  }
}

/** The file first, then its transitive imports not yet sent on this stream. */
function serialize(file: DescFile, sent: Set<string>): Uint8Array[] {
  const out: Uint8Array[] = [];
  const visit = (f: DescFile, requested: boolean): void => {
    // The requested file always goes out, even if sent before: it is the answer.
    if (!requested && sent.has(f.proto.name)) return;
    sent.add(f.proto.name);
    out.push(toBinary(FileDescriptorProtoSchema, f.proto));
    for (const dep of f.dependencies) visit(dep, false);
  };
  visit(file, true);
  return out;
}
