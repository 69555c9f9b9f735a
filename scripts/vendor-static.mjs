// Copies the browser files of npm packages into static/vendor/ so Django serves them.
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";

const files = {
  "@picocss/pico/css/pico.min.css": "pico/pico.min.css",
  "htmx.org/dist/htmx.min.js": "htmx/htmx.min.js",
  "chart.js/dist/chart.umd.min.js": "chartjs/chart.umd.min.js",
  // collectstatic's manifest storage follows the sourceMappingURL comment: ship the map too.
  "chart.js/dist/chart.umd.min.js.map": "chartjs/chart.umd.min.js.map",
  "axe-core/axe.min.js": "axe/axe.min.js",
};

// `--production` skips test-only packages (devDependencies such as axe-core).
const production = process.argv.includes("--production");

for (const [source, target] of Object.entries(files)) {
  if (production && !existsSync(join("node_modules", source))) continue;
  const destination = join("static", "vendor", target);
  mkdirSync(dirname(destination), { recursive: true });
  copyFileSync(join("node_modules", source), destination);
  console.log(`vendored ${source}`);
}
