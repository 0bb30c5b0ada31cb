import modelsData from "../data/models.json" with { type: "json" };
import routesData from "../data/routes.json" with { type: "json" };
import { createCatalog, type Catalog, type CatalogRow, type RouteRows } from "./catalog.js";

/** The catalog bundled with the build (src/data/): what the gateway serves and the CLI checks names against. */
export function shippedCatalog(): Catalog {
  return createCatalog(modelsData.models as CatalogRow[], routesData.routes as RouteRows);
}
